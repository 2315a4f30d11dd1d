"""The loop's vocabulary for gradient trials: what a gradient strategy asks of a task (the
hypergradient method, its options) and the inner state carried from the previous hyper-iteration
(online training, warm starts). Records, the loop, executors, strategies and tasks all speak it;
the numeric package :mod:`hpo_cli.hypergrad` only answers it.

No torch here: the state travels as numpy arrays (in the task's own dtype, so float32 stays
bit-exact) and is written into checkpoints exactly (base64 of the raw little-endian bytes).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from hpo_cli.hypergrad.registry import MethodSpec, method


@dataclass(frozen=True)
class InnerState:
    """The inner problem's state after a hyper-iteration: arrays by name (θ, velocity, rtho's
    tangents, HOAG's CG solution q, ...) and the number of inner steps taken so far."""

    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    step: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "arrays": {name: _encode(a) for name, a in self.arrays.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InnerState:
        return cls({name: _decode(a) for name, a in d["arrays"].items()}, int(d["step"]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InnerState) or self.step != other.step or set(self.arrays) != set(other.arrays):
            return False
        return all(
            a.dtype == other.arrays[k].dtype and np.array_equal(a, other.arrays[k]) for k, a in self.arrays.items()
        )

    __hash__ = None  # type: ignore[assignment]


def _encode(a: np.ndarray) -> dict[str, Any]:
    little = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return {
        "dtype": a.dtype.str.lstrip("<>="),
        "shape": list(a.shape),
        "b64": base64.b64encode(little.tobytes()).decode(),
    }


def _decode(d: Mapping[str, Any]) -> np.ndarray:
    dtype = np.dtype("<" + str(d["dtype"]))
    return np.frombuffer(base64.b64decode(d["b64"]), dtype=dtype).reshape(d["shape"]).astype(dtype.newbyteorder("="))


@dataclass(frozen=True, init=False)
class HypergradRequest:
    """A hypergradient of ``method`` (a name in :mod:`hpo_cli.hypergrad.registry`) with every
    option of that method, checked and completed with the registry's defaults (``options``: e.g.
    reverse's ``truncate``, ``tape``, ``memory_mb``; implicit's ``tol``, ``warm_start``,
    ``curvature``; greedy's and rtho's ``steps``). An option of another method is a ConfigError.

    ``state`` is what the previous hyper-iteration left (None at the first one, and for methods
    that start from θ0 each time)."""

    method: str
    options: Mapping[str, Any]
    state: InnerState | None

    def __init__(self, method_name: str, state: InnerState | None = None, **options: Any) -> None:
        spec = method(method_name)
        object.__setattr__(self, "method", method_name)
        object.__setattr__(self, "options", MappingProxyType(spec.validated(options)))
        object.__setattr__(self, "state", state)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HypergradRequest):
            return NotImplemented
        return (self.method, dict(self.options), self.state) == (other.method, dict(other.options), other.state)

    __hash__ = None  # type: ignore[assignment]

    @property
    def spec(self) -> MethodSpec:
        return method(self.method)

    @property
    def stateful(self) -> bool:
        """True when the result depends on state carried from earlier hyper-iterations."""
        return self.spec.online or (self.spec.warm and bool(self.options["warm_start"]))

    def with_state(self, state: InnerState | None) -> HypergradRequest:
        return HypergradRequest(self.method, state, **self.options)

    def to_dict(self) -> dict[str, Any]:
        state = None if self.state is None else self.state.to_dict()
        return {"method": self.method, "options": dict(self.options), "state": state}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HypergradRequest:
        """The inverse of :meth:`to_dict`; also reads the flat form of earlier checkpoints, whose
        requests held one field per option of every method (only this method's are kept)."""
        state = None if d.get("state") is None else InnerState.from_dict(d["state"])
        if "options" in d and isinstance(d["options"], Mapping):
            return cls(str(d["method"]), state, **d["options"])
        own = method(d["method"]).defaults
        return cls(str(d["method"]), state, **{k: v for k, v in d.items() if k in own})

    @classmethod
    def of(cls, method_name: str, options: Mapping[str, Any], key: str = "strategy.options") -> HypergradRequest:
        """A request built from a strategy's config: an option that is not one of the method's is
        a ConfigError naming ``key.option`` and its value."""
        method(method_name).validated(options, key)
        return cls(method_name, None, **dict(options))
