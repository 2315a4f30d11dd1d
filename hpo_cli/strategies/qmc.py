"""Low-discrepancy designs through :mod:`scipy.stats.qmc`: Sobol, Halton, Latin hypercube.

The sequences are scipy's own; this module only serves their points one batch at a time.
Sobol and Halton are sequences: serving them in batches gives exactly the points of one
``engine.random(total)`` call. A Latin hypercube is a design for a known number of points, so
it is drawn once for the whole trial budget.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.stats import qmc

from hpo_cli.errors import ConfigError
from hpo_cli.space import SearchSpace
from hpo_cli.strategies.base import UnitCubeStrategy
from hpo_cli.validate import flag

log = logging.getLogger(__name__)


class _QMCStrategy(UnitCubeStrategy):
    """Serves rows of a design matrix, drawing more from the engine when it runs out."""

    def __init__(self, space: SearchSpace, seed: int, n_trials: int, scramble: bool = True) -> None:
        super().__init__(space, seed, n_trials)
        self.scramble = flag(scramble, "strategy.scramble")
        self._engine = self._make_engine()
        self._points = np.empty((0, space.dim))
        self._served = 0

    def _make_engine(self) -> qmc.QMCEngine:
        raise NotImplementedError

    def _block_size(self, needed: int) -> int:
        return needed

    def _draw(self, n: int) -> np.ndarray:
        while self._served + n > len(self._points):
            block = self._engine.random(self._block_size(self._served + n - len(self._points)))
            self._points = np.vstack([self._points, block])
        out = self._points[self._served : self._served + n]
        self._served += n
        return out

    def _extra_state(self) -> dict[str, Any]:
        return {"served": self._served}

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self._engine = self._make_engine()
        self._points = np.empty((0, self.space.dim))
        self._served = 0
        served = int(extra["served"])
        if served:
            self._draw(served)


class SobolStrategy(_QMCStrategy):
    """Scrambled Sobol points: the same as ``qmc.Sobol(dim, scramble=True, rng=seed)``."""

    def __init__(self, space: SearchSpace, seed: int, n_trials: int, scramble: bool = True) -> None:
        super().__init__(space, seed, n_trials, scramble)
        if n_trials & (n_trials - 1):
            log.warning(
                "sobol: n_trials=%d is not a power of 2; the first %d points keep Sobol's balance properties",
                n_trials,
                2 ** int(math.log2(n_trials)),
            )

    def _make_engine(self) -> qmc.QMCEngine:
        return qmc.Sobol(self.space.dim, scramble=self.scramble, rng=np.random.default_rng(self.seed))

    def _block_size(self, needed: int) -> int:
        # Sobol's balance holds for powers of two; drawing whole blocks also avoids
        # scipy's warning for every small batch.
        total = len(self._points) + needed
        return 2 ** math.ceil(math.log2(total)) - len(self._points)


class HaltonStrategy(_QMCStrategy):
    """Scrambled Halton sequence: ``qmc.Halton(dim, scramble=True, rng=seed)``."""

    def _make_engine(self) -> qmc.QMCEngine:
        return qmc.Halton(self.space.dim, scramble=self.scramble, rng=np.random.default_rng(self.seed))


class LatinHypercubeStrategy(_QMCStrategy):
    """One Latin hypercube design of ``n_trials`` points (a new design if more are asked)."""

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        n_trials: int,
        scramble: bool = True,
        optimization: str | None = None,
    ) -> None:
        if optimization not in (None, "random-cd", "lloyd"):
            raise ConfigError("strategy.optimization", optimization, "must be null, random-cd or lloyd")
        self.optimization = optimization
        super().__init__(space, seed, n_trials, scramble)

    def _make_engine(self) -> qmc.QMCEngine:
        return qmc.LatinHypercube(
            self.space.dim,
            scramble=self.scramble,
            optimization=self.optimization,
            rng=np.random.default_rng(self.seed),
        )

    def _block_size(self, needed: int) -> int:
        return max(needed, self.n_trials)
