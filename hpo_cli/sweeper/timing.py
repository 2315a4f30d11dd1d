"""Each job's own duration: the sweeper hands the launcher the app's task function wrapped in
:class:`TimedTask`, so a trial's ``seconds`` is its job's, not its whole batch's launch.

Standard library only: launchers pickle the wrapper to their workers (joblib, submitit).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SECONDS_ATTRIBUTE = "hpo_job_seconds"  # set on a job's exception: how long it ran before raising


@dataclass(frozen=True)
class Timed:
    """A job's return value and the seconds its task function took."""

    value: Any
    seconds: float


@dataclass(frozen=True)
class TimedTask:
    """The app's task function, timed: returns :class:`Timed`; an exception it raises carries
    its seconds in ``hpo_job_seconds``."""

    function: Callable[[Any], Any]

    def __call__(self, cfg: Any) -> Timed:
        started = time.perf_counter()
        try:
            value = self.function(cfg)
        except Exception as exc:
            with contextlib.suppress(AttributeError):  # an exception type without a __dict__
                setattr(exc, SECONDS_ATTRIBUTE, time.perf_counter() - started)
            raise
        return Timed(value, time.perf_counter() - started)


def job_seconds(returned: Any, fallback: float) -> float:
    """The seconds of a job (Hydra's JobReturn) that ran in a :class:`TimedTask`; ``fallback``
    when it did not say."""
    value = getattr(returned, "_return_value", None)
    if isinstance(value, Timed):
        return value.seconds
    seconds = getattr(value, SECONDS_ATTRIBUTE, None)
    return float(seconds) if isinstance(seconds, int | float) else fallback


def unwrapped(value: Any) -> Any:
    """A job's own return value."""
    return value.value if isinstance(value, Timed) else value
