"""Cheap test functions with known optima; every trial records its simple regret.

* ``branin`` (2-D, x1 ∈ [−5, 10], x2 ∈ [0, 15]): minimum 0.397887 at (−π, 12.275), (π, 2.275),
  (9.42478, 2.475);
* ``hartmann6`` (x ∈ [0, 1]^6): minimum −3.32237 at (0.20169, 0.150011, 0.476874, 0.275332,
  0.311652, 0.6573);
* ``rosenbrock`` and ``levy`` of any dimension ``dim``: minimum 0 at (1, …, 1).

The point is the parameter ``x`` (a vector; ``size: dim``), or ``x1``, ``x2`` for branin. One
class per function (``task=branin`` builds :class:`Branin`), its optimum, minimizers and
dimension as class attributes.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from hpo_cli.tasks.base import Task
from hpo_cli.trial import Evaluation, Request
from hpo_cli.validate import positive_int

HARTMANN_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
HARTMANN_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
)
HARTMANN_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def branin(x1: float, x2: float) -> float:
    b, c, r, s, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


def hartmann6(x: np.ndarray) -> float:
    inner = np.sum(HARTMANN_A * (np.asarray(x)[None, :] - HARTMANN_P) ** 2, axis=1)
    return float(-np.sum(HARTMANN_ALPHA * np.exp(-inner)))


def rosenbrock(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


def levy(x: np.ndarray) -> float:
    w = 1.0 + (np.asarray(x, dtype=float) - 1.0) / 4.0
    head = math.sin(math.pi * w[0]) ** 2
    middle = np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2))
    tail = (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
    return float(head + middle + tail)


class SyntheticTask(Task):
    """A test function with a known optimum: value = f(x); metrics: the value and its simple
    regret f(x) − f*. Each function is a subclass naming its optimum, its minimizers and, when
    it has one, its fixed dimension (``fixed_dim``); the others take ``dim``."""

    metric = "value"
    known_optimum: float = 0.0
    fixed_dim: int | None = None

    def __init__(self, dim: int = 2, seed: int = 0, device: str = "cpu") -> None:
        self.dim = self.fixed_dim or positive_int(dim, "task.dim")
        self.known_minimizers = self.minimizers(self.dim)

    @classmethod
    def minimizers(cls, dim: int) -> tuple[dict[str, Any], ...]:
        """Where the function reaches ``known_optimum``, as parameter dicts (default: x = 1)."""
        return ({"x": [1.0] * dim},)

    @abstractmethod
    def function(self, x: np.ndarray) -> float:
        """f at the point ``x`` (shape (dim,))."""

    def point(self, params: Mapping[str, Any]) -> np.ndarray:
        """The parameters as the point x, shape (dim,)."""
        x = np.asarray(params["x"], dtype=float)
        if x.shape != (self.dim,):
            raise ValueError(f"x has shape {x.shape}; {self.name} takes ({self.dim},)")
        return x

    def dimensions(self) -> dict[str, int]:
        return {"dim": self.dim}

    def value(self, params: Mapping[str, Any]) -> float:
        return self.function(self.point(params))

    def evaluate(
        self, params: Mapping[str, Any], budget: float | None = None, request: Request | None = None
    ) -> Evaluation:
        value = self.value(params)
        return Evaluation(value, {"value": value, "regret": value - self.known_optimum})


class Branin(SyntheticTask):
    """Branin on x1 ∈ [−5, 10], x2 ∈ [0, 15] (parameters ``x1``, ``x2``)."""

    name, known_optimum, fixed_dim = "branin", 0.397887, 2

    @classmethod
    def minimizers(cls, dim: int) -> tuple[dict[str, Any], ...]:
        return tuple({"x1": x1, "x2": x2} for x1, x2 in ((-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475)))

    def point(self, params: Mapping[str, Any]) -> np.ndarray:
        return np.array([float(params["x1"]), float(params["x2"])])

    def function(self, x: np.ndarray) -> float:
        return branin(float(x[0]), float(x[1]))


class Hartmann6(SyntheticTask):
    name, known_optimum, fixed_dim = "hartmann6", -3.32237, 6

    @classmethod
    def minimizers(cls, dim: int) -> tuple[dict[str, Any], ...]:
        return ({"x": [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]},)

    def function(self, x: np.ndarray) -> float:
        return hartmann6(x)


class Rosenbrock(SyntheticTask):
    name = "rosenbrock"

    def function(self, x: np.ndarray) -> float:
        return rosenbrock(x)


class Levy(SyntheticTask):
    name = "levy"

    def function(self, x: np.ndarray) -> float:
        return levy(x)
