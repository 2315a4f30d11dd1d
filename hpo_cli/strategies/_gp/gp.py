"""A Gaussian-process regression model: Matérn 5/2 kernel with one length scale per dimension.

numpy/scipy in float64 on the CPU, by choice: the matrices of black-box optimization are small
(tens to hundreds of observations), where one LAPACK call costs microseconds and torch's
per-call overhead and autograd tape would dominate. Every gradient here is written out and
checked against finite differences in ``tests/test_gp.py``.

Inputs are feature matrices, shape (n, d). A dimension flagged in ``categorical`` holds a
category index; its distance is 0 or 1 (Hamming), scaled by its own length scale. The other
dimensions are coordinates in the unit cube. Outputs are standardized inside :func:`fit_gp`.

Hyperparameters θ = (log length scales (d), log signal variance, log noise variance) are fitted
by maximizing the log marginal likelihood, plus weak log-normal priors by default (a MAP fit:
with ten points the plain likelihood often prefers length scales of 0.01 or 100, and the
acquisition then explores at random), with L-BFGS-B from several starts. With ``warp=True`` the
continuous inputs first pass through Kumaraswamy CDFs (:mod:`hpo_cli.strategies._gp.warping`),
whose log shape parameters are fitted jointly with θ.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.optimize import minimize

from hpo_cli.strategies._gp import warping
from hpo_cli.strategies._gp.outputs import transform_outputs

SQRT5 = math.sqrt(5.0)
LOG_LENGTH_BOUNDS = (math.log(5e-3), math.log(20.0))
LOG_SIGNAL_BOUNDS = (math.log(0.05), math.log(1e4))  # wide: a bowl over the box needs a large variance
LOG_NOISE_BOUNDS = (math.log(1e-8), math.log(2.0))
JITTER = 1e-9


@dataclass(frozen=True)
class HyperPrior:
    """Independent normal priors on the log hyperparameters (means and standard deviations)."""

    log_length_mean: float
    log_length_sd: float = 0.75  # 1.5 before: length scales at the bound 20 declared dimensions irrelevant (BBOB f10)
    log_signal_mean: float = 0.0
    log_signal_sd: float = 1.0
    log_noise_mean: float = math.log(1e-4)
    log_noise_sd: float = 3.0

    @classmethod
    def for_dim(cls, d: int) -> HyperPrior:
        # longer length scales in more dimensions (distances grow like sqrt(d))
        return cls(log_length_mean=math.log(0.4) + 0.5 * math.log(max(d, 1)))

    def neg_log_density(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        d = len(theta) - 2
        mean = np.concatenate([np.full(d, self.log_length_mean), [self.log_signal_mean, self.log_noise_mean]])
        sd = np.concatenate([np.full(d, self.log_length_sd), [self.log_signal_sd, self.log_noise_sd]])
        z = (theta - mean) / sd
        return 0.5 * float(z @ z), z / sd


def matern52(d2: np.ndarray) -> np.ndarray:
    """k(r) / σ² for squared scaled distances ``d2``."""
    r = np.sqrt(np.maximum(d2, 0.0))
    return (1.0 + SQRT5 * r + (5.0 / 3.0) * d2) * np.exp(-SQRT5 * r)


def matern52_slope(d2: np.ndarray) -> np.ndarray:
    """d(k / σ²) / d(d2): finite at d2 = 0, unlike dk/dr."""
    r = np.sqrt(np.maximum(d2, 0.0))
    return -(5.0 / 6.0) * (1.0 + SQRT5 * r) * np.exp(-SQRT5 * r)


def squared_differences(a: np.ndarray, b: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """Per-dimension squared distances before length scaling, shape (len(a), len(b), d)."""
    diff = a[:, None, :] - b[None, :, :]
    per_dim = diff**2
    if categorical.any():
        per_dim[:, :, categorical] = (np.abs(diff[:, :, categorical]) > 0.5).astype(float)
    return per_dim


def scaled_differences(a: np.ndarray, b: np.ndarray, lengths: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """Per-dimension squared scaled distances, shape (len(a), len(b), d)."""
    return squared_differences(a, b, categorical) / lengths**2


@dataclass
class GaussianProcess:
    """A fitted GP: training data (standardized outputs), hyperparameters and the Cholesky factor."""

    x: np.ndarray  # (n, d) features
    y: np.ndarray  # (n,) standardized outputs
    theta: np.ndarray  # (d + 2,) log length scales, log signal variance, log noise variance
    categorical: np.ndarray  # (d,) bool
    y_mean: float = 0.0
    y_std: float = 1.0
    warp: np.ndarray | None = None  # (2, k) log Kumaraswamy (a, b) of the continuous inputs; None: no warping

    def __post_init__(self) -> None:
        self.lengths = np.exp(self.theta[:-2])
        self.signal = math.exp(self.theta[-2])
        self.noise = math.exp(self.theta[-1])
        self.wx = self._warped(self.x)
        k = self.signal * matern52(scaled_differences(self.wx, self.wx, self.lengths, self.categorical).sum(-1))
        k[np.diag_indices_from(k)] += self.noise + JITTER
        self.chol = cho_factor(k, lower=True)
        self.alpha = cho_solve(self.chol, self.y)

    @property
    def fitted(self) -> np.ndarray:
        """Every fitted log hyperparameter in one vector (θ, then the warping's), as a warm start takes it."""
        return self.theta if self.warp is None else np.concatenate([self.theta, self.warp.ravel()])

    def _warped(self, x: np.ndarray) -> np.ndarray:
        return x if self.warp is None else warping.warp(x, self.warp, ~self.categorical)

    def with_data(self, x: np.ndarray, y: np.ndarray) -> GaussianProcess:
        """The same hyperparameters and scaling on other (e.g. fantasy-augmented) standardized data."""
        return GaussianProcess(x, y, self.theta, self.categorical, self.y_mean, self.y_std, self.warp)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the latent function (standardized), shape (m,)."""
        d2 = scaled_differences(self._warped(x), self.wx, self.lengths, self.categorical).sum(-1)
        kx = self.signal * matern52(d2)
        mean = kx @ self.alpha
        v = solve_triangular(self.chol[0], kx.T, lower=True)
        var = np.maximum(self.signal - np.sum(v**2, axis=0), 1e-12 * self.signal)
        return mean, np.sqrt(var)

    def predict_with_gradient(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mean, std and their gradients with respect to ``x`` (m, d); zero along categorical dims."""
        wq = self._warped(x)
        diff = wq[:, None, :] - self.wx[None, :, :]
        d2 = scaled_differences(wq, self.wx, self.lengths, self.categorical).sum(-1)
        kx = self.signal * matern52(d2)  # (m, n)
        dk_dd2 = self.signal * matern52_slope(d2)  # (m, n)
        dd2_dx = 2.0 * diff / self.lengths**2  # (m, n, d), in the warped coordinates ...
        if self.warp is not None:
            dd2_dx *= warping.warp_slope(x, self.warp, ~self.categorical)[:, None, :]  # ... times dw/dx
        dd2_dx[:, :, self.categorical] = 0.0
        dk_dx = dk_dd2[:, :, None] * dd2_dx  # (m, n, d)
        mean = kx @ self.alpha
        kinv_kx = cho_solve(self.chol, kx.T).T  # (m, n)
        var = self.signal - np.sum(kx * kinv_kx, axis=1)
        floor = 1e-12 * self.signal
        std = np.sqrt(np.maximum(var, floor))
        dmean = np.einsum("mnd,n->md", dk_dx, self.alpha)
        dvar = -2.0 * np.einsum("mnd,mn->md", dk_dx, kinv_kx)
        dstd = np.where((var > floor)[:, None], dvar / (2.0 * std[:, None]), 0.0)
        return mean, std, dmean, dstd


def _likelihood(theta: np.ndarray, raw: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray] | None:
    """−log p(y | x, θ), its gradient in θ, and W∘g (n, n), where W = αα^T − K⁻¹ and
    g = dK/d(d2)·(−2): the matrix the gradients through the distances contract with.
    None where K is not positive definite."""
    n = len(y)
    lengths, signal, noise = np.exp(theta[:-2]), math.exp(theta[-2]), math.exp(theta[-1])
    per_dim = raw / lengths**2
    d2 = per_dim.sum(-1)
    kf = signal * matern52(d2)
    k = kf.copy()
    k[np.diag_indices_from(k)] += noise + JITTER
    try:
        chol = cho_factor(k, lower=True)
    except np.linalg.LinAlgError:
        return None
    alpha = cho_solve(chol, y)
    value = 0.5 * float(y @ alpha) + float(np.sum(np.log(np.diag(chol[0])))) + 0.5 * n * math.log(2 * math.pi)
    w = np.outer(alpha, alpha) - cho_solve(chol, np.eye(n))  # d value / dK = -W / 2
    # d k / d log l_i = (signal * slope) * d d2 / d log l_i = (signal * slope) * (-2 per_dim_i)
    wg = w * (-2.0 * signal * matern52_slope(d2))
    grad = np.empty_like(theta)
    grad[:-2] = -0.5 * np.einsum("ij,ijk->k", wg, per_dim)
    grad[-2] = -0.5 * float(np.sum(w * kf))
    grad[-1] = -0.5 * float(np.trace(w)) * noise
    return value, grad, wg


def neg_log_posterior(
    theta: np.ndarray, raw: np.ndarray, y: np.ndarray, prior: HyperPrior | None
) -> tuple[float, np.ndarray]:
    """−log p(y | x, θ) − log p(θ) and its gradient in θ; ``raw`` = squared_differences(x, x, categorical)."""
    terms = _likelihood(theta, raw, y)
    if terms is None:
        return 1e25, np.zeros_like(theta)
    value, grad, _ = terms
    if prior is not None:
        p_value, p_grad = prior.neg_log_density(theta)
        value += p_value
        grad += p_grad
    return value, grad


def neg_log_posterior_warped(
    params: np.ndarray, x: np.ndarray, y: np.ndarray, categorical: np.ndarray, prior: HyperPrior | None
) -> tuple[float, np.ndarray]:
    """As :func:`neg_log_posterior` with warped inputs: ``params`` = (θ, log a (k), log b (k)) for
    the k continuous dimensions; with ``prior``, each log shape is normal, mean 0, variance 0.75."""
    d = x.shape[1]
    theta, log_ab = params[: d + 2], params[d + 2 :].reshape(2, -1)
    warped = ~categorical
    wx = warping.warp(x, log_ab, warped)
    terms = _likelihood(theta, squared_differences(wx, wx, categorical), y)
    if terms is None:
        return 1e25, np.zeros_like(params)
    value, theta_grad, wg = terms
    # d value / d ψ_k = Σ_ij (W∘g)_ij (w_ik − w_jk)(w'_ik − w'_jk) / (2 l_k²), with W∘g symmetric:
    # Σ_ij M_ij (w_i − w_j)(w'_i − w'_j) = 2 (Σ_i r_i w_i w'_i − w^T M w'), r = M's row sums
    w, row = wx[:, warped], wg.sum(1)
    inverse_sq_lengths = np.exp(-2.0 * theta[:-2][warped])
    warp_grad = np.empty_like(log_ab)
    for side, slopes in enumerate(warping.warp_parameter_slopes(x, log_ab, warped)):
        contraction = row @ (w * slopes) - np.einsum("ik,ij,jk->k", w, wg, slopes)
        warp_grad[side] = contraction * inverse_sq_lengths
    grad = np.concatenate([theta_grad, warp_grad.ravel()])
    if prior is not None:
        p_value, p_grad = prior.neg_log_density(theta)
        sd2 = warping.LOG_CONCENTRATION_SD**2
        value += p_value + 0.5 * float(np.sum(log_ab**2)) / sd2
        grad += np.concatenate([p_grad, log_ab.ravel() / sd2])
    return value, grad


def _fit_starts(
    default: np.ndarray, warm_start: np.ndarray | None, restarts: int, rng: np.random.Generator, d: int
) -> list[np.ndarray]:
    """Where L-BFGS-B starts: the default, the warm start, and ``restarts`` random points (random
    θ; the warping, if any, from the identity)."""
    starts = [default]
    if warm_start is not None and len(warm_start) == len(default):
        # restarts=0 with a warm start (what gp_bo does on large data): the warm start alone
        starts = [np.asarray(warm_start, dtype=float)] if restarts == 0 else [default, np.asarray(warm_start)]
    for _ in range(restarts):
        theta = np.concatenate(
            [rng.uniform(math.log(0.05), math.log(2.0), d), [rng.uniform(-1, 1), rng.uniform(-9, -2)]]
        )
        starts.append(np.concatenate([theta, default[d + 2 :]]))
    return starts


def fit_gp(
    x: np.ndarray,
    values: np.ndarray,
    categorical: np.ndarray,
    rng: np.random.Generator,
    restarts: int = 2,
    warm_start: np.ndarray | None = None,
    prior: bool = True,
    noise: float | None = None,
    output: str = "standardize",
    warp: bool = False,
) -> GaussianProcess:
    """Fit θ from the default start, ``warm_start`` and ``restarts`` random starts; keep the best.

    ``noise`` fixes the noise variance (of standardized outputs) instead of fitting it. ``output``
    names the transform of the losses (:mod:`hpo_cli.strategies._gp.outputs`); ``y_mean`` and
    ``y_std`` undo the standardization only (``standardize``). ``warp``: fit a Kumaraswamy warping
    of each continuous input along with θ (``warm_start`` then holds both, as :attr:`GaussianProcess.fitted`).
    """
    values = np.asarray(values, dtype=float)
    y_mean = float(values.mean())
    y_std = float(values.std()) or 1.0
    y = (values - y_mean) / y_std if output == "standardize" else transform_outputs(values, output)
    d = x.shape[1]
    hyper = HyperPrior.for_dim(d) if prior else None
    bounds = [LOG_LENGTH_BOUNDS] * d + [LOG_SIGNAL_BOUNDS, LOG_NOISE_BOUNDS]
    if noise is not None:
        log_noise = math.log(noise)
        bounds[-1] = (log_noise, log_noise)
    default = np.concatenate([np.full(d, math.log(0.4) + 0.5 * math.log(d)), [0.0, math.log(1e-4)]])
    n_warped = int((~categorical).sum()) if warp else 0
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]]
    if warp:
        bounds += [warping.LOG_CONCENTRATION_BOUNDS] * (2 * n_warped)
        default = np.concatenate([default, np.zeros(2 * n_warped)])
        objective = partial(neg_log_posterior_warped, x=x, y=y, categorical=categorical, prior=hyper)
    else:
        objective = partial(neg_log_posterior, raw=squared_differences(x, x, categorical), y=y, prior=hyper)
    lows, highs = np.array(bounds).T
    best, best_value = default, math.inf
    for start in _fit_starts(default, warm_start, restarts, rng, d):
        result = minimize(
            objective,
            np.clip(start, lows, highs),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 200},
        )
        if np.isfinite(result.fun) and result.fun < best_value:
            best, best_value = np.asarray(result.x), float(result.fun)
    warp_params = best[d + 2 :].reshape(2, n_warped) if warp else None
    return GaussianProcess(x, y, best[: d + 2], categorical, y_mean, y_std, warp_params)
