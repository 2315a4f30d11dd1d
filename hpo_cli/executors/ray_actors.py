"""``executor=ray``: trials in Ray actors (Ray core, not Ray Tune), on this machine or a cluster.

``address: null`` starts a local Ray instance for the run (and shuts it down after);
``address: auto`` (or ``ray://host:port``) joins a running cluster, which must have hpo_cli and
the task's dependencies installed. The actors start together (all are created before the first is awaited). Each of the
``workers`` actors builds the task once from the
composed config, reserves ``threads`` CPUs (Ray then caps its OpenMP threads to that number; torch
is set to it too) and, with ``device=cuda``, one GPU (Ray gives each actor its own device), and
evaluates one trial at a time.

Each record names the actor that ran it (``worker``: host, pid, Ray node id and node IP), so a
run on a cluster shows which node ran which trial.

An actor that dies (killed, out of memory, its node lost) turns its trial into a failed row
naming the reason, and the loop runs that trial again as a new one (``max_retries`` times at
most); a trial over ``trial_timeout_s`` is cancelled (its actor killed) and recorded as failed.
Either way a fresh actor is created in its place, without waiting for it: Ray places it where
there is room (a surviving node), and until it is ready the trials go to the other actors, so a
cluster that lost a node finishes the run with fewer workers.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

from hpo_cli.errors import ConfigError
from hpo_cli.executors.base import (
    Job,
    Outcome,
    QueuedExecutor,
    cores_available,
    failed_outcome,
    one_line,
    timed_out,
)

EXTRA = "pip install 'hpo_cli[ray]'"


class TrialActor:
    """The body of one actor: the task, built once; one trial at a time."""

    def __init__(self, recipe: Mapping[str, Any], threads: int, paths: list[str], run_dir: str | None) -> None:
        from hpo_cli.executors.worker import build_objective, import_paths

        import_paths(paths)
        self.objective = build_objective(recipe, threads, run_dir)
        self.where = where_am_i()

    def ready(self) -> dict[str, Any]:
        """Where this actor runs (a record's ``worker``)."""
        return self.where

    def evaluate(self, job: Job) -> Outcome:
        from hpo_cli.executors.base import evaluate_trial

        return evaluate_trial(self.objective, job, self.where)


def where_am_i() -> dict[str, Any]:
    """This actor's host and pid, and its Ray node's id and IP address."""
    import ray

    from hpo_cli.executors.base import this_worker

    return {
        **this_worker(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
    }


class RayExecutor(QueuedExecutor):
    name = "ray"

    def __init__(
        self,
        workers: int = 2,
        threads: int | None = None,
        address: str | None = None,
        gpus_per_worker: float | None = None,
        trial_timeout_s: float | None = None,
        asynchronous: bool = True,
        max_retries: int = 1,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("executor", "ray", f"needs Ray, an optional extra: {EXTRA}") from None
        self.ray = ray
        self.address = None if address in (None, "", "local") else str(address)
        local = self.address is None
        super().__init__(workers, threads, trial_timeout_s, asynchronous, local=local, max_retries=max_retries)
        if gpus_per_worker is not None and (not isinstance(gpus_per_worker, int | float) or gpus_per_worker < 0):
            raise ConfigError("executor.gpus_per_worker", gpus_per_worker, "must be a number >= 0 (or null)")
        self.gpus_per_worker = gpus_per_worker
        self.actors: list[Any] = []
        self.where: dict[int, dict[str, Any]] = {}  # actor index -> where it runs, once it is ready
        self.starting: dict[Any, int] = {}  # ready() ref of an actor not ready yet -> its index
        self.running: dict[Any, tuple[int, Job, float]] = {}  # result ref -> (actor index, job, start time)
        self.started_ray = False

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "workers": self.workers, "threads": self.threads, "address": self.address or "local"}

    # -- actors ----------------------------------------------------------------------------

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
        if self.address is None:
            options["num_cpus"] = max(cores_available(), self.workers * self.threads)
        try:
            ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError("executor.address", self.address, f"cannot start or join Ray: {one_line(exc)}") from None
        self.started_ray = True

    def _create(self) -> Any:
        """A new actor, building its task (not awaited)."""
        if self.recipe is None:
            raise RuntimeError("executor=ray needs the composed config (bind) before it runs")
        gpus = self.gpus_per_worker
        if gpus is None:
            gpus = 1 if self.recipe.get("device") == "cuda" else 0
        remote = self.ray.remote(TrialActor).options(num_cpus=self.threads, num_gpus=gpus)
        paths = [p for p in sys.path if p] if self.address is None else []
        return remote.remote(self.recipe, self.threads, paths, None if self.run_dir is None else str(self.run_dir))

    def _ready(self, ref: Any) -> dict[str, Any] | None:
        """Where the actor runs, once its ``ready()`` ref resolved; None if it died first (its
        node lost). A task that cannot be built stops the run with the worker's one line."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayActorError:
            return None
        except Exception as exc:
            cause = getattr(exc, "cause", None) or exc
            raise ConfigError("executor", "ray", f"a worker could not build the task: {one_line(cause)}") from None

    def start(self) -> None:
        """Create every actor, then wait for all of them (they build their tasks in parallel)."""
        if not self.actors:
            self._connect()
            self.actors = [self._create() for _ in range(self.workers)]
            refs = [actor.ready.remote() for actor in self.actors]
            for index, ref in enumerate(refs):
                where = self._ready(ref)
                if where is None:
                    self._replace(index)
                else:
                    self.where[index] = where

    def _replace(self, index: int) -> None:
        """A fresh actor in place of actor ``index`` (dead, or killed now), not awaited."""
        self._kill(self.actors[index])
        self.where.pop(index, None)
        self.actors[index] = self._create()
        self.starting[self.actors[index].ready.remote()] = index

    def _kill(self, actor: Any) -> None:
        with contextlib.suppress(Exception):  # already gone with its node or the cluster
            self.ray.kill(actor, no_restart=True)

    def close(self) -> None:
        for actor in self.actors:
            self._kill(actor)
        self.actors, self.running, self.starting, self.where = [], {}, {}, {}
        self.queue.clear()
        if self.started_ray and self.ray.is_initialized():
            self.ray.shutdown()
        self.started_ray = False

    # -- trials ----------------------------------------------------------------------------

    def _busy(self) -> int:
        return len(self.running)

    def _started(self) -> bool:
        return bool(self.actors)

    def _dispatch(self) -> None:
        busy = {index for index, _, _ in self.running.values()}
        for index, actor in enumerate(self.actors):
            if index in self.where and index not in busy and self.queue:
                job = self.queue.popleft()
                self.running[actor.evaluate.remote(job)] = (index, job, time.monotonic())

    def _collect(self) -> list[tuple[Job, Outcome]]:
        """Wait for at least one trial to finish, fail or run over its time, or for a fresh
        actor to be ready (then nothing may have finished)."""
        timeout = None
        if self.trial_timeout_s is not None and self.running:
            now = time.monotonic()
            timeout = max(0.0, min(start + self.trial_timeout_s - now for _, _, start in self.running.values()))
        refs = [*self.running, *self.starting]
        self.ray.wait(refs, num_returns=1, timeout=timeout)
        done, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        finished: list[tuple[Job, Outcome]] = []
        for ref in done:
            if ref in self.starting:
                index = self.starting.pop(ref)
                where = self._ready(ref)
                if where is None:  # died before it was ready (its node lost): another one
                    self._replace(index)
                else:
                    self.where[index] = where
                continue
            index, job, start = self.running.pop(ref)
            try:
                finished.append((job, self.ray.get(ref)))
                continue
            except self.ray.exceptions.RayTaskError as exc:  # the trial's own doing (it escaped evaluate)
                outcome = failed_outcome(job, time.monotonic() - start, one_line(exc), where=self.where.get(index))
            except self.ray.exceptions.RayActorError as exc:
                reason = f"the worker running it died ({one_line(exc).split(':', 1)[0]})"
                outcome = failed_outcome(job, time.monotonic() - start, reason, lost=True, where=self.where.get(index))
            except Exception as exc:  # lost object, node failure, ...
                outcome = failed_outcome(
                    job, time.monotonic() - start, one_line(exc), lost=True, where=self.where.get(index)
                )
            finished.append((job, outcome))
            self._replace(index)
        if self.trial_timeout_s is not None:
            for ref, (index, job, start) in list(self.running.items()):
                elapsed = time.monotonic() - start
                if elapsed >= self.trial_timeout_s:
                    del self.running[ref]
                    finished.append((job, timed_out(job, elapsed, self.trial_timeout_s)))
                    self._replace(index)
        return finished
