"""Particle swarm optimization over the unit cube (Kennedy & Eberhart 1995), asynchronous.

Each particle flies with the constriction coefficients of Clerc & Kennedy (2002): with
φ = c1 + c2 = 4.1, χ = 2 / |2 − φ − sqrt(φ² − 4φ)| ≈ 0.7298,

    v ← χ · (v + c1·r1·(p_best − x) + c2·r2·(g_best − x)),   x ← x + v,

r1, r2 uniform per coordinate, g_best the best point the swarm has seen so far (global
topology). Positions are clipped to the cube and the velocity's component across a face is
zeroed. A swarm is a batch: ``ask(n)`` moves the particles whose last point has been told (the
asynchronous PSO of Venter & Sobieszczanski-Sobieski 2006: no waiting for a whole generation),
starting with uniform positions; when every particle waits for an outcome, the extra points asked
for are uniform draws. Failed trials count as infinitely bad.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from hpo_cli.errors import ConfigError
from hpo_cli.space import SearchSpace
from hpo_cli.strategies.base import Strategy
from hpo_cli.trial import Observation, Suggestion
from hpo_cli.validate import positive_float, positive_int

_TOP = float(np.nextafter(1.0, 0.0))


def constriction(phi: float) -> float:
    """Clerc's χ for φ = c1 + c2 > 4."""
    return 2.0 / abs(2.0 - phi - math.sqrt(phi * phi - 4.0 * phi))


class ParticleSwarmStrategy(Strategy):
    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        n_trials: int,
        swarm: int | None = None,
        cognitive: float = 2.05,
        social: float = 2.05,
    ) -> None:
        super().__init__(space, seed, n_trials)
        d = space.dim
        self.swarm = 10 + int(2 * math.sqrt(d)) if swarm is None else positive_int(swarm, "strategy.swarm")
        self.cognitive = positive_float(cognitive, "strategy.cognitive")
        self.social = positive_float(social, "strategy.social")
        if self.cognitive + self.social <= 4:
            raise ConfigError(
                "strategy.social", social, "cognitive + social must exceed 4 (Clerc's constriction needs φ > 4)"
            )
        self.chi = constriction(self.cognitive + self.social)
        self.positions = np.zeros((self.swarm, d))
        self.velocities = np.zeros((self.swarm, d))
        self.best_positions = np.zeros((self.swarm, d))
        self.best_values = np.full(self.swarm, math.inf)
        self.flown = np.zeros(self.swarm, dtype=bool)  # has a first position
        self.waiting: dict[int, int] = {}  # suggestion key -> particle
        self.global_position: np.ndarray | None = None
        self.global_value = math.inf
        self.turn = 0  # the particle to fly next: each in turn

    # -- ask / tell ---------------------------------------------------------------------

    def _propose(self, n: int) -> list[Suggestion]:
        busy = set(self.waiting.values())
        turns = [(self.turn + j) % self.swarm for j in range(self.swarm)]
        idle = [i for i in turns if i not in busy]
        out: list[Suggestion] = []
        for i in idle[:n]:
            suggestion = self._suggest_unit(self._fly(i))
            self.waiting[suggestion.key] = i
            self.turn = (i + 1) % self.swarm
            out.append(suggestion)
        out += [self._suggest_unit(self.rng.random(self.space.dim)) for _ in range(n - len(out))]
        return out

    def _observe(self, observation: Observation) -> None:
        loss = math.inf if observation.loss is None else float(observation.loss)
        point = np.asarray(observation.suggestion.unit, dtype=float)
        if loss < self.global_value:
            self.global_value, self.global_position = loss, point.copy()
        particle = self.waiting.pop(observation.suggestion.key, None)
        if particle is not None and loss < self.best_values[particle]:
            self.best_values[particle], self.best_positions[particle] = loss, point.copy()

    def _fly(self, i: int) -> np.ndarray:
        """Particle i's next position (its first: uniform, with a velocity toward another uniform point)."""
        d = self.space.dim
        if not self.flown[i]:
            self.flown[i] = True
            self.positions[i] = self.rng.random(d)
            self.velocities[i] = 0.5 * (self.rng.random(d) - self.positions[i])
            return np.minimum(self.positions[i], _TOP)
        x, v = self.positions[i], self.velocities[i]
        personal = self.best_positions[i] if math.isfinite(self.best_values[i]) else x
        social = self.global_position if self.global_position is not None else personal
        r1, r2 = self.rng.random(d), self.rng.random(d)
        v = self.chi * (v + self.cognitive * r1 * (personal - x) + self.social * r2 * (social - x))
        moved = x + v
        outside = (moved < 0.0) | (moved > _TOP)
        v[outside] = 0.0
        self.positions[i], self.velocities[i] = np.clip(moved, 0.0, _TOP), v
        return self.positions[i].copy()

    # -- checkpoint ---------------------------------------------------------------------

    def _extra_state(self) -> dict[str, Any]:
        return {
            "positions": self.positions.tolist(),
            "velocities": self.velocities.tolist(),
            "best_positions": self.best_positions.tolist(),
            "best_values": [float(x) for x in self.best_values],
            "flown": [bool(x) for x in self.flown],
            "waiting": {str(k): v for k, v in self.waiting.items()},
            "global_position": None if self.global_position is None else self.global_position.tolist(),
            "global_value": self.global_value,
            "turn": self.turn,
        }

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self.positions = np.asarray(extra["positions"], dtype=float).reshape(self.swarm, self.space.dim)
        self.velocities = np.asarray(extra["velocities"], dtype=float).reshape(self.swarm, self.space.dim)
        self.best_positions = np.asarray(extra["best_positions"], dtype=float).reshape(self.swarm, self.space.dim)
        self.best_values = np.asarray(extra["best_values"], dtype=float)
        self.flown = np.asarray(extra["flown"], dtype=bool)
        self.waiting = {int(k): int(v) for k, v in extra["waiting"].items()}
        position = extra["global_position"]
        self.global_position = None if position is None else np.asarray(position, dtype=float)
        self.global_value = float(extra["global_value"])
        self.turn = int(extra["turn"])
