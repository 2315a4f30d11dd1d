"""The only ask -> evaluate -> tell loop; it knows no strategy or task by name.

Resuming: trial numbers are given in ask order, and strategies are deterministic for a given
seed, sequence of ask sizes and told outcomes. A resumed loop therefore restores the last
strategy checkpoint (``strategy_state.json``, written at batch boundaries) and *replays* the
trials recorded after it: it asks again, checks that the strategy suggests exactly the
recorded parameters, and tells the recorded outcomes instead of evaluating. Trials of the
interrupted batch that were never recorded are evaluated as usual.

State carried between trials (a gradient strategy's online training, HOAG's warm starts) comes
back with the evaluation (``Evaluation.carry``) and is told to the strategy, which keeps it in
its checkpoint; the task keeps none. Such a checkpoint is written after every tell whose
observations carry state. A recorded trial whose request is stateful cannot be replayed from
its record alone (the record holds no inner state): it is evaluated again, from the state the
restored strategy sends, and must reproduce its recorded value; its record is not written twice.
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
from hpo_cli.hypergrad.request import HypergradRequest, InnerState
from hpo_cli.store import RunStore, best_trial, finite_or_none
from hpo_cli.strategies.base import Strategy
from hpo_cli.trial import Evaluation, Observation, Suggestion, TrialRecord, TrialState

# (params, budget, request) -> Evaluation; request is None unless the strategy asks for a hypergradient
Objective = Callable[[Mapping[str, Any], "float | None", "HypergradRequest | None"], Evaluation]
REPLAY_RTOL = 1e-9  # a stateful trial evaluated again on resume must give its recorded value
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
                observations = [self._outcome(next_trial + i, s, recorded) for i, s in enumerate(suggestions)]
                next_trial += len(suggestions)
                self.strategy.tell(observations)
                self._write_decided(observations)
                self._told = next_trial
                self._checkpoint(final=any(o.carry is not None for o in observations))
        finally:
            self._write_undecided()

    def _outcome(self, number: int, suggestion: Suggestion, recorded: Mapping[int, TrialRecord]) -> Observation:
        """Trial ``number``: evaluated, or replayed from its record (stateful ones re-evaluated)."""
        record = recorded.get(number)
        if record is None:
            record, carry = self._evaluate(number, suggestion)
            self._undecided[suggestion.key] = record
            return self._observation(record, suggestion, carry)
        _check_replay(record, suggestion)
        if suggestion.request is None or not suggestion.request.stateful:
            return self._observation(record, suggestion)
        again, carry = self._evaluate(number, suggestion)
        _check_reproduced(record, again)
        return self._observation(record, suggestion, carry)

    def _write_decided(self, observations: Sequence[Observation]) -> None:
        """Store the new records whose state is known, in trial order. A strategy that decides
        trial states (successive halving) names each "complete" or "pruned" once its rung is
        decided (``Strategy.trial_state``); until then the record waits in memory."""
        for key in sorted(self._undecided, key=lambda k: self._undecided[k].trial):
            record = self._undecided[key]
            state = self.strategy.trial_state(key)
            if state is None:
                continue
            del self._undecided[key]
            if record.state == TrialState.COMPLETE and state != record.state:
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

    def _evaluate(self, number: int, suggestion: Suggestion) -> tuple[TrialRecord, InnerState | None]:
        """Trial ``number`` evaluated: its record, and the state it carries (None if none)."""
        t0 = time.perf_counter()
        metrics: dict[str, Any] = {}
        cost: dict[str, int] = {}
        gradient: list[float] | None = None
        carry: InnerState | None = None
        try:
            ev = self.objective(suggestion.params, suggestion.budget, suggestion.request)
            value, state, error = float(ev.value), TrialState.COMPLETE, None
            metrics, cost, gradient, carry = finite_or_none(dict(ev.metrics)), dict(ev.cost), ev.gradient, ev.carry
            if not math.isfinite(value):
                state, error = TrialState.FAILED, f"objective returned {value}"
            elif gradient is not None and not all(math.isfinite(g) for g in gradient):
                state, error, gradient = TrialState.FAILED, "the gradient is not finite", None
        except Exception as exc:  # a failing trial is recorded; the run goes on
            value, state, error = math.nan, TrialState.FAILED, _one_line(exc)
        record = TrialRecord(
            trial=number,
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

    def _persist(self, record: TrialRecord) -> None:
        self.store.append_trial(record)
        self.records.append(record)
        if self.progress is not None:
            self.progress.trial_done(record, self.best())

    def best(self) -> TrialRecord | None:
        return best_trial(self.records, self.direction)

    def _observation(self, record: TrialRecord, suggestion: Suggestion, carry: InnerState | None = None) -> Observation:
        sign = 1.0 if self.direction == "minimize" else -1.0
        loss = None if record.value is None else sign * float(record.value)
        gradient = None if record.gradient is None else tuple(sign * g for g in record.gradient)
        return Observation(suggestion, record.state, loss, record.metrics, gradient, record.error, carry)

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


def _check_reproduced(record: TrialRecord, again: TrialRecord) -> None:
    same = again.state == record.state and (
        record.value is None
        or (again.value is not None and math.isclose(again.value, record.value, rel_tol=REPLAY_RTOL))
    )
    if not same:
        raise ResumeError(
            f"cannot resume: trial {record.trial} carries inner state and was evaluated again, giving "
            f"{again.state} {again.value!r} instead of the recorded {record.state} {record.value!r} "
            "(the task, its data or the thread count changed)"
        )


def _one_line(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})" if where else ""
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text}{at}"
