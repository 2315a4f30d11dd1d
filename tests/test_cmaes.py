"""CMA-ES: step size from the bounds, restarts on stagnation, integer and categorical coordinates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import make_space
from scipy import stats

from hpo_cli.errors import ConfigError
from hpo_cli.strategies._cma_restarts import RestartSchedule, stagnated
from hpo_cli.strategies.cmaes import CmaEsStrategy, Genotype
from hpo_cli.trial import Observation, Suggestion, TrialState

BOX = {"a": {"type": "float", "low": -10.0, "high": 30.0}, "b": {"type": "float", "low": 0.0, "high": 1.0}}
MIXED = {
    "x": {"type": "float", "low": -2.0, "high": 2.0},
    "layers": {"type": "int", "low": 1, "high": 8},
    "act": {"type": "categorical", "choices": ["relu", "tanh", "gelu", "sigmoid"]},
}


def run_generations(strategy: CmaEsStrategy, loss, generations: int) -> list[Suggestion]:  # type: ignore[no-untyped-def]
    seen = []
    for _ in range(generations):
        batch = strategy.ask(strategy.es.popsize)
        strategy.tell([Observation(s, TrialState.COMPLETE, loss(s)) for s in batch])
        seen += batch
    return seen


def test_the_first_generation_spreads_a_sixth_of_each_range_around_the_centre() -> None:
    strategy = CmaEsStrategy(make_space(BOX), seed=0, n_trials=1000, popsize=400)
    units = np.array([s.unit for s in strategy.ask(400)])
    assert units.mean(axis=0) == pytest.approx([0.5, 0.5], abs=0.03)
    # a sixth of the range, as Optuna's CmaEsSampler (the old default, 0.3, spread almost twice as wide)
    assert units.std(axis=0) == pytest.approx([1 / 6, 1 / 6], rel=0.12)


def test_out_of_box_draws_are_drawn_again_so_a_generation_is_cmas_normal_truncated_to_the_box() -> None:
    """``boundary=resample``: a run whose mean sits near a face (0.9, step 0.2) has about a third
    of cma's draws outside the box; each is replaced by a fresh draw, so the generation follows
    N(0.9, 0.2²) truncated to [0, 1] (Kolmogorov–Smirnov), with no point on the face (clipping
    would put a third of them there). ``transform`` (cma's BoundTransform) bends the landscape
    near the faces instead: its points do not follow the truncated normal."""
    truncated = stats.truncnorm(-0.9 / 0.2, 0.1 / 0.2, loc=0.9, scale=0.2)

    def generation(boundary: str) -> np.ndarray:
        strategy = CmaEsStrategy(make_space(BOX), seed=2, n_trials=1000, popsize=400, boundary=boundary)
        strategy.es = strategy._new_es(np.array([0.9, 0.9]), 400, 0.2)
        strategy.ask(400)
        return np.array(strategy.generation)

    resampled = generation("resample")
    assert np.all((resampled > 0.0) & (resampled < 1.0))
    assert min(stats.kstest(resampled[:, j], truncated.cdf).pvalue for j in (0, 1)) > 0.01
    folded = generation("transform")
    assert np.all((folded >= 0.0) & (folded <= 1.0))
    assert max(stats.kstest(folded[:, j], truncated.cdf).pvalue for j in (0, 1)) < 1e-4


def test_stagnated_means_no_better_best_within_the_last_generations() -> None:
    assert not stagnated([5.0, 4.0, 3.0], patience=2)
    assert not stagnated([5.0, 4.0, 3.0, 2.5], patience=2)  # improving
    assert stagnated([5.0, 3.0, 3.0, 4.0], patience=2)
    assert not stagnated([5.0, 3.0], patience=2)  # too short to tell


def test_a_stalled_run_restarts_from_elsewhere_with_a_doubled_population() -> None:
    strategy = CmaEsStrategy(make_space(BOX), seed=0, n_trials=1000, patience=3)
    default = strategy.es.popsize
    # a loss that only the first generation can improve on: every later one is worse
    counter = iter(range(10**6))
    run_generations(strategy, lambda s: float(next(counter)), 5)
    assert strategy.restarts >= 1
    assert strategy.es.popsize == default * 2**strategy.restarts
    assert not np.allclose(strategy.es.mean, Genotype.of(make_space(BOX)).centre())


def test_a_flat_loss_restarts_through_cmas_own_stop_and_restart_none_never_restarts() -> None:
    flat = CmaEsStrategy(make_space(BOX), seed=1, n_trials=1000, patience=100)
    run_generations(flat, lambda s: 1.0, 4)
    assert flat.restarts >= 1  # cma's tolflatfitness
    never = CmaEsStrategy(make_space(BOX), seed=1, n_trials=1000, restart="none", patience=1)
    run_generations(never, lambda s: 1.0, 4)
    assert never.restarts == 0


def test_bipop_alternates_large_and_small_populations() -> None:
    schedule = RestartSchedule("bipop", default_popsize=8)
    rng = np.random.default_rng(0)
    assert schedule.next(100, rng) == (16, 1.0)  # the first restart is a large one
    popsize, sigma_factor = schedule.next(400, rng)  # the small regime has spent less (nothing): its turn
    assert schedule.regime == "small" and popsize == 8 and 0.01 <= sigma_factor <= 1.0
    assert schedule.next(600, rng) == (32, 1.0)  # now the small regime has spent more: a larger one
    assert schedule.next(10, rng) == (64, 1.0)
    popsize, sigma_factor = schedule.next(1000, rng)
    assert schedule.regime == "small" and 8 <= popsize <= 32


def test_ints_get_integer_coordinates_in_cma_and_categoricals_one_per_choice() -> None:
    space = make_space({**MIXED, "flag": {"type": "categorical", "choices": [True, False]}})
    genotype = Genotype.of(space)
    assert genotype.kinds == (0, 8, -4, 2) and genotype.dim == 1 + 1 + 4 + 1
    strategy = CmaEsStrategy(space, seed=0, n_trials=100)
    assert strategy.es.opts["integer_variables"] == [1, 6]
    for s in strategy.ask(strategy.es.popsize):
        assert s.unit is not None
        # discrete coordinates sit at their cell's centre: (index + 0.5) / count
        for dim, count in ((1, 8), (2, 4), (3, 2)):
            assert (s.unit[dim] * count - 0.5) == pytest.approx(round(s.unit[dim] * count - 0.5))
    # the largest of a categorical's coordinates picks its choice
    assert genotype.to_unit(np.array([0.5, 3.0, 0.1, 0.2, 0.9, 0.3, 1.0]))[2] == pytest.approx(2.5 / 4)


def mixed_loss(s: Suggestion) -> float:
    p = s.params
    return (p["x"] - 1.3) ** 2 + 0.3 * abs(p["layers"] - 7) + (0.0 if p["act"] == "sigmoid" else 1.0)


@pytest.mark.parametrize("seed", range(4))
def test_finds_the_best_int_and_category_far_from_the_start(seed: int) -> None:
    # the start is the centre (layers 4, act tanh); the best is layers 7, act sigmoid
    strategy = CmaEsStrategy(make_space(MIXED), seed=seed, n_trials=200)
    seen = run_generations(strategy, mixed_loss, 25)
    best = min(seen, key=mixed_loss)
    assert best.params["act"] == "sigmoid" and best.params["layers"] == 7
    assert math.isclose(best.params["x"], 1.3, abs_tol=0.1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"restart": "sometimes"}, "strategy.restart='sometimes': must be one of ipop, bipop, none"),
        ({"patience": 0}, "strategy.patience=0: must be null"),
        ({"popsize": 1}, "strategy.popsize=1: must be null"),
        ({"sigma0": 0.0}, "strategy.sigma0=0.0: must be in (0, 1]"),
        ({"boundary": "clip"}, "strategy.boundary='clip': must be one of resample, transform"),
    ],
)
def test_bad_options_name_the_key_and_value(options: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        CmaEsStrategy(make_space(BOX), seed=0, n_trials=10, **options)
    assert message in str(err.value)
