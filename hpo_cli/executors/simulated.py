"""A simulated cluster: ``workers`` virtual workers on a virtual clock, driven by the real loop,
the real strategy and the real store (``benchmarks/scale.py``; not a config option).

Trials do not run: each one "takes" a synthetic duration (lognormal around ``median_s``, a
heavy Pareto tail for a fraction ``tail``, a failure for a fraction ``failure_rate``) and its
value is the driver's objective evaluated at once (a cheap synthetic task), outside the driver's
clock. The virtual clock advances by the driver's own real time between two :meth:`wait` calls
(asking, telling, fsyncing: what the driver costs per result), and otherwise jumps to the next
trial's end. A job submitted while the driver works starts at the driver's virtual time, so a
slow driver leaves virtual workers idle exactly as it would leave real ones; :meth:`wait` returns
every trial that ended while the driver was busy, as a real executor does.

``utilization()`` is busy worker-time over ``workers`` × the steady-state window, which runs
from the moment the pool is first full to the last submission (the ramp-up and the final
drain, which no driver can avoid, are left out).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpo_cli.executors.base import Executor, Job, Objective, Outcome, evaluate_trial, failed_outcome


@dataclass(frozen=True)
class Durations:
    """Synthetic trial durations (virtual seconds) and failures, a function of the trial's seed."""

    median_s: float = 60.0
    sigma: float = 0.5  # of the lognormal's log
    tail: float = 0.02  # the fraction drawn from a Pareto tail instead (stragglers)
    tail_alpha: float = 1.5
    failure_rate: float = 0.02
    unit_budget: float | None = None  # a trial's duration scales with budget / unit_budget (None: not)

    def draw(self, seed: int, budget: float | None) -> tuple[float, bool]:
        """(duration, failed) of a trial."""
        rng = np.random.default_rng(seed)
        duration = self.median_s * float(np.exp(self.sigma * rng.standard_normal()))
        if rng.random() < self.tail:
            duration = self.median_s * (1.0 + float(rng.pareto(self.tail_alpha)))
        if budget is not None and self.unit_budget:
            duration *= float(budget) / self.unit_budget
        return duration, bool(rng.random() < self.failure_rate)


@dataclass
class SimulatedExecutor(Executor):
    """``workers`` virtual workers; see the module docstring."""

    workers: int = 100
    durations: Durations = field(default_factory=Durations)
    clock: Callable[[], float] = time.perf_counter  # the driver's real time (a test passes its own)
    name: str = "simulated"
    asynchronous: bool = True
    now: float = 0.0  # virtual seconds when the driver last came back from wait()
    driver_s: float = 0.0  # real seconds the driver spent between waits (its cost)
    results: int = 0
    batches: int = 0
    most_busy: int = 0  # the most virtual workers busy at once
    _mark: float = field(default=math.nan, repr=False)
    _excluded: float = field(default=0.0, repr=False)  # real seconds of objective evaluations
    _running: list[tuple[float, int, Job, Outcome]] = field(default_factory=list, repr=False)  # heap by end time
    _spans: list[tuple[float, float]] = field(default_factory=list, repr=False)  # (start, end) per trial
    _full_at: float | None = field(default=None, repr=False)
    _last_submit: float = field(default=0.0, repr=False)

    @property
    def slots(self) -> int:
        return self.workers

    def __post_init__(self) -> None:
        self._mark = self.clock()

    def _virtual_now(self) -> float:
        return self.now + (self.clock() - self._mark - self._excluded)

    def submit(self, job: Job, objective: Objective) -> None:
        if len(self._running) >= self.workers:
            raise RuntimeError("submit() with every virtual worker busy")
        start = self._virtual_now()
        evaluating = self.clock()
        outcome = evaluate_trial(objective, job)
        self._excluded += self.clock() - evaluating
        duration, failed = self.durations.draw(job.seed, job.suggestion.budget)
        if failed:
            outcome = failed_outcome(job, duration, "a simulated failure")
        heapq.heappush(self._running, (start + duration, job.number, job, outcome))
        self._spans.append((start, start + duration))
        self._last_submit = start
        self.most_busy = max(self.most_busy, len(self._running))
        if self._full_at is None and len(self._running) == self.workers:
            self._full_at = start

    def wait(self) -> list[tuple[Job, Outcome]]:
        if not self._running:
            raise RuntimeError("wait() with no trial submitted")
        busy = self.clock() - self._mark - self._excluded
        self.driver_s += busy
        self.now += busy
        self.now = max(self.now, self._running[0][0])  # nothing ended while the driver worked: jump
        done = []
        while self._running and self._running[0][0] <= self.now:
            _, _, job, outcome = heapq.heappop(self._running)
            done.append((job, outcome))
        self.results += len(done)
        self.batches += 1
        self._mark, self._excluded = self.clock(), 0.0
        return done

    def utilization(self) -> float:
        """Busy worker-time over workers × the steady-state window (NaN when it never filled)."""
        start, end = self._full_at, self._last_submit
        if start is None or end <= start:
            return math.nan
        busy = sum(max(0.0, min(e, end) - max(s, start)) for s, e in self._spans)
        return busy / (self.workers * (end - start))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "workers": self.workers, "threads": 1}
