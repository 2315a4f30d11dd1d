"""Errors that reach the user as one line instead of a traceback."""

from __future__ import annotations

import sys
from typing import Any, NoReturn


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


def fail(message: str, code: int = 2) -> NoReturn:
    """The one way a command reports bad input: one line on stderr, no traceback."""
    print(f"hpo: error: {message}", file=sys.stderr)
    raise SystemExit(code)
