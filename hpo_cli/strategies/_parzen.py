"""Parzen estimators for TPE: weighted mixtures over the unit cube, one component per observation
plus one wide *prior* component.

A component is a product of truncated normals on [0, 1] for the numeric coordinates (floats,
log floats and ints, as the space encodes them) and of categorical distributions for the
categorical parameters (Aitchison–Aitken: the observed choice keeps ``1 − b``, the others share
``b``). Two bandwidth rules (Watanabe 2023 compares them):

* ``neighbours`` (univariate TPE, Bergstra 2011): a component's width is the larger distance to
  its neighbours along that coordinate, so dense regions get narrow kernels;
* ``scott`` (multivariate TPE, Falkner 2018): one width per coordinate, 0.2·n^(−1/(d+4)).

Widths are clipped below by 1/min(100, n + 2) (hyperopt's "magic clip") and by a coordinate's own
resolution (an int's cell), and above by 1. The prior component sits at 0.5 with width 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp, ndtr, ndtri

PRIOR_WIDTH = 1.0
SCOTT_SCALE = 0.2
_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


@dataclass(frozen=True)
class Mixture:
    """Components c = 0..n−1 (the prior one last): ``log_weights`` (n,), numeric ``centers`` and
    ``widths`` (n, d), ``categorical`` log-probabilities, one (n, K_j) array per parameter."""

    log_weights: np.ndarray
    centers: np.ndarray
    widths: np.ndarray
    categorical: tuple[np.ndarray, ...]

    def sample(self, rng: np.random.Generator, m: int, joint: bool) -> tuple[np.ndarray, np.ndarray]:
        """``m`` draws: numeric (m, d) in [0, 1] and categorical indices (m, J). ``joint``: one
        component per draw for all coordinates; otherwise one per draw and coordinate."""
        probs = np.exp(self.log_weights)
        d, n_categorical = self.centers.shape[1], len(self.categorical)
        width = 1 if joint else d + n_categorical
        which = rng.choice(len(probs), size=(m, width), p=probs / probs.sum())
        numeric_which = which[:, :1] if joint else which[:, :d]
        cols = np.arange(d)[None, :]
        mu, sigma = self.centers[numeric_which, cols], self.widths[numeric_which, cols]
        lo, hi = ndtr(-mu / sigma), ndtr((1 - mu) / sigma)
        u = lo + rng.random(mu.shape) * (hi - lo)
        numeric = np.clip(mu + sigma * ndtri(np.clip(u, 1e-300, 1 - 1e-16)), 0.0, 1.0)
        choices = np.zeros((m, n_categorical), dtype=int)
        for j, logp in enumerate(self.categorical):
            component = which[:, 0] if joint else which[:, d + j]
            cumulative = np.cumsum(np.exp(logp[component]), axis=1)
            draws = rng.random((m, 1)) * cumulative[:, -1:]
            choices[:, j] = np.minimum((cumulative < draws).sum(axis=1), logp.shape[1] - 1)
        return numeric, choices

    def given(self, choices: np.ndarray) -> Mixture:
        """The mixture conditioned on the categorical values ``choices`` (J,): each component
        reweighted by its probability of them, and those categoricals certain."""
        log_weights = self.log_weights + sum(
            (logp[:, int(c)] for logp, c in zip(self.categorical, choices, strict=True)), np.zeros(1)
        )
        log_weights = log_weights - logsumexp(log_weights)
        certain = []
        for logp, c in zip(self.categorical, choices, strict=True):
            onehot = np.full(logp.shape, -np.inf)
            onehot[:, int(c)] = 0.0
            certain.append(onehot)
        return Mixture(log_weights, self.centers, self.widths, tuple(certain))

    def categorical_log_density(self, choices: np.ndarray) -> np.ndarray:
        """log of the mixture's probability of the categorical values ``choices`` (m, J), the
        numeric coordinates marginalized out: shape (m,)."""
        terms = np.zeros((len(choices), len(self.log_weights)))
        for j, logp in enumerate(self.categorical):
            terms = terms + logp[:, choices[:, j]].T
        return logsumexp(self.log_weights[None, :] + terms, axis=1)

    def log_density_terms(self, numeric: np.ndarray, choices: np.ndarray) -> np.ndarray:
        """log k_c(x) per point, component and coordinate: shape (m, n, d + J)."""
        mu, sigma = self.centers[None], self.widths[None]
        z = (numeric[:, None, :] - mu) / sigma
        mass = np.log(np.maximum(ndtr((1 - mu) / sigma) - ndtr(-mu / sigma), 1e-300))
        terms = [-0.5 * z**2 - _LOG_SQRT_2PI - np.log(sigma) - mass]
        for j, logp in enumerate(self.categorical):
            terms.append(logp[:, choices[:, j]].T[:, :, None])
        return np.concatenate(terms, axis=2) if terms else np.zeros((len(numeric), len(self.log_weights), 0))

    def log_density(self, numeric: np.ndarray, choices: np.ndarray, joint: bool) -> np.ndarray:
        """log of the mixture density: (m,) over all coordinates together when ``joint``, else
        (m, d + J), each coordinate's own one-dimensional mixture."""
        terms = self.log_density_terms(numeric, choices)
        if joint:
            return logsumexp(self.log_weights[None, :] + terms.sum(axis=2), axis=1)
        return logsumexp(self.log_weights[None, :, None] + terms, axis=1)


def neighbour_widths(centers: np.ndarray) -> np.ndarray:
    """Per coordinate, each center's larger gap to its sorted neighbours; the outermost centers
    use their inner gap only (the cube's faces are not neighbours). centers: (n, d) → (n, d)."""
    n = centers.shape[0]
    order = np.argsort(centers, axis=0, kind="stable")
    ordered = np.take_along_axis(centers, order, axis=0)
    padded = np.vstack([np.zeros((1, centers.shape[1])), ordered, np.ones((1, centers.shape[1]))])
    left, right = padded[1:-1] - padded[:-2], padded[2:] - padded[1:-1]
    gaps = np.maximum(left, right)
    if n >= 2:
        gaps[0], gaps[-1] = right[0], left[-1]
    widths = np.empty_like(gaps)
    np.put_along_axis(widths, order, gaps, axis=0)
    return widths


def build_mixture(
    numeric: np.ndarray,
    choices: np.ndarray,
    n_choices: list[int],
    *,
    weights: np.ndarray,
    prior_weight: float,
    rule: str,
    min_width: np.ndarray,
    categorical_smoothing: float,
) -> Mixture:
    """The mixture of the observations (``numeric`` (n, d), ``choices`` (n, J) indices, their
    ``weights`` (n,)) and the prior. ``min_width``: each numeric coordinate's resolution (d,)."""
    n, d = numeric.shape
    if rule == "scott":
        widths = np.full((n, d), SCOTT_SCALE * max(n, 1) ** (-1.0 / (d + 4)))
    else:
        widths = neighbour_widths(numeric) if n else np.zeros((0, d))
    floor = np.maximum(1.0 / min(100.0, n + 2.0), min_width)
    widths = np.clip(widths, floor, PRIOR_WIDTH)
    centers = np.vstack([numeric, np.full((1, d), 0.5)])
    widths = np.vstack([widths, np.full((1, d), PRIOR_WIDTH)])
    categorical = []
    for j, k in enumerate(n_choices):
        b = categorical_smoothing * (k - 1) / k
        probs = np.full((n + 1, k), b / max(k - 1, 1))
        probs[np.arange(n), choices[:, j]] = 1.0 - b
        probs[n] = 1.0 / k
        categorical.append(np.log(probs))
    all_weights = np.append(np.asarray(weights, dtype=float), prior_weight)
    log_weights = np.log(all_weights / all_weights.sum())
    return Mixture(log_weights, centers, widths, tuple(categorical))
