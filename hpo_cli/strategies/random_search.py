"""Random search: independent uniform draws in the unit cube (Bergstra & Bengio 2012)."""

from __future__ import annotations

import numpy as np

from hpo_cli.strategies.base import UnitCubeStrategy


class RandomStrategy(UnitCubeStrategy):
    """Uniform in the unit cube, hence log-uniform for ``log: true`` parameters."""

    def _draw(self, n: int) -> np.ndarray:
        return self.rng.random((n, self.space.dim))
