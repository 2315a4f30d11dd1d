"""Maximize an acquisition over the feature box: score candidates, then multi-start L-BFGS-B.

The feature box is [0, 1] along continuous dimensions and a category index along categorical
ones. L-BFGS-B moves the continuous coordinates only (categorical ones are held at their
start's value); a final coordinate search tries every other category of each categorical
dimension at the best point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import minimize

# (points (m, d)) -> (values (m,), gradients (m, d) or None); with_gradient selects the second
Acquisition = Callable[[np.ndarray, bool], tuple[np.ndarray, np.ndarray | None]]


def top_starts(acq: Acquisition, candidates: np.ndarray, n_starts: int) -> np.ndarray:
    """The ``n_starts`` best distinct candidates, best first."""
    values, _ = acq(candidates, False)
    order = np.argsort(-values, kind="stable")
    _, first = np.unique(candidates[order], axis=0, return_index=True)
    return candidates[order[np.sort(first)][:n_starts]]


def local_ascent(acq: Acquisition, starts: np.ndarray, free: np.ndarray, maxiter: int) -> tuple[np.ndarray, np.ndarray]:
    """L-BFGS-B from every row of ``starts`` at once, over the ``free`` (continuous) coordinates in [0, 1].

    The starts are independent, so maximizing the sum of their acquisitions is maximizing each;
    one joint L-BFGS-B run evaluates all of them in one vectorized call per iteration, instead of
    one scipy loop per start (the loops' Python overhead dominated at these sizes).
    """
    points = starts.copy()
    if free.any():
        m, k = len(points), int(free.sum())

        def negative(z: np.ndarray) -> tuple[float, np.ndarray]:
            points[:, free] = z.reshape(m, k)
            values, grad = acq(points, True)
            assert grad is not None
            return -float(np.sum(values)), -grad[:, free].ravel()

        result = minimize(
            negative,
            starts[:, free].ravel(),
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, 1.0)] * (m * k),
            options={"maxiter": maxiter},
        )
        points[:, free] = np.clip(result.x, 0.0, 1.0).reshape(m, k)
    values, _ = acq(points, False)
    return points, values


def improve_categories(
    acq: Acquisition, point: np.ndarray, value: float, sizes: Sequence[tuple[int, int]]
) -> tuple[np.ndarray, float]:
    """Coordinate search over categorical dimensions: ``sizes`` lists (dimension, number of choices)."""
    for dim, count in sizes:
        trials = np.repeat(point[None, :], count, axis=0)
        trials[:, dim] = np.arange(count)
        values, _ = acq(trials, False)
        k = int(np.argmax(values))
        if values[k] > value:
            point, value = trials[k], float(values[k])
    return point, value


def maximize(
    acq: Acquisition,
    candidates: np.ndarray,
    free: np.ndarray,
    category_sizes: Sequence[tuple[int, int]],
    n_starts: int,
    maxiter: int = 100,
) -> list[tuple[np.ndarray, float]]:
    """Local maxima from the best candidates, best first."""
    points, values = local_ascent(acq, top_starts(acq, candidates, n_starts), free, maxiter)
    # the joint run stops when the starts together stop improving: polish the best one alone
    best = int(np.argmax(values))
    polished, value = local_ascent(acq, points[best : best + 1], free, maxiter)
    if value[0] >= values[best]:
        points[best], values[best] = polished[0], value[0]
    results = [improve_categories(acq, p, float(v), category_sizes) for p, v in zip(points, values, strict=True)]
    results.sort(key=lambda pv: -pv[1])
    return results
