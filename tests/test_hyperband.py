"""Successive halving and Hyperband: schedules against tables, promotions by value."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, make_space, read_summary, read_trials, run_dirs

from hpo_cli.build import compose_config, compose_study
from hpo_cli.loop import Budget, StudyLoop
from hpo_cli.runner import run_in_memory, run_study
from hpo_cli.store import RunStore
from hpo_cli.strategies.hyperband import (
    HyperbandStrategy,
    SuccessiveHalvingStrategy,
    halving_bracket,
    hyperband_brackets,
)
from hpo_cli.trial import Evaluation, TrialRecord

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


class Keeper:
    """A task's checkpoints as the loop sees them: what was released, and when."""

    def __init__(self, store: RunStore) -> None:
        self.store, self.released, self.all_released = store, [], False
        self.folder: Path | None = None

    def attach(self, folder: Path) -> None:
        self.folder = folder

    def release(self, params: Mapping[str, Any]) -> None:
        stored = {json.dumps(r.params): r.state for r in self.store.read_trials()}
        assert stored[json.dumps(params)] in ("pruned", "complete")  # its record is durable first
        self.released.append(params["x"])

    def release_all(self) -> None:
        self.all_released = True


def test_configurations_stopped_for_good_are_released_after_their_records_and_all_at_the_end(tmp_path: Path) -> None:
    strategy = SuccessiveHalvingStrategy(SPACE, seed=1, n_trials=100, eta=3, min_budget=1, max_budget=9)
    store = RunStore(tmp_path)
    keeper = Keeper(store)
    records = StudyLoop(strategy, objective, store, Budget(100, batch_size=4), checkpoints=keeper).run().records
    assert keeper.folder == tmp_path / "checkpoints"
    pruned = [r.params["x"] for r in records if r.state == "pruned"]
    (last,) = [r.params["x"] for r in records if r.budget == 9]
    assert sorted(keeper.released) == sorted([*pruned, last]) and len(keeper.released) == 9  # each once
    assert keeper.all_released


def test_an_interrupted_loop_releases_only_what_was_stopped(tmp_path: Path) -> None:
    def interrupted(params: Mapping[str, Any], budget: float | None, request: Any = None) -> Evaluation:
        if budget == 9:
            raise KeyboardInterrupt
        return objective(params, budget)

    strategy = SuccessiveHalvingStrategy(SPACE, seed=1, n_trials=100, eta=3, min_budget=1, max_budget=9)
    store = RunStore(tmp_path)
    keeper = Keeper(store)
    with pytest.raises(KeyboardInterrupt):
        StudyLoop(strategy, interrupted, store, Budget(100), checkpoints=keeper).run()
    assert len(keeper.released) == 6 + 2 and not keeper.all_released  # the rung-9 configuration's stays


# Hyperband with R = 3, η = 3 on a tiny MLP: 3 configurations at 1 epoch, the best continued to 3,
# then 2 at 3 epochs (6 trials); the promotion may run on either worker.
TINY_MLP = ["task=digits", "task.hidden=8", "task.max_epochs=3", "strategy=hyperband", "seed=0"]


def costs(records: Sequence[TrialRecord]) -> list[tuple[int, str, str, float | None, dict[str, int]]]:
    return sorted((r.trial, r.state, json.dumps(r.params, sort_keys=True), r.value, r.cost) for r in records)


@pytest.mark.slow  # a process pool's start and 2 × 22 trials: ~30 s here
def test_serial_and_process_runs_record_equal_costs_and_leave_no_checkpoint(tmp_path: Path) -> None:
    """R = 9: 22 trials, 5 of them promotions, spread over two workers: each continues the
    checkpoint another worker may have written (before, a promotion that met another worker
    started over, and cost.epochs depended on the schedule)."""
    overrides = [*TINY_MLP, "task.max_epochs=9"]
    serial = run_in_memory([*overrides, "executor=serial"], tmp_path / "serial")
    pool = run_in_memory([*overrides, "executor=process", "executor.workers=2"], tmp_path / "pool")
    assert costs(pool) == costs(serial)
    promotions = [r for r in serial if r.budget is not None and r.cost["epochs"] < r.budget]
    assert len(promotions) == 3 + 1 + 1  # bracket s=2: 3 continued to 3 epochs, 1 to 9; s=1: 1 to 9
    assert not (tmp_path / "serial" / "checkpoints").exists() and not (tmp_path / "pool" / "checkpoints").exists()


def test_a_resumed_run_continues_from_the_checkpoints_on_disk(tmp_path: Path) -> None:
    cfg = compose_config(TINY_MLP)
    straight = RunStore(tmp_path / "straight")
    run_study(compose_study(TINY_MLP), cfg, straight)
    cut = RunStore(tmp_path / "cut")
    study = compose_study(TINY_MLP)
    evaluate = study.task.evaluate

    def interrupted(params: Mapping[str, Any], budget: float | None = None, request: Any = None) -> Evaluation:
        if budget == 3 and not (cut.dir / "trials.jsonl").read_text().count("\n") > 3:
            raise KeyboardInterrupt  # the promotion: its configuration's 1-epoch checkpoint is on disk
        return evaluate(params, budget, request)

    study.task.evaluate = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        run_study(study, cfg, cut)
    assert len(list((cut.dir / "checkpoints").glob("*.pt"))) == 1  # the 2 not promoted were released
    assert run_study(compose_study(TINY_MLP), cfg, cut, resume=True) == "finished"
    assert costs(cut.read_trials()) == costs(straight.read_trials())
    assert not (cut.dir / "checkpoints").exists()
