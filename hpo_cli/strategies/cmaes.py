"""CMA-ES through the ``cma`` package's ask/tell (Hansen), over the space's unit cube.

One generation = ``cma``'s population; its points are served in batches and told back once
all have come in (failed trials as the worst loss seen plus one). ``cma`` is not rewritten
here: its optimizer object is carried in the checkpoint (pickled), so resuming is exact. Its
normal draws come from a generator of the strategy's own (``randn``), pickled with it: ``cma``'s
default draws from numpy's global RNG, which no checkpoint sees (a resumed run diverged).
"""

from __future__ import annotations

import base64
import math
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np

from hpo_cli.errors import ConfigError
from hpo_cli.space import SearchSpace
from hpo_cli.strategies.base import Strategy
from hpo_cli.trial import Observation, Suggestion


class StandardNormal:
    """``randn(*shape)`` from a seeded generator of its own (picklable, so checkpoints carry it)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape)


class CmaEsStrategy(Strategy):
    def __init__(
        self, space: SearchSpace, seed: int, n_trials: int, sigma0: float = 0.3, popsize: int | None = None
    ) -> None:
        super().__init__(space, seed, n_trials)
        import cma

        if space.dim < 2:
            raise ConfigError("strategy", "cmaes", "CMA-ES needs at least 2 dimensions (use random, sobol or grid)")
        if not 0 < sigma0 <= 1:
            raise ConfigError("strategy.sigma0", sigma0, "must be in (0, 1] (the cube has side 1)")
        options: dict[str, Any] = {
            "bounds": [0.0, 1.0],
            "seed": math.nan,  # nan: cma leaves numpy's global RNG alone
            "randn": StandardNormal(seed + 1),
            "verbose": -9,
        }
        if popsize is not None:
            options["popsize"] = int(popsize)
        self.es = cma.CMAEvolutionStrategy(
            [0.5] * space.dim, float(sigma0), options
        )  # a list: cma reads a 1-element array as a dimension
        self.generation: list[np.ndarray] = []
        self.served = 0
        self.results: dict[int, float] = {}
        self.order: list[int] = []

    def _propose(self, n: int) -> list[Suggestion]:
        if self.served == len(self.generation) and not self.pending and not self.results:
            self.generation = [np.asarray(x) for x in self.es.ask()]
            self.served, self.order = 0, []
        batch = self.generation[self.served : self.served + n]
        self.served += len(batch)
        out = [self._suggest_unit(np.clip(u, 0.0, np.nextafter(1.0, 0.0))) for u in batch]
        self.order += [s.key for s in out]
        return out

    def _observe(self, observation: Observation) -> None:
        self.results[observation.suggestion.key] = observation.loss if observation.loss is not None else math.inf
        if self.served == len(self.generation) and len(self.results) == len(self.generation):
            losses = [self.results[k] for k in self.order]
            finite = [x for x in losses if math.isfinite(x)]
            worst = max(finite) + 1.0 if finite else 1.0
            self.es.tell(self.generation, [x if math.isfinite(x) else worst for x in losses])
            self.results = {}

    def _extra_state(self) -> dict[str, Any]:
        blob = pickle.dumps((self.es, self.generation, self.served, self.results, self.order))
        return {"pickle": base64.b64encode(blob).decode("ascii")}

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self.es, self.generation, self.served, self.results, self.order = pickle.loads(
            base64.b64decode(extra["pickle"])
        )
