"""The only ask -> evaluate -> tell loop; it knows no strategy or task by name.

Resuming: trial numbers are given in ask order, and strategies are deterministic for a given
seed, sequence of ask sizes and told outcomes. A resumed loop therefore restores the last
strategy checkpoint (``strategy_state.json``, written at batch boundaries) and *replays* the
trials recorded after it: it asks again, checks that the strategy suggests exactly the
recorded parameters, and tells the recorded outcomes instead of evaluating. Trials of the
interrupted batch that were never recorded are evaluated as usual.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hpo_cli.errors import ResumeError
from hpo_cli.store import RunStore, TrialRecord, best_trial, finite_or_none
from hpo_cli.strategies.base import Observation, Strategy, Suggestion, TrialState
from hpo_cli.tasks.base import Evaluation

# (params, budget, request) -> Evaluation; request is {} unless the strategy asks for more
Objective = Callable[[Mapping[str, Any], "float | None", Mapping[str, Any]], Evaluation]
MIN_TRIALS_FOR_FAILURE_RATE = 5
CHECKPOINT_EVERY_S = 2.0


class Progress(Protocol):
    def trial_done(self, record: TrialRecord, best: TrialRecord | None) -> None: ...


@dataclass(frozen=True)
class Budget:
    n_trials: int
    batch_size: int = 1
    timeout_s: float | None = None
    max_failure_rate: float = 0.5


@dataclass
class LoopOutcome:
    status: str  # "finished" | "failed"
    message: str
    records: list[TrialRecord] = field(default_factory=list)


@dataclass
class StudyLoop:
    """Runs a strategy against an objective until the budget or the strategy is exhausted.

    ``direction`` converts values into the loss strategies minimize. ``seconds_before`` is the
    wall time already spent by earlier sessions of a resumed run (it counts toward timeout_s).
    """

    strategy: Strategy
    objective: Objective
    store: RunStore
    budget: Budget
    direction: str = "minimize"
    progress: Progress | None = None
    seconds_before: float = 0.0
    records: list[TrialRecord] = field(default_factory=list)
    _last_checkpoint: float = field(default=-math.inf, repr=False)
    _told: int = field(default=0, repr=False)
    _undecided: dict[int, TrialRecord] = field(default_factory=dict, repr=False)

    def run(self, previous: Sequence[TrialRecord] = (), told: int = 0) -> LoopOutcome:
        """``previous``: records already stored; the strategy already knows the first ``told``
        trials (it was restored from a checkpoint); the others are replayed."""
        recorded = {r.trial: r for r in previous}
        self.records = sorted(previous, key=lambda r: r.trial)
        next_trial, started = told, time.monotonic()
        self._told = told
        try:
            while True:
                reason = self._stop_reason(next_trial, started)
                if reason:
                    return LoopOutcome(*reason, self.records)
                n = min(self.budget.batch_size, self.budget.n_trials - next_trial)
                suggestions = self.strategy.ask(n)
                if not suggestions:
                    return LoopOutcome("finished", self.strategy.finish_message, self.records)
                observations = []
                for suggestion in suggestions:
                    record = recorded.get(next_trial)
                    if record is None:
                        record = self._evaluate(next_trial, suggestion)
                        self._undecided[suggestion.key] = record
                    else:
                        _check_replay(record, suggestion)
                    observations.append(self._observation(record, suggestion))
                    next_trial += 1
                self.strategy.tell(observations)
                self._write_decided(observations)
                self._told = next_trial
                self._checkpoint(final=False)
        finally:
            self._write_undecided()

    def _write_decided(self, observations: Sequence[Observation]) -> None:
        """Store the new records whose state is known, in trial order. A strategy that decides
        trial states (successive halving) names each "complete" or "pruned" once its rung is
        decided; until then the record waits in memory."""
        decide = getattr(self.strategy, "trial_state", None)
        for obs in observations:  # replayed trials: their decision is already on record
            if decide is not None and obs.suggestion.key not in self._undecided:
                decide(obs.suggestion.key)
        for key in sorted(self._undecided, key=lambda k: self._undecided[k].trial):
            record = self._undecided[key]
            state = record.state if decide is None else decide(key)
            if state is None:
                continue
            del self._undecided[key]
            if record.state == "complete" and state != record.state:
                record = dataclasses.replace(record, state=state)
            self._persist(record)

    def _write_undecided(self) -> None:
        """At the end (budget, Ctrl-C): records still waiting for a decision are stored as
        they are, so nothing evaluated is lost."""
        for key in sorted(self._undecided, key=lambda k: self._undecided[k].trial):
            self._persist(self._undecided[key])
        self._undecided.clear()

    def _stop_reason(self, next_trial: int, started: float) -> tuple[str, str] | None:
        failed = sum(r.state == "failed" for r in self.records)
        done = len(self.records)
        if done >= min(self.budget.n_trials, MIN_TRIALS_FOR_FAILURE_RATE) and done > 0:
            rate = failed / done
            if rate > self.budget.max_failure_rate:
                last = next(r.error for r in reversed(self.records) if r.state == "failed")
                return "failed", (
                    f"stopped: {failed} of {done} trials failed ({rate:.0%} > max_failure_rate "
                    f"{self.budget.max_failure_rate:g}); last error: {last}"
                )
        if next_trial >= self.budget.n_trials:
            return "finished", f"reached n_trials={self.budget.n_trials}"
        if self.strategy.is_finished():
            return "finished", self.strategy.finish_message
        elapsed = self.seconds_before + time.monotonic() - started
        if self.budget.timeout_s is not None and elapsed >= self.budget.timeout_s:
            return "finished", f"reached timeout_s={self.budget.timeout_s:g}"
        return None

    def _evaluate(self, number: int, suggestion: Suggestion) -> TrialRecord:
        t0 = time.perf_counter()
        metrics: dict[str, Any] = {}
        cost: dict[str, int] = {}
        gradient: list[float] | None = None
        try:
            ev = self.objective(suggestion.params, suggestion.budget, suggestion.request)
            value, state, error = float(ev.value), "complete", None
            metrics, cost, gradient = finite_or_none(dict(ev.metrics)), dict(ev.cost), ev.gradient
            if not math.isfinite(value):
                state, error = "failed", f"objective returned {value}"
            elif gradient is not None and not all(math.isfinite(g) for g in gradient):
                state, error, gradient = "failed", "the gradient is not finite", None
        except Exception as exc:  # a failing trial is recorded; the run goes on
            value, state, error = math.nan, "failed", _one_line(exc)
        record = TrialRecord(
            trial=number,
            state=state,
            params=suggestion.params,
            value=value if state == "complete" else None,
            metrics=metrics,
            budget=suggestion.budget,
            seconds=time.perf_counter() - t0,
            error=error,
            cost=cost,
            gradient=None if gradient is None else [float(g) for g in gradient],
        )
        return record

    def _persist(self, record: TrialRecord) -> None:
        self.store.append_trial(record)
        self.records.append(record)
        if self.progress is not None:
            self.progress.trial_done(record, self.best())

    def best(self) -> TrialRecord | None:
        return best_trial(self.records, self.direction)

    def _observation(self, record: TrialRecord, suggestion: Suggestion) -> Observation:
        sign = 1.0 if self.direction == "minimize" else -1.0
        loss = None if record.value is None else sign * float(record.value)
        gradient = None if record.gradient is None else tuple(sign * g for g in record.gradient)
        state = TrialState(record.state)
        return Observation(suggestion, state, loss, record.metrics, gradient, record.error)

    def save_checkpoint(self) -> None:
        """Write the strategy's state now, if it sits at a batch boundary."""
        if not self.strategy.pending:
            self._checkpoint(final=True)

    def _checkpoint(self, final: bool) -> None:
        now = time.monotonic()
        if final or now - self._last_checkpoint >= CHECKPOINT_EVERY_S:
            self.store.write_checkpoint(self._told, self.strategy.state_dict())
            self._last_checkpoint = now


def _check_replay(record: TrialRecord, suggestion: Suggestion) -> None:
    recorded = json.dumps(record.params, sort_keys=True)
    replayed = json.dumps(json.loads(json.dumps(suggestion.params)), sort_keys=True)
    if recorded != replayed:
        raise ResumeError(
            f"cannot resume: trial {record.trial} was recorded with params {recorded} but the "
            f"strategy now suggests {replayed} (the strategy or its config changed)"
        )


def _one_line(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})" if where else ""
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text}{at}"
