"""Bayesian-optimization building blocks: the GP model, acquisitions and their maximizer."""
