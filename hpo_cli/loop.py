"""The only ask -> evaluate -> tell loop; it knows no strategy or task by name.

Resuming: trial numbers are given in ask order, and strategies are deterministic for a given
seed, sequence of ask sizes and told outcomes. A resumed loop therefore restores the last
strategy checkpoint (``strategy_state.json``, written at batch boundaries) and *replays* the
trials recorded after it: it asks again, checks that the strategy suggests exactly the
recorded parameters, and tells the recorded outcomes instead of evaluating. Trials of the
interrupted batch that were never recorded are evaluated as usual.

State carried between trials (a gradient strategy's online training, HOAG's warm starts) comes
back with the evaluation (``Evaluation.carry``) and is told to the strategy, which keeps it in
its checkpoint; the task keeps none.

Two schedules. With a batch executor (serial, or ``asynchronous: false``) the loop asks for
``batch_size`` suggestions, evaluates them and tells them together: the trials depend only on
the seed and the batch size, not on which worker finished first. With an asynchronous executor
it keeps ``max(batch_size, executor.slots)`` trials in flight and asks again as soon as one
finishes: results are told one at a time, in the order they arrive, and each tell is followed
by one ask for the free slots (an ask that returns fewer than asked, even none, means the
strategy waits for results; the loop asks again after the next tell). Trial numbers are given
at ask time. The order of tells is journaled (``told.txt``), so a resume replays the strategy
through the same interleaving; trials that were in flight when the run stopped are evaluated
again. Such a checkpoint is written after every tell whose
observations carry state. A recorded trial whose request is stateful cannot be replayed from
its record alone (the record holds no inner state): it is evaluated again, from the state the
restored strategy sends, and must reproduce its recorded value; its record is not written twice.

Durability is a group commit. The results an asynchronous executor returns together (one
``wait``) are journaled together, one write and one fsync, before the strategy is told any of
them; their records are written together, one write and one fsync, before the driver waits
again, and only then reported (progress, loggers). A batch run does the same per batch. So a
SIGKILL at any point loses no result that was reported and records none twice: a journaled
trial without a record is evaluated again on resume, and a record without a journal line (a
full disk tore it off) is told from the record.

Promotion checkpoints. A task that continues a configuration's training at a higher budget
(Hyperband, ASHA) keeps it in the run directory's ``checkpoints/``, where every worker reaches it
(the loop attaches the task given as ``checkpoints``, the executor its workers' tasks). Once a
trial's record is durable and the strategy says its configuration is stopped for good
(:meth:`Strategy.stops`), the task releases that configuration's checkpoint; when the loop ends
(budget, strategy finished, too many failures: not on an interruption, which a resume
continues) it releases them all.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hpo_cli.errors import ResumeError
from hpo_cli.executors.base import Executor, Job, Objective, Outcome, trial_seed
from hpo_cli.executors.serial import SerialExecutor
from hpo_cli.request import InnerState
from hpo_cli.settings import Budget
from hpo_cli.store import CHECKPOINTS, TOLD, RunStore, best_trial
from hpo_cli.strategies.base import Strategy
from hpo_cli.trial import Observation, Suggestion, TrainedModel, TrialRecord, TrialState

__all__ = ["Budget", "LoopOutcome", "Objective", "StudyLoop"]
REPLAY_RTOL = 1e-9  # a stateful trial evaluated again on resume must give its recorded value
MIN_TRIALS_FOR_FAILURE_RATE = 5
CHECKPOINT_EVERY_S = 2.0


class Progress(Protocol):
    def trial_done(self, record: TrialRecord, best: TrialRecord | None) -> None: ...


class TrialObserver(Protocol):
    """Told each trial once, after it is stored (the loggers: :mod:`hpo_cli.loggers`)."""

    def trial_stored(self, record: TrialRecord) -> None: ...


class Checkpoints(Protocol):
    """What keeps a configuration's training between its trials (a task's promotion
    checkpoints: :meth:`hpo_cli.tasks.base.Task.attach`)."""

    def attach(self, folder: Path) -> None: ...

    def release(self, params: Mapping[str, Any]) -> None: ...

    def release_all(self) -> None: ...


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
    run's) seeds each trial's global generators with its number. ``checkpoints`` (the
    driver's task) keeps its promotion checkpoints in the run directory and releases them as
    configurations stop.
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
    observer: TrialObserver | None = None
    checkpoints: Checkpoints | None = None
    records: list[TrialRecord] = field(default_factory=list)
    _last_checkpoint: float = field(default=-math.inf, repr=False)
    _told: int = field(default=0, repr=False)
    _undecided: dict[int, TrialRecord] = field(default_factory=dict, repr=False)
    _models: dict[int, TrainedModel] = field(default_factory=dict, repr=False)  # by trial number, until stored
    _staged: list[TrialRecord] = field(default_factory=list, repr=False)  # decided, not yet durable
    _stopped: list[Mapping[str, Any]] = field(default_factory=list, repr=False)  # to release once durable
    _failed: int = field(default=0, repr=False)  # failed trials among records[:_counted]
    _counted: int = field(default=0, repr=False)
    _started: float = field(default=0.0, repr=False)
    _retry_of: dict[int, int] = field(default_factory=dict, repr=False)  # retry's trial -> the lost one

    def run(self, previous: Sequence[TrialRecord] = (), told: int = 0) -> LoopOutcome:
        """``previous``: records already stored; the strategy already knows the first ``told``
        trials (it was restored from a checkpoint); the others are replayed."""
        recorded = {r.trial: r for r in previous}
        self.records = sorted(previous, key=lambda r: r.trial)
        self._retry_of = {r.retried_as: r.trial for r in previous if r.retried_as is not None}
        self._failed = self._counted = 0
        self._told = told
        self._started = time.monotonic()
        self.executor.attach(self.store.dir)
        if self.checkpoints is not None:
            self.checkpoints.attach(self.store.dir / CHECKPOINTS)
        try:
            if self.executor.asynchronous:
                outcome = self._run_asynchronously(recorded, told)
            else:
                outcome = self._run_in_batches(recorded, told)
        finally:
            self._write_undecided()
            self._commit()
        if self.checkpoints is not None:
            self.checkpoints.release_all()  # the run ended: every configuration is stopped
        return outcome

    def _run_in_batches(self, recorded: Mapping[int, TrialRecord], told: int) -> LoopOutcome:
        next_trial = told
        while True:
            reason = self._stop_reason(next_trial)
            if reason:
                return LoopOutcome(*reason, self.records)
            n = min(self.budget.batch_size, self.budget.n_trials - self._asked(next_trial))
            suggestions = self.strategy.ask(n)
            if not suggestions:
                return LoopOutcome("finished", self.strategy.finish_message, self.records)
            batch = list(enumerate(suggestions, next_trial))
            next_trial += len(suggestions)
            settled: dict[int, Observation] = {}  # by the trial first asked
            while batch:  # the batch, then the retries of its trials lost with their worker or node
                retries = []
                for (number, _), result in zip(batch, self._outcomes(batch, recorded), strict=True):
                    if isinstance(result, Suggestion):
                        retries.append((self._check_number(result, next_trial), result))
                        next_trial += 1
                    else:
                        settled[self._first_asked(number)] = result
                batch = retries
            observations = [settled[number] for number in sorted(settled)]
            self.strategy.tell(observations)
            self._write_decided(observations)
            self._commit()
            self._told = next_trial
            self._checkpoint(final=any(o.carry is not None for o in observations))

    def _run_asynchronously(self, recorded: Mapping[int, TrialRecord], told: int) -> LoopOutcome:
        """Keep the slots busy; tell each result as it arrives, then ask for the free slots."""
        journal = self.store.read_told(repair=True)
        if journal is None and any(r.trial >= told for r in recorded.values()):
            return self._run_in_batches(recorded, told)  # recorded before tells were journaled
        journal = journal or []
        if sorted(journal[:told]) != list(range(told)):
            raise ResumeError(
                f"cannot resume: {self.store.dir / TOLD} does not list the {told} trials of the strategy's checkpoint"
            )
        replay = deque(journal[told:])
        in_flight: dict[int, Suggestion] = {}  # asked, not yet told: trial number -> suggestion
        fresh: deque[int] = deque()  # asked, not yet submitted (a scan of in_flight is O(workers) a result)
        submitted: set[int] = set()
        arrived: deque[tuple[Job, Outcome]] = deque()  # results journaled, not yet told
        limit = max(self.budget.batch_size, self.executor.slots)
        next_trial, waiting, stop = told, False, None
        while True:
            if not replay and stop is None:
                stop = self._stop_reason(next_trial)
            free = min(limit - len(in_flight), self.budget.n_trials - self._asked(next_trial))
            if stop is None and not waiting and free > 0:
                suggestions = self.strategy.ask(free)
                waiting = len(suggestions) < free
                for suggestion in suggestions:
                    if next_trial in recorded:
                        _check_replay(recorded[next_trial], suggestion)
                    in_flight[next_trial] = suggestion
                    fresh.append(next_trial)
                    next_trial += 1
            if not in_flight:
                if stop is not None:
                    return LoopOutcome(*stop, self.records)
                return LoopOutcome("finished", self.strategy.finish_message, self.records)
            if replay:  # this result is journaled already
                number = replay.popleft()
                if number not in in_flight:
                    raise ResumeError(
                        f"cannot resume: {self.store.dir / TOLD} tells trial {number}, which the strategy did not "
                        "suggest at that point (the strategy, its config or the worker count changed)"
                    )
                settled = self._outcomes([(number, in_flight.pop(number))], recorded)[0]
            else:
                settled = self._next_result(in_flight, fresh, submitted, arrived, recorded)
            self._told += 1
            if isinstance(settled, Suggestion):  # lost with its worker or node: run it again
                in_flight[self._check_number(settled, next_trial)] = settled
                fresh.append(next_trial)
                next_trial += 1
                continue
            observation = settled
            self.strategy.tell([observation])
            self._write_decided([observation])
            waiting = False
            if not in_flight and not self.strategy.pending:
                self._commit()
                self._checkpoint(final=observation.carry is not None)

    def _next_result(
        self,
        in_flight: dict[int, Suggestion],
        fresh: deque[int],
        submitted: set[int],
        arrived: deque[tuple[Job, Outcome]],
        recorded: Mapping[int, TrialRecord],
    ) -> Observation | Suggestion:
        """Submit the trials in flight that are not running yet; the next result (its trial
        leaves ``in_flight``): its observation, or the retry of a trial lost with its worker or
        node (:meth:`_settle`). Results are drained from the executor in batches (all that
        arrived together): the records told so far are made durable first, then the batch is
        journaled with one fsync, before the strategy is told any of it (the group commit).

        A trial recorded but not journaled (its journal line was torn off by a full disk) is
        told from its record, or, when it carries inner state, evaluated again and checked."""
        ready: list[tuple[Job, Outcome]] = []
        while fresh:
            number = fresh.popleft()
            suggestion = in_flight.get(number)  # None: told already, from the journal
            if suggestion is None or number in submitted:
                continue
            submitted.add(number)
            job = self._job(number, suggestion)
            if number in recorded and not _stateful(suggestion):
                ready.append((job, Outcome(recorded[number])))
            else:
                self.executor.submit(job, self.objective)
        batch = ready
        if not arrived and not batch:
            self._commit()  # what was told is durable and reported before the driver waits
            batch = self.executor.wait()
        self.store.append_told(*(job.number for job, _ in batch))
        arrived.extend(batch)
        job, outcome = arrived.popleft()
        submitted.discard(job.number)
        suggestion = in_flight.pop(job.number)
        return self._settle(job.number, suggestion, outcome, recorded.get(job.number))

    def _outcomes(
        self, trials: Sequence[tuple[int, Suggestion]], recorded: Mapping[int, TrialRecord]
    ) -> list[Observation | Suggestion]:
        """``trials`` (number, suggestion): evaluated by the executor as one batch, or replayed
        from their records (stateful ones evaluated again and checked); each settled
        (:meth:`_settle`)."""
        jobs = []
        for number, suggestion in trials:
            record = recorded.get(number)
            if record is not None:
                _check_replay(record, suggestion)
            if record is None or (_stateful(suggestion) and record.retried_as is None):
                jobs.append(self._job(number, suggestion))
        evaluated: dict[int, Outcome] = {
            job.number: outcome for job, outcome in zip(jobs, self.executor.run(jobs, self.objective), strict=True)
        }
        return [
            self._settle(number, suggestion, evaluated.get(number) or Outcome(recorded[number]), recorded.get(number))
            for number, suggestion in trials
        ]

    def _settle(
        self, number: int, suggestion: Suggestion, outcome: Outcome, known: TrialRecord | None
    ) -> Observation | Suggestion:
        """Trial ``number``'s outcome (``known``: its record, on resume): the observation to tell,
        or, for a trial lost with its worker or node that may run again (at most
        ``executor.max_retries`` times), the retry: the lost trial's failed row is stored, naming
        the trial that runs it again, the strategy is not told the loss, and hands the same
        suggestion back under the next trial number (:meth:`Strategy.retry`). A retry seeds its
        generators as the lost trial did, so its result is the one the lost trial would have had."""
        if known is not None:
            if known.retried_as is not None:
                again = self.strategy.retry(suggestion.key)
                if again.key != known.retried_as:
                    raise ResumeError(
                        f"cannot resume: trial {number} was run again as trial {known.retried_as}, but that "
                        f"number now goes to trial {again.key} (the strategy or its config changed)"
                    )
                self._retry_of[again.key] = number
                return again
            if outcome.record is not known:
                _check_reproduced(known, self._stamped(outcome.record))
            return self._observation(known, suggestion, outcome.carry)
        record = self._stamped(outcome.record)
        if outcome.lost and self._attempt(number) < self.executor.max_retries:
            again = self.strategy.retry(suggestion.key)
            self._retry_of[again.key] = number
            self._persist(
                dataclasses.replace(
                    record, retried_as=again.key, error=f"{record.error}; run again as trial {again.key}"
                )
            )
            return again
        self._undecided[self._first_asked(number)] = record
        self._keep_model(record, outcome.model)
        return self._observation(record, suggestion, outcome.carry)

    def _first_asked(self, number: int) -> int:
        """The trial that a retry (of a retry …) runs again, or ``number`` itself."""
        while number in self._retry_of:
            number = self._retry_of[number]
        return number

    def _attempt(self, number: int) -> int:
        """0 for a trial first asked, 1 for its first retry, …"""
        attempt = 0
        while number in self._retry_of:
            number, attempt = self._retry_of[number], attempt + 1
        return attempt

    def _asked(self, next_trial: int) -> int:
        """How many of the trials numbered below ``next_trial`` were asked (not retries): the
        trials counted against n_trials."""
        return next_trial - sum(retry < next_trial for retry in self._retry_of)

    def _job(self, number: int, suggestion: Suggestion) -> Job:
        return Job(number, suggestion, trial_seed(self.seed, self._first_asked(number)))

    def _check_number(self, retry: Suggestion, next_trial: int) -> int:
        """The retry's trial number: its suggestion's key, which must be the next number."""
        if retry.key != next_trial:
            raise RuntimeError(f"the strategy gave the retry key {retry.key}, not the next trial number {next_trial}")
        return next_trial

    def _stamped(self, record: TrialRecord) -> TrialRecord:
        """The record with the time its result reached the driver (seconds since the run
        started) and, for a retry, the trial it runs again."""
        return dataclasses.replace(
            record, finished_s=round(self._elapsed(), 3), retry_of=self._retry_of.get(record.trial)
        )

    def _elapsed(self) -> float:
        return self.seconds_before + time.monotonic() - self._started

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
            if self.checkpoints is not None and self.strategy.stops(key):
                self._stopped.append(record.params)

    def _write_undecided(self) -> None:
        """At the end (budget, Ctrl-C): records still waiting for a decision are stored as
        they are, so nothing evaluated is lost."""
        for key in sorted(self._undecided, key=lambda k: self._undecided[k].trial):
            self._persist(self._undecided[key])
        self._undecided.clear()

    def _stop_reason(self, next_trial: int) -> tuple[str, str] | None:
        # O(new records); a trial lost with its worker and run again is no failure of the study's
        self._failed += sum(r.state == "failed" and r.retried_as is None for r in self.records[self._counted :])
        self._counted = len(self.records)
        failed, done = self._failed, len(self.records) - len(self._retry_of)
        if done >= min(self.budget.n_trials, MIN_TRIALS_FOR_FAILURE_RATE) and done > 0:
            rate = failed / done
            if rate > self.budget.max_failure_rate:
                last = next(r.error for r in reversed(self.records) if r.state == "failed" and r.retried_as is None)
                return "failed", (
                    f"stopped: {failed} of {done} trials failed ({rate:.0%} > max_failure_rate "
                    f"{self.budget.max_failure_rate:g}); last error: {last}"
                )
        if self._asked(next_trial) >= self.budget.n_trials:
            return "finished", f"reached n_trials={self.budget.n_trials}"
        if self.strategy.is_finished():
            return "finished", self.strategy.finish_message
        if self.budget.timeout_s is not None and self._elapsed() >= self.budget.timeout_s:
            return "finished", f"reached timeout_s={self.budget.timeout_s:g}"
        return None

    def _keep_model(self, record: TrialRecord, model: TrainedModel | None) -> None:
        """Hold a completed trial's weights until its record is stored (then kept if best)."""
        if model is not None and record.state == TrialState.COMPLETE:
            self._models[record.trial] = model

    def _persist(self, record: TrialRecord) -> None:
        """Stage ``record`` for the next group commit (its model, if best, is written now)."""
        model = self._models.pop(record.trial, None)
        if model is not None and record.state == TrialState.COMPLETE:
            best = self.best()
            if best is None or best_trial([best, record], self.direction) is record:
                self.store.write_model(record, model)  # before the record: never a record without its model
        self.records.append(record)
        self._staged.append(record)

    def _commit(self) -> None:
        """Make the staged records durable together (one write, one fsync), then report them:
        nothing is reported before it is on disk."""
        if not self._staged:
            return
        staged, self._staged = self._staged, []
        self.store.append_trials(staged)
        stopped, self._stopped = self._stopped, []
        for params in stopped:  # after its record is durable: a kill never loses a needed checkpoint
            assert self.checkpoints is not None
            self.checkpoints.release(params)
        for record in staged:
            if self.observer is not None:
                self.observer.trial_stored(record)
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


def _stateful(suggestion: Suggestion) -> bool:
    return suggestion.request is not None and suggestion.request.stateful


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
