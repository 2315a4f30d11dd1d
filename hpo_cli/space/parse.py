"""Reading a space from its config mapping (``space.params`` of a space YAML)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from hpo_cli.errors import ConfigError
from hpo_cli.space.params import CategoricalParam, Conditions, FloatParam, IntParam, Param, SearchSpace
from hpo_cli.validate import flag, is_int, is_number


def parse_space(
    raw: Mapping[str, Any] | None, dimensions: Mapping[str, int], prefix: str = "space.params"
) -> SearchSpace:
    """Build a space from its config mapping ``{name: {type: ..., ...}}``.

    ``dimensions`` names the vector lengths the task fixes (e.g. ``{"n_coefficients": 12}``).
    Raises :class:`ConfigError` naming the bad key and value.
    """
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(prefix, raw, "expected a mapping {name: {type: ..., ...}}, one entry per parameter")
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
        never = [v for v in values if not _can_take(known[parent], v)]
        if never:
            raise ConfigError(
                f"{key}.{parent}", never[0], f"{parent!r} never takes this value, so the parameter would never be used"
            )
        conditions.append((str(parent), values))
    return tuple(conditions)


def _can_take(param: Param, value: Any) -> bool:
    """Whether ``param`` can ever have ``value`` (a float: any number within its bounds)."""
    if isinstance(param, FloatParam):
        return is_number(value) and param.low <= value <= param.high
    return param.contains(value)
