"""The asynchronous loop, driven by an in-process executor whose trials finish out of order.

``OutOfOrder`` runs ``slots`` trials "at once" and finishes the running trial with the smallest
priority first, a fixed function of the trial number: the finishing order is scrambled but
reproducible, and depends only on which trials are running. A run killed in the middle and
resumed therefore has the same future as an uninterrupted one, which lets these tests check that
a resume replays the strategy through exactly the recorded interleaving of asks and tells.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hpo_cli.build import compose_study
from hpo_cli.errors import ResumeError, RunDirError
from hpo_cli.executors.base import Executor, Job, Objective, Outcome, evaluate_trial, failed_outcome, trial_seed
from hpo_cli.loop import StudyLoop
from hpo_cli.runner import _restore_checkpoint
from hpo_cli.store import TOLD, RunStore
from hpo_cli.trial import TrialRecord


class Killed(BaseException):
    """The driver dies (as with SIGKILL: nothing after it runs in the loop)."""


def priority(number: int) -> int:
    return (number * 7) % 5


class OutOfOrder(Executor):
    name = "out_of_order"
    asynchronous = True

    def __init__(self, slots: int = 3, kill_after: int | None = None, together: int = 1) -> None:
        self._slots = slots
        self.kill_after = kill_after
        self.together = together  # results returned by one wait (they arrived together)
        self.waits = 0
        self.submitted: list[tuple[Job, Objective]] = []
        self.finished = 0
        self.most_running = 0

    @property
    def slots(self) -> int:
        return self._slots

    def submit(self, job: Job, objective: Objective) -> None:
        self.submitted.append((job, objective))

    def wait(self) -> list[tuple[Job, Outcome]]:
        if self.kill_after is not None and self.finished >= self.kill_after:
            raise Killed
        running = self.submitted[: self._slots]
        self.most_running = max(self.most_running, len(running))
        done = sorted(running, key=lambda entry: (priority(entry[0].number), entry[0].number))[: self.together]
        self.waits += 1
        results = []
        for job, objective in done:
            self.submitted.remove((job, objective))
            self.finished += 1
            results.append((job, evaluate_trial(objective, job)))
        return results

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "workers": self._slots, "threads": 1}


CASES = {
    "tpe": ["task=branin", "strategy=tpe", "strategy.n_startup_trials=4", "n_trials=16"],
    "gp_bo": [
        "task=branin", "strategy=gp_bo", "strategy.n_initial=3", "strategy.candidates=128",
        "strategy.n_starts=2", "n_trials=12",
    ],
    "cmaes": ["task=branin", "strategy=cmaes", "n_trials=20"],
    "evolution": ["task=branin", "strategy=evolution", "strategy.population=6", "n_trials=20"],
    "random": ["task=branin", "strategy=random", "n_trials=14"],
    "hyperband": ["task=polynomial", "strategy=hyperband", "strategy.max_budget=9", "n_trials=22"],
    "asha": ["task=polynomial", "strategy=asha", "strategy.max_budget=9", "n_trials=20"],
    "hoag": ["task=polynomial", "space=polynomial_per_coef", "strategy=hoag", "strategy.init=random", "n_trials=12"],
}  # fmt: skip


def make_loop(overrides: list[str], run_dir: Path, executor: Executor) -> StudyLoop:
    study = compose_study([*overrides, "seed=5"])
    return StudyLoop(
        study.strategy, study.task.evaluate, RunStore(run_dir), study.budget, study.direction,
        executor=executor, seed=study.settings.seed,
    )  # fmt: skip


def uninterrupted(name: str, tmp_path: Path) -> list[TrialRecord]:
    executor = OutOfOrder()
    records = make_loop(CASES[name], tmp_path / "whole", executor).run().records
    assert executor.most_running == 3 or name == "hoag"  # the slots were kept busy
    return records


def trials(records: list[TrialRecord]) -> list[tuple[Any, ...]]:
    """Trial, params, value and whether it completed. Pruned counts as complete: an interrupted
    run stores the results still waiting for their rung's decision as complete (nothing
    evaluated is lost), and the append-only file never relabels them."""
    return sorted((r.trial, r.state != "failed", json.dumps(r.params, sort_keys=True), r.value) for r in records)


@pytest.mark.parametrize("name", list(CASES))
def test_trials_finish_out_of_order_and_are_recorded_once_each(name: str, tmp_path: Path) -> None:
    records = uninterrupted(name, tmp_path)
    n_trials = int(next(o for o in CASES[name] if o.startswith("n_trials=")).split("=")[1])
    assert sorted(r.trial for r in records) == list(range(n_trials))
    told = (tmp_path / "whole" / TOLD).read_text().split()
    assert sorted(map(int, told)) == list(range(n_trials))
    if name != "hoag":
        assert [int(t) for t in told] != sorted(map(int, told))  # finished out of order
    assert all(r.finished_s is not None and r.finished_s >= 0 for r in records)


@pytest.mark.parametrize("name", ["tpe", "gp_bo"])
def test_suggestions_in_flight_at_the_same_time_are_distinct(name: str, tmp_path: Path) -> None:
    records = uninterrupted(name, tmp_path)
    points = [json.dumps(r.params, sort_keys=True) for r in records]
    assert len(set(points)) == len(points)


# In make test: one kill per kind of strategy state (a model, a queue of rungs, a carried inner
# state); every strategy at both kill points in make test-slow.
IN_MAKE_TEST = {("tpe", 7), ("random", 1), ("asha", 7), ("hoag", 1)}


@pytest.mark.parametrize(
    ("name", "kill_after"),
    [(n, k) if (n, k) in IN_MAKE_TEST else pytest.param(n, k, marks=pytest.mark.slow) for k in (1, 7) for n in CASES],
)
def test_a_killed_run_resumes_to_the_trials_of_an_uninterrupted_one(name: str, kill_after: int, tmp_path: Path) -> None:
    whole = uninterrupted(name, tmp_path)
    run_dir = tmp_path / "killed"
    with pytest.raises(Killed):
        make_loop(CASES[name], run_dir, OutOfOrder(kill_after=kill_after)).run()
    store = RunStore(run_dir)
    first = store.read_trials(repair=True)
    for executor in (OutOfOrder(kill_after=3), OutOfOrder()):  # kill the resume too, then finish
        before = store.read_trials(repair=True)
        resumed = make_loop(CASES[name], run_dir, executor)
        told = _restore_checkpoint(store, resumed.strategy, before, resumed.direction)
        try:
            resumed.run(before, told)
        except Killed:
            continue
    after = store.read_trials()
    assert trials(after) == trials(whole)
    assert after[: len(first)] == first  # nothing recorded before a kill is rewritten
    assert sorted(store.read_told() or []) == sorted(r.trial for r in after)  # each result journaled once


def test_a_journal_that_disagrees_with_the_strategy_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(Killed):
        make_loop(CASES["tpe"], run_dir, OutOfOrder(kill_after=6)).run()
    journal = (run_dir / TOLD).read_text().split()
    journal[3] = "99"
    (run_dir / TOLD).write_text("".join(f"{n}\n" for n in journal))
    store = RunStore(run_dir)
    with pytest.raises(ResumeError, match="tells trial 99, which the strategy did not suggest"):
        make_loop(CASES["tpe"], run_dir, OutOfOrder()).run(store.read_trials())


def test_the_journal_refuses_damage_and_sets_a_torn_last_line_aside(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    assert store.read_told() is None  # a batch run has none
    for trial in (2, 0, 1):
        store.append_told(trial)
    with (tmp_path / TOLD).open("a") as f:
        f.write("3")  # killed mid-write
    assert store.read_told() == [2, 0, 1]
    assert store.read_told(repair=True) == [2, 0, 1] and (tmp_path / f"{TOLD}.torn").read_text() == "3\n"
    (tmp_path / TOLD).write_text("2\n0\n2\n")
    with pytest.raises(RunDirError, match="listed twice"):
        store.read_told()
    (tmp_path / TOLD).write_text("2\nx\n")
    with pytest.raises(RunDirError, match=":2: damaged line"):
        store.read_told()


class CrashingStore(RunStore):
    """A run directory whose process is SIGKILLed during its ``crash_at``-th append (to
    trials.jsonl or told.txt): with ``torn``, half of that append reaches the disk first. After
    the crash nothing more is written, as after a real SIGKILL (no ``finally`` writes)."""

    def __init__(self, run_dir: Path, crash_at: int | None = None, torn: bool = False) -> None:
        super().__init__(run_dir)
        self.crash_at, self.torn, self.appends, self.dead = crash_at, torn, [], False

    def _append(self, path: Path, text: str) -> None:
        if self.dead:
            raise Killed
        self.appends.append(path.name)
        if len(self.appends) == self.crash_at:
            self.dead = True
            if self.torn:
                with path.open("a") as f:
                    last = text.rstrip("\n").rfind("\n") + 1  # where the last line starts
                    f.write(text[: last + max(1, (len(text) - last) // 2)])  # ends inside the last line
            raise Killed
        super()._append(path, text)

    def _atomic_write(self, name: str, content: str | bytes) -> None:
        if self.dead:
            raise Killed
        super()._atomic_write(name, content)


GROUPED = ["random", "tpe", "asha"]  # independent, adaptive, and one that decides states later


def grouped_loop(name: str, store: RunStore, executor: OutOfOrder) -> StudyLoop:
    study = compose_study([*CASES[name], "seed=5"])
    return StudyLoop(
        study.strategy, study.task.evaluate, store, study.budget, study.direction, executor=executor,
        seed=study.settings.seed,
    )  # fmt: skip


def many_workers() -> OutOfOrder:
    return OutOfOrder(slots=6, together=3)


@pytest.mark.parametrize("name", GROUPED)
def test_results_that_arrive_together_are_made_durable_together(name: str, tmp_path: Path) -> None:
    executor, store = many_workers(), CrashingStore(tmp_path)
    records = grouped_loop(name, store, executor).run().records
    journal_writes, record_writes = store.appends.count(TOLD), store.appends.count("trials.jsonl")
    assert journal_writes == executor.waits < len(records)  # one journal fsync per drained batch
    assert record_writes <= executor.waits + 1  # one records fsync per batch (+ the end of the run)
    assert sorted(store.read_told() or []) == sorted(r.trial for r in records)


class Witness:
    """Progress, logger and strategy hook at once: checks, when told of a trial, that it is on disk."""

    def __init__(self, store: RunStore) -> None:
        self.store, self.reported = store, 0

    def trial_done(self, record: TrialRecord, best: TrialRecord | None) -> None:
        assert record.trial in {r.trial for r in self.store.read_trials()}, "reported before it was durable"
        self.reported += 1

    def trial_stored(self, record: TrialRecord) -> None:
        assert record.trial in {r.trial for r in self.store.read_trials()}, "logged before it was durable"


@pytest.mark.parametrize("name", GROUPED)
def test_no_result_is_told_or_reported_before_it_is_durable(name: str, tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    loop = grouped_loop(name, store, many_workers())
    witness = Witness(store)
    loop.progress, loop.observer = witness, witness
    tell = loop.strategy.tell

    def durable_tell(observations: Any) -> None:
        journal = set(store.read_told() or [])
        assert all(o.suggestion.key in journal for o in observations), "told before it was journaled"
        tell(observations)

    loop.strategy.tell = durable_tell  # type: ignore[method-assign]
    records = loop.run().records
    assert witness.reported == len(records) > 0


def resume_to_the_end(name: str, run_dir: Path) -> list[TrialRecord]:
    store = RunStore(run_dir)
    before = store.read_trials(repair=True)
    resumed = grouped_loop(name, store, many_workers())
    told = _restore_checkpoint(store, resumed.strategy, before, resumed.direction)
    resumed.run(before, told)
    return store.read_trials()


@pytest.mark.slow  # every append of three runs, killed and resumed (~20-35 s each here)
@pytest.mark.parametrize("name", GROUPED)
def test_a_kill_at_any_write_of_a_grouped_run_loses_and_duplicates_nothing(name: str, tmp_path: Path) -> None:
    whole_store = CrashingStore(tmp_path / "whole")
    whole = grouped_loop(name, whole_store, many_workers()).run().records
    for crash_at in range(1, len(whole_store.appends) + 1):
        run_dir = tmp_path / f"killed-{crash_at}"
        with pytest.raises(Killed):
            grouped_loop(name, CrashingStore(run_dir, crash_at, torn=crash_at % 2 == 0), many_workers()).run()
        first = RunStore(run_dir).read_trials()
        after = resume_to_the_end(name, run_dir)  # read_trials refuses a trial recorded twice
        assert trials(after) == trials(whole), f"crash at append {crash_at}"
        assert after[: len(first)] == first
        assert sorted(RunStore(run_dir).read_told() or []) == sorted(r.trial for r in after)


def test_a_record_whose_journal_line_was_torn_off_is_told_from_the_record(tmp_path: Path) -> None:
    """A full disk tore the journal's last line off while that trial's record was written (an
    older hpo wrote records after a failed journal append): the resume continues, evaluating
    nothing twice."""
    whole = grouped_loop("tpe", RunStore(tmp_path / "whole"), many_workers()).run().records
    run_dir = tmp_path / "full"
    with pytest.raises(Killed):
        grouped_loop("tpe", RunStore(run_dir), OutOfOrder(slots=6, together=3, kill_after=7)).run()
    lines = (run_dir / TOLD).read_text().splitlines()
    recorded = {r.trial for r in RunStore(run_dir).read_trials()}
    assert int(lines[-1]) in recorded
    (run_dir / TOLD).write_text("".join(f"{n}\n" for n in lines[:-1]) + lines[-1])  # the torn last line
    after = resume_to_the_end("tpe", run_dir)
    assert trials(after) == trials(whole)
    assert (run_dir / f"{TOLD}.torn").read_text() == lines[-1] + "\n"


class Losing(OutOfOrder):
    """Loses the first attempt of trials ``lose`` (``always``: every attempt), as a worker or node
    that dies under them would: a failed outcome marked ``lost``."""

    def __init__(self, lose: set[int], always: bool = False, max_retries: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lose, self.always, self.max_retries = lose, always, max_retries

    def wait(self) -> list[tuple[Job, Outcome]]:
        results = super().wait()
        return [
            (job, failed_outcome(job, 0.0, "the worker running it died (test)", lost=True))
            if job.number in self.lose or (self.always and job.seed in self.lost_seeds)
            else (job, outcome)
            for job, outcome in results
        ]

    @property
    def lost_seeds(self) -> set[int]:
        return {trial_seed(5, number) for number in self.lose}


def check_retries(records: list[TrialRecord], n_trials: int) -> tuple[list[TrialRecord], list[TrialRecord]]:
    """The lost rows and their retries, checked: each lost row names its retry, which runs the
    same configuration and names it back; the trials of the budget are all there once."""
    by_number = {r.trial: r for r in records}
    lost = [r for r in records if r.retried_as is not None]
    retries = [r for r in records if r.retry_of is not None]
    assert sorted(by_number) == list(range(len(records)))  # each number once
    for row in lost:
        retry = by_number[row.retried_as]
        assert row.state == "failed" and f"run again as trial {row.retried_as}" in (row.error or "")
        assert retry.retry_of == row.trial and retry.params == row.params
    assert len(records) - len(retries) == n_trials
    return lost, retries


@pytest.mark.parametrize("name", ["random", "tpe", "asha", "cmaes", "hoag"])
def test_trials_lost_with_their_worker_are_run_again_and_told_once(name: str, tmp_path: Path) -> None:
    n_trials = int(next(o for o in CASES[name] if o.startswith("n_trials=")).split("=")[1])
    loop = make_loop(CASES[name], tmp_path / "run", Losing({1, 4}))
    records = loop.run().records
    lost, retries = check_retries(records, n_trials)
    assert sorted(r.trial for r in lost) == [1, 4] and len(retries) == 2
    assert all(r.state != "failed" for r in records if r.retried_as is None)  # nothing else failed
    keys = [o.suggestion.key for o in loop.strategy.history]
    assert len(keys) == len(set(keys)) == n_trials and not {1, 4} & set(keys)  # the losses never told
    told = (tmp_path / "run" / TOLD).read_text().split()
    assert sorted(map(int, told)) == sorted(r.trial for r in records)
    if name == "random":  # a retry is seeded as its lost trial: the same values as without losses
        whole = uninterrupted(name, tmp_path)
        assert sorted((json.dumps(r.params), r.value) for r in records if r.state == "complete") == sorted(
            (json.dumps(r.params), r.value) for r in whole
        )


@pytest.mark.parametrize("name", ["tpe", "asha"])
def test_a_run_killed_after_losses_resumes_to_the_trials_of_an_uninterrupted_one(name: str, tmp_path: Path) -> None:
    whole = make_loop(CASES[name], tmp_path / "whole", Losing({1, 4})).run().records
    run_dir = tmp_path / "killed"
    with pytest.raises(Killed):
        make_loop(CASES[name], run_dir, Losing({1, 4}, kill_after=7)).run()
    store = RunStore(run_dir)
    before = store.read_trials(repair=True)
    assert any(r.retried_as is not None for r in before)
    resumed = make_loop(CASES[name], run_dir, Losing({1, 4}))
    told = _restore_checkpoint(store, resumed.strategy, before, resumed.direction)
    resumed.run(before, told)
    after = store.read_trials()
    assert trials(after) == trials(whole)
    assert [(r.trial, r.retry_of, r.retried_as) for r in sorted(after, key=lambda r: r.trial)] == [
        (r.trial, r.retry_of, r.retried_as) for r in sorted(whole, key=lambda r: r.trial)
    ]


def test_retries_of_a_batch_stay_in_their_batch(tmp_path: Path) -> None:
    executor = Losing({2, 3})
    executor.asynchronous = False
    loop = make_loop([*CASES["cmaes"], "batch_size=6"], tmp_path / "run", executor)
    records = loop.run().records
    lost, retries = check_retries(records, 20)
    assert [r.trial for r in lost] == [2, 3] and [r.trial for r in retries] == [6, 7]  # after its batch of 6
    assert sum(r.state == "complete" for r in records) == 20


def test_a_trial_lost_every_time_fails_after_max_retries(tmp_path: Path) -> None:
    records = make_loop(CASES["random"], tmp_path / "run", Losing({3}, always=True, max_retries=2)).run().records
    chain = [r for r in records if r.params == next(x.params for x in records if x.trial == 3)]
    assert [r.state for r in chain] == ["failed"] * 3  # the first attempt and 2 retries
    assert [r.retried_as is not None for r in chain] == [True, True, False]
    assert sum(r.state == "complete" for r in records) == 13 and len(records) == 16
