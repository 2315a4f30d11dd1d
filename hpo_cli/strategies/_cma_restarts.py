"""When CMA-ES restarts, and with which population and step size (IPOP and BIPOP).

* ``ipop`` (Auger & Hansen 2005): every restart doubles the population.
* ``bipop`` (Hansen 2009): restarts alternate between a *large* regime (the population doubled
  once more each time, the initial step size) and a *small* one (a population between the
  default and half the last large one, drawn as λ₀·(λ_large / 2λ₀)^(U²), step size
  σ₀·10^(−2U)); the regime that has spent fewer evaluations goes next.
* ``none``: no restart.

:func:`stagnated` is the trigger besides ``cma``'s own stop conditions (which at budgets of a
few hundred evaluations hardly ever fire): the run's best loss has not improved during the
last ``patience`` generations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RESTARTS = ("ipop", "bipop", "none")


def stagnated(run_bests: list[float], patience: int) -> bool:
    """True when the best of the last ``patience`` generations is no better than before them."""
    if len(run_bests) <= patience:
        return False
    before = min(run_bests[:-patience])
    return min(run_bests[-patience:]) >= before


@dataclass
class RestartSchedule:
    mode: str
    default_popsize: int
    restarts: int = 0
    large_restarts: int = 0
    large_evaluations: int = 0
    small_evaluations: int = 0
    regime: str = "large"  # the regime of the run in progress (the first run counts as large)

    @property
    def popsize(self) -> int:
        return self.default_popsize

    def next(self, run_evaluations: int, rng: np.random.Generator) -> tuple[int, float]:
        """The next run's population and step-size factor, given the finished run's evaluations."""
        self.restarts += 1
        if self.regime == "large":
            self.large_evaluations += run_evaluations
        else:
            self.small_evaluations += run_evaluations
        if self.mode == "ipop":
            return self.default_popsize * 2**self.restarts, 1.0
        if self.small_evaluations < self.large_evaluations and self.large_restarts > 0:
            self.regime = "small"
            u = float(rng.random())
            large = self.default_popsize * 2**self.large_restarts
            popsize = math.floor(self.default_popsize * (0.5 * large / self.default_popsize) ** (u**2))
            return max(popsize, self.default_popsize), 10.0 ** (-2.0 * u)
        self.regime = "large"
        self.large_restarts += 1
        return self.default_popsize * 2**self.large_restarts, 1.0
