"""HOAG (Pedregosa 2016): approximate implicit hypergradients with an increasing accuracy.

Hyper-iteration k asks the task for the implicit hypergradient with tolerance ε_k (inner solve
to ‖∇θL‖∞ ≤ ε_k·‖∇θL(θ0)‖∞ and conjugate gradient to relative residual ε_k, both warm-started
from iteration k−1). The step is z ← P(z − g/L):

* L starts at ‖g_0‖ / √m;
* a step is *rejected* when the new criterion exceeds the last accepted one by more than the
  two evaluations' precision (the task's ``value_error``: |qᵀ∇θL|, the first-order error of Q
  at an inexact θ*): L doubles, ε shrinks by half, and the next point is a shorter step from
  the last accepted point (Pedregosa's rule rejects only above 1.2 × the last value, which lets
  a criterion creep up and a step of 1/L settle into a period-2 oscillation);
* a step that reverses the previous accepted step in the coordinates that carry most of it
  overshoots: L doubles before it is taken;
* an accepted step whose decrease beats the sufficient-decrease bound, allowing for the
  tolerance terms, shrinks L by 0.95 (longer steps);
* ε_k follows a summable schedule (Pedregosa's condition Σ ε_k < ∞): exponential ε_0·ρ^k,
  quadratic ε_0/(k+1)², cubic ε_0/(k+1)³, floored at ``min_tol``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from hpo_cli.errors import ConfigError
from hpo_cli.hypergrad.registry import CURVATURES
from hpo_cli.request import HypergradRequest
from hpo_cli.space import SearchSpace
from hpo_cli.strategies.gradient import GradientStrategy
from hpo_cli.trial import Observation
from hpo_cli.validate import one_of, positive_float

SCHEDULES = ("exponential", "quadratic", "cubic")
OVERSHOOT_SHARE = 0.5  # of the step's squared norm, in coordinates whose sign flipped
SHRINK_L = 0.95
SUFFICIENT_DECREASE_C = 0.25


class HoagStrategy(GradientStrategy):
    """Outer steps 1/L with HOAG's acceptance rule; the task computes implicit hypergradients."""

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        n_trials: int,
        tolerance: str = "exponential",
        tol0: float = 0.1,
        decay: float = 0.9,
        min_tol: float = 1e-12,
        warm_start: bool = True,
        curvature: str = "auto",
        init: str = "center",
        l1_budget: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(
            space,
            seed,
            n_trials,
            method="implicit",
            outer="sgd",
            lr=1.0,
            init=init,
            l1_budget=l1_budget,
        )
        self.schedule = one_of(tolerance, "strategy.tolerance", SCHEDULES)
        self.tol0 = positive_float(tol0, "strategy.tol0")
        if not 0 < decay < 1:
            raise ConfigError("strategy.decay", decay, "must be in (0, 1)")
        self.decay, self.min_tol, self.warm_start = (
            float(decay),
            positive_float(min_tol, "strategy.min_tol"),
            warm_start,
        )
        self.curvature = one_of(curvature, "strategy.curvature", CURVATURES)
        self.k = 0  # hyper-iterations done
        self.tol_scale = 1.0  # halved at each rejection
        self.L: float | None = None
        self.accepted: dict[str, Any] | None = None  # z, loss, gradient, tol of the last accepted point
        self.last_increment = 0.0
        self.last_step: list[float] | None = None  # the last accepted point's projected step
        self.rejections = self.overshoots = 0  # steps rejected; steps shortened for reversing the previous one

    def tolerance(self) -> float:
        k = self.k
        base = {
            "exponential": self.tol0 * self.decay**k,
            "quadratic": self.tol0 / (k + 1) ** 2,
            "cubic": self.tol0 / (k + 1) ** 3,
        }[self.schedule]
        return max(base * self.tol_scale, self.min_tol)

    def request(self) -> HypergradRequest:
        options = {"tol": self.tolerance(), "warm_start": self.warm_start, "curvature": self.curvature}
        return HypergradRequest("implicit", self.inner, **options)

    def _observe(self, observation: Observation) -> None:
        request = observation.suggestion.request
        tol = float(request.options["tol"]) if request is not None else self.tolerance()
        if observation.carry is not None:
            self.inner = observation.carry
        gradient = self._usable_gradient(observation)
        self.k += 1
        if gradient is None or observation.loss is None:
            return
        loss, last = observation.loss, self.accepted
        error = float(observation.metrics.get("value_error", 0.0))
        if last is not None and loss > last["loss"] + error + last.get("error", 0.0):
            self._reject(last)
            return
        if self.L is None:
            self.L = float(np.linalg.norm(gradient)) / math.sqrt(gradient.size) or 1.0
        elif last is not None and self._sufficient_decrease(loss, last, tol):
            self.L *= SHRINK_L
        self.accepted = {"z": self.z.tolist(), "loss": loss, "gradient": gradient.tolist(), "tol": tol, "error": error}
        self._step_from(self.z, gradient)

    def _reject(self, last: Mapping[str, Any]) -> None:
        """The criterion rose beyond what the evaluations' precision explains: back to the last
        accepted point, a step half as long (L doubles), tolerances halved."""
        assert self.L is not None
        self.L *= 2.0
        self.tol_scale *= 0.5
        self.rejections += 1
        start = np.asarray(last["z"])
        self.last_step = (self._move(start, np.asarray(last["gradient"])) - start).tolist()

    def _step_from(self, z: np.ndarray, gradient: np.ndarray) -> None:
        """The projected step from an accepted point; when it reverses the previous accepted
        step's sign in the coordinates that carry most of it, the step overshoots (on a quadratic,
        gradient steps flip sign exactly when longer than 1/curvature): L doubles first."""
        assert self.L is not None
        previous = self.last_step
        new = self._move(z, gradient) - z
        if previous is not None and _overshoots(np.asarray(previous), new):
            self.L *= 2.0
            self.overshoots += 1
            new = self._move(z, gradient) - z
        self.last_step = new.tolist()

    def _sufficient_decrease(self, loss: float, last: Mapping[str, Any], tol: float) -> bool:
        assert self.L is not None
        c, inc = SUFFICIENT_DECREASE_C, self.last_increment
        bound = last["loss"] + c * tol + last["tol"] * (c + 1) * inc - self.L * inc**2
        return loss <= bound

    def _move(self, z: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        """The projected step z − g/L (z itself, and the strategy stopped, if not finite)."""
        assert self.L is not None
        self.z = z
        self._move_by(gradient / self.L)
        self.last_increment = float(np.linalg.norm(self.z - z))
        return self.z

    def _extra_state(self) -> dict[str, Any]:
        return {
            **super()._extra_state(),
            "last_step": self.last_step,
            "rejections": self.rejections,
            "overshoots": self.overshoots,
            "k": self.k,
            "tol_scale": self.tol_scale,
            "L": self.L,
            "accepted": self.accepted,
            "last_increment": self.last_increment,
        }

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        super()._load_extra_state(extra)
        self.k, self.tol_scale, self.L = int(extra["k"]), float(extra["tol_scale"]), extra["L"]
        self.accepted, self.last_increment = extra["accepted"], float(extra["last_increment"])
        self.last_step = extra.get("last_step")
        self.rejections, self.overshoots = int(extra.get("rejections", 0)), int(extra.get("overshoots", 0))


def _overshoots(previous: np.ndarray, step: np.ndarray) -> bool:
    """True when the coordinates where ``step`` reverses ``previous`` hold more than
    OVERSHOOT_SHARE of its squared norm."""
    flipped = previous * step < 0
    total = float(step @ step)
    return total > 0 and float(step[flipped] @ step[flipped]) > OVERSHOOT_SHARE * total
