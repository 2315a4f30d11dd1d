"""Where a trial runs: an executor evaluates a batch of trials and returns their records.

``executor=serial`` (the default) evaluates in the driver process, one trial after another;
``executor=process`` in a pool of worker processes (:mod:`hpo_cli.executors.process`), each of
which builds the task once from the composed config.

Every trial is evaluated by :func:`evaluate_trial`, wherever it runs: Python's, numpy's and
torch's global random generators are seeded from (run seed, trial number) first, so a result
never depends on which worker ran it, nor on what that worker ran before. (Tasks seed their own
generators; this covers a user's objective that draws from the global ones.) Results may depend
on torch's thread count: it is recorded in ``summary.json``.
"""

from __future__ import annotations

import math
import random
import sys
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpo_cli.hypergrad.request import HypergradRequest, InnerState
from hpo_cli.store import finite_or_none
from hpo_cli.trial import Evaluation, Suggestion, TrialRecord, TrialState

# (params, budget, request) -> Evaluation; request is None unless the strategy asks for a hypergradient
Objective = Callable[[Mapping[str, Any], "float | None", "HypergradRequest | None"], Evaluation]
Outcome = tuple[TrialRecord, "InnerState | None"]  # a trial's record and the inner state it carries


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


def evaluate_trial(objective: Objective, job: Job) -> Outcome:
    """The trial evaluated: its record (failed, with a one-line reason, when the objective
    raises or returns a non-finite value or gradient) and the state it carries (None if none)."""
    seed_globals(job.seed)
    t0 = time.perf_counter()
    metrics: dict[str, Any] = {}
    cost: dict[str, int] = {}
    gradient: list[float] | None = None
    carry: InnerState | None = None
    suggestion = job.suggestion
    try:
        ev = objective(suggestion.params, suggestion.budget, suggestion.request)
        value, state, error = float(ev.value), TrialState.COMPLETE, None
        metrics, cost, gradient, carry = finite_or_none(dict(ev.metrics)), dict(ev.cost), ev.gradient, ev.carry
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
    )
    return record, carry if state == TrialState.COMPLETE else None


def failed_outcome(job: Job, seconds: float, error: str) -> Outcome:
    """A trial that produced no evaluation (its worker died, or it ran out of time)."""
    s = job.suggestion
    record = TrialRecord(job.number, TrialState.FAILED, s.params, None, {}, s.budget, seconds, error)
    return record, None


def one_line(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})" if where else ""
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text}{at}"


class Executor(ABC):
    """Evaluates batches of trials; ``describe()`` goes to summary.json."""

    name: str = "executor"

    @abstractmethod
    def run(self, jobs: Sequence[Job], objective: Objective) -> list[Outcome]:
        """The outcomes of ``jobs``, in their order. ``objective`` is the driver's own task
        (an executor whose workers build their own ignores it)."""

    def start(self) -> None:  # noqa: B027 - optional hook
        """Start the workers now (they start with the first batch otherwise)."""

    def bind(self, recipe: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """The composed config (plain, resolved) from which workers build the task."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop the workers, if any."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """{"name", "workers", "threads"} for summary.json."""
