"""Run a built study: into a run directory (``hpo run``, ``hpo resume``), or quietly into a
temporary one (:func:`run_in_memory`, the in-process Python API used by benchmarks and tests)."""

from __future__ import annotations

import errno
import logging
import platform
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hpo_cli.build import Study, compose_study, config_fingerprint
from hpo_cli.errors import ConfigError, DiskFullError, ResumeError, RunDirError
from hpo_cli.interrupts import Interrupted, describe
from hpo_cli.loggers.base import RunContext
from hpo_cli.loop import StudyLoop
from hpo_cli.report.console import headline_first, print_summary
from hpo_cli.report.progress import make_progress
from hpo_cli.store import BEST_MODEL, CONFIG_DIR, STRATEGY_STATE, SUMMARY, RunStore, best_trial
from hpo_cli.strategies.base import Strategy, fill_history
from hpo_cli.trial import TrialRecord

log = logging.getLogger("hpo_cli")
Refit = Callable[[Mapping[str, Any], "float | None"], "dict[str, Any] | None"]

VERSIONED = ("hpo_cli", "numpy", "scipy", "scikit-learn", "hydra-core", "omegaconf", "torch")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def run_in_memory(overrides: Sequence[str], run_dir: Path | None = None) -> list[TrialRecord]:
    """Run the study ``hpo run OVERRIDES`` would run, quietly; returns its trial records. Its
    run directory (``run_dir``, else a temporary one) holds what every worker shares: the
    promotion checkpoints, so a trial's cost does not depend on the executor."""
    return run_with_direction(overrides, run_dir)[0]


def run_with_direction(overrides: Sequence[str], run_dir: Path | None = None) -> tuple[list[TrialRecord], str]:
    """Like :func:`run_in_memory`, also returning the direction ("minimize" | "maximize")."""
    study = compose_study(overrides)
    with tempfile.TemporaryDirectory() as tmp:
        loop = StudyLoop(
            study.strategy,
            study.task.evaluate,
            RunStore(run_dir or Path(tmp)),
            study.budget,
            study.direction,
            executor=study.executor,
            seed=study.settings.seed,
            checkpoints=study.task,
        )
        try:
            return loop.run().records, study.direction
        finally:
            study.executor.close()


def run_study(
    study: Study,
    cfg: DictConfig,
    store: RunStore,
    resume: bool = False,
    config_files: Mapping[str, str] | None = None,
    resume_hint: str | None = None,
    history_plot: bool = True,
) -> str:
    """Run (or continue) ``study`` in ``store``'s directory; returns the status. ``cfg`` is its
    composed config (fingerprinted, so that a resume can refuse a changed one); ``config_files``
    (name -> YAML text, default: ``cfg`` as ``config.yaml``) go to ``.hydra/``. ``resume_hint``:
    how to continue the run after an interruption (default: ``hpo resume RUN_DIR``).
    ``history_plot`` False leaves out ``plots/history.png`` (a multirun's jobs: drawing it is
    most of a short job's fixed cost; ``hpo compare`` draws the sweep).

    The caller holds the directory's lock (:meth:`RunStore.exclusive`); every check that can
    refuse runs before the first byte is written. Ctrl-C writes the summary with status
    "interrupted" and re-raises KeyboardInterrupt.
    """
    run_dir = store.dir
    previous, told, seconds_before, sessions = _prior_state(store, study, resume)
    prior_summary = store.read_json(SUMMARY) if resume else None
    for name, text in (config_files or {"config.yaml": OmegaConf.to_yaml(cfg)}).items():
        store.write_text(f"{CONFIG_DIR}/{name}", text)
    header = _header(study, cfg, sessions)
    store.write_json(SUMMARY, {**header, "status": "running"})
    names, space = study.names, study.space
    log.info(
        "%s %s: strategy=%s task=%s space=%s criterion=%s (%d parameters, %d dimensions) -> %s",
        "resuming" if resume else "starting",
        *(run_dir.name, names.strategy, names.task, names.space, study.criterion),
        *(len(space.params), space.dim, run_dir),
    )
    loop = StudyLoop(
        study.strategy,
        study.task.evaluate,
        store,
        study.budget,
        study.direction,
        seconds_before=seconds_before,
        executor=study.executor,
        seed=study.settings.seed,
        observer=study.loggers,
        checkpoints=study.task,
    )
    refit = study.task.refit if study.settings.refit else None
    study.loggers.open(RunContext(run_dir, header, previous))
    try:
        hint = resume_hint or f"hpo resume {store.dir}"
        return _drive(loop, store, header, previous, told, seconds_before, hint, refit, history_plot)
    except ResumeError:  # a refused resume leaves the run's status and message as they were
        if prior_summary is not None:
            store.write_json(SUMMARY, prior_summary)
        raise
    finally:
        study.executor.close()
        study.loggers.close()  # after summary.json, best.yaml and the plots: the loggers upload them


def _drive(
    loop: StudyLoop,
    store: RunStore,
    header: Mapping[str, Any],
    previous: list[TrialRecord],
    told: int,
    before: float,
    hint: str,
    refit: Refit | None = None,
    history_plot: bool = True,
) -> str:
    """Run the loop; whatever ends it, write the summary, best.yaml, trials.csv and plots (and,
    when it finished, the best parameters' ``refit``). After SIGTERM or SIGHUP (SLURM, ``docker
    stop``: a SIGKILL follows within seconds) only the summary and best.yaml are written:
    trials.csv and the plots wait for the run's next end."""
    started = time.monotonic()
    status, message = "interrupted", f"interrupted; continue with: {hint}"
    signalled = refused = False
    try:
        with make_progress(int(header["n_trials"]), len(previous)) as progress:
            loop.progress = progress
            outcome = loop.run(previous, told)
        loop.save_checkpoint()
        status, message = outcome.status, outcome.message
    except KeyboardInterrupt as exc:
        message = f"interrupted ({describe(exc)}); continue with: {hint}"
        signalled = isinstance(exc, Interrupted)
        raise
    except ResumeError:
        refused = True  # the caller restores the summary: no status, no hint to run it again
        raise
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        status = "failed"
        message = f"disk full writing {exc.filename or store.dir}; free some space, then: {hint}"
        raise DiskFullError(message) from None
    finally:
        if not refused:
            wall = before + time.monotonic() - started
            status = _finish(store, header, status, message, wall, not signalled, refit, history_plot)
    return status


def _finish(
    store: RunStore,
    header: Mapping[str, Any],
    status: str,
    message: str,
    wall: float,
    reports: bool,
    refit: Refit | None = None,
    history_plot: bool = True,
) -> str:
    """Write the summary and best.yaml (and, with ``reports``, trials.csv and plots; when the
    run finished, the best parameters' ``refit``); the final status ("failed" when no trial
    completed)."""
    records = store.read_trials()
    if status == "finished" and best_trial(records, str(header["direction"])) is None:
        status, message = "failed", "no trial completed; " + message
    summary = _summary(header, records, status, message, wall)
    if status == "finished" and refit is not None and summary["best"] is not None:
        summary["refit"] = _refit(refit, best_trial(records, str(header["direction"])))
    if (store.dir / BEST_MODEL).is_file():
        summary["best_model"] = BEST_MODEL
    try:
        _write_outputs(store, summary, records, reports, history_plot)
    except OSError as exc:  # the disk is still full: the trials are safe, the summary is not
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        log.error("could not write the summary (%s): the disk is full", exc.strerror)
    return status


def _refit(refit: Refit, best: TrialRecord | None) -> dict[str, Any] | None:
    """The best trial's parameters trained again by the task's standard training (None: the
    task trains no model); a failure is recorded, never fatal."""
    assert best is not None
    log.info("refit: training the best parameters again by the task's standard training")
    try:
        return refit(best.params, best.budget)
    except Exception as exc:  # the run's trials are safe; say why the refit is missing
        from hpo_cli.executors.base import one_line

        return {"error": one_line(exc)}


def _header(study: Study, cfg: DictConfig, sessions: int) -> dict[str, Any]:
    """What summary.json says from the start: names, seed, direction, config fingerprint."""
    return {
        "strategy": study.names.strategy,
        "task": study.names.task,
        "space": study.names.space,
        "criterion": study.criterion,
        "executor": study.executor.describe(),
        "device": study.settings.device,  # resolved (device=auto: the one it chose), as every worker uses
        "dtype": study.settings.dtype,  # null: each task its own precision
        "seed": study.settings.seed,
        "direction": study.direction,
        "metric": study.metric,
        "headline": list(getattr(study.task, "headline", ())),  # the metrics the summary shows first
        "n_trials": study.settings.n_trials,
        "config_sha256": config_fingerprint(cfg),
        "sessions": sessions,
        "versions": versions(),
    }


def _prior_state(store: RunStore, study: Study, resume: bool) -> tuple[list[TrialRecord], int, float, int]:
    """(recorded trials, trials the restored strategy already knows, seconds spent, session no.)"""
    if not resume:
        if store.holds_run():
            raise RunDirError(f"{store.dir} already holds a run: continue it with hpo resume {store.dir}")
        return [], 0, 0.0, 1
    previous = store.read_trials(repair=True)
    asked = sum(r.retry_of is None for r in previous)  # a retry is no trial of the budget's
    if study.settings.n_trials < asked:
        raise ConfigError(
            "n_trials",
            study.settings.n_trials,
            f"the run already holds {asked} trials: ask for as many or more",
        )
    summary = store.read_json(SUMMARY) or {}
    told = _restore_checkpoint(store, study.strategy, previous, study.direction)
    log.info(
        "resuming: %d trials recorded, %d restored from the checkpoint, %d to replay",
        *(len(previous), told, len(previous) - told),
    )
    return previous, told, float(summary.get("wall_seconds") or 0.0), int(summary.get("sessions") or 0) + 1


def _restore_checkpoint(store: RunStore, strategy: Strategy, previous: list[TrialRecord], direction: str) -> int:
    """Load the checkpoint into ``strategy`` when it is intact and agrees with the recorded
    trials (the same parameters, trial by trial; entries left to trials.jsonl are filled from
    it); the number of trials it covers, else 0."""
    checkpoint = store.read_checkpoint()
    if checkpoint is None:
        return 0
    told, state = checkpoint
    records = {r.trial: r for r in previous}
    entries = (state.get("history") or [])[:told]
    # history is in the order trials were told (not their numbers, with an asynchronous executor);
    # a suggestion's key is its trial number; a trial lost with its worker and run again was never told
    keys = [int((h.get("suggestion") or {}).get("key", -1)) for h in entries]
    lost = {r.trial for r in previous if r.retried_as is not None}
    matches = sorted(keys) == [k for k in range(told) if k not in lost] and all(
        h.get("in_trials_file") or (k in records and records[k].params == h["suggestion"].get("params"))
        for k, h in zip(keys, entries, strict=True)
    )
    if not 0 < told <= len(previous) or not matches:
        log.warning("%s does not match the recorded trials; replaying them instead", STRATEGY_STATE)
        return 0
    try:
        strategy.load_state_dict(fill_history(state, records, strategy.space, 1.0 if direction == "minimize" else -1.0))
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the strategy checkpoint (%s); replaying all trials", exc)
        return 0
    return told


def _summary(
    header: Mapping[str, Any], records: list[TrialRecord], status: str, message: str, wall: float
) -> dict[str, Any]:
    best = best_trial(records, str(header["direction"]))
    cost: dict[str, int] = {"evaluations": len(records), "inner_steps": 0}
    for r in records:
        for key, n in r.cost.items():
            cost[key] = cost.get(key, 0) + int(n)
    return {
        **header,
        "status": status,
        "message": message,
        "n_complete": sum(r.state == "complete" for r in records),
        "n_failed": sum(r.state == "failed" for r in records),
        "n_pruned": sum(r.state == "pruned" for r in records),
        "n_retried": sum(r.retried_as is not None for r in records),
        "best": None
        if best is None
        else {
            "trial": best.trial,
            "value": best.value,
            "params": best.params,
            "metrics": headline_first(best.metrics, header.get("headline") or ()),
        },
        "wall_seconds": round(wall, 4),
        "cost": cost,
    }


NOT_FOR_REFIT = (
    "strategy",
    "n_trials=",
    "batch_size=",
    "timeout_s=",
    "hydra.",
    "seed=",
    "task=",
    "space=",
    "runs_dir=",
)


def refit_command(summary: Mapping[str, Any], store: RunStore) -> str:
    """``hpo run strategy=fixed`` with the run's task, space, seed and data overrides."""
    kept = [o for o in store.read_overrides() if not o.lstrip("+~").startswith(NOT_FOR_REFIT)]
    return " ".join(
        [
            f"hpo run strategy=fixed task={summary['task']} space={summary['space']} seed={summary['seed']}",
            *kept,
            f"strategy.params_file={store.dir / 'best.yaml'}",
        ]
    )


def _write_outputs(
    store: RunStore,
    summary: Mapping[str, Any],
    records: list[TrialRecord],
    reports: bool = True,
    history_plot: bool = True,
) -> None:
    """summary.json, best.yaml, the table on the console and, with ``reports``, trials.csv and
    plots/history.png."""
    from hpo_cli.report.plots import plot_history
    from hpo_cli.report.results import TRIALS_CSV, write_trials_csv

    store.write_json(SUMMARY, summary)
    best, direction, metric = summary["best"], str(summary["direction"]), str(summary["metric"])
    if best is not None:
        store.write_best(
            best["params"],
            [
                f"Best of {len(records)} trials in {store.dir}: trial {best['trial']}, "
                f"{metric} = {best['value']!r} ({direction}).",
                "Parameter values by name; evaluate them again (same data, same seed) with",
                "  " + refit_command(summary, store),
            ],
        )
    log.info("%s: %s", summary["status"], summary["message"])
    print_summary(summary, store.dir)
    if reports:
        write_trials_csv(records, store.dir / TRIALS_CSV)
    if reports and history_plot:
        title = f"{summary['strategy']} on {summary['task']} (seed {summary['seed']})"
        plot_history(records, direction, store.dir / "plots" / "history.png", title, metric)
