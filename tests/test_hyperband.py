"""Successive halving and Hyperband: schedules against tables, promotions by value."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, make_space, read_summary, read_trials, run_dirs

from hpo_cli.loop import Budget, StudyLoop
from hpo_cli.store import RunStore
from hpo_cli.strategies.hyperband import (
    HyperbandStrategy,
    SuccessiveHalvingStrategy,
    halving_bracket,
    hyperband_brackets,
)
from hpo_cli.trial import Evaluation

# (R, η) -> brackets of (configurations, budget) rungs; R=81, η=3 is Table 1 of Li et al. 2017.
SCHEDULES = {
    (81, 3): [
        [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        [(34, 3), (11, 9), (3, 27), (1, 81)],
        [(15, 9), (5, 27), (1, 81)],
        [(8, 27), (2, 81)],
        [(5, 81)],
    ],
    (27, 3): [
        [(27, 1), (9, 3), (3, 9), (1, 27)],
        [(12, 3), (4, 9), (1, 27)],
        [(6, 9), (2, 27)],
        [(4, 27)],
    ],
    (8, 2): [
        [(8, 1), (4, 2), (2, 4), (1, 8)],
        [(6, 2), (3, 4), (1, 8)],
        [(4, 4), (2, 8)],
        [(4, 8)],
    ],
    (10, 3): [
        [(9, 10 / 9), (3, 10 / 3), (1, 10)],
        [(5, 10 / 3), (1, 10)],
        [(3, 10)],
    ],
}


@pytest.mark.parametrize(("ratio", "eta"), list(SCHEDULES))
def test_hyperband_brackets_match_the_table(ratio: int, eta: int) -> None:
    got = hyperband_brackets(ratio, eta)
    expected = SCHEDULES[(ratio, eta)]
    assert [[n for n, _ in b] for b in got] == [[n for n, _ in b] for b in expected]
    assert [[pytest.approx(r) for _, r in b] for b in got] == [[r for _, r in b] for b in expected]


@pytest.mark.parametrize(
    ("ratio", "eta", "n_configs", "expected"),
    [
        (27, 3, None, [(27, 1), (9, 3), (3, 9), (1, 27)]),
        (27, 3, 40, [(40, 1), (13, 3), (4, 9), (1, 27)]),
        (16, 2, None, [(16, 1), (8, 2), (4, 4), (2, 8), (1, 16)]),
        (9, 3, 5, [(5, 1), (1, 3), (1, 9)]),
    ],
)
def test_successive_halving_schedule(
    ratio: int, eta: int, n_configs: int | None, expected: list[tuple[int, float]]
) -> None:
    assert halving_bracket(ratio, eta, n_configs) == expected


SPACE = make_space({"x": {"type": "float", "low": 0.0, "high": 1.0}})


def objective(params: Mapping[str, Any], budget: float | None, request: Any = None) -> Evaluation:
    """Lower is better; more budget helps every configuration equally."""
    assert budget is not None
    return Evaluation(params["x"] + 1.0 / budget, {"budget": budget})


def test_successive_halving_promotes_the_best_third_and_records_pruned_trials(tmp_path: Path) -> None:
    strategy = SuccessiveHalvingStrategy(SPACE, seed=1, n_trials=100, eta=3, min_budget=1, max_budget=9)
    store = RunStore(tmp_path)
    outcome = StudyLoop(strategy, objective, store, Budget(100, batch_size=4)).run()
    assert outcome.message == "all 1 bracket(s) finished"
    rows = [json.loads(line) for line in (tmp_path / "trials.jsonl").read_text().splitlines()]
    assert sorted(r["trial"] for r in rows) == list(range(13))  # 9 + 3 + 1
    by_budget = {b: [r for r in rows if r["budget"] == b] for b in (1, 3, 9)}
    assert [len(v) for v in by_budget.values()] == [9, 3, 1]
    rung0 = sorted(by_budget[1], key=lambda r: r["value"])
    promoted = {json.dumps(r["params"]) for r in by_budget[3]}
    assert promoted == {json.dumps(r["params"]) for r in rung0[:3]}
    assert [r["state"] for r in rung0] == ["complete"] * 3 + ["pruned"] * 6
    assert sorted(r["state"] for r in by_budget[3]) == ["complete", "pruned", "pruned"]
    assert by_budget[9][0]["state"] == "complete" and by_budget[9][0]["params"] == rung0[0]["params"]


def test_hyperband_runs_every_bracket_with_fresh_configurations(tmp_path: Path) -> None:
    strategy = HyperbandStrategy(SPACE, seed=0, n_trials=200, eta=3, fidelity=(1, 27))
    outcome = StudyLoop(strategy, objective, RunStore(tmp_path), Budget(200)).run()
    assert len(outcome.records) == 40 + 17 + 8 + 4
    configs_at_start = [r for r in outcome.records if r.trial in range(0, 27)]
    assert len({r.params["x"] for r in configs_at_start}) == 27


def test_interrupted_rungs_keep_their_evaluations(tmp_path: Path) -> None:
    strategy = SuccessiveHalvingStrategy(SPACE, seed=1, n_trials=5, eta=3, min_budget=1, max_budget=9)
    outcome = StudyLoop(strategy, objective, RunStore(tmp_path), Budget(5)).run()
    assert len(outcome.records) == 5 and all(r.state == "complete" for r in outcome.records)


def test_hyperband_on_digits_from_the_cli(hpo: Callable[..., Result], tmp_path: Path) -> None:
    res = hpo("run", "task=digits", "strategy=hyperband", "task.max_epochs=9")
    assert res.returncode == 0, res.output
    run = run_dirs(tmp_path)[0]
    trials = read_trials(run)
    assert len(trials) == 13 + 6 + 3 and {t["budget"] for t in trials} == {1, 3, 9}
    assert all(t["metrics"]["epochs"] == t["budget"] for t in trials)
    summary = read_summary(run)
    assert summary["n_pruned"] == sum(t["state"] == "pruned" for t in trials) > 0
    assert summary["cost"]["epochs"] < sum(t["budget"] for t in trials)  # promotions continued from checkpoints
    assert summary["best"]["metrics"]["test_accuracy"] > 0.85
