"""Where a trial runs: an executor evaluates trials and returns their records.

``executor=serial`` (the default) evaluates in the driver process, one trial after another;
``executor=process`` in a pool of worker processes (:mod:`hpo_cli.executors.process`),
``executor=ray`` in Ray actors (:mod:`hpo_cli.executors.ray`), each of which builds the task
once from the composed config; ``executor=submitit`` one SLURM job per trial
(:mod:`hpo_cli.executors.submitit`).

Every trial is evaluated by :func:`evaluate_trial`, wherever it runs: Python's, numpy's and
torch's global random generators are seeded from (run seed, trial number) first, so a result
never depends on which worker ran it, nor on what that worker ran before. (Tasks seed their own
generators; this covers a user's objective that draws from the global ones.) Results may depend
on torch's thread count: it is recorded in ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import socket
import sys
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from hpo_cli.curves import recording
from hpo_cli.errors import ConfigError
from hpo_cli.request import InnerState
from hpo_cli.store import finite_or_none
from hpo_cli.trial import Evaluation, Request, SavedModel, Suggestion, TrainedModel, TrialRecord, TrialState

# (params, budget, request) -> Evaluation; request is None unless the strategy asks for a
# hypergradient (a HypergradRequest) or for saved weights to be scored (a SavedModel)
Objective = Callable[[Mapping[str, Any], "float | None", "Request | None"], Evaluation]


class Outcome(NamedTuple):
    """A trial's record, the inner state it carries and the weights it trained (both None
    unless the trial completed and its task returned them). ``lost``: the trial failed with
    its worker or node (killed, out of memory, a node gone), not by its configuration's doing:
    the loop may run it again (``executor.max_retries``)."""

    record: TrialRecord
    carry: InnerState | None = None
    model: TrainedModel | None = None
    lost: bool = False


@dataclass(frozen=True)
class Job:
    """Trial ``number``: the suggestion to evaluate and the seed of its global generators."""

    number: int
    suggestion: Suggestion
    seed: int


def trial_seed(run_seed: int, number: int) -> int:
    """The seed of trial ``number``'s global generators: a function of the run seed and the number."""
    return (run_seed * 1_000_003 + number * 7_919 + 12_345) % 2**32


def seed_globals(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch = sys.modules.get("torch")  # seeded only where the objective uses torch (no import for it)
    if torch is not None:
        torch.manual_seed(seed)


def this_worker() -> dict[str, Any]:
    """Where a trial runs: this process's host name and pid (a record's ``worker``)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def evaluate_trial(objective: Objective, job: Job, where: Mapping[str, Any] | None = None) -> Outcome:
    """The trial evaluated: its record (failed, with a one-line reason, when the objective
    raises or returns a non-finite value or gradient) and the state it carries (None if none).
    ``where``: the record's ``worker`` (default: this process, :func:`this_worker`)."""
    seed_globals(job.seed)
    t0 = time.perf_counter()
    metrics: dict[str, Any] = {}
    cost: dict[str, int] = {}
    gradient: list[float] | None = None
    carry: InnerState | None = None
    model: TrainedModel | None = None
    curves: dict[str, list[list[float]]] = {}
    suggestion = job.suggestion
    try:
        with recording() as curves:  # the trainers' per-epoch hook (hpo_cli.curves) reports here
            ev = objective(suggestion.params, suggestion.budget, request_of(suggestion))
        value, state, error = float(ev.value), TrialState.COMPLETE, None
        metrics, cost, gradient, carry = finite_or_none(dict(ev.metrics)), dict(ev.cost), ev.gradient, ev.carry
        model = ev.model
        if not math.isfinite(value):
            state, error = TrialState.FAILED, f"objective returned {value}"
        elif gradient is not None and not all(math.isfinite(g) for g in gradient):
            state, error, gradient = TrialState.FAILED, "the gradient is not finite", None
    except Exception as exc:  # a failing trial is recorded; the run goes on
        value, state, error = math.nan, TrialState.FAILED, one_line(exc)
    record = TrialRecord(
        trial=job.number,
        state=state,
        params=suggestion.params,
        value=value if state == TrialState.COMPLETE else None,
        metrics=metrics,
        budget=suggestion.budget,
        seconds=time.perf_counter() - t0,
        error=error,
        cost=cost,
        gradient=None if gradient is None else [float(g) for g in gradient],
        curves=curves,
        worker=dict(where) if where is not None else this_worker(),
    )
    if state != TrialState.COMPLETE:
        return Outcome(record)
    return Outcome(record, carry, model)


def request_of(suggestion: Suggestion) -> Request | None:
    """What the task is asked beyond a plain evaluation: the suggestion's hypergradient request,
    or the saved weights of ``model_file`` to score."""
    if suggestion.model_file is None:
        return suggestion.request
    from hpo_cli.store import read_model

    model = read_model(Path(suggestion.model_file))
    return SavedModel(model.arrays, model.meta)


def failed_outcome(
    job: Job, seconds: float, error: str, lost: bool = False, where: Mapping[str, Any] | None = None
) -> Outcome:
    """A trial that produced no evaluation: it ran out of time, or (``lost``) its worker or node
    died under it; ``where``: that worker, when known."""
    s = job.suggestion
    record = TrialRecord(job.number, TrialState.FAILED, s.params, None, {}, s.budget, seconds, error)
    if where is not None:
        record = dataclasses.replace(record, worker=dict(where))
    return Outcome(record, lost=lost)


def one_line(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})" if where else ""
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text}{at}"


class Executor(ABC):
    """Evaluates trials: :meth:`submit` starts one, :meth:`wait` returns those that finished.

    ``slots`` trials run at once. An ``asynchronous`` executor lets the loop ask for a new
    suggestion as soon as one trial finishes; otherwise the loop evaluates whole batches
    (:meth:`run`) and the trials do not depend on the order in which they finish.
    ``describe()`` goes to summary.json.
    """

    name: str = "executor"
    asynchronous: bool = False
    max_retries: int = 0  # how many times a trial lost with its worker or node is run again

    @property
    @abstractmethod
    def slots(self) -> int:
        """How many trials run at the same time."""

    @abstractmethod
    def submit(self, job: Job, objective: Objective) -> None:
        """Start ``job`` (or queue it until a slot frees up). ``objective`` is the driver's own
        task: an executor whose workers build their own ignores it."""

    @abstractmethod
    def wait(self) -> list[tuple[Job, Outcome]]:
        """Block until at least one submitted job finishes; the finished ones and their outcomes."""

    def run(self, jobs: Sequence[Job], objective: Objective) -> list[Outcome]:
        """The outcomes of ``jobs``, in their order (a batch: submitted together, all awaited)."""
        for job in jobs:
            self.submit(job, objective)
        outcomes: dict[int, Outcome] = {}
        while len(outcomes) < len(jobs):
            outcomes.update((job.number, outcome) for job, outcome in self.wait())
        return [outcomes[job.number] for job in jobs]

    def attach(self, run_dir: Path) -> None:  # noqa: B027 - optional hook
        """The run directory, where an executor may keep its files (submitit's job folders)."""

    def start(self) -> None:  # noqa: B027 - optional hook
        """Start the workers now (they start with the first trial otherwise)."""

    def bind(self, recipe: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """The composed config (plain, resolved) from which workers build the task."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop the workers, if any, and forget the jobs still running."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """{"name", "workers", "threads"} for summary.json."""


class QueuedExecutor(Executor):
    """An executor with workers of its own: submitted jobs queue until a worker is free.
    Subclasses give jobs to free workers (:meth:`_dispatch`) and collect what finished, died or
    ran out of time (:meth:`_collect`); :meth:`wait` repeats both until something finished."""

    poll_s: float = 0.0  # pause between collections that found nothing (0: _collect itself blocks)

    def __init__(
        self,
        workers: int,
        threads: int | None,
        trial_timeout_s: float | None,
        asynchronous: bool,
        local: bool = True,
        max_retries: int = 0,
    ) -> None:
        """The settings every pool shares, validated; ``threads`` defaults to cores ÷ workers on
        this machine (``local``), else 1."""
        from hpo_cli.validate import positive_float, positive_int

        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError("executor.max_retries", max_retries, "must be an integer >= 0")
        self.max_retries = max_retries
        self.workers = positive_int(workers, "executor.workers")
        default_threads = max(1, cores_available() // self.workers) if local else 1
        self.threads = default_threads if threads is None else positive_int(threads, "executor.threads")
        self.trial_timeout_s = (
            None if trial_timeout_s is None else positive_float(trial_timeout_s, "executor.trial_timeout_s")
        )
        self.asynchronous = bool(asynchronous)
        self.recipe: dict[str, Any] | None = None
        self.run_dir: Path | None = None  # where the workers' tasks keep their promotion checkpoints
        self.queue: deque[Job] = deque()

    @property
    def slots(self) -> int:
        return self.workers

    def bind(self, recipe: Mapping[str, Any]) -> None:
        self.recipe = dict(recipe)

    def attach(self, run_dir: Path) -> None:
        """Workers started from now on build their task attached to ``run_dir``."""
        self.run_dir = Path(run_dir)

    def submit(self, job: Job, objective: Objective) -> None:
        """Queue ``job``; once the workers are up, a free one gets it at once, so it runs while
        the driver makes the last results durable instead of after."""
        self.queue.append(job)
        if self._started():
            self._dispatch()

    def _started(self) -> bool:
        """True once :meth:`start` has brought the workers up."""
        return False

    def wait(self) -> list[tuple[Job, Outcome]]:
        if not self.queue and not self._busy():
            raise RuntimeError("wait() with no trial submitted")
        self.start()
        while True:
            self._dispatch()
            finished = self._collect()
            if finished:
                return finished
            time.sleep(self.poll_s)

    @abstractmethod
    def _busy(self) -> int:
        """How many jobs the workers hold."""

    @abstractmethod
    def _dispatch(self) -> None:
        """Give queued jobs to the free workers."""

    @abstractmethod
    def _collect(self) -> list[tuple[Job, Outcome]]:
        """The jobs that finished, died or ran over their time (may wait a little for one)."""


def timed_out(job: Job, elapsed: float, limit: float) -> Outcome:
    """The failed outcome of a trial cancelled for running over ``executor.trial_timeout_s``."""
    return failed_outcome(job, elapsed, f"cancelled after {elapsed:.1f} s (executor.trial_timeout_s={limit:g})")


def cores_available() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def thread_environment(threads: int) -> dict[str, str]:
    """The variables that cap the OpenMP/BLAS thread pools of a worker to ``threads``."""
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
