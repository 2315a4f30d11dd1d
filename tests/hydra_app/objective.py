"""The objective of the Hydra test app (tests/hydra_app/app.py), importable as a plain function.

``hpo run task=function task.fn=objective.f`` (with this folder on PYTHONPATH) and a sweep of
``app.py`` compute the very same value for the same parameters. ``f`` is strict about types
(``k`` an int, ``opt`` a string): a sweep that rendered ``k=2`` as ``k=2.0`` fails its trials.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

OPT_PENALTY = {"sgd": 0.0, "adam": 0.5, "rmsprop": 1.0}


def branin(x1: float, x2: float) -> float:
    """Branin-Hoo on x1 in [-5, 10], x2 in [0, 15]: minimum 0.397887 at (pi, 2.275) and two others."""
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def f(params: Mapping[str, Any]) -> float:
    """Branin of (x1, x2) + 0.1 * k + a penalty per optimizer ``opt``."""
    x1, x2, k, opt = params["x1"], params["x2"], params["k"], params["opt"]
    for name, value, kinds in (("x1", x1, (int, float)), ("x2", x2, (int, float)), ("k", k, int), ("opt", opt, str)):
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise TypeError(f"{name}={value!r} is a {type(value).__name__}")
    if opt not in OPT_PENALTY:
        raise ValueError(f"opt={opt!r}: not one of {sorted(OPT_PENALTY)}")
    return branin(float(x1), float(x2)) + 0.1 * k + OPT_PENALTY[opt]
