"""Search spaces and the one encoding between parameter values and the unit cube.

A space is an ordered set of named parameters. Every strategy that works in the unit cube
(random, Sobol, Halton, LHS, GP-BO, evolution) goes through :meth:`SearchSpace.decode` and
:meth:`SearchSpace.encode`, so no strategy branches on parameter types.

Semantics, defined once here:

* ``float``: ``low <= x <= high``; ``log: true`` samples uniformly in log space (``low > 0``);
  ``step`` snaps to ``low + k * step``; ``size`` makes it a vector (an int, or the name of a
  dimension the task fixes at run time, e.g. ``n_coefficients``).
* ``int``: inclusive bounds ``low <= k <= high`` (both endpoints can be drawn), optional
  ``step`` or ``log``; the value is always a Python ``int``.
* ``categorical``: ``choices``; the value itself is returned, never an index.
* ``when: {other: value}`` (or a list of values) makes a parameter conditional: it is present
  only when every named parameter is present and has one of the listed values. The named
  parameter must be declared earlier in the space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpo_cli.errors import ConfigError
from hpo_cli.validate import flag, is_int, is_number

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
            value = self.low + round((value - self.low) / self.step) * self.step
        return float(min(max(value, self.low), self._top()))

    def _top(self) -> float:
        if self.step is None:
            return self.high
        return self.low + math.floor((self.high - self.low) / self.step + 1e-9) * self.step

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
            return [float(self.low + k * self.step) for k in picks]
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


def parse_space(
    raw: Mapping[str, Any] | None, dimensions: Mapping[str, int], prefix: str = "space.params"
) -> SearchSpace:
    """Build a space from its config mapping ``{name: {type: ..., ...}}``.

    ``dimensions`` names the vector lengths the task fixes (e.g. ``{"n_coefficients": 12}``).
    Raises :class:`ConfigError` naming the bad key and value.
    """
    if not raw:
        raise ConfigError(prefix, dict(raw or {}), "the space defines no parameters; pick one with space=NAME")
    params: list[Param] = []
    for name, spec in raw.items():
        key = f"{prefix}.{name}"
        if not isinstance(spec, Mapping):
            raise ConfigError(key, spec, "expected a mapping with at least 'type'")
        params.append(_parse_param(str(name), spec, key, dimensions, params))
    return SearchSpace(tuple(params))


_ALLOWED_KEYS = {
    "float": {"type", "low", "high", "log", "step", "size", "when"},
    "int": {"type", "low", "high", "log", "step", "when"},
    "categorical": {"type", "choices", "when"},
}


def _parse_param(
    name: str,
    spec: Mapping[str, Any],
    key: str,
    dimensions: Mapping[str, int],
    earlier: Sequence[Param],
) -> Param:
    kind = spec.get("type")
    if kind not in _ALLOWED_KEYS:
        raise ConfigError(f"{key}.type", kind, "must be one of float, int, categorical")
    unknown = sorted(set(spec) - _ALLOWED_KEYS[kind])
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", spec[unknown[0]], f"not a {kind} option")
    when = _parse_when(spec.get("when"), f"{key}.when", earlier)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, Sequence) or isinstance(choices, str) or len(choices) == 0:
            raise ConfigError(f"{key}.choices", choices, "must be a non-empty list")
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"{key}.choices", list(choices), "choices must be distinct")
        return CategoricalParam(name, tuple(choices), when)
    low, high = _bounds(spec, key, integer=kind == "int")
    log = flag(spec.get("log", False), f"{key}.log")
    step = spec.get("step")
    if log and low <= 0:
        raise ConfigError(f"{key}.low", low, "log scale needs low > 0")
    if log and step is not None:
        raise ConfigError(f"{key}.step", step, "step cannot be combined with log: true")
    if step is not None and not (is_number(step) and step > 0):
        raise ConfigError(f"{key}.step", step, "must be a positive number")
    if kind == "int":
        if step is not None and not is_int(step):
            raise ConfigError(f"{key}.step", step, "must be an integer for an int parameter")
        return IntParam(name, int(low), int(high), log, int(step or 1), when)
    size = _parse_size(spec.get("size"), f"{key}.size", dimensions)
    return FloatParam(name, float(low), float(high), log, None if step is None else float(step), size, when)


def _bounds(spec: Mapping[str, Any], key: str, integer: bool) -> tuple[float, float]:
    check = is_int if integer else is_number
    for bound in ("low", "high"):
        if bound not in spec:
            raise ConfigError(f"{key}.{bound}", None, "required but missing")
        if not check(spec[bound]) or not math.isfinite(float(spec[bound])):
            what = "an integer" if integer else "a finite number"
            raise ConfigError(f"{key}.{bound}", spec[bound], f"must be {what}")
    low, high = spec["low"], spec["high"]
    if low >= high:
        raise ConfigError(f"{key}.low", low, f"must be < high ({high})")
    return low, high


def _parse_size(size: Any, key: str, dimensions: Mapping[str, int]) -> int | None:
    if size is None:
        return None
    if isinstance(size, str):
        if size not in dimensions:
            known = ", ".join(sorted(dimensions)) or "none"
            raise ConfigError(key, size, f"not a dimension of this task (known: {known})")
        size = dimensions[size]
    if not is_int(size) or size < 1:
        raise ConfigError(key, size, "must be a positive integer or a task dimension name")
    return int(size)


def _parse_when(raw: Any, key: str, earlier: Sequence[Param]) -> Conditions:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(key, raw, "expected a mapping {parameter: value or [values]}")
    known = {p.name: p for p in earlier}
    conditions = []
    for parent, allowed in raw.items():
        if parent not in known:
            raise ConfigError(
                f"{key}.{parent}",
                allowed,
                f"names unknown parameter {parent!r} (conditions may only name parameters declared above)",
            )
        values = tuple(allowed) if isinstance(allowed, Sequence) and not isinstance(allowed, str) else (allowed,)
        conditions.append((str(parent), values))
    return tuple(conditions)
