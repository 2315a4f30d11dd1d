"""What a gradient strategy asks of a task, typed: the method, its options, and the inner state
carried from the previous hyper-iteration (online training, warm starts).

No torch here: the state travels as numpy arrays (in the task's own dtype, so float32 stays
bit-exact) and is written into checkpoints exactly (base64 of the raw little-endian bytes).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from hpo_cli.errors import ConfigError
from hpo_cli.hypergrad.registry import MethodSpec, method
from hpo_cli.validate import flag, is_int, is_number


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


TAPES = ("auto", "recompute", "graph")


@dataclass(frozen=True)
class HypergradRequest:
    """A hypergradient of ``method`` (a name in :mod:`hpo_cli.hypergrad.registry`) with its options:

    * ``truncate`` (reverse): differentiate through the last K steps only;
    * ``tape`` (reverse): ``recompute`` (store θ_t, v_t; recompute each step's linearization on
      the way back: least memory), ``graph`` (keep autograd's graph of the whole unroll, as
      higher and torchopt do: fastest), ``auto`` (graph when its estimated size fits
      ``memory_mb``, else recompute);
    * ``skip``, ``stride`` (drmad): skip the first fraction of the line, sample every n-th step;
    * ``fraction_bits`` (rmad_exact): the fixed-point precision;
    * ``tol`` (implicit): inner and CG tolerance; ``warm_start``: start from the previous solution;
    * ``steps`` (greedy, rtho): inner steps per hyper-iteration.

    ``state`` is what the previous hyper-iteration left (None at the first one, and for methods
    that start from θ0 each time)."""

    method: str
    truncate: int | None = None
    tape: str = "auto"
    memory_mb: float = 1024.0
    skip: float = 0.0
    stride: int = 1
    fraction_bits: int = 44
    tol: float = 1e-10
    warm_start: bool = True
    steps: int = 1
    state: InnerState | None = None

    def __post_init__(self) -> None:
        method(self.method)
        _check_options(self)

    @property
    def spec(self) -> MethodSpec:
        return method(self.method)

    @property
    def stateful(self) -> bool:
        """True when the result depends on state carried from earlier hyper-iterations."""
        return self.spec.online or (self.spec.warm and self.warm_start)

    def with_state(self, state: InnerState | None) -> HypergradRequest:
        return HypergradRequest(**{**self.options(), "method": self.method, "state": state})

    def options(self) -> dict[str, Any]:
        """The options by name (not the method, not the state)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("method", "state")}

    def to_dict(self) -> dict[str, Any]:
        state = None if self.state is None else self.state.to_dict()
        return {"method": self.method, **self.options(), "state": state}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HypergradRequest:
        state = d.get("state")
        options = {k: v for k, v in d.items() if k != "state"}
        return cls(**options, state=None if state is None else InnerState.from_dict(state))

    @classmethod
    def of(cls, method_name: str, options: Mapping[str, Any], key: str = "strategy.options") -> HypergradRequest:
        """A request built from a strategy's config; unknown options are a ConfigError."""
        known = {f.name for f in fields(cls)} - {"method", "state"}
        for name, value in options.items():
            if name not in known:
                raise ConfigError(f"{key}.{name}", value, f"not an option (they are: {', '.join(sorted(known))})")
        return cls(method_name, **dict(options))


def _check_options(r: HypergradRequest) -> None:
    key = "strategy.options"
    if r.truncate is not None and (not is_int(r.truncate) or r.truncate < 1):
        raise ConfigError(f"{key}.truncate", r.truncate, "must be a positive integer or null")
    if r.tape not in TAPES:
        raise ConfigError(f"{key}.tape", r.tape, f"must be one of {', '.join(TAPES)}")
    if not is_number(r.memory_mb) or not r.memory_mb > 0:
        raise ConfigError(f"{key}.memory_mb", r.memory_mb, "must be a positive number of megabytes")
    if not is_number(r.skip) or not 0.0 <= r.skip < 1.0:
        raise ConfigError(f"{key}.skip", r.skip, "must be a fraction in [0, 1)")
    for name in ("stride", "steps", "fraction_bits"):
        value = getattr(r, name)
        if not is_int(value) or value < 1:
            raise ConfigError(f"{key}.{name}", value, "must be a positive integer")
    if not is_number(r.tol) or not r.tol > 0:
        raise ConfigError(f"{key}.tol", r.tol, "must be a positive number")
    flag(r.warm_start, f"{key}.warm_start")
