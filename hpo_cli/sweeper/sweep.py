"""A sweep of ``hydra/sweeper=hpo``: our strategies over the jobs of the user's Hydra app.

The sweep directory (``hydra.sweep.dir``) is a run directory like ``hpo run``'s:
``trials.jsonl``, ``summary.json``, ``best.yaml``, ``strategy_state.json``, ``plots/``, so
``hpo compare`` reads it and a killed sweep continues with ``hydra.sweeper.resume=true``. Job
numbers are trial numbers: they continue where the killed sweep stopped, never from 0. A resume
with a changed sweep (strategy, its options, the space, the seed, the fixed overrides) is
refused; ``n_trials`` and ``timeout_s`` may grow.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from hpo_cli.build import RunNames, Study, build_strategy, config_fingerprint
from hpo_cli.errors import ConfigError, ResumeError, RunDirError
from hpo_cli.loggers.base import loggers_named
from hpo_cli.runner import run_study
from hpo_cli.settings import Settings
from hpo_cli.space import SearchSpace, parse_space
from hpo_cli.store import SUMMARY, RunStore
from hpo_cli.sweeper.grammar import parse_params
from hpo_cli.sweeper.launched import LauncherExecutor
from hpo_cli.tasks.base import Task
from hpo_cli.trial import Evaluation

DIRECTIONS = ("minimize", "maximize")


class HydraApp(Task):
    """The user's Hydra app as the study's task: its jobs run through the launcher (the
    executor), never through ``evaluate``."""

    def __init__(self, name: str, direction: str, metric: str) -> None:
        self.name, self.direction, self.metric = name, direction, metric

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
    space, fixed = sweep_space(options, arguments)
    settings = sweep_settings(options)
    metric = options.get("metric")
    strategy_cfg = strategy_config(str(options.get("strategy", "tpe")), options.get("strategy_params") or {})
    if "min_budget" in strategy_cfg and not options.get("budget_key"):
        raise ConfigError(
            "hydra.sweeper.budget_key",
            None,
            f"strategy {options.get('strategy')} varies a budget: name the override "
            "that receives it (e.g. trainer.max_epochs) and set strategy_params min_budget and max_budget",
        )
    strategy = build_strategy(strategy_cfg, space, settings, fidelity_of(options))
    task = HydraApp(app_name, settings.direction or "minimize", str(metric or "value"))
    strategy.check_task(task)
    executor = LauncherExecutor(
        launch, fixed, metric, options.get("seed_key"), options.get("budget_key"), settings.batch_size, launcher_name
    )
    study = Study(
        settings, task, space, strategy, task.direction, RunNames(str(options["strategy"]), app_name, "hydra.sweeper"),
        task.metric, "none", executor, loggers_named(options.get("logger")),
    )  # fmt: skip
    fingerprinted = OmegaConf.create(
        {
            "sweeper": {k: v for k, v in options.items() if k not in ("resume", "n_trials", "timeout_s", "logger")},
            "fixed": list(fixed),
            "space": [repr(p) for p in space.params],
            "n_trials": settings.n_trials,
        }
    )
    validate([executor.overrides_of(space.decode(np.full(space.dim, 0.5)), seed=0, budget=None)])
    store = RunStore(sweep_dir)
    resume = bool(options.get("resume", False)) and store.holds_run()
    with store.exclusive():
        if resume:
            _refuse_a_changed_sweep(store, fingerprinted)
        elif store.holds_run():
            raise RunDirError(f"{sweep_dir} already holds a sweep: continue it with hydra.sweeper.resume=true")
        save_config()
        hint = f"the same command with hydra.sweeper.resume=true hydra.sweep.dir={sweep_dir}"
        return run_study(study, fingerprinted, store, resume=resume, resume_hint=hint)


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
    if not file.is_file():
        raise ConfigError("hydra.sweeper.space", path, "no such file")
    raw = OmegaConf.to_container(OmegaConf.load(file), resolve=True)
    if not isinstance(raw, dict) or set(raw) - {"params"}:
        raise ConfigError("hydra.sweeper.space", path, "a space file holds only 'params'")
    return parse_space(raw.get("params"), {}, prefix="hydra.sweeper.space.params")


def sweep_settings(options: Mapping[str, Any]) -> Settings:
    from hpo_cli.validate import positive_int

    direction = options.get("direction", "minimize")
    if direction not in DIRECTIONS:
        raise ConfigError("hydra.sweeper.direction", direction, "must be minimize or maximize")
    rate = options.get("max_failure_rate", 0.5)
    if not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise ConfigError("hydra.sweeper.max_failure_rate", rate, "must be a number in [0, 1]")
    timeout = options.get("timeout_s")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise ConfigError("hydra.sweeper.timeout_s", timeout, "must be a positive number of seconds or null")
    seed = options.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError("hydra.sweeper.seed", seed, "must be an integer >= 0")
    return Settings(
        seed=seed,
        n_trials=positive_int(options.get("n_trials", 20), "hydra.sweeper.n_trials"),
        timeout_s=timeout,
        batch_size=positive_int(options.get("batch_size", 1), "hydra.sweeper.batch_size"),
        device="cpu",
        dtype=None,
        direction=direction,
        max_failure_rate=float(rate),
    )


def strategy_config(name: str, overrides: Mapping[str, Any]) -> DictConfig:
    """Our ``conf/strategy/NAME.yaml`` with ``strategy_params`` merged in."""
    folder = importlib.resources.files("hpo_cli.conf") / "strategy"
    available = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
    if name not in available:
        raise ConfigError("hydra.sweeper.strategy", name, f"not a strategy (they are: {', '.join(available)})")
    node = OmegaConf.create((folder / f"{name}.yaml").read_text())
    assert isinstance(node, DictConfig)
    node.pop("defaults", None)
    unknown = sorted(set(overrides) - set(node))
    if unknown:
        key = f"hydra.sweeper.strategy_params.{unknown[0]}"
        raise ConfigError(key, overrides[unknown[0]], f"not an option of {name}")
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
