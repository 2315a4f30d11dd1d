"""Learning curves: the trainers' per-epoch (or per-step) hook, and where its values go.

A trainer calls :func:`report` after each epoch with what it measured; tasks and trainers never
know whether anybody listens. :func:`evaluate_trial` (wherever the trial runs: in the driver, a
worker process, a Ray actor or a SLURM job) evaluates the objective inside :func:`recording`,
and the curves travel back to the driver in the trial's record (``TrialRecord.curves``), where
the loggers read them. Outside a recording, :func:`report` does nothing and reads no value (a
tensor stays on its device: no host sync).

The recording in progress is a :class:`contextvars.ContextVar`: set and reset around one
evaluation, so threads and nested evaluations never mix their curves.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

Curves = dict[str, list[list[float]]]  # name -> [[step, value], ...] in the order reported

_RECORDING: ContextVar[Curves | None] = ContextVar("hpo_cli_curves", default=None)


@contextmanager
def recording() -> Iterator[Curves]:
    """Collect what :func:`report` is given inside the block; yields the (growing) curves."""
    curves: Curves = {}
    token = _RECORDING.set(curves)
    try:
        yield curves
    finally:
        _RECORDING.reset(token)


def is_recording() -> bool:
    return _RECORDING.get() is not None


def report(step: int, **scalars: Any) -> None:
    """Values at ``step`` (an epoch or step number): floats, or 0-d tensors read only when a
    recording listens. Non-finite values are kept out (JSON has no NaN)."""
    curves = _RECORDING.get()
    if curves is None:
        return
    for name, value in scalars.items():
        number = float(value)
        if math.isfinite(number):
            curves.setdefault(name, []).append([int(step), number])
