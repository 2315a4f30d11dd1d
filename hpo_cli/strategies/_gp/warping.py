"""Input warping: each continuous input through a Kumaraswamy CDF before the kernel sees it.

A stationary kernel assumes the loss varies on one scale across the whole box. Many objectives
do not: a learning rate matters near its small end, an ill-conditioned bowl bends sharply near its
floor. Snoek et al. (2014) warp each input through a Beta CDF whose two shape parameters are fitted
with the GP's; BoTorch and HEBO use the Kumaraswamy CDF, which has a closed form:

    w(x) = 1 − (1 − x^a)^b,    a, b > 0,

the identity at a = b = 1, concave for a < 1 (stretches the low end), convex for b < 1 (the high
end). x is first squeezed into [ε, 1 − ε] so the slopes stay finite at the faces. Categorical
dimensions (category indices) are not warped.

Parameters are the logs of (a, b) per warped dimension, shape (2, k) for the ``k`` warped ones;
every derivative here is written out and checked against finite differences in ``tests/test_gp.py``.
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-7
LOG_CONCENTRATION_BOUNDS = (math.log(0.1), math.log(10.0))
LOG_CONCENTRATION_SD = math.sqrt(0.75)  # log a, log b ~ normal, mean 0, variance 0.75: BoTorch's default


def _squeezed(x: np.ndarray) -> np.ndarray:
    return EPS + (1.0 - 2.0 * EPS) * np.clip(x, 0.0, 1.0)


def warp(x: np.ndarray, log_ab: np.ndarray, warped: np.ndarray) -> np.ndarray:
    """``x`` (m, d) with the ``warped`` columns (bool mask, ``k`` true) through their CDFs."""
    out = np.array(x, dtype=float, copy=True)
    a, b = np.exp(log_ab)
    u = _squeezed(x[:, warped]) ** a
    out[:, warped] = 1.0 - (1.0 - u) ** b
    return out


def warp_slope(x: np.ndarray, log_ab: np.ndarray, warped: np.ndarray) -> np.ndarray:
    """d w / d x, shape (m, d): 1 along the columns that are not warped."""
    slope = np.ones(x.shape, dtype=float)
    a, b = np.exp(log_ab)
    s = _squeezed(x[:, warped])
    u = s**a
    slope[:, warped] = (1.0 - 2.0 * EPS) * a * b * s ** (a - 1.0) * (1.0 - u) ** (b - 1.0)
    return slope


def warp_parameter_slopes(x: np.ndarray, log_ab: np.ndarray, warped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d w / d log a and d w / d log b of the warped columns, each shape (m, k)."""
    a, b = np.exp(log_ab)
    s = _squeezed(x[:, warped])
    u = s**a
    rest = 1.0 - u
    d_log_a = a * b * rest ** (b - 1.0) * u * np.log(s)
    d_log_b = -b * rest**b * np.log(rest)
    return d_log_a, d_log_b
