"""Low-discrepancy designs through :mod:`scipy.stats.qmc`: Sobol, Halton, Latin hypercube,
Hammersley and Poisson disk.

The sequences are scipy's own (Sobol through :mod:`hpo_cli.strategies.sobol_engine`, which
draws the same points without importing :mod:`scipy.stats`, about a second at start-up; the
others import it when first built); this module only serves their points one batch at a time.
Sobol and Halton are sequences: serving them in batches gives exactly the points of one
``engine.random(total)`` call. A Latin hypercube is a design for a known number of points, so
it is drawn once for the whole trial budget.

Hammersley and Poisson disk designs are finite: each is one set of ``n_trials`` points (a
Poisson disk set may hold fewer when its radius leaves no room), and the strategy finishes once
it has served them. A Hammersley point is ``(i / n, Halton point i)``; a Poisson disk set keeps
every pair of points at least its radius apart (scipy's Bridson sampler).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from hpo_cli.errors import ConfigError
from hpo_cli.space import SearchSpace
from hpo_cli.strategies.base import UnitCubeStrategy
from hpo_cli.strategies.sobol_engine import ScrambledSobol
from hpo_cli.validate import flag, is_int, is_number, one_of, positive_int

log = logging.getLogger(__name__)


class PointEngine(Protocol):
    """What a strategy needs of a design engine: its dimension and the next points."""

    d: int

    def random(self, n: int = 1) -> np.ndarray: ...


class _QMCStrategy(UnitCubeStrategy):
    """Serves rows of a design matrix, drawing more from the engine when it runs out."""

    def __init__(self, space: SearchSpace, seed: int, n_trials: int, scramble: bool = True) -> None:
        super().__init__(space, seed, n_trials)
        self.scramble = flag(scramble, "strategy.scramble")
        self._engine = self._make_engine()
        self._points = np.empty((0, self._engine.d))
        self._served = 0

    def _make_engine(self) -> PointEngine:
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
        self._points = np.empty((0, self._engine.d))
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

    def _make_engine(self) -> PointEngine:
        # the engine computes any block of the sequence directly: batches need no rounding up
        return ScrambledSobol(self.space.dim, scramble=self.scramble, rng=np.random.default_rng(self.seed))


class HaltonStrategy(_QMCStrategy):
    """Scrambled Halton sequence: ``qmc.Halton(dim, scramble=True, rng=seed)``."""

    def _make_engine(self) -> PointEngine:
        from scipy.stats import qmc

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

    def _make_engine(self) -> PointEngine:
        from scipy.stats import qmc

        return qmc.LatinHypercube(
            self.space.dim,
            scramble=self.scramble,
            optimization=self.optimization,
            rng=np.random.default_rng(self.seed),
        )

    def _block_size(self, needed: int) -> int:
        return max(needed, self.n_trials)


def _design_size(n_trials: Any, strategy: str) -> int:
    """``n_trials`` as the size of a finite design; a ConfigError unless a positive integer."""
    if not is_int(n_trials) or n_trials < 1:
        reason = f"must be a positive integer: {strategy} draws a set of n_trials points"
        raise ConfigError("n_trials", n_trials, reason)
    return int(n_trials)


class HammersleyStrategy(_QMCStrategy):
    """The Hammersley set of ``n = n_trials`` points: point ``i`` is ``i / n`` followed by point
    ``i`` of the ``(dim - 1)``-dimensional Halton sequence (``qmc.Halton(dim - 1, scramble,
    rng=seed)``; just ``i / n`` in one dimension). ``scramble`` scrambles the Halton columns only.
    Finishes once the ``n`` points are served; a resumed run keeps the set it started with."""

    def __init__(self, space: SearchSpace, seed: int, n_trials: int, scramble: bool = False) -> None:
        self._size = _design_size(n_trials, "hammersley")
        super().__init__(space, seed, n_trials, scramble)

    def _make_engine(self) -> PointEngine:
        from scipy.stats import qmc

        return qmc.Halton(self.space.dim - 1, scramble=self.scramble, rng=np.random.default_rng(self.seed))

    def _draw(self, n: int) -> np.ndarray:
        first_column = np.arange(self._served, self._served + n) / self._size
        halton_columns = super()._draw(n)
        return np.column_stack([first_column, halton_columns])

    def _remaining(self) -> int:
        return self._size - self._served

    def is_finished(self) -> bool:
        return self._remaining() <= 0

    @property
    def finish_message(self) -> str:
        return f"the {self._size}-point Hammersley set was served"

    def _extra_state(self) -> dict[str, Any]:
        return {**super()._extra_state(), "size": self._size}

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self._size = int(extra["size"])
        super()._load_extra_state(extra)


# Automatic Poisson disk radius. n points at pairwise distance >= r carry disjoint balls of
# radius r/2; Bridson's sampler stops when they cover a fraction eta_d of the unit cube, so
# n * V_d * (r/2)^d = eta_d gives r = 2 * (eta_d / (n * V_d))^(1/d), i.e. c_d * (1/n)^(1/d),
# with V_d the volume of the unit d-ball. eta_d (the packing constant) falls with the
# dimension: scipy's fill_space reaches about 0.75 on a line, 0.5 in the plane, 0.33 in 3-D,
# 0.2 in 4-D; 0.7 * 0.6^(d-1) stays just below that. When fewer than n points fit (an unlucky
# start stalls the sampler, mostly above d = 5), the radius shrinks by _SHRINK and the design is
# redrawn, attempt k with its own stream derived from the seed.
_PACKING_AT_1D = 0.7
_PACKING_RATIO = 0.6
_SHRINK = 0.85
_MAX_ATTEMPTS = 10
# scipy's PoissonDisk keeps a float32 grid of ceil(sqrt(d) / r)^d cells of d numbers (256 MiB here)
# and compares each candidate with a window of up to 5^d cells. From 9 dimensions on, a grid that
# fits leaves a radius too large for the sampler to grow (it stalls after a point or two).
_MAX_GRID_FLOATS = 2**26
_MAX_DIM = 8


def automatic_radius(n: int, d: int) -> float:
    """The radius at which ``n`` points about fill ``[0, 1]^d`` (see the packing note above)."""
    packing = _PACKING_AT_1D * _PACKING_RATIO ** (d - 1)
    ball_volume = math.pi ** (d / 2) / math.gamma(d / 2 + 1)
    return min(2.0 * (packing / (n * ball_volume)) ** (1.0 / d), math.sqrt(d))


def grid_floats(radius: float, d: int) -> int:
    """How many numbers scipy's PoissonDisk grid holds for ``radius`` in ``d`` dimensions."""
    return math.ceil(1.0 / (radius / math.sqrt(d))) ** d * d


def _checked_radius(radius: Any, d: int) -> float | None:
    """``radius``: null, or a number in (0, sqrt(d)] whose grid fits in memory."""
    if radius is None:
        return None
    if not is_number(radius) or not 0.0 < radius <= math.sqrt(d):
        raise ConfigError("strategy.radius", radius, f"must be null (automatic) or a number in (0, sqrt({d})]")
    if grid_floats(radius, d) > _MAX_GRID_FLOATS:
        raise ConfigError(
            "strategy.radius", radius, f"too small for {d} dimensions: scipy's PoissonDisk grid would not fit in memory"
        )
    return float(radius)


def _attempt_rng(seed: int, attempt: int) -> np.random.Generator:
    """The stream of draw ``attempt``: the seed's own for the first, a derived one after."""
    return np.random.default_rng(seed if attempt == 0 else [seed, attempt])


class PoissonDiskStrategy(UnitCubeStrategy):
    """One Poisson disk set of ``n_trials`` points (``qmc.PoissonDisk``, Bridson's sampler):
    no two points closer than the radius. ``radius: null`` picks the radius from ``n_trials``
    and the dimension so that ``n_trials`` points fit (:func:`automatic_radius`, shrunk until
    they do); a given radius serves the points that fit, possibly fewer. ``hypersphere``,
    ``ncandidates`` and ``optimization`` go to scipy (an optimization moves the points after
    sampling and may break the minimum distance). Finishes once the set is served."""

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        n_trials: int,
        radius: float | None = None,
        hypersphere: str = "volume",
        ncandidates: int = 30,
        optimization: str | None = None,
    ) -> None:
        self._size = _design_size(n_trials, "poisson_disk")
        super().__init__(space, seed, n_trials)
        if space.dim > _MAX_DIM:
            reason = f"scipy's sampler suits few dimensions: {_MAX_DIM} at most, this space has {space.dim}"
            raise ConfigError("strategy", "poisson_disk", f"{reason} (use sobol, halton or lhs)")
        self.radius = _checked_radius(radius, space.dim)
        self.hypersphere = one_of(hypersphere, "strategy.hypersphere", ("volume", "surface"))
        self.ncandidates = positive_int(ncandidates, "strategy.ncandidates")
        self.optimization = one_of(optimization, "strategy.optimization", (None, "random-cd", "lloyd"))
        self._served = 0
        if self.radius is None:
            self._points, self._radius_used, self._attempt = self._search_design()
        else:
            self._points, self._radius_used, self._attempt = self._design(self.radius, 0), self.radius, 0
            self._warn_if_short()

    def _design(self, radius: float, attempt: int) -> np.ndarray:
        """Up to ``n_trials`` points at least ``radius`` apart, from draw ``attempt``'s stream."""
        from scipy.stats import qmc

        engine = qmc.PoissonDisk(
            self.space.dim,
            radius=radius,
            hypersphere=self.hypersphere,
            ncandidates=self.ncandidates,
            optimization=self.optimization,
            rng=_attempt_rng(self.seed, attempt),
        )
        return np.asarray(engine.random(self._size), dtype=float).reshape(-1, self.space.dim)

    def _search_design(self) -> tuple[np.ndarray, float, int]:
        """(points, radius, attempt): the automatic radius, shrunk until ``n_trials`` points fit."""
        d = self.space.dim
        radius = automatic_radius(self._size, d)
        for attempt in range(_MAX_ATTEMPTS):
            if grid_floats(radius, d) > _MAX_GRID_FLOATS:
                break
            points = self._design(radius, attempt)
            if len(points) >= self._size:
                log.info("poisson_disk: radius %.4g fits the %d points (attempt %d)", radius, self._size, attempt + 1)
                return points, radius, attempt
            if grid_floats(radius * _SHRINK, d) <= _MAX_GRID_FLOATS:  # else retry the radius, new stream
                radius *= _SHRINK
        raise ConfigError(
            "n_trials",
            self._size,
            f"poisson_disk found no radius that fits this many points in {d} dimensions "
            "(scipy's sampler suits few dimensions): ask fewer trials, or use sobol, halton or lhs",
        )

    def _warn_if_short(self) -> None:
        if len(self._points) < self._size:
            log.warning(
                "poisson_disk: only %d of n_trials=%d points fit at strategy.radius=%g; "
                "the run finishes after them (a smaller radius, or radius=null, fits more)",
                *(len(self._points), self._size, self._radius_used),
            )

    def _draw(self, n: int) -> np.ndarray:
        out = self._points[self._served : self._served + n]
        self._served += len(out)
        return out

    def _remaining(self) -> int:
        return len(self._points) - self._served

    def is_finished(self) -> bool:
        return self._remaining() <= 0

    @property
    def finish_message(self) -> str:
        fitted = len(self._points)
        if fitted < self._size:
            return (
                f"only {fitted} of n_trials={self._size} points fit at strategy.radius={self._radius_used:g}: "
                "the Poisson disk set was served"
            )
        return f"the {fitted}-point Poisson disk set (radius {self._radius_used:.4g}) was served"

    def _extra_state(self) -> dict[str, Any]:
        return {"served": self._served, "size": self._size, "radius": self._radius_used, "attempt": self._attempt}

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        saved = (int(extra["size"]), float(extra["radius"]), int(extra["attempt"]))
        if saved != (self._size, self._radius_used, self._attempt):  # e.g. resumed with another n_trials
            self._size, self._radius_used, self._attempt = saved
            self._points = self._design(self._radius_used, self._attempt)
        self._served = int(extra["served"])
