"""The genetic algorithm's operators by value, and that it beats random search on hartmann6."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_space, regret_at

from hpo_cli.strategies.evolution import EvolutionStrategy

SPACE = {
    "x": {"type": "float", "low": 0.0, "high": 1.0, "size": "n"},
    "c": {"type": "categorical", "choices": ["a", "b", "c", "d"]},
}


def ga(**options: object) -> EvolutionStrategy:
    return EvolutionStrategy(make_space(SPACE, n=3), seed=0, n_trials=100, population=4, **options)  # type: ignore[arg-type]


def members(losses: list[float], offset: float) -> list[tuple[np.ndarray, float]]:
    return [(np.full(4, offset + i / 10), loss) for i, loss in enumerate(losses)]


def test_replacement_schemes() -> None:
    parents, children = members([0.1, 5.0, 0.3, 9.0], 0.0), members([1.0, 0.2, 7.0, 0.05], 0.5)
    assert ga(replacement="generational")._replace(parents, children) == children
    kept = ga(replacement="elitism", elite=2)._replace(parents, children)
    assert [loss for _, loss in kept] == [0.1, 0.3, 0.05, 0.2]  # 2 best parents, then the best children
    for seed in range(5):
        strategy = ga(replacement="tournament", elite=0)
        strategy.rng = np.random.default_rng(seed)
        survivors = strategy._replace(parents, children)
        assert len(survivors) == 4
        assert min(loss for _, loss in survivors) == 0.05  # a child better than every parent always wins
        assert all(s[1] <= p[1] for s, p in zip(survivors, parents, strict=True))  # no slot gets worse


def test_selection_prefers_low_losses() -> None:
    strategy = ga(tournament_size=4)
    strategy.population = members([3.0, 0.5, 2.0, 1.0], 0.0)
    wins = np.bincount([int(np.rint(strategy._select()[0] * 10)) for _ in range(2000)], minlength=4) / 2000
    # the best of 4 draws (with replacement): P(best) = 1 − (3/4)^4, P(worst) = (1/4)^4
    assert wins[1] == pytest.approx(1 - 0.75**4, abs=0.04) and wins[0] < 0.02
    assert wins[1] > wins[3] > wins[2] > wins[0]
    proportional = ga(selection="proportional")
    proportional.population = members([3.0, 0.5, 2.0, 1.0], 0.0)
    picks = np.bincount([int(np.rint(proportional._select()[0] * 10)) for _ in range(4000)], minlength=4) / 4000
    gaps = np.array([2.5, 0.0, 1.5, 0.5])  # loss − min
    expected = 1 / (gaps + gaps.mean())
    np.testing.assert_allclose(picks, expected / expected.sum(), atol=0.025)


@pytest.mark.parametrize("crossover", ["uniform", "blend"])
def test_crossover_keeps_categories_whole_and_blend_stays_in_its_interval(crossover: str) -> None:
    strategy = ga(crossover=crossover, crossover_rate=1.0, mutation_rate=0.0, blend_alpha=0.5)
    a, b = np.array([0.2, 0.2, 0.2, 0.1]), np.array([0.6, 0.6, 0.6, 0.9])
    strategy.population = [(a, 0.0), (b, 0.0)]
    children = np.array([strategy._child() for _ in range(300)])
    assert set(np.round(children[:, 3], 6)) <= {0.1, 0.9}  # the category gene comes from one parent
    numeric = children[:, :3]
    if crossover == "uniform":
        assert set(np.round(numeric.ravel(), 6)) <= {0.2, 0.6}
    else:
        assert numeric.min() >= 0.0 - 1e-12 and numeric.max() <= 0.8 + 1e-12  # [0.2 - 0.2, 0.6 + 0.2]
        assert numeric.min() < 0.2 and numeric.max() > 0.6  # α widens the interval


def test_mutation_is_gaussian_for_numbers_and_a_fresh_draw_for_categories() -> None:
    strategy = ga(crossover_rate=0.0, mutation_rate=1.0, sigma=0.01)
    parent = np.array([0.5, 0.5, 0.5, 0.1])
    strategy.population = [(parent, 0.0)]
    children = np.array([strategy._child() for _ in range(400)])
    np.testing.assert_allclose(children[:, :3].std(), 0.01, rtol=0.1)
    assert children[:, 3].std() > 0.2  # categories resampled uniformly, not nudged by sigma


@pytest.mark.slow
def test_evolution_beats_random_search_on_hartmann6_at_200_evaluations() -> None:
    """The issue's claim, on the benchmark's 10 seeds (measured medians: evolution 0.19, random 1.07)."""
    evolution = [regret_at("evolution", "hartmann6", seed, 200) for seed in range(10)]
    random = [regret_at("random", "hartmann6", seed, 200) for seed in range(10)]
    assert np.median(evolution) < 0.5 * np.median(random), (evolution, random)
