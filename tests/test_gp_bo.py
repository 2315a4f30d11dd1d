"""GP-BO as a strategy: batches, fantasies, failures, discrete spaces, bad input, and that it finds optima."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import MIXED_SPACE, make_space

from hpo_cli.errors import ConfigError
from hpo_cli.run import build_space, build_strategy, build_task
from hpo_cli.settings import read_settings
from hpo_cli.space import SearchSpace
from hpo_cli.strategies.base import Observation, Strategy, Suggestion, TrialState
from hpo_cli.strategies.gp_bo import GPBOStrategy
from hpo_cli.study import compose_config, run_in_memory

BOX = {"x": {"type": "float", "low": -2.0, "high": 2.0}, "y": {"type": "float", "low": 1e-3, "high": 10.0, "log": True}}


def bowl(s: Suggestion) -> float:
    assert s.unit is not None
    return float(np.sum((np.asarray(s.unit) - 0.37) ** 2))


def tell_all(strategy: Strategy, suggestions: list[Suggestion]) -> None:
    strategy.tell([Observation(s, TrialState.COMPLETE, bowl(s)) for s in suggestions])


def distinct(suggestions: list[Suggestion]) -> bool:
    return len({json.dumps(s.params, sort_keys=True) for s in suggestions}) == len(suggestions)


@pytest.mark.parametrize(
    "options",
    [
        {"batch": "kriging_believer"},
        {"batch": "constant_liar", "liar": "min"},
        {"batch": "constant_liar", "liar": "max", "acquisition": "pi", "hyperprior": False},
        {"acquisition": "lcb", "noise": 1e-6},
    ],
)
def test_ask_4_after_the_initial_design_gives_4_distinct_points(options: dict) -> None:
    space = make_space(BOX)
    strategy = GPBOStrategy(space, seed=0, n_trials=50, n_initial=5, **options)
    tell_all(strategy, strategy.ask(5))
    batch = strategy.ask(4)
    assert len(batch) == 4 and distinct(batch) and all(space.contains(s.params) for s in batch)
    # points still pending from an earlier ask are fantasized too
    more = strategy.ask(3)
    assert distinct(batch + more)
    units = np.array([s.unit for s in batch + more])
    assert np.min([np.max(np.abs(a - b)) for i, a in enumerate(units) for b in units[i + 1 :]]) > 1e-6


def test_kriging_believer_batches_spread_out() -> None:
    """Without fantasies, 4 maximizations of the same acquisition would return the same point."""
    space = make_space(BOX)
    strategy = GPBOStrategy(space, seed=1, n_trials=50, n_initial=8)
    tell_all(strategy, strategy.ask(8))
    units = np.array([s.unit for s in strategy.ask(4)])
    spread = max(np.max(np.abs(a - b)) for a in units for b in units)
    assert spread > 1e-3


def test_failed_trials_steer_away_and_all_failed_falls_back_to_random() -> None:
    space = make_space(BOX)
    strategy = GPBOStrategy(space, seed=0, n_trials=50, n_initial=3)
    first = strategy.ask(3)
    strategy.tell([Observation(s, TrialState.FAILED, None, error="boom") for s in first])
    (fallback,) = strategy.ask(1)  # no data for a GP: a random point
    assert space.contains(fallback.params)
    tell_all(strategy, [fallback])
    second = strategy.ask(2)
    tell_all(strategy, second)
    (s,) = strategy.ask(1)  # GP over 3 complete + 3 failed (as the worst loss)
    assert space.contains(s.params) and s.unit is not None
    failed_units = np.array([f.unit for f in first])
    assert np.min(np.max(np.abs(failed_units - np.array(s.unit)), axis=1)) > 1e-6


def test_mixed_space_with_conditions_ints_and_categories() -> None:
    space = make_space(MIXED_SPACE)
    strategy = GPBOStrategy(space, seed=2, n_trials=30, n_initial=4, candidates=128, n_starts=3)
    seen = []
    for _ in range(8):
        batch = strategy.ask(2)
        tell_all(strategy, batch)
        seen += batch
    assert all(space.contains(s.params) for s in seen)
    assert distinct(seen)


def test_a_small_discrete_space_is_served_without_error_once_exhausted() -> None:
    space = make_space({"k": {"type": "int", "low": 1, "high": 2}, "c": {"type": "categorical", "choices": ["a", "b"]}})
    strategy = GPBOStrategy(space, seed=0, n_trials=10, n_initial=2)
    seen = []
    for _ in range(6):
        batch = strategy.ask(1)
        tell_all(strategy, batch)
        seen += batch
    assert len({json.dumps(s.params, sort_keys=True) for s in seen[:4]}) == 4  # all 4 configurations first
    assert all(space.contains(s.params) for s in seen)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("acquisition", "qei", "strategy.acquisition='qei'"),
        ("beta", -1.0, "strategy.beta=-1.0"),
        ("batch", "fantasy", "strategy.batch='fantasy'"),
        ("liar", "median", "strategy.liar='median'"),
        ("noise", 5.0, "strategy.noise=5.0"),
        ("n_initial", 0, "strategy.n_initial=0"),
        ("fit_restarts", -1, "strategy.fit_restarts=-1"),
    ],
)
def test_bad_options_name_the_key_and_value(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        GPBOStrategy(make_space(BOX), seed=0, n_trials=10, **{key: value})


def test_parallel_run_from_the_command_line_config() -> None:
    records = run_in_memory(["strategy=gp_bo", "task=branin", "n_trials=16", "batch_size=4", "strategy.n_initial=4"])
    assert len(records) == 16 and all(r.state == "complete" for r in records)
    assert len({json.dumps(r.params, sort_keys=True) for r in records}) == 16


def regret_at(strategy_name: str, seed: int, n: int, overrides: list[str] | None = None) -> float:
    cfg = compose_config(
        [f"strategy={strategy_name}", "task=branin", f"seed={seed}", f"n_trials={n}", *(overrides or [])]
    )
    task = build_task(cfg.task, "cpu")
    space: SearchSpace = build_space(cfg.space, task)
    strategy = build_strategy(cfg.strategy, space, read_settings(cfg))
    best = math.inf
    for _ in range(n):
        (s,) = strategy.ask(1)
        evaluation = task.evaluate(s.params)
        strategy.tell([Observation(s, TrialState.COMPLETE, evaluation.value)])
        best = min(best, float(evaluation.metrics["regret"]))
    return best


def test_gp_bo_beats_random_search_on_branin_at_30_evaluations() -> None:
    """Calibrated over seeds 0-29 (benchmark-style, 30 evaluations each): gp_bo's regret had median
    0.0033 and worst 0.048; random search's median 1.21 and best 0.10. Eight seeds here; the
    thresholds leave ~6x (median) and 2x (worst) headroom over the calibration."""
    gp = [regret_at("gp_bo", seed, 30) for seed in range(8)]
    rnd = [regret_at("random", seed, 30) for seed in range(8)]
    assert np.median(gp) < 0.02, gp
    assert max(gp) < 0.1, gp
    assert np.median(gp) < np.median(rnd) / 10, (gp, rnd)


@pytest.mark.parametrize("acquisition", ["pi", "ucb"])
def test_other_acquisitions_also_find_branins_minimum(acquisition: str) -> None:
    regrets = [regret_at("gp_bo", seed, 30, [f"strategy.acquisition={acquisition}"]) for seed in range(3)]
    assert np.median(regrets) < 0.1, regrets


def test_ucb_is_the_lcb_bound_by_its_maximization_name() -> None:
    runs = [
        run_in_memory(
            ["strategy=gp_bo", f"strategy.acquisition={name}", "strategy.beta=2.0", "task=ridge", "n_trials=12"]
        )
        for name in ("ucb", "lcb")
    ]
    assert [r.params for r in runs[0]] == [r.params for r in runs[1]]
    assert all(r.state == "complete" for r in runs[0])


def test_large_histories_refit_from_the_last_fit() -> None:
    """From 200 observations on, refits start from the previous θ only (every 25th gets its restarts)."""
    space = make_space(BOX)
    strategy = GPBOStrategy(space, seed=0, n_trials=300, n_initial=201, candidates=128, n_starts=2)
    tell_all(strategy, strategy.ask(201))
    (first,) = strategy.ask(1)
    theta = strategy._theta
    assert theta is not None
    tell_all(strategy, [first])
    (second,) = strategy.ask(1)  # 202 observations: warm start alone
    assert strategy._theta is not None and np.all(np.abs(strategy._theta - theta) < 1.0)
    assert space.contains(second.params) and bowl(second) < 0.05
