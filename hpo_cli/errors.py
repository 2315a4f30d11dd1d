"""Errors that reach the user as one line instead of a traceback."""

from __future__ import annotations

import sys
from typing import Any, NoReturn


class ConfigError(ValueError):
    """Bad user input: a config key with an invalid value.

    The CLI prints ``hpo: error: key=value: reason`` and exits with code 2.
    """

    exit_code = 2

    def __init__(self, key: str, value: Any, reason: str) -> None:
        self.key = key
        self.value = value
        self.reason = reason
        super().__init__(f"{key}={value!r}: {reason}")


class RunDirError(RuntimeError):
    """A run directory that cannot be used as asked: in use by another process, damaged files.

    The CLI prints the message as one line and exits with ``exit_code``."""

    exit_code = 2


class DiskFullError(RunDirError):
    """The disk filled up during a run: it ended with status "failed" and can be resumed."""

    exit_code = 1


class ResumeError(RunDirError):
    """A run directory that cannot be resumed as asked (changed config, diverged replay)."""


def fail(message: str, code: int = 2) -> NoReturn:
    """The one way a command reports bad input: one line on stderr, no traceback."""
    print(f"hpo: error: {message}", file=sys.stderr)
    raise SystemExit(code)
