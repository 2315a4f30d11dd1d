"""hpo_cli: hyperparameter optimization from the command line, and from Python.

The public API (imported lazily, so that ``hpo --help`` and Hydra's plugin scan stay fast)::

    from hpo_cli import compose_study, run_in_memory
    records = run_in_memory(["strategy=hoag", "task=polynomial", "space=polynomial_per_coef"])
    study = compose_study(["task=ridge"])          # settings, task, space, strategy, direction

Layers, top down: ``cli`` and ``commands/`` (what a user types), ``runner`` and ``build`` (one
run, wired once), the engine (``loop``, ``store``, ``space``, ``strategies/``, ``tasks/``,
``hypergrad/``), and ``report/`` (progress, tables, plots, results readers).
"""

from __future__ import annotations

from importlib import import_module
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what mypy and IDEs see; at run time each name is imported on first use
    from hpo_cli.build import Study, build_study, compose_config, compose_study
    from hpo_cli.errors import ConfigError
    from hpo_cli.report.results import trials_dataframe
    from hpo_cli.runner import run_in_memory
    from hpo_cli.space import SearchSpace, parse_space
    from hpo_cli.store import RunStore, TrialRecord
    from hpo_cli.strategies.base import Observation, Strategy, Suggestion, TrialState
    from hpo_cli.tasks.base import Evaluation, Task

_WHERE = MappingProxyType(
    {
        "ConfigError": "hpo_cli.errors",
        "SearchSpace": "hpo_cli.space",
        "parse_space": "hpo_cli.space",
        "Strategy": "hpo_cli.strategies.base",
        "Suggestion": "hpo_cli.strategies.base",
        "Observation": "hpo_cli.strategies.base",
        "TrialState": "hpo_cli.strategies.base",
        "Task": "hpo_cli.tasks.base",
        "Evaluation": "hpo_cli.tasks.base",
        "TrialRecord": "hpo_cli.store",
        "RunStore": "hpo_cli.store",
        "Study": "hpo_cli.build",
        "build_study": "hpo_cli.build",
        "compose_config": "hpo_cli.build",
        "compose_study": "hpo_cli.build",
        "run_in_memory": "hpo_cli.runner",
        "trials_dataframe": "hpo_cli.report.results",
    }
)

__all__ = [
    "ConfigError",
    "Evaluation",
    "Observation",
    "RunStore",
    "SearchSpace",
    "Strategy",
    "Study",
    "Suggestion",
    "Task",
    "TrialRecord",
    "TrialState",
    "build_study",
    "compose_config",
    "compose_study",
    "parse_space",
    "run_in_memory",
    "trials_dataframe",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'hpo_cli' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return __all__
