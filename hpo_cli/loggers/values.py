"""A trial's record as the flat name -> value pairs trackers take (shared by the loggers)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from hpo_cli.trial import TrialRecord

VECTOR_LIMIT = 64  # longer vectors (a per-weight space) are summarized: trials.jsonl has them whole


def flat_params(params: Mapping[str, Any], limit: int = VECTOR_LIMIT) -> dict[str, Any]:
    """Scalars as they are, vectors as ``name[i]`` (or ``name.min/.mean/.max`` beyond ``limit``
    entries); inactive (None) parameters are left out."""
    flat: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, list | tuple) and len(value) > limit:
            array = np.asarray(value, dtype=float)
            flat.update({f"{name}.min": float(array.min()), f"{name}.mean": float(array.mean())})
            flat[f"{name}.max"] = float(array.max())
        elif isinstance(value, list | tuple):
            flat.update({f"{name}[{i}]": v for i, v in enumerate(value)})
        elif value is not None:
            flat[name] = value
    return flat


def numbers(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numeric entries (booleans and strings left out), names prefixed."""
    out = {}
    for name, value in values.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[prefix + str(name)] = float(value)
    return out


def trial_scalars(record: TrialRecord) -> dict[str, float]:
    """What a trial measured: ``value`` (complete trials), its metrics, ``seconds``, ``cost.*``."""
    scalars = {} if record.value is None else {"value": float(record.value)}
    scalars.update(numbers(record.metrics))
    scalars["seconds"] = float(record.seconds)
    scalars.update(numbers(record.cost, "cost."))
    return scalars


def gradient_norm(record: TrialRecord) -> float | None:
    """The Euclidean norm of the hypergradient a gradient strategy asked for, if any."""
    if record.gradient is None:
        return None
    return float(np.linalg.norm(np.asarray(record.gradient, dtype=float)))


def is_better(value: float, best: float | None, direction: str) -> bool:
    return best is None or (value < best if direction == "minimize" else value > best)
