"""A genetic algorithm over the space's unit cube, categorical-aware.

One generation = ``population`` suggestions. The first is uniform random; each next one is
bred from the current population:

* selection: ``tournament`` (the best of ``tournament_size`` members drawn with replacement) or
  ``proportional`` (probability inversely related to the loss: weights 1 / (loss − min + ε), ε the
  population's mean of loss − min);
* crossover (probability ``crossover_rate``): ``uniform`` (each gene from either parent) or
  ``blend`` (BLX-α: uniform in the parents' interval widened by α on both sides); categorical
  genes are always inherited whole from one parent;
* mutation: each gene with probability ``mutation_rate``: Gaussian noise of ``sigma`` (clipped to
  the cube) for numeric genes, a fresh uniform draw (a new category) for categorical genes;
* replacement: ``generational`` (offspring replace everyone), ``elitism`` (the ``elite`` best
  parents survive, the best offspring fill the rest), ``tournament`` (each offspring fights a
  random member and the better one stays).

Failed trials count as the worst loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from hpo_cli.errors import ConfigError
from hpo_cli.space import CategoricalParam, SearchSpace
from hpo_cli.strategies.base import Strategy
from hpo_cli.trial import Observation, Suggestion
from hpo_cli.validate import one_of, positive_int

SELECTIONS = ("tournament", "proportional")
CROSSOVERS = ("uniform", "blend")
REPLACEMENTS = ("generational", "elitism", "tournament")


def _rate(value: float, key: str) -> float:
    if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ConfigError(key, value, "must be a probability in [0, 1]")
    return float(value)


class EvolutionStrategy(Strategy):
    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        n_trials: int,
        population: int = 20,
        selection: str = "tournament",
        tournament_size: int = 3,
        crossover: str = "blend",
        crossover_rate: float = 0.9,
        blend_alpha: float = 0.5,
        mutation_rate: float | None = None,
        sigma: float = 0.1,
        replacement: str = "elitism",
        elite: int = 2,
    ) -> None:
        super().__init__(space, seed, n_trials)
        self.size = positive_int(population, "strategy.population")
        if self.size < 2:
            raise ConfigError("strategy.population", population, "must be at least 2")
        self.selection = one_of(selection, "strategy.selection", SELECTIONS)
        self.tournament_size = positive_int(tournament_size, "strategy.tournament_size")
        self.crossover = one_of(crossover, "strategy.crossover", CROSSOVERS)
        self.crossover_rate = _rate(crossover_rate, "strategy.crossover_rate")
        self.blend_alpha = float(blend_alpha)
        self.mutation_rate = _rate(
            mutation_rate if mutation_rate is not None else 1.0 / space.dim, "strategy.mutation_rate"
        )
        self.sigma = float(sigma)
        self.replacement = one_of(replacement, "strategy.replacement", REPLACEMENTS)
        self.elite = int(elite)
        if not 0 <= self.elite < self.size:
            raise ConfigError("strategy.elite", elite, f"must be in [0, population={self.size})")
        self.categorical = np.zeros(space.dim, dtype=bool)
        for p in space.params:
            if isinstance(p, CategoricalParam):
                self.categorical[space.slice_of(p.name)] = True
        self.population: list[tuple[np.ndarray, float]] = []  # (unit point, loss)
        self.generation: list[np.ndarray] = [self.rng.random(space.dim) for _ in range(self.size)]
        self.served = 0
        self.results: dict[int, tuple[np.ndarray, float]] = {}

    # -- ask/tell ----------------------------------------------------------------------

    def _propose(self, n: int) -> list[Suggestion]:
        batch = self.generation[self.served : self.served + n]
        self.served += len(batch)
        return [self._suggest_unit(u) for u in batch]

    def _observe(self, observation: Observation) -> None:
        unit = np.asarray(observation.suggestion.unit)
        loss = observation.loss if observation.loss is not None else math.inf
        self.results[observation.suggestion.key] = (unit, loss)
        if self.served == len(self.generation) and len(self.results) == len(self.generation) and not self.pending:
            self._next_generation([self.results[k] for k in sorted(self.results)])

    def _next_generation(self, offspring: list[tuple[np.ndarray, float]]) -> None:
        self.population = self._replace(self.population, _finite(offspring))
        self.generation = [self._child() for _ in range(self.size)]
        self.served, self.results = 0, {}

    # -- operators ---------------------------------------------------------------------

    def _replace(
        self, parents: list[tuple[np.ndarray, float]], children: list[tuple[np.ndarray, float]]
    ) -> list[tuple[np.ndarray, float]]:
        if not parents or self.replacement == "generational":
            return children
        if self.replacement == "elitism":
            best_parents = sorted(parents, key=lambda p: p[1])[: self.elite]
            return best_parents + sorted(children, key=lambda c: c[1])[: self.size - len(best_parents)]
        survivors = list(parents)
        for child in children:
            i = int(self.rng.integers(len(survivors)))
            if child[1] <= survivors[i][1]:
                survivors[i] = child
        return survivors

    def _select(self) -> np.ndarray:
        losses = np.array([loss for _, loss in self.population])
        if self.selection == "tournament":
            picks = self.rng.integers(len(self.population), size=min(self.tournament_size, len(self.population)))
            return self.population[int(picks[np.argmin(losses[picks])])][0]
        gaps = losses - losses.min()
        # ε = the mean gap: the best member is about twice as likely as an average one (a tiny ε
        # would hand the best member nearly every pick, which is elitism, not proportional selection)
        weights = 1.0 / (gaps + (gaps.mean() or 1.0))
        return self.population[int(self.rng.choice(len(self.population), p=weights / weights.sum()))][0]

    def _child(self) -> np.ndarray:
        a, b = self._select(), self._select()
        child = a.copy()
        if self.rng.random() < self.crossover_rate:
            pick = self.rng.random(child.size) < 0.5
            child = np.where(pick, a, b)
            if self.crossover == "blend":
                lo, hi = np.minimum(a, b), np.maximum(a, b)
                width = hi - lo
                blended = self.rng.uniform(lo - self.blend_alpha * width, hi + self.blend_alpha * width)
                child = np.where(self.categorical, child, blended)
        mutate = self.rng.random(child.size) < self.mutation_rate
        noisy = child + self.sigma * self.rng.standard_normal(child.size)
        fresh = self.rng.random(child.size)
        child = np.where(mutate, np.where(self.categorical, fresh, noisy), child)
        return np.clip(child, 0.0, np.nextafter(1.0, 0.0))

    # -- state ------------------------------------------------------------------------

    def _extra_state(self) -> dict[str, Any]:
        return {
            "population": [[u.tolist(), _json_loss(loss)] for u, loss in self.population],
            "generation": [u.tolist() for u in self.generation],
            "served": self.served,
            "results": {str(k): [u.tolist(), _json_loss(loss)] for k, (u, loss) in self.results.items()},
        }

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self.population = [(np.asarray(u), _loss(loss)) for u, loss in extra["population"]]
        self.generation = [np.asarray(u) for u in extra["generation"]]
        self.served = int(extra["served"])
        self.results = {int(k): (np.asarray(u), _loss(loss)) for k, (u, loss) in extra["results"].items()}


def _finite(members: list[tuple[np.ndarray, float]]) -> list[tuple[np.ndarray, float]]:
    """Failed trials (inf) become the worst finite loss plus one, so selection stays defined."""
    finite = [loss for _, loss in members if math.isfinite(loss)]
    worst = (max(finite) + 1.0) if finite else 1.0
    return [(u, loss if math.isfinite(loss) else worst) for u, loss in members]


def _json_loss(loss: float) -> float | None:
    return loss if math.isfinite(loss) else None


def _loss(value: float | None) -> float:
    return math.inf if value is None else float(value)
