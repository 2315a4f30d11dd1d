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
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

READY, RESULT, ERROR = "ready", "result", "error"


def build_objective(recipe: Mapping[str, Any], threads: int) -> Any:
    """The task's ``evaluate`` of the composed config ``recipe``, with ``threads`` torch threads."""
    import torch
    from omegaconf import OmegaConf

    from hpo_cli.build import build_criterion, build_task
    from hpo_cli.settings import read_settings

    torch.set_num_threads(threads)
    cfg = OmegaConf.create(dict(recipe))
    settings = read_settings(cfg)
    return build_task(cfg.task, settings, build_criterion(cfg.get("criterion"))).evaluate


def import_paths(paths: Sequence[str]) -> None:
    """Make the driver's import paths (a user's objective module, say) importable here too."""
    sys.path[:0] = [p for p in paths if p not in sys.path]


def run_one_trial(recipe: Mapping[str, Any], threads: int, paths: Sequence[str], job: Any) -> Any:
    """One trial in a process of its own (a submitit job): build the task, evaluate, return the outcome."""
    import_paths(paths)
    os.environ.update({name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    from hpo_cli.executors.base import evaluate_trial

    return evaluate_trial(build_objective(recipe, threads), job)


def worker_main(conn: Connection, recipe: Mapping[str, Any], threads: int, env: Mapping[str, str]) -> None:
    os.environ.update(env)
    from hpo_cli.executors.base import evaluate_trial, one_line

    try:
        objective = build_objective(recipe, threads)
    except BaseException as exc:  # reported to the driver, which stops the run with this line
        conn.send((ERROR, one_line(exc)))
        return
    conn.send((READY, None))
    try:
        while True:
            job = conn.recv()
            if job is None:
                return
            conn.send((RESULT, evaluate_trial(objective, job)))
    except (EOFError, KeyboardInterrupt, BrokenPipeError):  # the driver went away or was interrupted
        return
