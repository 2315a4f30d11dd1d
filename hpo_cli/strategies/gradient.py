"""Gradient-based strategies: one suggestion per hyper-iteration, stepping along the
hypergradient the task returns (the loop asks the task for it through ``Suggestion.request``).

The strategy works in *internal coordinates* z: a parameter's value, or its logarithm for
``log: true`` parameters, so a step on a learning rate is multiplicative. Every step is
projected back onto the space's box [low, high] and, optionally, onto an L1 ball
(``l1_budget: {example_weights: R}``, hyper-cleaning's ‖λ‖₁ ≤ R; R may be a percentage of the
parameter's size, ``50%``). A hypergradient that is exactly zero everywhere ends the run: the
criterion does not depend on the hyperparameters there, and no step can change that.

Methods (``method``): reverse (RMAD with a tape; ``truncate``), rmad_exact (exact reversal),
forward, drmad (``skip``, ``stride``, ``anchors``, ``clip``), greedy and rtho (online, ``steps`` inner steps per
hyper-iteration). HOAG is :class:`hpo_cli.strategies.hoag.HoagStrategy`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo_cli.errors import ConfigError
from hpo_cli.hypergrad.registry import check_count
from hpo_cli.request import HypergradRequest, InnerState
from hpo_cli.space import CategoricalParam, FloatParam, IntParam, SearchSpace
from hpo_cli.strategies.base import Strategy
from hpo_cli.trial import Observation, Suggestion, TrialState
from hpo_cli.validate import flag, one_of, positive_float

if TYPE_CHECKING:
    from hpo_cli.tasks.base import Task

log = logging.getLogger("hpo_cli")
DIVERGENCE = 1e4  # stop when the criterion exceeds the best one by this factor
OUTER = ("sgd", "adam")
INITS = ("random", "center", "low", "high")


def project_box_l1(w: np.ndarray, low: np.ndarray, high: np.ndarray, radius: float | None) -> np.ndarray:
    """Euclidean projection onto {low ≤ w ≤ high, Σw ≤ radius} (low ≥ 0 when a radius is set)."""
    clipped = np.clip(w, low, high)
    if radius is None or clipped.sum() <= radius:
        return clipped
    lo, hi = 0.0, float(np.max(w - low))
    for _ in range(100):  # bisection on the shift τ of Σ clip(w − τ) = radius
        tau = 0.5 * (lo + hi)
        if np.clip(w - tau, low, high).sum() > radius:
            lo = tau
        else:
            hi = tau
    return np.clip(w - hi, low, high)


class GradientStrategy(Strategy):
    """Projected outer descent on the hyperparameters: SGD, Adam, or sign updates."""

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        n_trials: int,
        method: str = "reverse",
        outer: str = "adam",
        lr: float = 0.3,
        sign: bool = False,
        init: str = "center",
        l1_budget: Mapping[str, float] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(space, seed, n_trials)
        self.template = HypergradRequest.of(method, dict(options or {}))  # validates method and options
        self.method = method
        self.outer = one_of(outer, "strategy.outer", OUTER)
        self.lr = positive_float(lr, "strategy.lr")
        self.sign = flag(sign, "strategy.sign")
        self.inner: InnerState | None = None  # what the last hypergradient left (online training, warm starts)
        self._check_space()
        check_count(self.template.spec, self.space.dim)
        self.low, self.high, self.is_log = self._bounds()
        self.budgets = self._budgets(dict(l1_budget or {}))
        self.z = self._initial(one_of(init, "strategy.init", INITS))
        self.moments = (np.zeros_like(self.z), np.zeros_like(self.z), 0)
        self.stopped: str | None = None
        self.best_loss: float | None = None
        self.damped = (0, 0.0)  # hypergradients whose CG was damped, and the largest damping

    # -- space -------------------------------------------------------------------------

    def _check_space(self) -> None:
        for p in self.space.params:
            if not isinstance(p, FloatParam) or p.when or p.step is not None:
                kind = (
                    "a categorical" if isinstance(p, CategoricalParam) else "an int" if isinstance(p, IntParam) else ""
                )
                kind = kind or ("a conditional" if p.when else "a stepped")
                raise ConfigError(
                    f"space.params.{p.name}",
                    p.choices if isinstance(p, CategoricalParam) else (p.low, p.high),
                    f"is {kind} parameter: gradient strategies tune continuous float parameters only",
                )

    def _bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        low, high, is_log = [], [], []
        for p in self.space.params:
            assert isinstance(p, FloatParam)
            lo, hi = (math.log(p.low), math.log(p.high)) if p.log else (p.low, p.high)
            low += [lo] * p.dim
            high += [hi] * p.dim
            is_log += [p.log] * p.dim
        return np.array(low), np.array(high), np.array(is_log)

    def _budgets(self, budgets: dict[str, Any]) -> dict[str, float]:
        """R per parameter: a number, or a percentage of the parameter's size ("50%")."""
        radii: dict[str, float] = {}
        for name, radius in budgets.items():
            key = f"strategy.l1_budget.{name}"
            if name not in self.space.names:
                raise ConfigError(key, radius, "not a parameter of the space")
            p = self.space[name]
            assert isinstance(p, FloatParam)
            if p.log or p.low < 0:
                raise ConfigError(key, radius, "needs a linear parameter with low >= 0")
            if isinstance(radius, str) and radius.endswith("%"):
                try:
                    share = float(radius[:-1]) / 100
                except ValueError:
                    raise ConfigError(key, radius, "must be a number or a percentage of the size, e.g. 50%") from None
                radii[name] = positive_float(share, key) * p.dim
            else:
                radii[name] = positive_float(radius, key)
        return radii

    def _initial(self, init: str) -> np.ndarray:
        if init == "random":
            z = self.low + self.rng.random(self.low.size) * (self.high - self.low)
        else:
            z = {
                "center": (self.low + self.high) / 2,
                "low": self.low.copy(),
                "high": self.high.copy(),
            }[init]
        return self.project(z)

    def project(self, z: np.ndarray) -> np.ndarray:
        z = np.clip(z, self.low, self.high)
        for name, radius in self.budgets.items():
            part = self.space.slice_of(name)
            z[part] = project_box_l1(z[part], self.low[part], self.high[part], radius)
        return z

    def params_of(self, z: np.ndarray) -> dict[str, Any]:
        values = np.where(self.is_log, np.exp(z), z)
        out: dict[str, Any] = {}
        for p in self.space.params:
            assert isinstance(p, FloatParam)
            piece = np.clip(values[self.space.slice_of(p.name)], p.low, p.high)
            out[p.name] = float(piece[0]) if p.size is None else [float(x) for x in piece]
        return out

    # -- ask / tell --------------------------------------------------------------------

    def request(self) -> HypergradRequest:
        """The next hypergradient request: the configured one, with the carried inner state."""
        return self.template.with_state(self.inner)

    def _propose(self, n: int) -> list[Suggestion]:
        if self.stopped is not None or self.pending:
            return []
        params = self.params_of(self.z)
        return [self._suggest(params, self.space.encode(params), request=self.request())]

    def is_finished(self) -> bool:
        return self.stopped is not None

    @property
    def finish_message(self) -> str:
        return self.stopped or "the strategy finished"

    def _observe(self, observation: Observation) -> None:
        if observation.carry is not None:
            self.inner = observation.carry
        gradient = self._usable_gradient(observation)
        if gradient is not None:
            self._move_by(self._step(gradient))

    def _move_by(self, step: np.ndarray) -> None:
        """z ← P(z − step), unless the step is not finite (then stop: divergence)."""
        if not np.all(np.isfinite(step)):
            self.stopped = (
                f"stopped at hyper-iteration {len(self.history) - 1}: the outer step is not "
                "finite (the hypergradient overflowed; the inner training probably diverges "
                "here, try a smaller task.inner_lr); the best hyperparameters so far are kept"
            )
            return
        self.z = self.project(self.z - step)

    def _usable_gradient(self, observation: Observation) -> np.ndarray | None:
        """d loss / d z for a completed trial, else None after stopping with a message."""
        number = len(self.history) - 1
        if observation.state != TrialState.COMPLETE or observation.gradient is None:
            error = observation.error or "no hypergradient came back"
            self.stopped = (
                f"stopped at hyper-iteration {number}: the trial failed ({error}); the best "
                "hyperparameters found so far are kept"
            )
            return None
        assert observation.loss is not None
        if self.best_loss is not None and observation.loss - self.best_loss > DIVERGENCE * max(
            abs(self.best_loss), 1e-12
        ):
            self.stopped = (
                f"stopped at hyper-iteration {number}: diverged (the criterion jumped from "
                f"{self.best_loss:.4g} to {observation.loss:.4g}); the best hyperparameters so "
                "far are kept"
            )
            return None
        self.best_loss = observation.loss if self.best_loss is None else min(self.best_loss, observation.loss)
        self._note_damping(number, float(observation.metrics.get("cg_damping", 0.0)))
        g = np.asarray(observation.gradient, dtype=float)
        if g.size and not np.any(g):
            self.stopped = (
                f"stopped at hyper-iteration {number}: the hypergradient is exactly zero (a "
                "stationary point, or a criterion that does not depend on the hyperparameters "
                "here); no step can move"
            )
            return None
        value_per_z = np.exp(np.where(self.is_log, self.z, 0.0))  # d value / d log value = value
        return np.where(self.is_log, g * value_per_z, g)

    def _note_damping(self, number: int, damping: float) -> None:
        """Count hypergradients whose linear system met negative curvature and was damped (their
        direction is biased); say so once per run, with the way out."""
        if damping <= 0:
            return
        self.damped = (self.damped[0] + 1, max(self.damped[1], damping))
        if self.damped[0] == 1:
            log.warning(
                "hyper-iteration %d: the inner Hessian was indefinite; conjugate gradient damped it by %g (the "
                "hypergradient is biased; trials record cg_damping, summary.json counts damped_hypergradients). "
                "curvature=ggn (strategy.curvature with hoag) solves with the positive definite Gauss-Newton matrix",
                number,
                damping,
            )

    def _step(self, g: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            if not np.all(np.isfinite(g * g)):
                return np.full_like(g, np.inf)  # overflowed: _move_by stops the strategy
        if self.outer == "sgd":
            direction = g
        else:
            m, v, t = self.moments
            t += 1
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g**2
            self.moments = (m, v, t)
            direction = (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        return self.lr * (np.sign(direction) if self.sign else direction)

    def check_task(self, task: Task) -> None:
        """Refuse tasks that cannot return this method's hypergradient for this space."""
        task.check_hypergradient(self.template, self.space.names)

    def _extra_state(self) -> dict[str, Any]:
        m, v, t = self.moments
        return {
            "z": self.z.tolist(),
            "m": m.tolist(),
            "v": v.tolist(),
            "t": t,
            "stopped": self.stopped,
            "best_loss": self.best_loss,
            "damped": list(self.damped),
            "inner": None if self.inner is None else self.inner.to_dict(),
        }

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self.z = np.asarray(extra["z"], dtype=float)
        self.moments = (
            np.asarray(extra["m"], dtype=float),
            np.asarray(extra["v"], dtype=float),
            int(extra["t"]),
        )
        self.stopped = extra["stopped"]
        self.best_loss = extra["best_loss"]
        count, largest = extra.get("damped", (0, 0.0))
        self.damped = (int(count), float(largest))
        self.inner = None if extra.get("inner") is None else InnerState.from_dict(extra["inner"])
