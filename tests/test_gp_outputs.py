"""The output transforms GP-BO models instead of raw losses: increasing, standardized, and
invariant where they claim to be."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import boxcox, yeojohnson

from hpo_cli.strategies._gp.outputs import OUTPUT_TRANSFORMS, transform_outputs

RNG = np.random.default_rng(0)
SAMPLES = {
    "lognormal": np.exp(3 * RNG.normal(size=40)),  # six orders of magnitude, all positive
    "cubed": RNG.normal(size=40) ** 3,  # both signs, heavy tails
    "offset": RNG.random(40) * 1e6 + 5.0,
}


@pytest.mark.parametrize("how", OUTPUT_TRANSFORMS)
@pytest.mark.parametrize("sample", list(SAMPLES))
def test_every_transform_keeps_the_order_and_standardizes(how: str, sample: str) -> None:
    values = SAMPLES[sample]
    y = transform_outputs(values, how)
    assert np.all(np.diff(y[np.argsort(values)]) >= 0)  # the incumbent stays the incumbent
    assert y.mean() == pytest.approx(0.0, abs=1e-9) and y.std() == pytest.approx(1.0)


def test_rank_depends_only_on_the_order() -> None:
    values = SAMPLES["cubed"]
    for monotone in (np.exp(values), 1e6 * values - 3.0, np.arctan(values)):
        assert np.array_equal(transform_outputs(monotone, "rank"), transform_outputs(values, "rank"))


def test_power_does_not_depend_on_the_unit() -> None:
    values = SAMPLES["lognormal"]
    assert np.allclose(transform_outputs(1024.0 * values, "power"), transform_outputs(values, "power"))


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_power_matches_scipys_maximum_likelihood_fit(sample: str) -> None:
    values = SAMPLES[sample]
    x = values / values.std()
    reference = boxcox(x)[0] if x.min() > 0 else yeojohnson(x)[0]
    reference = (reference - reference.mean()) / reference.std()
    # λ from a grid of step 0.05 instead of Brent's search: close, not equal
    assert np.max(np.abs(transform_outputs(values, "power") - reference)) < 0.2


def test_power_tames_a_badly_scaled_sample() -> None:
    values = SAMPLES["lognormal"]
    standardized = transform_outputs(values, "standardize")
    powered = transform_outputs(values, "power")
    # standardized, most losses crowd near the bottom and one or two outliers set the scale
    assert np.max(standardized) > 4 and np.max(np.abs(powered)) < 3


def test_constant_losses_stay_constant() -> None:
    for how in OUTPUT_TRANSFORMS:
        y = transform_outputs(np.full(5, 3.0), how)
        assert np.all(np.isfinite(y))
