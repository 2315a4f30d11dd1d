"""The body of a worker process of ``executor=process`` (started with the spawn method).

It builds the task once from the composed config (not a pickled task per trial), with its
torch thread count and, on a machine with several GPUs, its own device, then answers jobs one at
a time: ("ready" | "result" | "error", payload) messages on its pipe. Nothing heavy is imported
before the environment (CUDA_VISIBLE_DEVICES, OMP_NUM_THREADS) is set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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
