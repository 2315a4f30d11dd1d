"""One study: build the task, space and strategy from a composed config, run the loop, and
write the run directory. Used by ``hpo run`` (through Hydra) and ``hpo resume``."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hpo_cli.errors import ConfigError
from hpo_cli.loop import Budget, Objective, StudyLoop
from hpo_cli.progress import format_params, format_value, make_progress
from hpo_cli.settings import Settings, read_settings, resolve_device
from hpo_cli.space import SearchSpace, parse_space
from hpo_cli.store import STRATEGY_STATE, SUMMARY, RunStore, TrialRecord, best_trial
from hpo_cli.strategies.base import Strategy
from hpo_cli.tasks.base import Evaluation, Task

log = logging.getLogger("hpo_cli")

# Keys a resumed run may change: they extend or shorten the budget, not the experiment.
BUDGET_KEYS = ("n_trials", "timeout_s")
NOT_FINGERPRINTED = (*BUDGET_KEYS, "runs_dir")
VERSIONED = ("hpo_cli", "numpy", "scipy", "scikit-learn", "hydra-core", "omegaconf", "torch")


@dataclass(frozen=True)
class RunNames:
    """The config-group choices that name a run (``hydra.runtime.choices``)."""

    strategy: str
    task: str
    space: str


def config_fingerprint(cfg: DictConfig) -> str:
    """sha256 of the resolved config, budget keys and the output folder left out."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    kept = {k: v for k, v in plain.items() if k not in NOT_FINGERPRINTED}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def build_task(task_cfg: DictConfig, device: str, dtype: str | None = None) -> Task:
    """The task; ``dtype`` None leaves each task its own default precision."""
    runtime = {"device": device} if dtype is None else {"device": device, "dtype": dtype}
    task = _instantiate(task_cfg, "task", **runtime)

    if not isinstance(task, Task):
        raise ConfigError("task._target_", task_cfg.get("_target_"), "does not build a hpo_cli Task")
    return task


def build_space(space_cfg: DictConfig, task: Task) -> SearchSpace:
    raw = OmegaConf.to_container(space_cfg, resolve=True)
    assert isinstance(raw, dict)
    unknown = sorted(set(raw) - {"params"})
    if unknown:
        raise ConfigError(f"space.{unknown[0]}", raw[unknown[0]], "a space file holds only 'params'")
    space = parse_space(raw.get("params"), task.dimensions())
    task.check_space(space.names)
    return space


def build_strategy(
    strategy_cfg: DictConfig,
    space: SearchSpace,
    settings: Settings,
    fidelity: tuple[float, float] | None = None,
) -> Strategy:
    """The strategy; ``fidelity`` (the task's budget range) goes to those that take it."""
    strategy = _instantiate(
        strategy_cfg,
        "strategy",
        space=space,
        seed=settings.seed,
        n_trials=settings.n_trials,
        fidelity=fidelity,
    )
    if not isinstance(strategy, Strategy):
        raise ConfigError("strategy._target_", strategy_cfg.get("_target_"), "does not build a Strategy")
    return strategy


def _instantiate(node: DictConfig, group: str, **runtime: Any) -> Any:
    """Hydra's instantiate, with the usual mistakes turned into one-line ConfigErrors."""
    if "_target_" not in node:
        raise ConfigError(f"{group}._target_", None, f"a {group} config needs a _target_")
    try:
        factory = instantiate(node, _convert_="all")
    except Exception as exc:  # hydra wraps import and argument errors
        raise ConfigError(f"{group}._target_", node.get("_target_"), _root_message(exc)) from None
    if not callable(factory) or isinstance(factory, Task | Strategy):
        return factory
    try:
        return factory(**_accepted(factory, runtime))
    except TypeError as exc:
        raise ConfigError(group, OmegaConf.to_container(node), str(exc)) from None


def _accepted(factory: Any, runtime: dict[str, Any]) -> dict[str, Any]:
    """The run-time keywords (device, dtype, seed, ...) that the factory takes; a user's class
    need not take them all."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return runtime
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return runtime
    names = {p.name for p in parameters}
    return {k: v for k, v in runtime.items() if k in names}


def _root_message(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return " ".join(str(exc).split())


def objective_of(task: Task) -> Objective:
    """The loop's objective: ``request`` (a hypergradient, say) goes only to tasks that take it."""

    def objective(params: Mapping[str, Any], budget: float | None, request: Mapping[str, Any]) -> Evaluation:
        if request:
            return task.evaluate(params, budget, request)  # type: ignore[call-arg]
        return task.evaluate(params, budget)

    return objective


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def run_study(cfg: DictConfig, run_dir: Path, names: RunNames, resume: bool = False) -> str:
    """Run (or continue) the study configured by ``cfg`` in ``run_dir``; returns the status.

    Ctrl-C writes the summary with status "interrupted" and re-raises KeyboardInterrupt.
    """
    settings = read_settings(cfg)
    task = build_task(cfg.task, resolve_device(settings.device), settings.dtype)
    space = build_space(cfg.space, task)
    strategy = build_strategy(cfg.strategy, space, settings, task.fidelity)
    strategy.check_task(task)

    direction = settings.direction or task.direction
    store = RunStore(run_dir)
    previous, told, seconds_before, sessions = _prior_state(store, strategy, resume)
    header = {
        "strategy": names.strategy,
        "task": names.task,
        "space": names.space,
        "seed": settings.seed,
        "direction": direction,
        "metric": task.metric,
        "n_trials": settings.n_trials,
        "config_sha256": config_fingerprint(cfg),
        "sessions": sessions,
        "versions": versions(),
    }
    store.write_json(SUMMARY, {**header, "status": "running"})
    log.info(
        "%s %s: strategy=%s task=%s space=%s (%d parameters, %d dimensions) -> %s",
        "resuming" if resume else "starting",
        run_dir.name,
        names.strategy,
        names.task,
        names.space,
        len(space.params),
        space.dim,
        run_dir,
    )
    loop = StudyLoop(
        strategy,
        objective_of(task),
        store,
        Budget(settings.n_trials, settings.batch_size, settings.timeout_s, settings.max_failure_rate),
        direction,
        seconds_before=seconds_before,
    )
    started = time.monotonic()
    status, message = (
        "interrupted",
        "interrupted (Ctrl-C); continue with: hpo resume " + str(run_dir),
    )
    try:
        with make_progress(settings.n_trials, len(previous)) as progress:
            loop.progress = progress
            outcome = loop.run(previous, told)
        loop.save_checkpoint()
        status, message = outcome.status, outcome.message
    finally:
        records = store.read_trials()
        if status == "finished" and best_trial(records, direction) is None:
            status, message = "failed", "no trial completed; " + message
        wall = seconds_before + time.monotonic() - started
        _finish(store, header, records, status, message, wall, task.metric)
    return status


def _prior_state(store: RunStore, strategy: Strategy, resume: bool) -> tuple[list[TrialRecord], int, float, int]:
    """(recorded trials, trials the restored strategy already knows, seconds spent, session no.)"""
    if not resume:
        if store.trials_path.exists():
            raise ConfigError("run directory", str(store.dir), "already holds a run; use hpo resume")
        return [], 0, 0.0, 1
    previous = store.read_trials(repair=True)
    summary = store.read_json(SUMMARY) or {}
    checkpoint = store.read_json(STRATEGY_STATE)
    told = 0
    if checkpoint and 0 < checkpoint["told"] <= len(previous):
        try:
            strategy.load_state_dict(checkpoint["state"])
            told = int(checkpoint["told"])
        except (ValueError, KeyError) as exc:
            log.warning("ignoring the strategy checkpoint (%s); replaying all trials", exc)
    log.info(
        "resuming: %d trials recorded, %d restored from the checkpoint, %d to replay",
        len(previous),
        told,
        len(previous) - told,
    )
    return (
        previous,
        told,
        float(summary.get("wall_seconds") or 0.0),
        int(summary.get("sessions") or 0) + 1,
    )


def _finish(
    store: RunStore,
    header: Mapping[str, Any],
    records: list[TrialRecord],
    status: str,
    message: str,
    wall: float,
    metric: str,
) -> None:
    direction = str(header["direction"])
    best = best_trial(records, direction)
    cost: dict[str, int] = {"evaluations": len(records), "inner_steps": 0}
    for r in records:
        for key, n in r.cost.items():
            cost[key] = cost.get(key, 0) + int(n)
    summary = {
        **header,
        "status": status,
        "message": message,
        "n_complete": sum(r.state == "complete" for r in records),
        "n_failed": sum(r.state == "failed" for r in records),
        "n_pruned": sum(r.state == "pruned" for r in records),
        "best": None
        if best is None
        else {
            "trial": best.trial,
            "value": best.value,
            "params": best.params,
            "metrics": best.metrics,
        },
        "wall_seconds": round(wall, 4),
        "cost": cost,
    }
    store.write_json(SUMMARY, summary)
    if best is not None:
        store.write_best(
            best.params,
            [
                f"Best of {len(records)} trials in {store.dir}: trial {best.trial}, "
                f"{metric} = {best.value!r} ({direction}).",
                "Parameter values by name; evaluate them again with",
                f"  hpo run strategy=fixed task={header['task']} space={header['space']} "
                f"strategy.params_file={store.dir / 'best.yaml'}",
            ],
        )
    from hpo_cli.plots import plot_history
    from hpo_cli.results import TRIALS_CSV, write_trials_csv

    write_trials_csv(records, store.dir / TRIALS_CSV)

    title = f"{header['strategy']} on {header['task']} (seed {header['seed']})"
    plot_history(records, direction, store.dir / "plots" / "history.png", title, metric)
    log.info("%s: %s", status, message)
    _print_summary(summary, store.dir)


def _print_summary(summary: Mapping[str, Any], run_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"hpo run: {summary['strategy']} on {summary['task']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    best = summary["best"]
    table.add_row("status", str(summary["status"]))
    table.add_row(
        "trials",
        f"{summary['n_complete']} complete, {summary['n_failed']} failed, "
        f"{summary['n_pruned']} pruned (n_trials={summary['n_trials']})",
    )
    if best is not None:
        table.add_row(f"best {summary['metric']}", f"{format_value(best['value'])} (trial {best['trial']})")
        table.add_row("best params", format_params(best["params"], width=100))
        others = {k: v for k, v in best["metrics"].items() if k != summary["metric"]}
        if others:
            table.add_row("its metrics", format_params(others, width=100))
    table.add_row("wall time", f"{summary['wall_seconds']:.2f} s")
    table.add_row("run dir", str(run_dir))
    Console(soft_wrap=True).print(table)
