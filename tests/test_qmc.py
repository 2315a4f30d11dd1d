"""Low-discrepancy strategies serve scipy's own sequences, whatever the batch sizes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import MIXED_SPACE, make_space
from scipy.stats import qmc

from hpo_cli.strategies.qmc import HaltonStrategy, LatinHypercubeStrategy, SobolStrategy


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
