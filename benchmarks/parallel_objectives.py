"""Objectives of benchmarks/parallel_executors.py (importable by worker processes)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

CPU_SECONDS = 0.2


def cpu_bound(params: Mapping[str, Any]) -> float:
    """~0.2 s of one core (small matrix products until the process has used CPU_SECONDS)."""
    start = time.process_time()
    a = np.random.default_rng(0).random((64, 64))
    while time.process_time() - start < CPU_SECONDS:
        a = a @ a
        a /= np.abs(a).max()
    return float(params["x1"]) ** 2 + float(params["x2"]) ** 2


def trivial(params: Mapping[str, Any]) -> float:
    return float(params["x1"]) ** 2 + float(params["x2"]) ** 2


SLEEP_MEDIAN_S = 2.0


def sleeps_lognormal(params: Mapping[str, Any]) -> float:
    """Sleeps a lognormal time (median SLEEP_MEDIAN_S, σ 0.5) drawn from numpy's global
    generator, which the executor seeds per trial: benchmarks/scale.py's real workers."""
    time.sleep(SLEEP_MEDIAN_S * float(np.exp(0.5 * np.random.standard_normal())))
    return float(params["x1"]) ** 2 + float(params["x2"]) ** 2
