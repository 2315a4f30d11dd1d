"""Checks for config values: each returns the typed value or raises a ConfigError naming it."""

from __future__ import annotations

from typing import Any

from hpo_cli.errors import ConfigError


def is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def positive_int(value: Any, key: str) -> int:
    if not is_int(value) or value < 1:
        raise ConfigError(key, value, "must be a positive integer")
    return int(value)


def non_negative_int(value: Any, key: str) -> int:
    if not is_int(value) or value < 0:
        raise ConfigError(key, value, "must be a non-negative integer")
    return int(value)


def positive_float(value: Any, key: str) -> float:
    if not is_number(value) or not value > 0:
        raise ConfigError(key, value, "must be a positive number")
    return float(value)


def flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, value, "must be true or false")
    return value


def one_of(value: Any, key: str, allowed: tuple[Any, ...]) -> Any:
    if value not in allowed:
        shown = ", ".join("null" if a is None else str(a) for a in allowed)
        raise ConfigError(key, value, f"must be one of {shown}")
    return value
