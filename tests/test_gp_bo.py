"""GP-BO as a strategy: batches, fantasies, failures, discrete spaces, bad input, and that it finds optima."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from conftest import MIXED_SPACE, make_space, regret_at

from hpo_cli.errors import ConfigError
from hpo_cli.runner import run_in_memory
from hpo_cli.strategies.base import Strategy
from hpo_cli.strategies.gp_bo import GPBOStrategy
from hpo_cli.trial import Observation, Suggestion, TrialState

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
        {"input_warping": True},
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


@pytest.mark.parametrize(("batch", "liar"), [("kriging_believer", "min"), ("constant_liar", "max")])
def test_pending_points_join_the_data_with_their_fantasy_value(batch: str, liar: str) -> None:
    space = make_space(BOX)
    strategy = GPBOStrategy(space, seed=1, n_trials=50, n_initial=8, batch=batch, liar=liar)
    tell_all(strategy, strategy.ask(8))
    gp = strategy._fit(*strategy._training_data())  # type: ignore[misc]
    (pending,) = strategy.ask(1)
    point = strategy._features(np.array([pending.unit]))
    mean_before, std_before = gp.predict(point)
    model = strategy._with_fantasies(gp, [])
    assert len(model.y) == len(gp.y) + 1
    mean_after, std_after = model.predict(point)
    assert std_after[0] < 0.05 * std_before[0]  # the fantasy pins the pending point
    expected = mean_before[0] if batch == "kriging_believer" else gp.y.max()
    assert mean_after[0] == pytest.approx(expected, abs=0.02)


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
    data = strategy._training_data()
    assert data is not None
    complete = [bowl(x) for x in [fallback, *second]]
    np.testing.assert_allclose(data[1], [*complete, *[max(complete)] * 3])  # failed = the worst loss seen
    (s,) = strategy.ask(1)  # GP over 3 complete + 3 failed
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
        ("max_observations", 1, "strategy.max_observations=1"),
        ("input_warping", "yes", "strategy.input_warping='yes'"),
        ("trust_region", 1, "strategy.trust_region=1"),
        ("explore_categories", 1.5, "strategy.explore_categories=1.5"),
        ("explore_categories", "often", "strategy.explore_categories='often'"),
        ("explore_categories", True, "strategy.explore_categories=True"),
        ("explore_categories", -0.1, "strategy.explore_categories=-0.1"),
    ],
)
def test_bad_options_name_the_key_and_value(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        GPBOStrategy(make_space(BOX), seed=0, n_trials=10, **{key: value})


def test_parallel_run_from_the_command_line_config() -> None:
    records = run_in_memory(["strategy=gp_bo", "task=branin", "n_trials=16", "batch_size=4", "strategy.n_initial=4"])
    assert len(records) == 16 and all(r.state == "complete" for r in records)
    assert len({json.dumps(r.params, sort_keys=True) for r in records}) == 16


@pytest.mark.slow  # in make test-slow: make test stays near its 10-minute budget
def test_gp_bo_beats_random_search_on_branin_at_30_evaluations() -> None:
    """Calibrated over seeds 0-29 (benchmark-style, 30 evaluations each): gp_bo's regret had median
    0.0033 and worst 0.048; random search's median 1.21 and best 0.10. Eight seeds here; the
    thresholds leave ~6x (median) and 2x (worst) headroom over the calibration."""
    gp = [regret_at("gp_bo", "branin", seed, 30) for seed in range(8)]
    rnd = [regret_at("random", "branin", seed, 30) for seed in range(8)]
    assert np.median(gp) < 0.02, gp
    assert max(gp) < 0.1, gp
    assert np.median(gp) < np.median(rnd) / 10, (gp, rnd)


@pytest.mark.slow
@pytest.mark.parametrize("acquisition", ["pi", "ucb"])
def test_other_acquisitions_also_find_branins_minimum(acquisition: str) -> None:
    # over 8 seeds: pi, the greediest, stalls in a local minimum on 3 of them at 30 evaluations
    # (regret 0.75-3.3, since the tighter length-scale prior); the median is what is asserted
    regrets = [regret_at("gp_bo", "branin", seed, 30, [f"strategy.acquisition={acquisition}"]) for seed in range(8)]
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


def test_large_histories_refit_from_the_last_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """From 200 observations on, refits start from the previous θ alone; every 25th gets its restarts."""
    import hpo_cli.strategies.gp_bo as gp_bo

    calls: list[tuple[int, int, bool]] = []
    real_fit = gp_bo.fit_gp

    def spy(x: np.ndarray, values: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        calls.append((len(values), kwargs["restarts"], kwargs["warm_start"] is not None))
        return real_fit(x, values, *args, **kwargs)

    monkeypatch.setattr(gp_bo, "fit_gp", spy)
    space = make_space(BOX)
    strategy = GPBOStrategy(space, seed=0, n_trials=300, n_initial=230, candidates=128, n_starts=2, fit_restarts=2)
    tell_all(strategy, strategy.ask(230))
    data = strategy._training_data()
    assert data is not None
    x, values, seen = data
    assert seen == len(values) == 230  # under max_observations: every observation
    for n in (199, 201, 202, 225):
        strategy._fit(x[:n], values[:n], n)
    assert calls == [(199, 2, False), (201, 0, True), (202, 0, True), (225, 2, True)]
    (s,) = strategy.ask(1)  # 230 observations: a warm refit, and still a good point
    assert calls[-1] == (230, 0, True)
    assert space.contains(s.params) and bowl(s) < 0.01


def test_beyond_max_observations_the_gp_sees_the_best_half_and_the_latest(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cap of 20 on 60 observations (3 failed): the 10 best, then the 10 most recent others;
    at most 20 pending points as fantasies; the suggestions stay good, and distinct."""
    import hpo_cli.strategies.gp_bo as gp_bo

    fitted: list[np.ndarray] = []
    real_fit = gp_bo.fit_gp

    def spy(x: np.ndarray, values: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        fitted.append(np.array(values))
        return real_fit(x, values, *args, **kwargs)

    monkeypatch.setattr(gp_bo, "fit_gp", spy)
    space = make_space(BOX)
    strategy = GPBOStrategy(space, seed=0, n_trials=200, n_initial=60, candidates=128, n_starts=2, max_observations=20)
    first = strategy.ask(60)
    failed = {first[5].key, first[40].key, first[58].key}
    strategy.tell(
        [
            Observation(s, TrialState.FAILED, None, error="planted")
            if s.key in failed
            else Observation(s, TrialState.COMPLETE, bowl(s))
            for s in first
        ]
    )
    batch = strategy.ask(30)  # one fit, then 30 suggestions with fantasies of the earlier ones
    (values,) = fitted
    worst = max(bowl(s) for s in first if s.key not in failed)
    losses = [worst if s.key in failed else bowl(s) for s in first]  # in the order they were told
    best = sorted(losses)[:10]
    latest = [loss for loss in losses if loss not in best][-10:]  # failed ones too (at the worst loss)
    assert worst in latest and sorted(values) == sorted(best + latest)
    x, kept, seen = strategy._training_data()  # type: ignore[misc]
    assert len(kept) == 20 and seen == 60
    model = strategy._with_fantasies(strategy._fit(x, kept, seen), [])
    assert len(model.y) == 20 + 20  # 30 pending: the 20 asked last
    assert distinct([*first, *batch]) and min(bowl(s) for s in batch) < 0.01


def losses_of(strategy: Strategy, loss: Any, rounds: int) -> list[Suggestion]:
    seen = []
    for _ in range(rounds):
        batch = strategy.ask(1)
        strategy.tell([Observation(s, TrialState.COMPLETE, loss(s)) for s in batch])
        seen += batch
    return seen


def test_rank_transform_makes_suggestions_depend_only_on_the_order_of_the_losses() -> None:
    space = make_space(BOX)
    options = {"n_initial": 5, "candidates": 128, "n_starts": 2, "output_transform": "rank"}
    plain = losses_of(GPBOStrategy(space, seed=3, n_trials=20, **options), bowl, 14)
    warped = losses_of(GPBOStrategy(space, seed=3, n_trials=20, **options), lambda s: 1e3 * np.exp(bowl(s)) - 7, 14)
    assert [s.params for s in plain] == [s.params for s in warped]
    # the power transform is not rank-only: the same monotone warp changes what it suggests
    options["output_transform"] = "power"
    plain = losses_of(GPBOStrategy(space, seed=3, n_trials=20, **options), bowl, 14)
    warped = losses_of(GPBOStrategy(space, seed=3, n_trials=20, **options), lambda s: np.exp(30 * bowl(s)), 14)
    assert [s.params for s in plain] != [s.params for s in warped]


def test_input_warping_reaches_the_gp_and_survives_a_resume() -> None:
    """The flag fits two warp shapes per continuous input (x and the log-scaled y of BOX): the
    saved warm start holds θ (2 + 2) and the shapes (2 · 2), and the suggestions differ from the
    plain GP's on the same seed; a restored strategy then suggests exactly what the original does."""
    space = make_space(BOX)
    options = {"n_initial": 5, "candidates": 128, "n_starts": 2}
    warped_strategy = GPBOStrategy(space, seed=3, n_trials=20, input_warping=True, **options)
    warped = losses_of(warped_strategy, bowl, 10)
    plain = losses_of(GPBOStrategy(space, seed=3, n_trials=20, **options), bowl, 10)
    assert [s.params for s in warped[:5]] == [s.params for s in plain[:5]]  # the same initial design
    assert [s.params for s in warped[5:]] != [s.params for s in plain[5:]]
    state = json.loads(json.dumps(warped_strategy.state_dict()))
    assert len(state["extra"]["theta"]) == 4 + 4
    restored = GPBOStrategy(space, seed=3, n_trials=20, input_warping=True, **options)
    restored.load_state_dict(state)
    assert [s.params for s in restored.ask(2)] == [s.params for s in warped_strategy.ask(2)]


def test_conditional_space_keeps_its_dimension_and_never_searches_inactive_coordinates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hpo_cli.strategies.gp_bo as gp_bo
    from hpo_cli.strategies._gp.optimize import MAXITER

    space = make_space(MIXED_SPACE)
    strategy = GPBOStrategy(space, seed=0, n_trials=30, n_initial=12, candidates=256, n_starts=4)
    sgd, momentum = space.slice_of("optimizer").start, space.slice_of("momentum").start
    scored: list[np.ndarray] = []
    inputs: list[int] = []
    real_maximize, real_fit = gp_bo.maximize, gp_bo.fit_gp

    def spy_maximize(acq: Any, *args: Any, **kwargs: Any) -> Any:
        def recorded(points: np.ndarray, with_gradient: bool) -> Any:
            scored.append(points.copy())
            return acq(points, with_gradient)

        return real_maximize(recorded, *args, **kwargs)

    def spy_fit(x: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        inputs.append(x.shape[1])
        return real_fit(x, *args, **kwargs)

    monkeypatch.setattr(gp_bo, "maximize", spy_maximize)
    monkeypatch.setattr(gp_bo, "fit_gp", spy_fit)
    tell_all(strategy, strategy.ask(12))
    for _ in range(3):
        tell_all(strategy, strategy.ask(1))
    assert inputs == [space.dim] * 3  # one coordinate per unit dimension: no one-hot, no activity flags
    points = np.vstack(scored)
    inactive = points[:, sgd] != 0  # momentum exists only with optimizer index 0 (sgd)
    assert inactive.any() and np.all(points[inactive, momentum] == 0.5)
    # the acquisition's cost is bounded: candidates, two L-BFGS-B runs of at most 2·MAXITER calls
    # (plus line-search slack), every choice of the two categoricals at each start
    local = 5 * 32
    bound = 256 + local + (2 * MAXITER + 25) * (4 + 1) + 4 * (3 + 4)
    assert strategy.acquisition_points <= bound
    assert 256 + local <= strategy.acquisition_points


def test_a_bad_output_transform_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"strategy\.output_transform='log'"):
        GPBOStrategy(make_space(BOX), seed=0, n_trials=10, output_transform="log")


def test_local_candidates_keep_the_category_of_the_observation_they_perturb() -> None:
    """A categorical feature is a category index (0..k-1): the local candidates around the best
    observations move their continuous coordinates only, and never clip an index to [0, 1]."""
    space = make_space(
        {"x": {"type": "float", "low": 0.0, "high": 1.0}, "c": {"type": "categorical", "choices": list("abcd")}}
    )
    for trust_region in (False, True):
        strategy = GPBOStrategy(space, seed=0, n_trials=20, n_initial=8, candidates=32, trust_region=trust_region)
        for s in strategy.ask(8):
            loss = (s.params["x"] - 0.3) ** 2 + (0.0 if s.params["c"] == "d" else 1.0)
            strategy.tell([Observation(s, TrialState.COMPLETE, loss)])
        gp = strategy._fit(*strategy._training_data())
        top = gp.x[np.argsort(gp.y)[:5]]
        assert top[0, 1] == 3  # the best observation has c = "d", index 3
        local = strategy._candidates(gp, strategy._region_box(gp))[32:]
        assert set(local[:, 1]) == set(top[:, 1]) and np.all(np.repeat(top[:, 1], 32) == local[:, 1])
        assert np.all((local[:, 0] >= 0.0) & (local[:, 0] <= 1.0))


FOUR_WAY = {"x": {"type": "float", "low": 0.0, "high": 1.0}, "c": {"type": "categorical", "choices": list("abcd")}}


def four_way_loss(s: Suggestion) -> float:
    return (s.params["x"] - 0.3) ** 2 + (0.0 if s.params["c"] == "d" else 1.0)


def model_based_choices(explore: float, asks: int = 24, seed: int = 0) -> list[tuple[str, str, bool]]:
    """Per model-based suggestion on FOUR_WAY: (the choice it took, the incumbent's choice before
    it, whether the search had stalled before it)."""
    strategy = GPBOStrategy(
        make_space(FOUR_WAY), seed=seed, n_trials=40, n_initial=8, candidates=64, explore_categories=explore
    )
    for s in strategy.ask(8):
        strategy.tell([Observation(s, TrialState.COMPLETE, four_way_loss(s))])
    rows = []
    for _ in range(asks):
        best = min((o for o in strategy.history if o.loss is not None), key=lambda o: o.loss)
        stalled = strategy._stalled()
        (s,) = strategy.ask(1)
        rows.append((s.params["c"], best.suggestion.params["c"], stalled))
        strategy.tell([Observation(s, TrialState.COMPLETE, four_way_loss(s))])
    return rows


def test_explore_categories_sends_stalled_suggestions_to_the_other_choices() -> None:
    """Choice "d" is better by 1.0 everywhere: without exploration the acquisition stays on it;
    with ``explore_categories=1`` every suggestion made while the search stalls takes another
    choice, each of them in turn, and none made while it improves does; with 0.5, some do."""
    rows = model_based_choices(0.0)
    assert {i for _, i, _ in rows} == {"d"} and sum(t == "d" for t, _, _ in rows) >= 22
    assert any(stalled for _, _, stalled in rows)
    rows = model_based_choices(1.0)
    stalled_rows = [(t, i) for t, i, stalled in rows if stalled]
    assert len(stalled_rows) >= 4 and all(t != i for t, i in stalled_rows)
    assert {t for t, _ in stalled_rows} == {"a", "b", "c"}
    assert all(t == "d" for t, _, stalled in rows if not stalled)
    rows = [row for seed in range(3) for row in model_based_choices(0.5, seed=seed)]
    forced = sum(t != i for t, i, stalled in rows if stalled)
    assert 1 <= forced < sum(stalled for _, _, stalled in rows)
    assert all(t == "d" for t, _, stalled in rows if not stalled)


def test_the_search_stalls_after_max_4_d_observations_without_a_relative_improvement() -> None:
    """Stalled: the last max(4, continuous dimensions) observations each beat the best before them
    by no more than 1e-3 of its magnitude (failed trials count as no improvement)."""
    strategy = GPBOStrategy(make_space(FOUR_WAY), seed=0, n_trials=40, n_initial=2)

    def tell(loss: float | None) -> None:
        (s,) = strategy.ask(1)
        state = TrialState.COMPLETE if loss is not None else TrialState.FAILED
        strategy.tell([Observation(s, state, loss)])

    for loss in (5.0, 4.0, 3.0):
        tell(loss)
    assert not strategy._stalled()
    for loss in (3.0, 2.9995, None):  # a tie, a gain of 1.7e-4 of the best, a failure
        tell(loss)
    assert not strategy._stalled()
    tell(7.0)
    assert strategy._stalled()  # four in a row
    tell(2.5)
    assert not strategy._stalled()


def test_a_forced_choice_still_gets_the_acquisitions_continuous_values() -> None:
    """The choices share the optimum x = 0.3 and differ by 0.01: a suggestion sent to another
    choice keeps the acquisition's x, near 0.3, not a random one."""
    strategy = GPBOStrategy(make_space(FOUR_WAY), seed=1, n_trials=60, n_initial=8, explore_categories=0.0)

    def loss(s: Suggestion) -> float:
        return (s.params["x"] - 0.3) ** 2 + (0.0 if s.params["c"] == "d" else 0.01)

    for _ in range(20):
        (s,) = strategy.ask(1)
        strategy.tell([Observation(s, TrialState.COMPLETE, loss(s))])
    strategy.explore_categories = 1.0
    strategy._stalled = lambda: True  # type: ignore[method-assign]  # (tested above) a search that stalls now
    xs = []
    for _ in range(6):
        (s,) = strategy.ask(1)
        assert s.params["c"] != "d"
        xs.append(s.params["x"])
        strategy.tell([Observation(s, TrialState.COMPLETE, loss(s))])
    assert float(np.median(np.abs(np.array(xs) - 0.3))) < 0.1, xs


def test_explore_categories_changes_nothing_without_a_categorical() -> None:
    """No categorical: no draw is spent on it, so the suggestions are the same (BBOB figures hold)."""
    runs = []
    for explore in (0.0, 0.2, 1.0):
        strategy = GPBOStrategy(make_space(BOX), seed=3, n_trials=20, n_initial=4, explore_categories=explore)
        units = []
        for _ in range(8):
            (s,) = strategy.ask(1)
            units.append(s.unit)
            strategy.tell([Observation(s, TrialState.COMPLETE, bowl(s))])
        runs.append(np.array(units))
    assert np.array_equal(runs[0], runs[1]) and np.array_equal(runs[0], runs[2])


def test_a_resumed_run_repeats_the_forced_choices() -> None:
    """The stall is read from the history and the draws from the saved generator: a restored run
    makes the same suggestions, the forced choices included."""
    space = make_space(FOUR_WAY)

    def make() -> GPBOStrategy:
        return GPBOStrategy(space, seed=0, n_trials=60, n_initial=8, candidates=64, explore_categories=0.5)

    def step(strategy: GPBOStrategy) -> Suggestion:
        (s,) = strategy.ask(1)
        strategy.tell([Observation(s, TrialState.COMPLETE, four_way_loss(s))])
        return s

    original = make()
    for _ in range(8 + 12):
        step(original)
    restored = make()
    restored.load_state_dict(json.loads(json.dumps(original.state_dict())))
    ahead = [step(original) for _ in range(12)]
    again = [step(restored) for _ in range(12)]
    assert [s.params for s in ahead] == [s.params for s in again]
    assert any(s.params["c"] != "d" for s in ahead)  # some of them were forced away from the best choice


def test_small_ints_get_every_value_in_the_acquisition_search_within_the_trust_region() -> None:
    space = make_space(
        {
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "layers": {"type": "int", "low": 1, "high": 8},
            "width": {"type": "int", "low": 16, "high": 1024, "log": True},  # 1,009 values: the ascent alone
            "units": {"type": "int", "low": 10, "high": 40, "step": 10},
        }
    )
    strategy = GPBOStrategy(space, seed=0, n_trials=10)
    grids = dict(strategy._integer_grids(None))
    layers, units = space.slice_of("layers").start, space.slice_of("units").start
    assert set(grids) == {layers, units}
    np.testing.assert_allclose(grids[layers], (np.arange(8) + 0.5) / 8)
    assert [space["units"].decode(np.array([u])) for u in grids[units]] == [10, 20, 30, 40]
    lower, upper = np.zeros(space.dim), np.ones(space.dim)
    lower[layers], upper[layers] = 0.2, 0.5  # a trust region's box: layers 3 and 4 inside
    inside = dict(strategy._integer_grids((lower, upper)))[layers]
    assert [space["layers"].decode(np.array([u])) for u in inside] == [3, 4]


def test_each_suggestion_searches_the_small_ints_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wiring: every model-based suggestion hands ``maximize`` the grid of the 8-valued int (and
    none for the float), so the acquisition's coordinate search runs on it."""
    import hpo_cli.strategies.gp_bo as gp_bo_module

    seen: list[dict[int, np.ndarray]] = []
    real = gp_bo_module.maximize

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(dict(args[3]))
        return real(*args, **kwargs)

    monkeypatch.setattr(gp_bo_module, "maximize", recording)
    space = make_space(
        {"x": {"type": "float", "low": 0.0, "high": 1.0}, "layers": {"type": "int", "low": 1, "high": 8}}
    )
    strategy = GPBOStrategy(space, seed=0, n_trials=8, n_initial=3, candidates=64)
    for _ in range(6):
        tell_all(strategy, strategy.ask(1))
    layers = space.slice_of("layers").start
    assert len(seen) == 3
    for grids in seen:
        assert list(grids) == [layers]
        np.testing.assert_allclose(grids[layers], (np.arange(8) + 0.5) / 8)
