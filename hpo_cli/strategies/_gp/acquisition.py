"""Acquisition functions for minimization, each to be *maximized*, with gradients.

Inputs are the GP's posterior mean μ and standard deviation σ (standardized units) and their
gradients with respect to the point; ``best`` is the incumbent (lowest) standardized value.

* ``ei``: log expected improvement, log E[max(best − f, 0)] = log σ + log h(z), z = (best − μ)/σ,
  h(z) = φ(z) + zΦ(z). h is computed through erfcx where z is negative, so log-EI stays finite
  and smooth far from the incumbent (where plain EI underflows to 0 and its gradient vanishes).
* ``pi``: log probability of improvement, log Φ(z).
* ``lcb`` (alias ``ucb``): −(μ − βσ): the lower confidence bound of a loss; the lecture's upper
  bound μ + βσ of the value being maximized (the loop hands strategies −value for maximization).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erfcx, log_ndtr, ndtr

ACQUISITIONS = ("ei", "pi", "lcb", "ucb")  # ucb: the same bound, by the name used for maximization
_SQRT_HALF_PI = math.sqrt(math.pi / 2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def log_h(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(φ(z) + zΦ(z)) and its derivative Φ(z) / h(z), stable for all z."""
    z = np.asarray(z, dtype=float)
    value, slope = np.empty_like(z), np.empty_like(z)
    up = z >= 0.0  # no cancellation: h directly (erfcx would overflow for large z)
    zu = z[up]
    h = np.exp(-0.5 * zu**2 - _LOG_SQRT_2PI) + zu * ndtr(zu)
    value[up], slope[up] = np.log(h), ndtr(zu) / h
    zd = z[~up]
    log_phi = -0.5 * zd**2 - _LOG_SQRT_2PI
    # Φ(z)/φ(z) = sqrt(π/2) erfcx(−z/√2): finite for very negative z
    ratio = _SQRT_HALF_PI * erfcx(-zd / math.sqrt(2.0))
    w = 1.0 + zd * ratio  # h / φ; cancels badly for z << 0, where the asymptotic series takes over
    far = zd < -25.0
    w[far] = (1.0 - 3.0 / zd[far] ** 2 + 15.0 / zd[far] ** 4) / zd[far] ** 2
    value[~up], slope[~up] = log_phi + np.log(w), ratio / w
    return value, slope


def acquisition(
    name: str,
    mean: np.ndarray,
    std: np.ndarray,
    best: float,
    beta: float = 2.0,
    dmean: np.ndarray | None = None,
    dstd: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Values, shape (m,), and (when ``dmean``/``dstd``, shape (m, d), are given) gradients."""
    if name in ("lcb", "ucb"):
        value = -(mean - beta * std)
        grad = None if dmean is None or dstd is None else -(dmean - beta * dstd)
        return value, grad
    z = (best - mean) / std
    if name == "ei":
        lh, dlh = log_h(z)
        value = np.log(std) + lh
        if dmean is None or dstd is None:
            return value, None
        dz = (-dmean - z[:, None] * dstd) / std[:, None]
        return value, dstd / std[:, None] + dlh[:, None] * dz
    if name == "pi":
        value = log_ndtr(z)
        if dmean is None or dstd is None:
            return value, None
        dz = (-dmean - z[:, None] * dstd) / std[:, None]
        # φ(z)/Φ(z) = 1 / (sqrt(π/2) erfcx(−z/√2)), stable for z << 0
        inv_mills = 1.0 / (_SQRT_HALF_PI * erfcx(-z / math.sqrt(2.0)))
        return value, inv_mills[:, None] * dz
    raise ValueError(f"unknown acquisition {name!r} (known: {', '.join(ACQUISITIONS)})")


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """Plain EI, for tests and reports."""
    z = (best - mean) / std
    return std * (np.exp(-0.5 * z**2 - _LOG_SQRT_2PI) + z * ndtr(z))
