"""``executor=process``: trials in a pool of worker processes (the standard library's
multiprocessing, spawn start method).

Each worker builds the task once from the composed config (:mod:`hpo_cli.executors.worker`)
and evaluates one trial at a time; a batch's trials go to the idle workers as they free up.
Workers start together (all are spawned before the first is awaited) and stop together (all
are asked, then awaited), and die with the driver (a parent-death signal on Linux, else a
watcher thread), so a killed driver leaves no worker behind.
Workers get ``threads`` torch/BLAS threads each (default: cores ÷ workers: four jobs with
default threads each ran ~22× slower on 2 cores) and, with ``device=cuda`` on a machine with
several GPUs, one GPU each (round robin over the visible ones).

A worker that dies (killed, out of memory) turns its trial into a failed row naming the exit
code, and a fresh worker takes its place; the loop runs that trial again as a new one, up to
``max_retries`` times (:meth:`hpo_cli.loop.StudyLoop._settle`); a trial that runs over ``trial_timeout_s`` is
cancelled (its worker is killed and replaced) and recorded as failed. The run goes on.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from hpo_cli.errors import ConfigError
from hpo_cli.executors.base import (
    Job,
    Outcome,
    QueuedExecutor,
    failed_outcome,
    thread_environment,
    timed_out,
)
from hpo_cli.executors.worker import ERROR, READY, worker_main

START_METHODS = ("spawn", "forkserver")
START_TIMEOUT_S = 600.0  # building the task (loading data) in a new worker
STOP_TIMEOUT_S = 5.0  # for all the workers together to leave when asked, before they are killed


class Worker:
    """One worker process and the driver's end of its pipe."""

    def __init__(
        self, context: Any, recipe: Mapping[str, Any], threads: int, env: Mapping[str, str], run_dir: str | None
    ) -> None:
        self.conn, child = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=worker_main, args=(child, dict(recipe), threads, dict(env), os.getpid(), run_dir), daemon=True
        )
        self.process.start()
        child.close()

    def wait_ready(self) -> None:
        if not self.conn.poll(START_TIMEOUT_S):
            raise RuntimeError(f"a worker did not start within {START_TIMEOUT_S:g} s")
        try:
            kind, payload = self.conn.recv()
        except EOFError:
            raise RuntimeError(f"a worker died while starting (exit code {self.process.exitcode})") from None
        if kind == ERROR:
            raise ConfigError("executor", "process", f"a worker could not build the task: {payload}")
        assert kind == READY

    def signal_stop(self, kill: bool = False) -> None:
        """Ask the worker to leave (or kill it) without waiting for it."""
        if kill:
            self.process.kill()
        else:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.conn.send(None)

    def stop(self, kill: bool = False) -> None:
        stop_all([self], kill)


def stop_all(workers: list[Worker], kill: bool = False) -> None:
    """Stop ``workers`` in parallel: signal every one, then wait for all of them together
    (``STOP_TIMEOUT_S`` in all), then kill those still there."""
    for worker in workers:
        worker.signal_stop(kill)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for worker in workers:
        worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
    for worker in workers:
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(timeout=STOP_TIMEOUT_S)
        worker.conn.close()


class ProcessExecutor(QueuedExecutor):
    name = "process"

    def __init__(
        self,
        workers: int = 2,
        threads: int | None = None,
        trial_timeout_s: float | None = None,
        start_method: str = "spawn",
        asynchronous: bool = True,
        max_retries: int = 1,
    ) -> None:
        super().__init__(workers, threads, trial_timeout_s, asynchronous, max_retries=max_retries)
        if start_method not in START_METHODS:
            raise ConfigError("executor.start_method", start_method, f"must be one of {', '.join(START_METHODS)}")
        self.context = multiprocessing.get_context(start_method)
        self.pool: list[Worker] = []
        self.busy: dict[int, tuple[Job, float]] = {}  # worker index -> (its job, start time)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "workers": self.workers, "threads": self.threads}

    # -- workers ---------------------------------------------------------------------------

    def _environment(self, index: int) -> dict[str, str]:
        env = thread_environment(self.threads)
        assert self.recipe is not None
        if self.recipe.get("device") == "cuda":
            import torch

            count = torch.cuda.device_count()
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            ids = visible.split(",") if visible else [str(i) for i in range(count)]
            if len(ids) > 1:
                env["CUDA_VISIBLE_DEVICES"] = ids[index % len(ids)]
        return env

    def _spawn(self, index: int) -> Worker:
        if self.recipe is None:
            raise RuntimeError("executor=process needs the composed config (bind) before it runs")
        run_dir = None if self.run_dir is None else str(self.run_dir)
        return Worker(self.context, self.recipe, self.threads, self._environment(index), run_dir)

    def start(self) -> None:
        if not self.pool:
            self.pool = [self._spawn(i) for i in range(self.workers)]
            for worker in self.pool:
                worker.wait_ready()

    def _replace(self, index: int) -> None:
        self.pool[index].stop(kill=True)
        self.pool[index] = self._spawn(index)
        self.pool[index].wait_ready()

    def close(self) -> None:
        for w, worker in enumerate(self.pool):
            worker.signal_stop(kill=w in self.busy)  # a worker busy with a trial nobody waits for is killed
        stop_all(self.pool)  # the idle ones were asked: all of them are awaited together
        self.pool, self.busy = [], {}
        self.queue.clear()

    # -- trials ----------------------------------------------------------------------------

    def _busy(self) -> int:
        return len(self.busy)

    def _started(self) -> bool:
        return bool(self.pool)

    def _dispatch(self) -> None:
        """Give queued jobs to the idle workers."""
        for w in range(len(self.pool)):
            if w not in self.busy and self.queue:
                job = self.queue.popleft()
                try:
                    self.pool[w].conn.send(job)
                except (BrokenPipeError, OSError):  # it died while idle: a fresh one takes the job
                    self._replace(w)
                    self.pool[w].conn.send(job)
                self.busy[w] = (job, time.monotonic())

    def _collect(self) -> list[tuple[Job, Outcome]]:
        """Wait for at least one busy worker to answer, die or run over its time."""
        timeout = None
        if self.trial_timeout_s is not None:
            now = time.monotonic()
            timeout = max(0.0, min(started + self.trial_timeout_s - now for _, started in self.busy.values()))
        handles: list[Connection | int] = []
        for w in self.busy:
            handles += [self.pool[w].conn, self.pool[w].process.sentinel]
        wait(handles, timeout)
        finished: list[tuple[Job, Outcome]] = []
        for w, (job, started) in list(self.busy.items()):
            worker, elapsed = self.pool[w], time.monotonic() - started
            if worker.conn.poll():
                try:
                    _, outcome = worker.conn.recv()
                except (EOFError, OSError):
                    outcome = None
                if outcome is not None:
                    finished.append((job, outcome))
                    del self.busy[w]
                    continue
            if not worker.process.is_alive() or worker.conn.closed:
                code = worker.process.exitcode
                where = {"host": socket.gethostname(), "pid": worker.process.pid}
                reason = f"the worker running it died (exit code {code})"
                finished.append((job, failed_outcome(job, elapsed, reason, lost=True, where=where)))
            elif self.trial_timeout_s is not None and elapsed >= self.trial_timeout_s:
                finished.append((job, timed_out(job, elapsed, self.trial_timeout_s)))
            else:
                continue
            del self.busy[w]
            self._replace(w)
        return finished
