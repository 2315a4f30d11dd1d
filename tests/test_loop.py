"""The ask/evaluate/tell loop and the run directory it writes."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import make_space

from hpo_cli.errors import ResumeError
from hpo_cli.loop import Budget, StudyLoop
from hpo_cli.store import STRATEGY_STATE, TORN, RunStore, best_trial
from hpo_cli.strategies.random_search import RandomStrategy
from hpo_cli.trial import Evaluation, TrialRecord

SPACE = make_space({"x": {"type": "float", "low": -2.0, "high": 2.0}})


def quadratic(params: Mapping[str, Any], budget: float | None = None, request: Any = None) -> Evaluation:
    return Evaluation(params["x"] ** 2, {"x_abs": abs(params["x"])}, {"inner_steps": 3})


def flaky(params: Mapping[str, Any], budget: float | None = None, request: Any = None) -> Evaluation:
    if params["x"] > 1.0:
        raise RuntimeError("diverged\nwith a second line")
    if params["x"] < -1.0:
        return Evaluation(math.nan)
    return quadratic(params)


def make_loop(tmp_path: Path, objective: Any = quadratic, seed: int = 0, **budget: Any) -> StudyLoop:
    budget = {"n_trials": 20, **budget}
    return StudyLoop(
        RandomStrategy(SPACE, seed, budget["n_trials"]),
        objective,
        RunStore(tmp_path),
        Budget(**budget),
    )


def test_every_trial_is_stored_with_the_documented_fields(tmp_path: Path) -> None:
    outcome = make_loop(tmp_path, n_trials=12, batch_size=5).run()
    assert outcome.status == "finished" and len(outcome.records) == 12
    lines = [json.loads(s) for s in (tmp_path / "trials.jsonl").read_text().splitlines()]
    assert [d["trial"] for d in lines] == list(range(12))
    assert set(lines[0]) >= {
        "trial",
        "state",
        "params",
        "value",
        "metrics",
        "budget",
        "seconds",
        "error",
    }
    assert all(d["value"] == d["params"]["x"] ** 2 and d["state"] == "complete" for d in lines)
    assert lines[0]["cost"] == {"inner_steps": 3}


def test_exceptions_and_nan_become_failed_trials_and_the_run_goes_on(tmp_path: Path) -> None:
    outcome = make_loop(tmp_path, flaky, n_trials=30, max_failure_rate=1.0).run()
    records = outcome.records
    raised = [r for r in records if r.params["x"] > 1.0]
    nans = [r for r in records if r.params["x"] < -1.0]
    assert raised and nans and len(records) == 30 and outcome.status == "finished"
    assert all(r.state == "failed" and r.value is None for r in raised + nans)
    assert raised[0].error.startswith("RuntimeError: diverged with a second line (at test_loop.py:")
    assert nans[0].error == "objective returned nan"
    best = best_trial(records, "minimize")
    assert best is not None and best.value == min(r.value for r in records if r.value is not None)


def test_too_many_failures_stop_the_run_with_a_clear_message(tmp_path: Path) -> None:
    def always_fails(params: Mapping[str, Any], budget: float | None = None, request: Any = None) -> Evaluation:
        raise ValueError("bad config")

    outcome = make_loop(tmp_path, always_fails, n_trials=50, max_failure_rate=0.5).run()
    assert outcome.status == "failed" and len(outcome.records) == 5
    assert outcome.message == (
        "stopped: 5 of 5 trials failed (100% > max_failure_rate 0.5); last error: "
        f"ValueError: bad config (at test_loop.py:{outcome.records[0].error.rsplit(':', 1)[1]}"
    )


def test_timeout_stops_asking(tmp_path: Path) -> None:
    def slow(params: Mapping[str, Any], budget: float | None = None, request: Any = None) -> Evaluation:
        time.sleep(0.05)
        return quadratic(params)

    outcome = make_loop(tmp_path, slow, n_trials=1000, timeout_s=0.3).run()
    assert outcome.message == "reached timeout_s=0.3" and 3 <= len(outcome.records) <= 8


def test_batches_ask_batch_size_at_a_time(tmp_path: Path) -> None:
    loop = make_loop(tmp_path, n_trials=10, batch_size=4)
    sizes: list[int] = []
    original = loop.strategy.ask
    loop.strategy.ask = lambda n: sizes.append(n) or original(n)  # type: ignore[method-assign]
    loop.run()
    assert sizes == [4, 4, 2]


def test_replay_reproduces_a_run_without_evaluating(tmp_path: Path) -> None:
    full = make_loop(tmp_path / "a", n_trials=10, batch_size=3, seed=4).run().records
    calls: list[float] = []

    def counting(params: Mapping[str, Any], budget: float | None = None, request: Any = None) -> Evaluation:
        calls.append(params["x"])
        return quadratic(params)

    partial = full[:5]  # killed in the middle of the second batch
    store = RunStore(tmp_path / "b")
    for r in partial:
        store.append_trial(r)
    resumed = StudyLoop(RandomStrategy(SPACE, 4, 10), counting, store, Budget(10, 3)).run(partial)
    assert [r.to_json() for r in resumed.records][:5] == [r.to_json() for r in partial]
    assert [r.params for r in resumed.records] == [r.params for r in full]
    assert len(calls) == 5


def test_replay_refuses_a_strategy_that_diverged(tmp_path: Path) -> None:
    records = make_loop(tmp_path / "a", n_trials=4, seed=1).run().records
    loop = StudyLoop(RandomStrategy(SPACE, 2, 4), quadratic, RunStore(tmp_path / "b"), Budget(4))
    with pytest.raises(ResumeError, match="trial 0 was recorded with params"):
        loop.run(records)


def test_checkpoint_restores_the_strategy(tmp_path: Path) -> None:
    loop = make_loop(tmp_path, n_trials=6, batch_size=2)
    loop.run()
    loop.save_checkpoint()
    saved = json.loads((tmp_path / STRATEGY_STATE).read_text())
    assert saved["told"] == 6 and len(saved["state"]["history"]) == 6 and len(saved["sha256"]) == 64
    told, state = RunStore(tmp_path).read_checkpoint()  # type: ignore[misc]
    assert told == 6 and state == saved["state"]


def test_a_torn_last_line_is_dropped_and_repaired(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    for i in range(3):
        store.append_trial(TrialRecord(i, "complete", {"x": float(i)}, float(i)))
    with store.trials_path.open("a") as f:
        f.write('{"trial": 3, "state": "comp')
    assert [r.trial for r in store.read_trials()] == [0, 1, 2]
    assert not (tmp_path / TORN).exists()  # reading alone changes nothing
    assert [r.trial for r in store.read_trials(repair=True)] == [0, 1, 2]
    assert (tmp_path / TORN).read_text() == '{"trial": 3, "state": "comp\n'  # set aside, never deleted
    store.append_trial(TrialRecord(3, "complete", {"x": 3.0}, 3.0))
    assert [r.trial for r in store.read_trials()] == [0, 1, 2, 3]


def test_best_trial_respects_direction_and_prefers_the_earliest_tie() -> None:
    records = [TrialRecord(i, "complete", {}, v) for i, v in enumerate([3.0, 1.0, 5.0, 1.0, 5.0])]
    records.append(TrialRecord(5, "failed", {}, None))
    assert best_trial(records, "minimize").trial == 1  # type: ignore[union-attr]
    assert best_trial(records, "maximize").trial == 2  # type: ignore[union-attr]
    assert best_trial(records[5:], "minimize") is None
