"""A sweep of ``hydra/sweeper=hpo``: our strategies over the jobs of the user's Hydra app.

The sweep directory (``hydra.sweep.dir``) is a run directory like ``hpo run``'s:
``trials.jsonl``, ``summary.json``, ``best.yaml``, ``strategy_state.json``, ``plots/``, so
``hpo compare`` reads it and a killed sweep continues with ``hydra.sweeper.resume=true``. Job
numbers are trial numbers: they continue where the killed sweep stopped, never from 0. A resume
with a changed sweep (strategy, its options, the space, the seed, the fixed overrides) is
refused; ``n_trials`` and ``timeout_s`` may grow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hpo_cli.build import RunNames, Study, assemble_study, build_space, compose_group, config_fingerprint
from hpo_cli.errors import ConfigError, ResumeError, RunDirError
from hpo_cli.loggers.base import loggers_named
from hpo_cli.runner import run_study
from hpo_cli.settings import settings_of
from hpo_cli.space import SearchSpace
from hpo_cli.store import SUMMARY, RunStore, holds_run
from hpo_cli.sweeper.grammar import parse_params
from hpo_cli.sweeper.launched import LauncherExecutor
from hpo_cli.tasks.base import Task
from hpo_cli.trial import Evaluation
from hpo_cli.validate import flag

PREFIX = "hydra.sweeper."
SETTINGS = ("seed", "n_trials", "timeout_s", "batch_size", "direction", "max_failure_rate")  # read as hpo run's


class HydraApp(Task):
    """The user's Hydra app as the study's task: its jobs run through the launcher (the
    executor), never through ``evaluate``. ``fidelity``: the budget range of multi-fidelity
    strategies (``strategy_params`` min_budget and max_budget)."""

    def __init__(self, name: str, direction: str, metric: str, fidelity: tuple[float, float] | None) -> None:
        self.name, self.direction, self.metric, self.fidelity = name, direction, metric, fidelity

    def evaluate(self, params: Mapping[str, Any], budget: float | None = None, request: Any = None) -> Evaluation:
        raise RuntimeError("a Hydra app's trials run as jobs through its launcher")


def run_sweep(
    options: Mapping[str, Any],
    arguments: Sequence[str],
    launch: Callable[[Sequence[Sequence[str]], int], Sequence[Any]],
    launcher_name: str,
    sweep_dir: Path,
    app_name: str,
    validate: Callable[[Sequence[Sequence[str]]], None],
    save_config: Callable[[], None],
) -> str:
    """Run (or, with ``resume``, continue) the sweep; its status ("finished" | "failed").

    Every check that can refuse runs before anything is written into ``sweep_dir``: the
    options, the space, the strategy, whether the app composes with a job's overrides
    (``validate``), a resume's config; then ``save_config`` (Hydra's ``multirun.yaml``)."""
    resume = flag(options.get("resume", False), f"{PREFIX}resume")
    if resume and not holds_run(sweep_dir):
        raise ConfigError(f"{PREFIX}resume", True, f"{sweep_dir} holds no sweep to continue (drop it to start one)")
    study, fixed = sweep_study(options, arguments, launch, launcher_name, app_name)
    executor = study.executor
    assert isinstance(executor, LauncherExecutor)
    fingerprinted = OmegaConf.create(
        {
            "sweeper": {k: v for k, v in options.items() if k not in ("resume", "n_trials", "timeout_s", "logger")},
            "fixed": list(fixed),
            "space": [repr(p) for p in study.space.params],
            "n_trials": study.settings.n_trials,
        }
    )
    space = study.space
    validate([executor.overrides_of(space.decode(np.full(space.dim, 0.5)), seed=0, budget=None)])
    store = RunStore(sweep_dir)
    with store.exclusive():
        if resume:
            _refuse_a_changed_sweep(store, fingerprinted)
        elif store.holds_run():
            raise RunDirError(f"{sweep_dir} already holds a sweep: continue it with {PREFIX}resume=true")
        save_config()
        hint = f"the same command with {PREFIX}resume=true hydra.sweep.dir={sweep_dir}"
        return run_study(study, fingerprinted, store, resume=resume, resume_hint=hint)


def sweep_study(
    options: Mapping[str, Any],
    arguments: Sequence[str],
    launch: Callable[[Sequence[Sequence[str]], int], Sequence[Any]],
    launcher_name: str,
    app_name: str,
) -> tuple[Study, list[str]]:
    """The sweep's study, wired by :func:`hpo_cli.build.assemble_study` like ``hpo run``'s
    (settings read by the same checks, the strategy composed by Hydra from hpo_cli's configs);
    and the fixed overrides every job gets."""
    space, fixed = sweep_space(options, arguments)
    settings = settings_of({k: options.get(k) for k in SETTINGS if k in options}, prefix=PREFIX)
    name = str(options.get("strategy", "tpe"))
    strategy_cfg = strategy_config(name, options.get("strategy_params") or {})
    if "min_budget" in strategy_cfg and not options.get("budget_key"):
        raise ConfigError(
            f"{PREFIX}budget_key",
            None,
            f"strategy {name} varies a budget: name the override that receives it (e.g. trainer.max_epochs) "
            "and set strategy_params min_budget and max_budget",
        )
    metric = options.get("metric")
    task = HydraApp(app_name, settings.direction or "minimize", str(metric or "value"), fidelity_of(options))
    executor = LauncherExecutor(
        launch, fixed, metric, options.get("seed_key"), options.get("budget_key"), settings.batch_size, launcher_name
    )
    names = RunNames(name, app_name, "hydra.sweeper")
    loggers = loggers_named(options.get("logger"))
    return assemble_study(settings, task, space, strategy_cfg, lambda: executor, names, loggers), fixed


def sweep_space(options: Mapping[str, Any], arguments: Sequence[str]) -> tuple[SearchSpace, list[str]]:
    """The search space (``space``: one of our space files; ``params`` and sweep arguments in
    Hydra's grammar) and the fixed overrides every job gets."""
    params: dict[str, Any] = {}
    fixed: list[str] = []
    for argument in arguments:
        key, _, value = argument.partition("=")
        if _is_sweep(argument):
            params[key] = value
        else:
            fixed.append(argument)
    params.update(options.get("params") or {})
    searched: list[Any] = []
    if options.get("space"):
        searched += list(space_file(str(options["space"])).params)
    if params or not searched:
        grammar_space, constants = parse_params(params)
        searched += list(grammar_space.params)
        fixed += [f"{k}={v}" for k, v in constants.items()]
    names = [p.name for p in searched]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError("hydra.sweeper.params", duplicated[0], "is searched twice (in space and in params)")
    return SearchSpace(tuple(searched)), fixed


def _is_sweep(argument: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_override(argument).is_sweep_override()


def space_file(path: str) -> SearchSpace:
    """One of our space YAML files (``params: {name: {type: ..., ...}}``)."""
    file = Path(path).expanduser()
    key = f"{PREFIX}space"
    if not file.is_file():
        raise ConfigError(key, path, "no such file")
    try:
        node = OmegaConf.load(file)
    except yaml.MarkedYAMLError as exc:
        line = f" (line {exc.problem_mark.line + 1})" if exc.problem_mark is not None else ""
        raise ConfigError(key, path, f"YAML syntax error{line}: {exc.problem}") from None
    except (OSError, yaml.YAMLError, OmegaConfBaseException) as exc:
        raise ConfigError(key, path, " ".join(str(exc).split())[:200]) from None
    if not isinstance(node, DictConfig):
        raise ConfigError(key, path, "a space file is a mapping holding 'params'")
    return build_space(node, HydraApp("app", "minimize", "value", None), key=key)


def strategy_config(name: str, overrides: Mapping[str, Any]) -> DictConfig:
    """``strategy=NAME`` composed by Hydra from hpo_cli's configs, ``strategy_params`` merged in."""
    try:
        node = compose_group("strategy", name)
    except ConfigError as exc:
        raise ConfigError(f"{PREFIX}strategy", name, exc.reason) from None
    unknown = sorted(set(overrides) - set(node) - {"_target_", "_partial_"})
    if unknown:
        key = f"{PREFIX}strategy_params.{unknown[0]}"
        raise ConfigError(key, overrides[unknown[0]], f"not an option of {name} ({', '.join(sorted(node))})")
    merged = OmegaConf.merge(node, dict(overrides))
    assert isinstance(merged, DictConfig)
    return merged


def fidelity_of(options: Mapping[str, Any]) -> tuple[float, float] | None:
    """The budget range of multi-fidelity strategies (``min_budget``, ``max_budget``), when given."""
    params = options.get("strategy_params") or {}
    low, high = params.get("min_budget"), params.get("max_budget")
    return None if low is None or high is None else (float(low), float(high))


def _refuse_a_changed_sweep(store: RunStore, fingerprinted: DictConfig) -> None:
    summary = store.read_json(SUMMARY) or {}
    if config_fingerprint(fingerprinted) != summary.get("config_sha256"):
        raise ResumeError(
            f"refusing to resume the sweep in {store.dir}: its sweeper config or fixed overrides changed "
            "(only n_trials and timeout_s may change; start a new sweep instead)"
        )
