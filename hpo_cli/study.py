"""Run a strategy on a task in-process, from Python: ``run_in_memory(cfg)`` -> trial records.

For benchmarks and notebooks: the same loop as ``hpo run``, with the run directory in a
temporary folder unless one is given.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from hpo_cli.app import register_resolvers, user_config_dir
from hpo_cli.errors import ConfigError
from hpo_cli.loop import Budget, StudyLoop
from hpo_cli.run import build_space, build_strategy, build_task, objective_of
from hpo_cli.settings import read_settings
from hpo_cli.store import RunStore, TrialRecord


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The composed config of ``hpo run OVERRIDES`` (./conf joins the search path as there).

    Hydra's errors (an unknown option, a bad override) become one-line ConfigErrors.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_resolvers()
    extra = user_config_dir()
    search = [f"hydra.searchpath=[file://{extra}]"] if extra else []
    try:
        with initialize_config_module("hpo_cli.conf", version_base="1.3"):
            return compose("config", overrides=[*search, *overrides])
    except (HydraException, OmegaConfBaseException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError("overrides", list(overrides), first) from None


def run_in_memory(overrides: Sequence[str], run_dir: Path | None = None) -> list[TrialRecord]:
    """Run the study ``hpo run OVERRIDES`` would run, quietly; returns its trial records."""
    return run_with_direction(overrides, run_dir)[0]


def run_with_direction(overrides: Sequence[str], run_dir: Path | None = None) -> tuple[list[TrialRecord], str]:
    """Like :func:`run_in_memory`, also returning the direction ("minimize" | "maximize")."""
    cfg = compose_config(overrides)
    settings = read_settings(cfg)
    task = build_task(cfg.task, settings.device, settings.dtype)
    space = build_space(cfg.space, task)
    strategy = build_strategy(cfg.strategy, space, settings, task.fidelity)

    strategy.check_task(task)
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(run_dir or Path(tmp))
        budget = Budget(settings.n_trials, settings.batch_size, settings.timeout_s, settings.max_failure_rate)
        direction = settings.direction or task.direction
        loop = StudyLoop(strategy, objective_of(task), store, budget, direction)
        return loop.run().records, direction
