"""Errors that reach the user as one line instead of a traceback."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """Bad user input: a config key with an invalid value.

    The CLI prints ``hpo: error: key=value: reason`` and exits with code 2.
    """

    def __init__(self, key: str, value: Any, reason: str) -> None:
        self.key = key
        self.value = value
        self.reason = reason
        super().__init__(f"{key}={value!r}: {reason}")


class ResumeError(RuntimeError):
    """A run directory that cannot be resumed as asked (changed config, diverged replay)."""
