"""Our scrambled Sobol engine against scipy's: the same points, bit for bit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import qmc
from scipy.stats._sobol import _initialize_v

from hpo_cli.strategies.sobol_engine import MAX_DIM, ScrambledSobol, direction_numbers


@pytest.mark.parametrize("bits", [30, 64])
def test_direction_numbers_equal_scipys_in_every_dimension(bits: int) -> None:
    dims = MAX_DIM if bits == 30 else 600
    theirs = np.zeros((dims, bits), dtype=np.uint32 if bits <= 32 else np.uint64)
    _initialize_v(theirs, dim=dims, bits=bits)
    assert np.array_equal(direction_numbers(dims, bits), theirs.astype(np.uint64))


@pytest.mark.parametrize("d", [1, 2, 5, 21, 130])
@pytest.mark.parametrize("seed", [0, 7, 2**40 + 3])
@pytest.mark.parametrize("scramble", [True, False])
@pytest.mark.parametrize("as_generator", [True, False])
def test_points_equal_scipys_across_batches(d: int, seed: int, scramble: bool, as_generator: bool) -> None:
    def rng() -> int | np.random.Generator:
        return np.random.default_rng(seed) if as_generator else seed

    theirs = qmc.Sobol(d, scramble=scramble, rng=rng())
    ours = ScrambledSobol(d, scramble=scramble, rng=rng())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about batches that are not powers of two
        for n in (1, 3, 4, 57, 1, 256, 700):
            assert np.array_equal(ours.random(n), theirs.random(n))
    assert ours.num_generated == theirs.num_generated


def test_64_bit_scrambled_points_equal_scipys() -> None:
    theirs = qmc.Sobol(4, scramble=True, rng=11, bits=64).random(256)
    assert np.array_equal(ScrambledSobol(4, scramble=True, rng=11, bits=64).random(256), theirs)


def test_any_block_is_served_directly_and_the_sequence_has_its_balance() -> None:
    engine = ScrambledSobol(3, rng=5)
    first = engine.random(64)
    assert np.array_equal(ScrambledSobol(3, rng=5).points(40, 24), first[40:])
    # each of the 64 points sits in its own 1/64 slice along every coordinate (a (0, m, 1)-net)
    for column in first.T:
        assert sorted(np.floor(column * 64).astype(int)) == list(range(64))


def test_impossible_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="0 to 21201 dimensions"):
        ScrambledSobol(MAX_DIM + 1)
    with pytest.raises(ValueError, match="1024 points"):
        ScrambledSobol(2, bits=10).random(1025)
    with pytest.raises(ValueError, match="needs at least"):
        ScrambledSobol(500, bits=8)
