"""GP-BO's trust region (TuRBO-1): the region's arithmetic, and the strategy searching inside it,
widening again after a collapse with every observation kept, and resuming exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import MIXED_SPACE, make_space

from hpo_cli.build import build_strategy, compose_config
from hpo_cli.errors import ConfigError
from hpo_cli.settings import read_settings
from hpo_cli.space import CategoricalParam
from hpo_cli.strategies._gp.trust_region import LENGTH_INIT, LENGTH_MAX, LENGTH_MIN, TrustRegion
from hpo_cli.strategies.gp_bo import GPBOStrategy
from hpo_cli.trial import Observation, Suggestion, TrialState

BOX3 = {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(3)}


def feed(region: TrustRegion, losses: list[float | None]) -> None:
    for loss in losses:
        region.tell(loss)


def test_the_design_never_moves_the_region_and_failures_halve_it() -> None:
    region = TrustRegion.for_dim(continuous=6, design=3)
    assert region.failure_tolerance == 6 and TrustRegion.for_dim(2, 3).failure_tolerance == 4
    feed(region, [5.0, 9.0, 9.0])  # the design: a best of 5, no counts
    assert (region.length, region.successes, region.failures, region.best) == (LENGTH_INIT, 0, 0, 5.0)
    feed(region, [4.999] * 5)  # within 1e-3 of |best|: not an improvement
    assert region.failures == 5 and region.length == LENGTH_INIT
    feed(region, [7.0])
    assert region.failures == 0 and region.length == LENGTH_INIT / 2


def test_successes_in_a_row_double_it_up_to_the_cap_and_a_failure_resets_the_streak() -> None:
    region = TrustRegion.for_dim(continuous=2, design=1)
    feed(region, [100.0, 90.0, 80.0, 85.0, 70.0, 60.0])  # success, success, failure, then two
    assert region.length == LENGTH_INIT and region.successes == 2
    feed(region, [50.0])
    assert region.length == 2 * LENGTH_INIT and region.successes == 0
    feed(region, [40.0, 30.0, 20.0, 10.0, 5.0, 1.0])
    assert region.length == LENGTH_MAX


def test_it_widens_again_once_its_side_falls_below_the_minimum_and_keeps_its_best() -> None:
    region = TrustRegion.for_dim(continuous=2, design=2)
    halvings = math.ceil(math.log2(LENGTH_INIT / LENGTH_MIN))
    failures = 4 * halvings
    feed(region, [1.0, 2.0] + [1.0] * (failures - 1))
    assert region.restarts == 0 and region.length > LENGTH_MIN
    feed(region, [1.0])
    assert (region.restarts, region.length, region.successes, region.failures) == (1, LENGTH_INIT, 0, 0)
    assert region.seen == 2 + failures and region.best == 1.0
    feed(region, [None, 3.0])  # a failed trial counts as seen and as a failure, never as a best
    assert region.seen == 4 + failures and region.best == 1.0 and region.failures == 2


def test_failed_trials_are_failures_and_the_state_survives_json() -> None:
    region = TrustRegion.for_dim(continuous=3, design=0)
    feed(region, [None, None])
    assert region.failures == 2 and region.best == math.inf
    state = json.loads(json.dumps(region.state()))
    assert TrustRegion.from_state(state) == region


def test_the_box_is_wider_along_long_length_scales_and_clipped_to_the_cube() -> None:
    region = TrustRegion.for_dim(continuous=2, design=0)
    lengths = np.array([0.1, 0.4, 7.0])  # the third is categorical: its range stays whole
    continuous = np.array([True, True, False])
    lower, upper = region.box(np.array([0.5, 0.9, 2.0]), lengths, continuous)
    sides = upper[:2] - lower[:2]
    # weights 0.5 and 2 (geometric mean 1): sides 0.4 and 1.6 before clipping
    assert sides[0] == pytest.approx(0.5 * LENGTH_INIT)
    assert (lower[1], upper[1]) == (pytest.approx(0.9 - LENGTH_INIT), 1.0)
    assert (lower[2], upper[2]) == (0.0, 1.0)


def bowl_at(centre: float):
    def loss(s: Suggestion) -> float:
        return float(np.sum((np.asarray(s.unit) - centre) ** 2))

    return loss


def run(strategy: GPBOStrategy, loss, n: int) -> list[Suggestion]:
    out = []
    for _ in range(n):
        (s,) = strategy.ask(1)
        strategy.tell([Observation(s, TrialState.COMPLETE, loss(s))])
        out.append(s)
    return out


OPTIONS = {"n_initial": 4, "candidates": 128, "n_starts": 2, "trust_region": True}


def test_suggestions_after_the_design_stay_in_the_box_around_the_incumbent(monkeypatch: pytest.MonkeyPatch) -> None:
    space = make_space(BOX3)
    strategy = GPBOStrategy(space, seed=0, n_trials=30, **OPTIONS)
    run(strategy, bowl_at(0.3), 4)
    boxes = []
    real_box = strategy._region_box

    def spy(gp):
        box = real_box(gp)
        boxes.append(box)
        return box

    monkeypatch.setattr(strategy, "_region_box", spy)
    for _ in range(6):
        side = strategy._region.length
        (s,) = run(strategy, bowl_at(0.3), 1)
        lower, upper = boxes[-1]
        assert np.all(np.asarray(s.unit) >= lower - 1e-9) and np.all(np.asarray(s.unit) <= upper + 1e-9)
        assert np.all(upper - lower < 1.0 - 1e-6)  # a real box, not the cube
        assert np.max(upper - lower) <= side * 3.0  # length-scale weights within [1/3, 3] on a round bowl
    # the plain GP-BO on the same seed shares the design, then searches the whole cube: other points
    plain = run(GPBOStrategy(space, seed=0, n_trials=30, **{**OPTIONS, "trust_region": False}), bowl_at(0.3), 10)
    ours = [o.suggestion.params for o in strategy.history]
    assert [s.params for s in plain[:4]] == ours[:4]
    assert [s.params for s in plain[4:]] != ours[4:]


def test_a_collapsed_region_widens_around_the_same_incumbent_with_every_observation() -> None:
    space = make_space(BOX3)
    strategy = GPBOStrategy(space, seed=1, n_trials=80, **OPTIONS)
    run(strategy, bowl_at(0.3), 8)
    region = strategy._region
    region.length = LENGTH_MIN * 1.5  # one more halving collapses it
    region.failures = region.failure_tolerance - 1
    tiny = strategy._region_box(strategy._fit(*strategy._training_data()))
    run(strategy, lambda s: 10.0, 1)  # a failure: the region halves below the minimum and widens
    assert region.restarts == 1 and region.length == LENGTH_INIT
    x, values, seen = strategy._training_data()
    assert seen == len(values) == 9  # nothing forgotten
    wide = strategy._region_box(strategy._fit(x, values, seen))
    assert np.all(wide[1] - wide[0] > 10 * (tiny[1] - tiny[0]))
    centre = x[int(np.argmin(values))]
    assert np.all((wide[0] <= centre) & (centre <= wide[1]))


def test_a_restored_strategy_continues_the_same_region_and_suggestions() -> None:
    space = make_space(BOX3)
    original = GPBOStrategy(space, seed=2, n_trials=40, **OPTIONS)
    run(original, bowl_at(0.7), 12)
    state = json.loads(json.dumps(original.state_dict()))
    assert state["extra"]["trust_region"]["seen"] == 12
    restored = GPBOStrategy(space, seed=2, n_trials=40, **OPTIONS)
    restored.load_state_dict(state)
    assert restored._region == original._region
    assert [s.params for s in run(restored, bowl_at(0.7), 4)] == [s.params for s in run(original, bowl_at(0.7), 4)]


def test_it_finds_the_bowls_minimum() -> None:
    strategy = GPBOStrategy(make_space(BOX3), seed=3, n_trials=40, **OPTIONS)
    losses = [bowl_at(0.3)(s) for s in run(strategy, bowl_at(0.3), 30)]
    assert min(losses) < 1e-3, min(losses)


@pytest.mark.parametrize("best", ["sgd", "adam"])
def test_a_parameter_inactive_at_the_incumbent_keeps_its_whole_range(best: str) -> None:
    """momentum exists only with optimizer=sgd: with an adam incumbent its coordinate sits at rest
    (0.5), which is no place to stay near once a candidate switches to sgd; with an sgd incumbent
    it is a value like any other and the box closes in on it."""
    space = make_space(MIXED_SPACE)
    strategy = GPBOStrategy(space, seed=4, n_trials=30, n_initial=12, candidates=64, n_starts=2, trust_region=True)

    def loss(s: Suggestion) -> float:
        return float(np.sum((np.asarray(s.unit) - 0.4) ** 2)) + (0.0 if s.params["optimizer"] == best else 5.0)

    for s in strategy.ask(12):
        strategy.tell([Observation(s, TrialState.COMPLETE, loss(s))])
    strategy._region.length = 0.1  # a small box: what is bounded shows
    gp = strategy._fit(*strategy._training_data())
    lower, upper = strategy._region_box(gp)
    momentum, lr = space.slice_of("momentum").start, space.slice_of("lr").start
    incumbent = gp.x[int(np.argmin(gp.y))]
    assert (space.decode(strategy._units(incumbent[None, :])[0])["optimizer"]) == best
    assert upper[lr] - lower[lr] < 1.0
    if best == "sgd":
        assert upper[momentum] - lower[momentum] < 1.0
    else:
        assert (lower[momentum], upper[momentum]) == (0.0, 1.0)


def test_a_bad_flag_names_the_key() -> None:
    for bad in ("yes", "Auto", 1, None):
        with pytest.raises(ConfigError, match=r"strategy\.trust_region=.*must be true, false or auto"):
            GPBOStrategy(make_space(BOX3), seed=0, n_trials=10, trust_region=bad)


def test_auto_turns_the_region_on_where_the_space_has_a_categorical() -> None:
    """The default, ``auto``: a region on the mixed space (one box side per continuous parameter
    in its stall count), none on a continuous one; true and false override it either way."""
    mixed, box = make_space(MIXED_SPACE), make_space(BOX3)
    continuous = sum(1 for p in mixed.params if not isinstance(p, CategoricalParam))
    on = GPBOStrategy(mixed, seed=0, n_trials=10)._region
    assert on is not None and on.failure_tolerance == max(4, continuous)
    assert GPBOStrategy(box, seed=0, n_trials=10)._region is None
    assert GPBOStrategy(mixed, seed=0, n_trials=10, trust_region=False)._region is None
    assert GPBOStrategy(box, seed=0, n_trials=10, trust_region=True)._region is not None


def test_the_composed_default_is_auto_and_reaches_the_strategy() -> None:
    cfg = compose_config(["strategy=gp_bo", "n_trials=12"])
    assert cfg.strategy.trust_region == "auto"
    strategy = build_strategy(cfg.strategy, make_space(MIXED_SPACE), read_settings(cfg))
    assert isinstance(strategy, GPBOStrategy) and strategy._region is not None
    cfg = compose_config(["strategy=gp_bo", "n_trials=12", "strategy.trust_region=false"])
    assert build_strategy(cfg.strategy, make_space(MIXED_SPACE), read_settings(cfg))._region is None
