"""Subcommands of ``hpo``: one module each (run, resume, compare, bench, gradcheck)."""
