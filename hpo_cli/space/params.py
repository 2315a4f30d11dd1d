"""Parameter types and the search space: the one encoding between values and the unit cube
(semantics in :mod:`hpo_cli.space`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from hpo_cli.errors import ConfigError

ParamValue = Any  # float | int | str | bool | None | list[float]
Conditions = tuple[tuple[str, tuple[Any, ...]], ...]


@dataclass(frozen=True)
class FloatParam:
    name: str
    low: float
    high: float
    log: bool = False
    step: float | None = None
    size: int | None = None  # None: a scalar; otherwise a vector of this length
    when: Conditions = ()

    @property
    def dim(self) -> int:
        return 1 if self.size is None else self.size

    def decode(self, u: np.ndarray) -> ParamValue:
        """``u``: shape (dim,) in [0, 1] -> a float, or a list of ``size`` floats."""
        values = [self._decode_one(float(x)) for x in u]
        return values[0] if self.size is None else values

    def _decode_one(self, u: float) -> float:
        if u <= 0.0:
            return float(self.low)
        if u >= 1.0:
            return float(self._top())
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return min(max(math.exp(lo + u * (hi - lo)), self.low), self.high)
        value = self.low + u * (self.high - self.low)
        if self.step is not None:
            value = self._on_step(round((value - self.low) / self.step))
        return float(min(max(value, self.low), self._top()))

    def _top(self) -> float:
        if self.step is None:
            return self.high
        return self._on_step(math.floor((self.high - self.low) / self.step + 1e-9))

    def _on_step(self, k: int) -> float:
        """low + k·step in decimal (0.9, not 0.8999999999999999, for low 0 and step 0.1 × 9)."""
        assert self.step is not None
        return float(Decimal(repr(self.low)) + k * Decimal(repr(self.step)))

    def encode(self, value: ParamValue) -> np.ndarray:
        values = [value] if self.size is None else list(value)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            out = [(math.log(v) - lo) / (hi - lo) for v in values]
        else:
            out = [(v - self.low) / (self.high - self.low) for v in values]
        return np.clip(np.asarray(out, dtype=float), 0.0, 1.0)

    def grid(self, resolution: int) -> list[ParamValue]:
        if self.size is not None:
            raise ConfigError(
                f"space.params.{self.name}.size",
                self.size,
                "grid search cannot enumerate a vector parameter; use random, sobol or a gradient strategy",
            )
        if self.step is not None:
            count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
            picks = _spread_indices(count, resolution)
            return [self._on_step(k) for k in picks]
        if self.log:
            return [float(v) for v in np.geomspace(self.low, self.high, resolution)]
        return [float(v) for v in np.linspace(self.low, self.high, resolution)]

    def contains(self, value: ParamValue) -> bool:
        values = [value] if self.size is None else value
        if self.size is not None and (not isinstance(value, list) or len(value) != self.size):
            return False
        return all(isinstance(v, float) and self.low <= v <= self.high and math.isfinite(v) for v in values)


@dataclass(frozen=True)
class IntParam:
    name: str
    low: int
    high: int
    log: bool = False
    step: int = 1
    when: Conditions = ()

    dim = 1

    @property
    def count(self) -> int:
        return (self.high - self.low) // self.step + 1

    def decode(self, u: np.ndarray) -> int:
        x = float(u[0])
        if self.log:
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            value = round(math.exp(lo + min(max(x, 0.0), 1.0) * (hi - lo)))
            return int(min(max(value, self.low), self.high))
        index = min(math.floor(max(x, 0.0) * self.count), self.count - 1)
        return int(self.low + index * self.step)

    def encode(self, value: ParamValue) -> np.ndarray:
        if self.log:
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            return np.array([(math.log(value) - lo) / (hi - lo)])
        return np.array([((value - self.low) // self.step + 0.5) / self.count])

    def grid(self, resolution: int) -> list[ParamValue]:
        if self.log and self.count > resolution:
            values = np.unique(np.round(np.geomspace(self.low, self.high, resolution)))
            return [int(v) for v in values]
        return [int(self.low + k * self.step) for k in _spread_indices(self.count, resolution)]

    def contains(self, value: ParamValue) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )


@dataclass(frozen=True)
class CategoricalParam:
    name: str
    choices: tuple[Any, ...]
    when: Conditions = ()

    dim = 1

    def decode(self, u: np.ndarray) -> ParamValue:
        index = min(math.floor(max(float(u[0]), 0.0) * len(self.choices)), len(self.choices) - 1)
        return self.choices[index]

    def encode(self, value: ParamValue) -> np.ndarray:
        return np.array([(self.choices.index(value) + 0.5) / len(self.choices)])

    def grid(self, resolution: int) -> list[ParamValue]:
        return list(self.choices)

    def contains(self, value: ParamValue) -> bool:
        return any(value == c and type(value) is type(c) for c in self.choices)


Param = FloatParam | IntParam | CategoricalParam


def _spread_indices(count: int, resolution: int) -> list[int]:
    """All of ``range(count)`` when it fits in ``resolution``, else evenly spread indices."""
    if count <= resolution:
        return list(range(count))
    return sorted({round(float(x)) for x in np.linspace(0, count - 1, resolution)})


@dataclass(frozen=True)
class SearchSpace:
    """An ordered collection of parameters; ``dim`` is the unit-cube dimension."""

    params: tuple[Param, ...]
    _slices: dict[str, slice] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        slices, start = {}, 0
        for p in self.params:
            slices[p.name] = slice(start, start + p.dim)
            start += p.dim
        object.__setattr__(self, "_slices", slices)

    @property
    def dim(self) -> int:
        return sum(p.dim for p in self.params)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def slice_of(self, name: str) -> slice:
        return self._slices[name]

    def is_active(self, param: Param, values: Mapping[str, ParamValue]) -> bool:
        return all(parent in values and values[parent] in allowed for parent, allowed in param.when)

    def decode(self, u: np.ndarray) -> dict[str, ParamValue]:
        """``u``: shape (dim,) in [0, 1] -> values of the active parameters, in declared order."""
        u = np.asarray(u, dtype=float)
        if u.shape != (self.dim,):
            raise ValueError(f"expected a point of shape ({self.dim},), got {u.shape}")
        values: dict[str, ParamValue] = {}
        for p in self.params:
            if self.is_active(p, values):
                values[p.name] = p.decode(u[self._slices[p.name]])
        return values

    def encode(self, values: Mapping[str, ParamValue]) -> np.ndarray:
        """Inverse of :meth:`decode`: shape (dim,); inactive parameters sit at 0.5."""
        u = np.full(self.dim, 0.5)
        for p in self.params:
            if p.name in values:
                u[self._slices[p.name]] = p.encode(values[p.name])
        return u

    def contains(self, values: Mapping[str, ParamValue]) -> bool:
        """True when exactly the active parameters are present, each with a valid value."""
        active: dict[str, ParamValue] = {}
        for p in self.params:
            if self.is_active(p, active):
                if p.name not in values or not p.contains(values[p.name]):
                    return False
                active[p.name] = values[p.name]
        return set(active) == set(values)

    def grid(self, resolution: Mapping[str, int] | int) -> list[dict[str, ParamValue]]:
        """Every combination of the per-parameter grids, conditional parameters included."""
        points: list[dict[str, ParamValue]] = [{}]
        for p in self.params:
            r = resolution if isinstance(resolution, int) else resolution.get(p.name, 10)
            values = p.grid(r)
            grown: list[dict[str, ParamValue]] = []
            for point in points:
                if self.is_active(p, point):
                    grown.extend({**point, p.name: v} for v in values)
                else:
                    grown.append(point)
            points = grown
        return points
