"""Loggers (``logger=`` config group): observers of the loop's per-trial event that map a run
onto the tools users already read: TensorBoard, MLflow, a CSV file.

:func:`hpo_cli.loggers.base.build_loggers` (called by :mod:`hpo_cli.build`, the one wiring path)
turns the ``logger`` node into a :class:`~hpo_cli.loggers.base.Loggers` group; the loop tells it
each stored trial, the runner opens it before the first trial and closes it after the outputs
(summary.json, best.yaml, plots) are written. The loop and the tasks never know which logger
runs; each logger's heavy library is imported only when that logger opens.
"""
