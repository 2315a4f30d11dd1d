"""Low-discrepancy strategies serve scipy's own sequences, whatever the batch sizes; the finite
designs (Hammersley, Poisson disk) serve their set of points and finish."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np
import pytest
from conftest import MIXED_SPACE, make_space, strategy_config
from scipy.spatial.distance import pdist
from scipy.stats import qmc

from hpo_cli.errors import ConfigError
from hpo_cli.space import SearchSpace
from hpo_cli.strategies.base import Strategy
from hpo_cli.strategies.qmc import (
    HaltonStrategy,
    HammersleyStrategy,
    LatinHypercubeStrategy,
    PoissonDiskStrategy,
    SobolStrategy,
)


def served_units(strategy: object, batches: list[int]) -> np.ndarray:
    rows = []
    for n in batches:
        rows += [s.unit for s in strategy.ask(n)]  # type: ignore[attr-defined]
    return np.array(rows)


@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("seed", [0, 11])
def test_sobol_gives_scipys_points_for_the_same_seed(k: int, seed: int) -> None:
    space = make_space(MIXED_SPACE)
    batches = [1, 2, 5] + [1] * (2**k - 8)
    got = served_units(SobolStrategy(space, seed=seed, n_trials=2**k), batches)
    expected = qmc.Sobol(space.dim, scramble=True, rng=seed).random(2**k)
    np.testing.assert_array_equal(got, expected)


def test_halton_gives_scipys_points_for_the_same_seed() -> None:
    space = make_space(MIXED_SPACE)
    got = served_units(HaltonStrategy(space, seed=4, n_trials=30), [7, 7, 16])
    np.testing.assert_array_equal(got, qmc.Halton(space.dim, scramble=True, rng=4).random(30))


def test_lhs_is_one_latin_hypercube_over_the_whole_budget() -> None:
    space = make_space({f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(3)})
    n = 20
    got = served_units(LatinHypercubeStrategy(space, seed=2, n_trials=n), [3] * 6 + [2])
    for column in got.T:  # one point in each of the n strata of every axis
        assert sorted(np.floor(column * n).astype(int)) == list(range(n))


def test_unscrambled_sobol_starts_at_the_origin() -> None:
    space = make_space({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    first = SobolStrategy(space, seed=0, n_trials=8, scramble=False).ask(1)[0]
    assert first.params == {"x": 0.0}


def cube(d: int) -> SearchSpace:
    """[0, 1]^d as d float parameters: the unit point is the parameter vector."""
    return make_space({f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(d)})


def serve_all(strategy: Strategy, batch: int = 3) -> np.ndarray:
    """Every unit point the strategy serves until it finishes."""
    rows: list[Any] = []
    while not strategy.is_finished():
        got = strategy.ask(batch)
        assert got, "an unfinished strategy must suggest something"
        rows += [s.unit for s in got]
    assert strategy.ask(batch) == []
    return np.array(rows)


def restored(strategy: Strategy, fresh: Strategy) -> Strategy:
    """``fresh`` loaded with ``strategy``'s state, through JSON as a checkpoint holds it."""
    fresh.load_state_dict(json.loads(json.dumps(strategy.state_dict())))
    return fresh


# -- Hammersley ----------------------------------------------------------------------------


def test_hammersley_two_dimensions_by_hand() -> None:
    got = serve_all(HammersleyStrategy(cube(2), seed=0, n_trials=4), batch=1)
    np.testing.assert_allclose(got, [[0, 0], [0.25, 0.5], [0.5, 0.25], [0.75, 0.75]])


def test_hammersley_three_dimensions_by_hand() -> None:
    # columns: i/4, then the radical inverses of i in base 2 and base 3 (unscrambled Halton)
    expected = [[0, 0, 0], [1 / 4, 1 / 2, 1 / 3], [2 / 4, 1 / 4, 2 / 3], [3 / 4, 3 / 4, 1 / 9]]
    np.testing.assert_allclose(serve_all(HammersleyStrategy(cube(3), seed=5, n_trials=4)), expected)


def test_hammersley_in_one_dimension_is_i_over_n() -> None:
    got = serve_all(HammersleyStrategy(cube(1), seed=0, n_trials=5), batch=2)
    np.testing.assert_allclose(got[:, 0], np.arange(5) / 5)


def test_hammersley_scrambles_the_halton_columns_with_the_seed() -> None:
    space = make_space(MIXED_SPACE)
    got = serve_all(HammersleyStrategy(space, seed=3, n_trials=10, scramble=True), batch=4)
    np.testing.assert_allclose(got[:, 0], np.arange(10) / 10)
    halton = qmc.Halton(space.dim - 1, scramble=True, rng=np.random.default_rng(3)).random(10)
    np.testing.assert_array_equal(got[:, 1:], halton)


def test_hammersley_serves_n_trials_points_then_finishes() -> None:
    strategy = HammersleyStrategy(cube(2), seed=0, n_trials=7)
    assert len(strategy.ask(5)) == 5 and not strategy.is_finished()
    assert len(strategy.ask(5)) == 2 and strategy.is_finished()
    assert strategy.ask(1) == []
    assert strategy.finish_message == "the 7-point Hammersley set was served"


@pytest.mark.parametrize("n_trials", [16, 40])  # a resume may raise n_trials: the set stays
def test_hammersley_resumes_exactly(n_trials: int) -> None:
    space = make_space(MIXED_SPACE)
    original = HammersleyStrategy(space, seed=1, n_trials=16, scramble=True)
    original.ask(6)
    copy = restored(original, HammersleyStrategy(space, seed=1, n_trials=n_trials, scramble=True))
    np.testing.assert_array_equal(serve_all(copy), serve_all(original))


@pytest.mark.parametrize("n_trials", [0, -3, 2.5, None, True, "8"])
def test_hammersley_needs_a_positive_n_trials(n_trials: Any) -> None:
    with pytest.raises(ConfigError, match=r"^n_trials=.*: must be a positive integer: hammersley"):
        HammersleyStrategy(cube(2), seed=0, n_trials=n_trials)


# -- Poisson disk ----------------------------------------------------------------------------


def poisson(d: int, n: int, seed: int = 0, **options: Any) -> PoissonDiskStrategy:
    return PoissonDiskStrategy(cube(d), seed=seed, n_trials=n, **options)


def assert_min_distance(points: np.ndarray, radius: float) -> None:
    # scipy's neighbour grid holds float32 copies of the points: allow their rounding
    assert pdist(points).min() >= radius * (1 - 1e-6)


@pytest.mark.parametrize("d", [2, 4])
@pytest.mark.parametrize("radius", [None, 0.3])
def test_poisson_disk_points_keep_the_radius_apart(d: int, radius: float | None) -> None:
    strategy = poisson(d, 40, seed=2, radius=radius)
    points = serve_all(strategy, batch=7)
    used = strategy.state_dict()["extra"]["radius"]
    assert used == radius if radius else 0 < used <= math.sqrt(d)
    assert_min_distance(points, used)
    assert np.all((points >= 0) & (points <= 1))


def test_poisson_disk_automatic_radius_fits_n_trials_points() -> None:
    for d in (1, 2, 3, 6):
        for n in (5, 16, 64, 200):
            strategy = poisson(d, n, seed=d + n)
            points = serve_all(strategy, batch=50)
            assert len(points) == n, (d, n)
            assert_min_distance(points, strategy.state_dict()["extra"]["radius"])
            assert strategy.finish_message.startswith(f"the {n}-point Poisson disk set (radius ")


def test_poisson_disk_draws_scipys_design_for_a_given_radius() -> None:
    got = serve_all(poisson(3, 30, seed=4, radius=0.2), batch=4)
    expected = qmc.PoissonDisk(3, radius=0.2, rng=np.random.default_rng(4)).random(30)
    np.testing.assert_array_equal(got, expected)


def test_poisson_disk_too_large_a_radius_finishes_early(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hpo_cli.strategies.qmc"):
        strategy = poisson(2, 50, radius=0.6)
    points = serve_all(strategy, batch=4)
    assert 1 <= len(points) < 50
    assert_min_distance(points, 0.6)
    expected = f"only {len(points)} of n_trials=50 points fit at strategy.radius=0.6"
    assert strategy.finish_message.startswith(expected)
    assert f"only {len(points)} of n_trials=50 points fit" in caplog.text


@pytest.mark.parametrize("radius", [0, -0.1, math.sqrt(2) + 1e-9, "big", True, 1e-6])
def test_poisson_disk_refuses_a_bad_radius(radius: Any) -> None:
    with pytest.raises(ConfigError, match=r"^strategy\.radius="):
        poisson(2, 10, radius=radius)


def test_poisson_disk_accepts_the_largest_radius() -> None:
    assert len(serve_all(poisson(2, 10, radius=math.sqrt(2)))) >= 1


@pytest.mark.parametrize(("option", "value"), [("hypersphere", "ball"), ("ncandidates", 0), ("optimization", "anneal")])
def test_poisson_disk_refuses_bad_options(option: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"^strategy\\.{option}="):
        poisson(2, 10, **{option: value})


def test_poisson_disk_refuses_more_than_eight_dimensions() -> None:
    assert len(serve_all(poisson(8, 6, seed=1))) == 6
    with pytest.raises(ConfigError, match=r"^strategy='poisson_disk': .* 8 at most, this space has 9"):
        poisson(9, 6)


def test_poisson_disk_needs_a_positive_n_trials() -> None:
    with pytest.raises(ConfigError, match=r"^n_trials=0: must be a positive integer: poisson_disk"):
        poisson(2, 0)


@pytest.mark.parametrize("n_trials", [24, 60])  # a resume may raise n_trials: the set stays
@pytest.mark.parametrize("radius", [None, 0.25])
def test_poisson_disk_resumes_exactly(n_trials: int, radius: float | None) -> None:
    original = poisson(3, 24, seed=9, radius=radius)
    original.ask(10)
    copy = restored(original, poisson(3, n_trials, seed=9, radius=radius))
    np.testing.assert_array_equal(serve_all(copy), serve_all(original))
    assert copy.finish_message == original.finish_message


# -- the shipped configs ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "cls"), [("hammersley", HammersleyStrategy), ("poisson_disk", PoissonDiskStrategy)])
def test_shipped_configs_build_the_finite_designs(name: str, cls: type[Strategy]) -> None:
    cfg = strategy_config(name)
    assert cfg["_target_"] == f"hpo_cli.strategies.qmc.{cls.__name__}"
    options = {k: v for k, v in cfg.items() if not k.startswith("_")}
    strategy = cls(cube(2), seed=0, n_trials=12, **options)
    assert len(serve_all(strategy)) == 12
