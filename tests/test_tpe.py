"""TPE: its Parzen estimators by value, its groups and conditions, the liar, and a calibrated
win over random search on the conditional `task=linear` space."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import MIXED_SPACE, make_space
from scipy import integrate

from hpo_cli.build import compose_study
from hpo_cli.errors import ConfigError
from hpo_cli.strategies._parzen import build_mixture, neighbour_widths
from hpo_cli.strategies.tpe import TPEStrategy, recency_weights
from hpo_cli.trial import Observation, TrialState

LINEAR_SPACE = {
    "model": {"type": "categorical", "choices": ["ridge", "lasso"]},
    "ridge_alpha": {"type": "float", "low": 1e-4, "high": 1e4, "log": True, "when": {"model": "ridge"}},
    "lasso_alpha": {"type": "float", "low": 1e-4, "high": 1e2, "log": True, "when": {"model": "lasso"}},
}


def mixture(numeric: np.ndarray, choices: np.ndarray | None = None, n_choices: list[int] | None = None, **kw):
    choices = np.zeros((len(numeric), 0), dtype=int) if choices is None else choices
    options = {"prior_weight": 1.0, "rule": "neighbours", "categorical_smoothing": 0.3, **kw}
    return build_mixture(
        numeric,
        choices,
        n_choices or [],
        weights=np.ones(len(numeric)),
        min_width=np.zeros(numeric.shape[1]),
        **options,
    )


def test_neighbour_widths_by_hand() -> None:
    centers = np.array([[0.5], [0.1], [0.2], [0.9]])
    # sorted 0.1 0.2 0.5 0.9: ends use their inner gap; inner ones the larger of their two gaps
    np.testing.assert_allclose(neighbour_widths(centers)[:, 0], [0.4, 0.1, 0.3, 0.4])


@pytest.mark.parametrize("rule", ["neighbours", "scott"])
def test_the_mixture_is_a_density_on_the_unit_interval(rule: str) -> None:
    m = mixture(np.array([[0.05], [0.3], [0.32], [0.97]]), rule=rule)
    total, _ = integrate.quad(
        lambda x: float(np.exp(m.log_density(np.array([[x]]), np.zeros((1, 0), int), True))[0]),
        0,
        1,
        points=[0.05, 0.3, 0.32, 0.97],
        limit=200,
    )
    assert total == pytest.approx(1.0, abs=1e-8)


def test_the_joint_density_integrates_to_one_over_numeric_and_categorical() -> None:
    numeric = np.array([[0.2, 0.7], [0.6, 0.1], [0.9, 0.9]])
    m = mixture(numeric, np.array([[0], [2], [2]]), [3], rule="scott")
    grid = (np.arange(400) + 0.5) / 400
    xx, yy = np.meshgrid(grid, grid)
    points = np.column_stack([xx.ravel(), yy.ravel()])
    total = 0.0
    for c in range(3):
        density = np.exp(m.log_density(points, np.full((len(points), 1), c), True))
        total += density.mean()  # midpoint rule on [0, 1]^2
    assert total == pytest.approx(1.0, abs=1e-4)


def test_samples_follow_the_density() -> None:
    m = mixture(np.array([[0.1], [0.15], [0.8]]))
    numeric, _ = m.sample(np.random.default_rng(0), 200_000, True)
    edges = np.linspace(0, 1, 21)
    counts, _ = np.histogram(numeric[:, 0], edges)
    mids = np.linspace(0, 1, 2001)
    dens = np.exp(m.log_density(mids[:, None], np.zeros((len(mids), 0), int), True))
    expected = [
        np.trapezoid(dens[(mids >= a) & (mids <= b)], mids[(mids >= a) & (mids <= b)])
        for a, b in itertools.pairwise(edges)
    ]
    np.testing.assert_allclose(counts / len(numeric), expected, atol=3e-3)


def test_categorical_kernel_keeps_one_minus_b_on_the_observed_choice() -> None:
    m = mixture(np.zeros((1, 0)), np.array([[1]]), [4], categorical_smoothing=0.4)
    probs = np.exp(m.categorical[0])
    b = 0.4 * 3 / 4
    np.testing.assert_allclose(probs[0], [b / 3, 1 - b, b / 3, b / 3])
    np.testing.assert_allclose(probs[1], [0.25] * 4)  # the prior


def test_recency_weights_ramp_the_old_observations() -> None:
    assert np.all(recency_weights(24) == 1)
    w = recency_weights(40)
    assert w[0] == pytest.approx(1 / 40) and np.all(w[-25:] == 1) and np.all(np.diff(w) >= 0)


def test_groups_univariate_and_multivariate() -> None:
    space = make_space(MIXED_SPACE)
    names = lambda s: [[p.name for p in g.params] for g in s.groups]  # noqa: E731
    uni = TPEStrategy(space, 0, 10, multivariate=False)
    assert names(uni) == [
        ["lr", "dropout", "units", "layers", "batch"],
        ["optimizer"],
        ["momentum"],
        ["flag"],
    ]
    assert not uni.groups[0].joint
    multi = TPEStrategy(space, 0, 10, multivariate=True)
    assert names(multi) == [["lr", "dropout", "units", "layers", "batch", "optimizer", "flag"], ["momentum"]]
    # an int's kernel is never narrower than its cell, a stepped float's than its step
    np.testing.assert_allclose(multi.groups[0].min_width, [0, 0.2, 0, 0.25, 0.25])


def tell_all(strategy: TPEStrategy, loss) -> None:
    for s in strategy.ask(1):
        value = loss(s.params)
        state = TrialState.FAILED if value is None else TrialState.COMPLETE
        strategy.tell([Observation(s, state, value)])


@pytest.mark.parametrize("multivariate", [True, False])
def test_a_conditional_parameter_learns_only_from_trials_where_it_is_active(multivariate: bool) -> None:
    space = make_space(LINEAR_SPACE)

    def loss(p: dict) -> float:
        if p["model"] == "lasso":
            return abs(np.log10(p["lasso_alpha"]) - 1.0)  # best at 10
        return 5.0

    strategy = TPEStrategy(space, 3, 60, multivariate=multivariate)
    for _ in range(60):
        tell_all(strategy, loss)
    late = [o.suggestion.params for o in strategy.history[30:]]
    assert sum(p["model"] == "lasso" for p in late) >= 25
    alphas = [np.log10(p["lasso_alpha"]) for p in late if p["model"] == "lasso"]
    assert abs(np.median(alphas) - 1.0) < 0.3


@pytest.mark.parametrize("multivariate", [True, False])
def test_a_conditional_group_is_estimated_from_its_active_trials_only(multivariate: bool) -> None:
    """Ridge trials are good here too (0.25): were they let in, lasso_alpha's l would carry their
    encoded 0.5 (an inactive parameter's placeholder) as kernel centers. The good/rest split is
    made among the lasso trials (hyperopt's per-node split): their best 15 % shape l."""
    space = make_space(LINEAR_SPACE)
    strategy = TPEStrategy(space, 4, 40, multivariate=multivariate)
    for _ in range(40):
        tell_all(strategy, lambda p: abs(np.log10(p["lasso_alpha"]) - 1.0) if p["model"] == "lasso" else 0.25)
    lasso = [o for o in strategy.history if "lasso_alpha" in o.suggestion.params]
    assert 0 < len(lasso) < len(strategy.history)
    ranked = sorted(lasso, key=lambda o: o.loss)
    good_keys = {o.suggestion.key for o in ranked[: int(np.ceil(0.15 * len(ranked)))]}
    column = space.slice_of("lasso_alpha").start
    expected = {True: [], False: []}
    for o in lasso:
        expected[o.suggestion.key in good_keys].append(o.suggestion.unit[column])
    (group,) = [g for g in strategy.groups if g.params[0].name == "lasso_alpha"]
    good, rest = strategy._estimators(group, strategy._points([]))
    np.testing.assert_array_equal(good.centers[:-1, 0], expected[True])  # the last one is the prior
    np.testing.assert_array_equal(rest.centers[:-1, 0], expected[False])


def test_a_categorical_keeps_every_choice_in_play_in_proportion_to_l() -> None:
    """All good trials chose "a": an argmax of l/g settles on one choice (before: "c" in 98 % of
    400 suggestions, "a" never); drawn from l, "a" gets 80 % and the others keep their smoothed
    share (6-7 % each)."""
    space = make_space({"c": {"type": "categorical", "choices": ["a", "b", "c", "d"]}})
    strategy = TPEStrategy(space, 0, 300, n_startup_trials=8, constant_liar=False)
    for _ in range(40):
        tell_all(strategy, lambda p: 0.0 if p["c"] == "a" else 1.0)
    choices = [strategy.ask(1)[0].params["c"] for _ in range(400)]
    share = {c: choices.count(c) / len(choices) for c in "abcd"}
    assert 0.6 < share["a"] < 0.95, share
    assert all(share[c] > 0.01 for c in "bcd"), share


def conditional_regret(p: dict) -> float:
    """Three branches; the largest (6 parameters) is best but its random configurations are the
    worst: floors 0.4 (1 parameter), 0.2 (2) and 0."""
    if p["model"] == "small":
        return 0.4 + 0.3 * (p["s0"] - 0.7) ** 2
    if p["model"] == "medium":
        return 0.2 + 2.0 * np.mean((np.array([p["m0"], p["m1"]]) - [0.2, 0.8]) ** 2)
    x = np.array([p[f"l{i}"] for i in range(6)])
    return float(3.5 * np.mean((x - [0.6, 0.3, 0.8, 0.15, 0.65, 0.4]) ** 2))


BRANCHES = {
    "model": {"type": "categorical", "choices": ["small", "medium", "large"]},
    "s0": {"type": "float", "low": 0.0, "high": 1.0, "when": {"model": "small"}},
    **{f"m{i}": {"type": "float", "low": 0.0, "high": 1.0, "when": {"model": "medium"}} for i in range(2)},
    **{f"l{i}": {"type": "float", "low": 0.0, "high": 1.0, "when": {"model": "large"}} for i in range(6)},
}


@pytest.mark.slow
def test_tpe_finds_the_largest_branch_of_a_conditional_space() -> None:
    """Calibrated on 8 seeds x 80 trials: median regret 0.018, the best trial in the largest
    branch in 6 of 8 seeds, when written; before (an argmax of l/g over the categorical, the
    good/rest split over all trials) 0.12, stuck on the medium branch's floor 0.2 in 4 of 8.
    The test asks for a median under 0.1."""
    space = make_space(BRANCHES)
    regrets = []
    for seed in range(8):
        strategy = TPEStrategy(space, seed, 80)
        for _ in range(80):
            tell_all(strategy, conditional_regret)
        regrets.append(min(o.loss for o in strategy.history))
    assert np.median(regrets) < 0.1, regrets


def test_failed_and_pending_trials_count_as_bad() -> None:
    space = make_space({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    strategy = TPEStrategy(space, 0, 40, n_startup_trials=4)
    for i in range(12):
        tell_all(strategy, lambda p, i=i: None if i % 4 == 0 else (p["x"] - 0.3) ** 2)
    batch = strategy.ask(3)
    points = strategy._points([])
    failed = [o.state == TrialState.FAILED for o in strategy.history]
    assert not np.any(points.good[: len(failed)][failed])
    assert len(points.good) == len(strategy.history) + 3 and not np.any(points.good[-3:])
    assert len({s.params["x"] for s in batch}) == 3
    no_liar = TPEStrategy(space, 0, 40, n_startup_trials=4, constant_liar=False)
    no_liar.load_state_dict(strategy.state_dict())
    assert len(no_liar._points([]).good) == len(strategy.history)


def test_tpe_concentrates_near_the_optimum() -> None:
    space = make_space(
        {"x": {"type": "float", "low": -5.0, "high": 5.0}, "y": {"type": "float", "low": -5.0, "high": 5.0}}
    )
    strategy = TPEStrategy(space, 1, 100)
    for _ in range(100):
        tell_all(strategy, lambda p: (p["x"] - 1.0) ** 2 + (p["y"] + 2.0) ** 2)
    best = min(o.loss for o in strategy.history)
    assert best < 0.05


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("gamma", 1.5),
        ("gamma", 0),
        ("n_ei_candidates", 0),
        ("prior_weight", -1),
        ("bandwidth", "silverman"),
        ("startup", "lhs"),
    ],
)
def test_bad_options_are_one_config_error(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"strategy.{key}"):
        TPEStrategy(make_space(LINEAR_SPACE), 0, 10, **{key: value})


def best_value(strategy: str, seed: int, n: int) -> float:
    study = compose_study([f"strategy={strategy}", "task=linear", f"seed={seed}", f"n_trials={n}"])
    best = np.inf
    for _ in range(n):
        (s,) = study.strategy.ask(1)
        value = study.task.evaluate(s.params).value
        study.strategy.tell([Observation(s, TrialState.COMPLETE, value)])
        best = min(best, value)
    return best


def optimum(seed: int) -> float:
    """The task's best validation MSE on a fine grid of both models' alphas."""
    task = compose_study(["task=linear", f"seed={seed}"]).task
    grids = {"ridge": np.geomspace(1e-4, 1e4, 300), "lasso": np.geomspace(1e-4, 1e2, 300)}
    return min(
        task.evaluate({"model": model, f"{model}_alpha": float(a)}).value for model, grid in grids.items() for a in grid
    )


@pytest.mark.slow
def test_tpe_beats_random_search_on_the_conditional_linear_space() -> None:
    """Calibrated on 10 seeds × 40 trials (each seed has its own split, hence its own optimum):
    median regret 0.079 for tpe against 0.52 for random search when written; the test asks
    for less than half of random's."""
    regrets = np.array(
        [[best_value(name, seed, 40) - optimum(seed) for name in ("random", "tpe")] for seed in range(10)]
    )
    random_median, tpe_median = np.median(regrets, axis=0)
    assert tpe_median < 0.5 * random_median, regrets


def test_a_window_caps_the_rest_points_g_is_built_from_and_keeps_the_good_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    space = make_space({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    sizes: dict[int, list[int]] = {}
    for window in (20, 1000):
        strategy = TPEStrategy(space, seed=0, n_trials=200, window=window)
        for _ in range(120):
            (s,) = strategy.ask(1)
            strategy.tell([Observation(s, TrialState.COMPLETE, (float(s.params["x"]) - 0.3) ** 2)])
        seen = sizes.setdefault(window, [])
        build = strategy._mixture
        monkeypatch.setattr(
            strategy, "_mixture", lambda group, units, b=build, s=seen: s.append(len(units)) or b(group, units)
        )
        strategy.ask(1)
    (good, rest), (good_all, rest_all) = sizes[20][:2], sizes[1000][:2]
    assert rest == 20 < rest_all and good == good_all > 0  # the good ones stay, however old
    with pytest.raises(ConfigError, match=r"strategy\.window"):
        TPEStrategy(space, seed=0, n_trials=10, window=0)


class _EveryLiar(TPEStrategy):
    """TPE that counts every pending suggestion as a liar (no cap at the window)."""

    def _liars(self, proposed: list) -> list:
        return list(self.pending.values()) + proposed


def test_liars_beyond_the_window_change_no_suggestion() -> None:
    """Many trials in flight: only the latest ``window`` pending ones are encoded as liars, and
    the suggestions equal those of a TPE that counts all of them (g keeps the latest window rest
    points either way; l is drawn from completed points)."""
    space = make_space({f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(3)})
    runs = []
    for kind in (TPEStrategy, _EveryLiar):
        strategy = kind(space, seed=3, n_trials=400, window=20)
        first = strategy.ask(30)
        strategy.tell([Observation(s, TrialState.COMPLETE, sum(float(v) for v in s.params.values())) for s in first])
        runs.append([s.params for s in strategy.ask(60)])  # 60 in flight, 3 windows of liars
        encoded = len(strategy._points([]).losses)
        assert encoded == 30 + (20 if kind is TPEStrategy else 60)  # the cap: 30 observations, 20 liars
    assert runs[0] == runs[1]
    assert len({tuple(p.values()) for p in runs[0]}) == 60
