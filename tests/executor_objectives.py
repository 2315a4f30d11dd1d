"""Objectives of the executor tests (``task=function task.fn=executor_objectives.NAME``): they
must be importable by worker processes, so they live in a module, not in a test."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np


def noisy(params: Mapping[str, Any]) -> float:
    """Draws from numpy's global generator: the same value only where the trial's seed is."""
    return float(params["x1"]) ** 2 + float(params["x2"]) + float(np.random.rand())


def dies_above_5(params: Mapping[str, Any]) -> float:
    """The worker process is killed (as the kernel's OOM killer would) when x1 > 5."""
    if float(params["x1"]) > 5.0:
        os.kill(os.getpid(), 9)
    return float(params["x1"]) ** 2


def hangs_above_8(params: Mapping[str, Any]) -> float:
    if float(params["x1"]) > 8.0:
        time.sleep(600)
    return float(params["x1"]) ** 2


def slow_square(params: Mapping[str, Any]) -> float:
    """Takes a while, longer on one side, so that trials finish out of order."""
    time.sleep(0.05 + 0.1 * (float(params["x1"]) > 2.5))
    return (float(params["x1"]) - 2.5) ** 2 + (float(params["x2"]) - 7.5) ** 2


def heavy_modules(params: Mapping[str, Any]) -> dict[str, float]:
    """Reports which heavy libraries the worker has loaded: a function task needs none."""
    import sys

    loaded = {name: float(name in sys.modules) for name in ("torch", "matplotlib", "sklearn")}
    return {"value": float(params["x1"]) ** 2, **{f"{name}_loaded": flag for name, flag in loaded.items()}}


def sleeps_long(params: Mapping[str, Any]) -> float:
    """Leaves ``running-PID`` in the current folder, then keeps its worker busy long enough for
    the driver to be killed under it."""
    from pathlib import Path

    (Path.cwd() / f"running-{os.getpid()}").touch()
    time.sleep(60)
    return float(params["x1"])


def naps(params: Mapping[str, Any]) -> float:
    """Sleeps 2 s (trials overlap on every worker), then the square of x1."""
    time.sleep(2.0)
    return float(params["x1"]) ** 2
