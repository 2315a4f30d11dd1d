"""Presentation: live progress, console tables, plots, and readers of finished runs."""
