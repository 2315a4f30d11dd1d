"""A trust region for GP-BO that shrinks where the search stalls and widens again when it collapses.

TuRBO-1 (Eriksson et al. 2019, "Scalable Global Optimization via Local Bayesian Optimization"):
the acquisition is maximized in a box around the incumbent instead of the whole cube. The box's
side is ``length`` (in the unit cube) times a per-dimension weight from the GP's length scales
(normalized to geometric mean 1), so it is wider along the dimensions the objective varies
slowly in. After ``SUCCESS_TOLERANCE`` improvements in a row it doubles (at most
``LENGTH_MAX``); after ``max(4, d)`` observations in a row without one it halves. An
improvement beats the best so far by more than 1e-3 of its magnitude.

When the side falls below ``LENGTH_MIN`` the search has converged to a local minimum: the side
restarts at ``LENGTH_INIT``, and the GP, which keeps every observation, looks wider again.
TuRBO itself restarts from a fresh design with a GP of the new observations only; on held-out
BBOB instances in 5-D that lost to this 21–55 at 250 evaluations (each restart spends a new
design and forgets the model it had built; see the README).

The state is a few numbers, advanced by :meth:`TrustRegion.tell` once per told observation, in
the order told; it is saved with the strategy, so a resumed run continues the same region.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

LENGTH_INIT = 0.8
LENGTH_MIN = 0.5**7
LENGTH_MAX = 1.6
SUCCESS_TOLERANCE = 3
IMPROVEMENT = 1e-3  # relative: an improvement beats the best by more than this fraction of |best|


def improves(value: float, best: float) -> bool:
    """Whether ``value`` beats ``best`` by more than ``IMPROVEMENT`` of its magnitude (any finite
    value beats an infinite best; a failed trial is ``inf`` and never improves)."""
    return value < best - IMPROVEMENT * abs(best) if math.isfinite(best) else value < math.inf


@dataclass
class TrustRegion:
    failure_tolerance: int  # max(4, continuous dimensions)
    design: int  # observations of the start-up design (they never move the region)
    length: float = LENGTH_INIT
    successes: int = 0
    failures: int = 0
    best: float = math.inf
    restarts: int = 0
    seen: int = 0  # observations told

    @classmethod
    def for_dim(cls, continuous: int, design: int) -> TrustRegion:
        return cls(failure_tolerance=max(4, continuous), design=design)

    def tell(self, loss: float | None) -> None:
        """Advance by one observation (``loss`` None: failed)."""
        self.seen += 1
        value = loss if loss is not None and math.isfinite(loss) else math.inf
        improved = improves(value, self.best)
        if self.seen > self.design:
            self.successes, self.failures = (self.successes + 1, 0) if improved else (0, self.failures + 1)
            if self.successes >= SUCCESS_TOLERANCE:
                self.length, self.successes = min(2.0 * self.length, LENGTH_MAX), 0
            if self.failures >= self.failure_tolerance:
                self.length, self.failures = self.length / 2.0, 0
        self.best = min(self.best, value)
        if self.length < LENGTH_MIN:
            self.restarts += 1
            self.length, self.successes, self.failures = LENGTH_INIT, 0, 0

    def box(self, center: np.ndarray, lengths: np.ndarray, continuous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) around ``center``: along the continuous dimensions sides of ``length``
        times the length-scale weights, clipped to [0, 1]; along the others [0, 1], the whole
        range of a unit coordinate (a categorical is never confined)."""
        lower, upper = np.zeros_like(center), np.ones_like(center)
        if continuous.any():
            scales = lengths[continuous]
            weights = scales / math.exp(float(np.mean(np.log(scales))))
            half = 0.5 * self.length * weights
            lower[continuous] = np.clip(center[continuous] - half, 0.0, 1.0)
            upper[continuous] = np.clip(center[continuous] + half, 0.0, 1.0)
        return lower, upper

    def state(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TrustRegion:
        values = dict(state)
        values["best"] = math.inf if values.get("best") is None else float(values["best"])
        return cls(**values)
