"""Nelder–Mead simplex search over the unit cube, ask/tell, with restarts (Nelder & Mead 1965).

Each simplex is a small state machine: it asks for the points of its current step (its d + 1
start vertices, a reflection, an expansion, a contraction or a shrink) and moves on once all of
them have been told. The coefficients adapt to the dimension (Gao & Han 2012: reflection 1,
expansion 1 + 2/d, contraction 0.75 − 1/(2d), shrink 1 − 1/d); points are clipped to the cube.
A simplex restarts from a fresh uniform point when it has collapsed (its largest edge below
``tolerance``) or has not improved its best vertex for ``patience`` steps.

A batch is served by several simplices side by side: ``simplices`` from the start, and one more
whenever every simplex waits for outcomes and more points are asked for (so a run with
``batch_size`` b settles at about b simplices; a sequential one keeps one). Failed trials count
as infinitely bad.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hpo_cli.space import SearchSpace
from hpo_cli.strategies.base import Strategy
from hpo_cli.trial import Observation, Suggestion
from hpo_cli.validate import positive_float, positive_int

_TOP = float(np.nextafter(1.0, 0.0))


@dataclass
class Simplex:
    """One simplex's vertices (sorted best first once started), its step and what it waits for."""

    vertices: list[list[float]] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    phase: str = "start"  # start | reflect | expand | contract | shrink
    todo: list[list[float]] = field(default_factory=list)  # this step's points not yet asked
    waiting: dict[int, int] = field(default_factory=dict)  # suggestion key -> index in the step
    outcomes: dict[int, float] = field(default_factory=dict)  # index in the step -> loss
    step_points: list[list[float]] = field(default_factory=list)
    reflected: tuple[list[float], float] | None = None
    stale: int = 0  # steps since the best vertex improved

    @property
    def busy(self) -> bool:
        """True while every point of its step has been asked for (it waits for outcomes)."""
        return not self.todo

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Simplex:
        simplex = cls(**{k: v for k, v in raw.items() if k not in ("waiting", "outcomes", "reflected")})
        simplex.waiting = {int(k): int(v) for k, v in raw["waiting"].items()}
        simplex.outcomes = {int(k): float(v) for k, v in raw["outcomes"].items()}
        simplex.reflected = None if raw["reflected"] is None else (list(raw["reflected"][0]), raw["reflected"][1])
        return simplex


class NelderMeadStrategy(Strategy):
    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        n_trials: int,
        simplices: int = 1,
        initial_step: float = 0.25,
        tolerance: float = 1e-3,
        patience: int | None = None,
    ) -> None:
        super().__init__(space, seed, n_trials)
        n_simplices = positive_int(simplices, "strategy.simplices")
        self.initial_step = _fraction(initial_step, "strategy.initial_step")
        self.tolerance = _fraction(tolerance, "strategy.tolerance")
        d = space.dim
        self.patience = 10 * d if patience is None else positive_int(patience, "strategy.patience")
        self.expansion = 1.0 + 2.0 / d if d > 1 else 2.0
        self.contraction = 0.75 - 1.0 / (2 * d) if d > 1 else 0.5
        self.shrinkage = 1.0 - 1.0 / d if d > 1 else 0.5
        self.simplices = [self._fresh() for _ in range(n_simplices)]
        self.restarts = 0

    # -- ask / tell ---------------------------------------------------------------------

    def _propose(self, n: int) -> list[Suggestion]:
        out: list[Suggestion] = []
        while len(out) < n:
            ready = [s for s in self.simplices if not s.busy]
            if not ready:  # every simplex waits for outcomes: one more joins
                self.simplices.append(self._fresh())
                continue
            for simplex in ready[: n - len(out)]:
                point = simplex.todo.pop(0)
                suggestion = self._suggest_unit(np.asarray(point))
                simplex.waiting[suggestion.key] = len(simplex.step_points) - len(simplex.todo) - 1
                out.append(suggestion)
        return out

    def _observe(self, observation: Observation) -> None:
        key = observation.suggestion.key
        loss = math.inf if observation.loss is None else float(observation.loss)
        for simplex in self.simplices:
            if key in simplex.waiting:
                simplex.outcomes[simplex.waiting.pop(key)] = loss
                if len(simplex.outcomes) == len(simplex.step_points):
                    self._advance(simplex)
                return

    # -- the simplex's steps -------------------------------------------------------------

    def _fresh(self) -> Simplex:
        """A new simplex around a uniform point: its d + 1 start vertices are its first step."""
        origin = self.rng.random(self.space.dim)
        points = [origin]
        for i in range(self.space.dim):
            vertex = origin.copy()
            vertex[i] += self.initial_step if origin[i] + self.initial_step <= 1 else -self.initial_step
            points.append(vertex)
        simplex = Simplex()
        _set_step(simplex, "start", points)
        return simplex

    def _advance(self, simplex: Simplex) -> None:
        """All of the step's outcomes are in: update the vertices, set up the next step."""
        results = [simplex.outcomes[i] for i in range(len(simplex.step_points))]
        points = [np.asarray(p) for p in simplex.step_points]
        best_before = simplex.values[0] if simplex.values else math.inf
        vertices = [np.asarray(v) for v in simplex.vertices]
        values = list(simplex.values)
        if simplex.phase == "start":
            vertices, values = points, results
        elif simplex.phase == "reflect":
            (xr,), (fr,) = points, results
            if fr < values[0]:
                simplex.reflected = (list(xr), fr)
                return self._next(simplex, vertices, values, "expand", [self._toward(vertices, xr, self.expansion)])
            if fr < values[-2]:
                vertices[-1], values[-1] = xr, fr
            else:
                simplex.reflected = (list(xr), fr)
                target = xr if fr < values[-1] else vertices[-1]
                return self._next(
                    simplex, vertices, values, "contract", [self._toward(vertices, target, self.contraction)]
                )
        elif simplex.phase == "expand":
            assert simplex.reflected is not None
            reflected, fr = simplex.reflected
            (xe,), (fe,) = points, results
            vertices[-1], values[-1] = (xe, fe) if fe < fr else (np.asarray(reflected), fr)
        elif simplex.phase == "contract":
            assert simplex.reflected is not None
            (xc,), (fc,) = points, results
            if fc < min(simplex.reflected[1], values[-1]):
                vertices[-1], values[-1] = xc, fc
            else:
                shrunk = [vertices[0] + self.shrinkage * (v - vertices[0]) for v in vertices[1:]]
                return self._next(simplex, vertices, values, "shrink", shrunk)
        else:  # shrink
            vertices, values = [vertices[0], *points], [values[0], *results]
        order = np.argsort(values, kind="stable")
        vertices, values = [vertices[i] for i in order], [values[i] for i in order]
        simplex.stale = 0 if values[0] < best_before else simplex.stale + 1
        if self._collapsed(vertices) or simplex.stale >= self.patience:
            self.simplices[self.simplices.index(simplex)] = self._fresh()
            self.restarts += 1
            return None
        centroid = np.mean(vertices[:-1], axis=0)
        return self._next(simplex, vertices, values, "reflect", [_clip(2 * centroid - vertices[-1])])

    def _next(
        self, simplex: Simplex, vertices: list[np.ndarray], values: list[float], phase: str, points: list[np.ndarray]
    ) -> None:
        simplex.vertices, simplex.values = [list(map(float, v)) for v in vertices], [float(f) for f in values]
        _set_step(simplex, phase, points)

    def _toward(self, vertices: list[np.ndarray], target: np.ndarray, coefficient: float) -> np.ndarray:
        """The centroid of all vertices but the worst, moved ``coefficient`` times toward
        ``target``: the reflected point (expansion, outside contraction) or the worst vertex
        (inside contraction)."""
        centroid = np.mean(vertices[:-1], axis=0)
        return _clip(centroid + coefficient * (np.asarray(target) - centroid))

    def _collapsed(self, vertices: list[np.ndarray]) -> bool:
        return float(np.max(np.abs(np.asarray(vertices[1:]) - vertices[0]))) < self.tolerance

    # -- checkpoint ---------------------------------------------------------------------

    def _extra_state(self) -> dict[str, Any]:
        return {"simplices": [asdict(s) for s in self.simplices], "restarts": self.restarts}

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self.simplices = [Simplex.from_dict(raw) for raw in extra["simplices"]]
        self.restarts = int(extra["restarts"])


def _set_step(simplex: Simplex, phase: str, points: list[np.ndarray]) -> None:
    simplex.phase = phase
    simplex.step_points = [list(map(float, _clip(p))) for p in points]
    simplex.todo = [list(p) for p in simplex.step_points]
    simplex.waiting, simplex.outcomes = {}, {}


def _clip(point: np.ndarray) -> np.ndarray:
    return np.clip(point, 0.0, _TOP)


def _fraction(value: object, key: str) -> float:
    from hpo_cli.errors import ConfigError

    number = positive_float(value, key)
    if number >= 1:
        raise ConfigError(key, value, "must be in (0, 1) (the cube has side 1)")
    return number
