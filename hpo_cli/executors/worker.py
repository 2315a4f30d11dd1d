"""What runs where the trials run: the body of a worker process of ``executor=process``
(started with the spawn method), and the task built from the composed config, which Ray's
actors and submitit's jobs build the same way.

A process worker builds the task once (not a pickled task per trial), with its torch thread
count and, on a machine with several GPUs, its own device, then answers jobs one at a time:
("ready" | "result" | "error", payload) messages on its pipe. Nothing heavy is imported before
the environment (CUDA_VISIBLE_DEVICES, OMP_NUM_THREADS) is set.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

READY, RESULT, ERROR = "ready", "result", "error"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCH_EVERY_S = 1.0  # where there is no parent-death signal: how often a worker looks for its driver


def die_with(driver: int) -> None:
    """End this worker when the process ``driver`` dies (a SIGKILLed driver leaves no orphan
    to run beside the next ``hpo resume``): the kernel's parent-death signal on Linux (the
    driver, or with forkserver the server that dies with it, is the parent), else a thread
    that polls for the driver. Checked once after arming, in case it died in between."""
    import signal

    armed = False
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            armed = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) == 0
        except (OSError, AttributeError):
            armed = False
    if not alive(driver):
        os._exit(1)
    if not armed:
        import threading

        def watch() -> None:
            while alive(driver):
                time.sleep(WATCH_EVERY_S)
            os._exit(1)

        threading.Thread(target=watch, name="hpo-driver-watch", daemon=True).start()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process took the number: the driver is gone
        return False
    return True


def build_objective(recipe: Mapping[str, Any], threads: int, run_dir: str | None = None) -> Any:
    """The task's ``evaluate`` of the composed config ``recipe``, with ``threads`` torch threads,
    keeping its promotion checkpoints in ``run_dir`` (shared with every worker) when given.
    torch is not imported here: a task that needs it imports it (a function or scikit-learn
    task does not), and its thread count is set once it is loaded (OMP_NUM_THREADS, already in
    the environment, caps it too)."""
    from omegaconf import OmegaConf

    from hpo_cli.build import build_criterion, build_task
    from hpo_cli.settings import read_settings

    cfg = OmegaConf.create(dict(recipe))
    settings = read_settings(cfg)
    folder = None if run_dir is None else Path(run_dir)
    objective = build_task(cfg.task, settings, build_criterion(cfg.get("criterion")), folder).evaluate
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    return objective


def import_paths(paths: Sequence[str]) -> None:
    """Make the driver's import paths (a user's objective module, say) importable here too."""
    sys.path[:0] = [p for p in paths if p not in sys.path]


def run_one_trial(
    recipe: Mapping[str, Any], threads: int, paths: Sequence[str], job: Any, run_dir: str | None = None
) -> Any:
    """One trial in a process of its own (a submitit job): build the task, evaluate, return the outcome."""
    import_paths(paths)
    os.environ.update({name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    from hpo_cli.executors.base import evaluate_trial

    return evaluate_trial(build_objective(recipe, threads, run_dir), job)


def worker_main(
    conn: Connection,
    recipe: Mapping[str, Any],
    threads: int,
    env: Mapping[str, str],
    driver: int,
    run_dir: str | None = None,
) -> None:
    die_with(driver)
    os.environ.update(env)
    from hpo_cli.executors.base import evaluate_trial, one_line

    try:
        objective = build_objective(recipe, threads, run_dir)
    except BaseException as exc:  # reported to the driver, which stops the run with this line
        conn.send((ERROR, one_line(exc)))
        return
    conn.send((READY, None))
    try:
        while True:
            job = conn.recv()
            if job is None:  # asked to stop: leave at once (tearing the interpreter down takes seconds)
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
            conn.send((RESULT, evaluate_trial(objective, job)))
    except (EOFError, KeyboardInterrupt, BrokenPipeError):  # the driver went away or was interrupted
        return
