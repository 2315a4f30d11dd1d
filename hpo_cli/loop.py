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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hpo_cli.errors import ResumeError
from hpo_cli.executors.base import Executor, Job, Objective, Outcome, trial_seed
from hpo_cli.executors.serial import SerialExecutor
from hpo_cli.hypergrad.request import InnerState
from hpo_cli.store import RunStore, best_trial
from hpo_cli.strategies.base import Strategy
from hpo_cli.trial import Observation, Suggestion, TrialRecord, TrialState

__all__ = ["Budget", "LoopOutcome", "Objective", "StudyLoop"]
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
    ``executor`` evaluates each batch (serial: ``objective`` in this process); ``seed`` (the
    run's) seeds each trial's global generators with its number.
    """

    strategy: Strategy
    objective: Objective
    store: RunStore
    budget: Budget
    direction: str = "minimize"
    progress: Progress | None = None
    seconds_before: float = 0.0
    executor: Executor = field(default_factory=SerialExecutor)
    seed: int = 0
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
                observations = self._outcomes(next_trial, suggestions, recorded)
                next_trial += len(suggestions)
                self.strategy.tell(observations)
                self._write_decided(observations)
                self._told = next_trial
                self._checkpoint(final=any(o.carry is not None for o in observations))
        finally:
            self._write_undecided()

    def _outcomes(
        self, first: int, suggestions: Sequence[Suggestion], recorded: Mapping[int, TrialRecord]
    ) -> list[Observation]:
        """Trials ``first``, ``first + 1``, …: evaluated by the executor as one batch, or
        replayed from their records (stateful ones evaluated again and checked)."""
        jobs = []
        for i, suggestion in enumerate(suggestions):
            record = recorded.get(first + i)
            if record is not None:
                _check_replay(record, suggestion)
            if record is None or (suggestion.request is not None and suggestion.request.stateful):
                jobs.append(Job(first + i, suggestion, trial_seed(self.seed, first + i)))
        evaluated: dict[int, Outcome] = {
            job.number: outcome for job, outcome in zip(jobs, self.executor.run(jobs, self.objective), strict=True)
        }
        observations = []
        for i, suggestion in enumerate(suggestions):
            record = recorded.get(first + i)
            if first + i not in evaluated:
                assert record is not None
                observations.append(self._observation(record, suggestion))
                continue
            again, carry = evaluated[first + i]
            if record is None:
                self._undecided[suggestion.key] = again
                record = again
            else:
                _check_reproduced(record, again)
            observations.append(self._observation(record, suggestion, carry))
        return observations

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
