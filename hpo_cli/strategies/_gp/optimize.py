"""Maximize an acquisition over the feature box: score candidates, then multi-start L-BFGS-B.

The feature box is [0, 1] along continuous dimensions and a category index along categorical
ones. L-BFGS-B moves the continuous coordinates only (categorical ones are held at their
start's value); a final coordinate search at each local maximum tries every other category of
each categorical dimension, and every value of each int given a grid (the ascent treats an int
as continuous, so it stops on the nearest peak along it and between two values; Optuna's GP
tries every value of an int with at most 16 values in the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import minimize

MAXITER = 50  # L-BFGS-B iterations per ascent (100 before): with maxfun = 2·MAXITER, a bound on its cost

# (points (m, d)) -> (values (m,), gradients (m, d) or None); with_gradient selects the second
Acquisition = Callable[[np.ndarray, bool], tuple[np.ndarray, np.ndarray | None]]
# (points (m, d)) -> (the points with their inactive coordinates at rest, the mask of those, (m, d))
Settle = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
# (lower, upper), shape (d,) each: the box the ascent stays in (a trust region); None: [0, 1]
Bounds = tuple[np.ndarray, np.ndarray] | None
# (dimension, the feature values it may take): a categorical's indices, or an int's encoded values
Grid = tuple[int, np.ndarray]


def top_starts(acq: Acquisition, candidates: np.ndarray, n_starts: int) -> np.ndarray:
    """The ``n_starts`` best distinct candidates, best first."""
    values, _ = acq(candidates, False)
    order = np.argsort(-values, kind="stable")
    _, first = np.unique(candidates[order], axis=0, return_index=True)
    return candidates[order[np.sort(first)][:n_starts]]


def local_ascent(
    acq: Acquisition,
    starts: np.ndarray,
    free: np.ndarray,
    maxiter: int,
    frozen: np.ndarray | None = None,
    bounds: Bounds = None,
) -> tuple[np.ndarray, np.ndarray]:
    """L-BFGS-B from every row of ``starts`` at once, over the ``free`` (continuous) coordinates
    in [0, 1], or in ``bounds`` where given.

    ``frozen`` (m, d): coordinates that stay where they start (a conditional parameter inactive at
    that start): their gradient is zeroed, so L-BFGS-B never moves them. At most ``maxiter``
    iterations and 2·``maxiter`` acquisition calls (line searches included), then one more.

    The starts are independent, so maximizing the sum of their acquisitions is maximizing each;
    one joint L-BFGS-B run evaluates all of them in one vectorized call per iteration, instead of
    one scipy loop per start (the loops' Python overhead dominated at these sizes).
    """
    points = starts.copy()
    if free.any():
        m, k = len(points), int(free.sum())
        lower, upper = (np.zeros(k), np.ones(k)) if bounds is None else (bounds[0][free], bounds[1][free])

        def negative(z: np.ndarray) -> tuple[float, np.ndarray]:
            points[:, free] = z.reshape(m, k)
            values, grad = acq(points, True)
            assert grad is not None
            if frozen is not None:
                grad = np.where(frozen, 0.0, grad)
            return -float(np.sum(values)), -grad[:, free].ravel()

        result = minimize(
            negative,
            starts[:, free].ravel(),
            jac=True,
            method="L-BFGS-B",
            bounds=list(zip(np.tile(lower, m), np.tile(upper, m), strict=True)),
            options={"maxiter": maxiter, "maxfun": 2 * maxiter},
        )
        points[:, free] = np.clip(result.x.reshape(m, k), lower, upper)
    values, _ = acq(points, False)
    return points, values


def improve_discrete(
    acq: Acquisition,
    point: np.ndarray,
    value: float,
    grids: Sequence[Grid],
    settle: Settle | None = None,
) -> tuple[np.ndarray, float]:
    """Coordinate search over discrete dimensions, one pass: each in turn takes the value of its
    grid where the acquisition is highest, the other coordinates held. The point's own value wins
    a tie; a coordinate between the grid's values (an int after the continuous ascent) always
    moves to one, so the point is scored where it will be suggested."""
    for dim, grid in grids:
        if len(grid) == 0:
            continue
        trials = np.repeat(point[None, :], len(grid), axis=0)
        trials[:, dim] = grid
        if settle is not None:
            trials = settle(trials)[0]
        values, _ = acq(trials, False)
        k = int(np.argmax(values))
        on_grid = bool(np.any(grid == point[dim]))
        if not on_grid or values[k] > value:
            point, value = trials[k], float(values[k])
    return point, value


def maximize(
    acq: Acquisition,
    candidates: np.ndarray,
    free: np.ndarray,
    grids: Sequence[Grid],
    n_starts: int,
    maxiter: int = MAXITER,
    settle: Settle | None = None,
    bounds: Bounds = None,
) -> list[tuple[np.ndarray, float]]:
    """Local maxima from the best candidates, best first.

    ``settle`` (conditional spaces): puts inactive coordinates at rest before they are scored,
    and keeps them there during the ascent, so the acquisition is searched over the active
    coordinates only. The number of acquisition evaluations is bounded: the candidates, then
    2·``maxiter`` + 1 calls of ``n_starts`` points and 2·``maxiter`` + 1 of one, then every choice
    of every categorical and every grid value of every int at each start. ``bounds``: the box the
    ascents stay in (the candidates should lie in it already).
    """
    frozen = None
    if settle is not None:
        candidates = settle(candidates)[0]
    starts = top_starts(acq, candidates, n_starts)
    if settle is not None:
        frozen = settle(starts)[1]
    points, values = local_ascent(acq, starts, free, maxiter, frozen, bounds)
    # the joint run stops when the starts together stop improving: polish the best one alone
    best = int(np.argmax(values))
    polished, value = local_ascent(
        acq, points[best : best + 1], free, maxiter, None if frozen is None else frozen[best : best + 1], bounds
    )
    if value[0] >= values[best]:
        points[best], values[best] = polished[0], value[0]
    results = [improve_discrete(acq, p, float(v), grids, settle) for p, v in zip(points, values, strict=True)]
    results.sort(key=lambda pv: -pv[1])
    return results
