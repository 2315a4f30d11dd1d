"""Hydra's override grammar as a search space: each sweep form becomes one of our parameters.

| grammar | parameter | values |
|---|---|---|
| ``interval(a, b)`` | float | a <= x <= b (both bounds can be drawn) |
| ``tag(log, interval(a, b))`` | float, log scale | a <= x <= b, a > 0 |
| ``int(interval(a, b))`` | int | a <= k <= b (both inclusive) |
| ``tag(log, int(interval(a, b)))`` | int, log scale | a <= k <= b, a > 0 |
| ``range(a, b)``, ``int(range(a, b))`` | int | a <= k < b (b excluded, as Python's range) |
| ``range(a, b, s)`` (ints) | int, step s | a, a + s, ... < b |
| ``range(a, b, s)`` (floats) | categorical | the values Hydra's range lists |
| ``choice(u, v, ...)``, ``u,v,...``, ``sort(...)`` | categorical | the values themselves (int, float, str, bool) |
| ``value`` | not searched | passed to every job as it is |

``shuffle``, tags other than ``log``, ``glob``, and ``tag(log, ...)`` on a range or a choice,
have no meaning for a search and are refused in one line naming the key (``sort`` is accepted:
the order of choices does not matter to a search).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hpo_cli.errors import ConfigError
from hpo_cli.space import SearchSpace, parse_space

LOG = "log"
PLAIN = re.compile(r"[A-Za-z_][\w\-./]*")  # read by Hydra as this very string
RESERVED = {"true", "false", "null", "nan", "inf"}


def parse_params(params: Mapping[str, Any], prefix: str = "hydra.sweeper.params") -> tuple[SearchSpace, dict[str, str]]:
    """(the search space, the fixed overrides) of ``{dotted key: grammar string}``; nested
    mappings (``hydra.sweeper.params.optimizer.lr=...`` on the command line) are flattened."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    specs: dict[str, dict[str, Any]] = {}
    fixed: dict[str, str] = {}
    for key, text in flatten(params).items():
        try:
            override = parser.parse_override(f"{key}={text}")
        except HydraException as exc:
            raise ConfigError(f"{prefix}.{key}", text, f"not Hydra's override grammar ({_first_line(exc)})") from None
        if override.is_sweep_override():
            specs[key] = spec_of(override.value(), f"{prefix}.{key}", text)
        else:
            fixed[key] = str(text)
    if not specs:
        raise ConfigError(prefix, dict(params), "no parameter to search: give at least one interval, range or choice")
    return parse_space(specs, {}, prefix=prefix), fixed


def spec_of(sweep: Any, key: str, text: Any) -> dict[str, Any]:
    """Our space YAML entry for one of Hydra's sweeps (see the module's table)."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    tags = set(getattr(sweep, "tags", ()) or ())
    if getattr(sweep, "shuffle", False) or tags - {LOG}:
        raise ConfigError(key, text, "shuffle and tags other than log have no meaning for a search")
    log = LOG in tags
    if isinstance(sweep, IntervalSweep):
        integer = isinstance(sweep.start, int) and isinstance(sweep.end, int)
        return {"type": "int" if integer else "float", "low": sweep.start, "high": sweep.end, "log": log}
    if log:
        raise ConfigError(key, text, "tag(log, ...) applies to an interval only")
    if isinstance(sweep, RangeSweep):
        return _range_spec(sweep, key, text)
    if isinstance(sweep, ChoiceSweep):
        choices = list(sweep.list)
        if any(isinstance(c, Mapping | list) for c in choices):
            raise ConfigError(key, text, "choices must be plain values (int, float, string, bool)")
        return {"type": "categorical", "choices": choices}
    raise ConfigError(key, text, "not a search form (use interval, range or choice)")


def _range_spec(sweep: Any, key: str, text: Any) -> dict[str, Any]:
    if not sweep.step:
        raise ConfigError(key, text, "a range needs a step other than 0")
    values = list(sweep.range())  # Hydra's own enumeration (in Decimal for floats: 0.3, not 0.30000000000000004)
    if not values:
        raise ConfigError(key, text, "the range is empty")
    if all(isinstance(v, int) for v in values):
        step = abs(values[1] - values[0]) if len(values) > 1 else 1
        return {"type": "int", "low": min(values), "high": max(values), "step": step}
    return {"type": "categorical", "choices": values}


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in params.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{key}."))
        else:
            flat[key] = value
    return flat


def as_override(key: str, value: Any) -> str:
    """``key=value`` for a job: ints as int literals, floats at full precision, strings quoted
    when Hydra's grammar would read them otherwise."""
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if isinstance(value, int | float):
        return f"{key}={value!r}"
    if value is None:
        return f"{key}=null"
    text = str(value)
    if PLAIN.fullmatch(text) is not None and text.lower() not in RESERVED:
        return f"{key}={text}"
    return f"{key}='{_escaped(text)}'"


def _escaped(text: str) -> str:
    """``text`` inside Hydra's single quotes: quotes escaped, and the backslashes before them
    (or at the end) doubled."""
    out, pending = [], 0  # pending: backslashes seen just before this character
    for char in text:
        if char == "\\":
            pending += 1
            continue
        if char == "'":
            out.append("\\" * (2 * pending) + "\\'")
        else:
            out.append("\\" * pending + char)
        pending = 0
    out.append("\\" * (2 * pending))
    return "".join(out)


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160]
