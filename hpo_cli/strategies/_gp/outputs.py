"""What the GP models instead of the raw losses: a monotone transform of them, standardized.

A GP with a stationary kernel assumes the losses vary on one scale everywhere. Badly scaled
objectives break that: an ill-conditioned ellipsoid spans six orders of magnitude, Rastrigin's
and Ackley's plateaus sit next to deep narrow wells, and a few huge losses flatten everything
else to a constant in standardized units (the acquisition then explores at random). HEBO
(Cowen-Rivers et al. 2022) transforms the losses before modelling; so does this module:

* ``standardize``: (y − mean) / std, nothing else (the old behaviour);
* ``power``: HEBO's power transform — Box-Cox when every loss is positive, else Yeo-Johnson —
  its λ fitted by maximum likelihood (scipy), then standardized;
* ``rank``: the Gaussian copula of Salinas et al. (2020): each loss replaced by the normal
  quantile of its rank, (r + 0.5) / n. Invariant to any increasing transform of the losses:
  suggestions depend only on their order.

Every transform is increasing, so the smallest transformed value is still the incumbent.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm, rankdata

OUTPUT_TRANSFORMS = ("standardize", "power", "rank")


def transform_outputs(values: np.ndarray, how: str) -> np.ndarray:
    """The losses as the GP models them: increasing in ``values``, mean 0, std 1 (where they differ)."""
    y = np.asarray(values, dtype=float)
    if how == "rank":
        y = norm.ppf((rankdata(y, method="average") - 0.5) / len(y))
    elif how == "power":
        y = _power(y)
    elif how != "standardize":
        raise ValueError(f"unknown output transform {how!r} (known: {', '.join(OUTPUT_TRANSFORMS)})")
    std = float(y.std())
    return (y - y.mean()) / std if std > 0 else y - y.mean()


LAMBDAS = np.linspace(-3.0, 3.0, 121)  # the power transform's λ: the best of this grid by likelihood


def _power(y: np.ndarray) -> np.ndarray:
    """Box-Cox (every loss positive) or Yeo-Johnson, λ by maximum likelihood over ``LAMBDAS``
    (vectorized: scipy's Brent search cost 15 ms a fit, this costs 0.1 ms), on y / std(y), so
    that λ does not depend on the losses' unit."""
    spread = float(y.std())
    if spread == 0 or len(y) < 3:
        return y
    x = y / spread
    lam = LAMBDAS[:, None]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if x.min() > 0:
            log_x = np.log(x)
            warped = np.where(np.abs(lam) < 1e-12, log_x, np.expm1(lam * log_x) / np.where(lam == 0, 1.0, lam))
            jacobian = (LAMBDAS - 1.0) * log_x.sum()
        else:
            pos = x >= 0
            log_up = np.log1p(np.abs(x))  # log(|x| + 1)
            up = np.where(np.abs(lam) < 1e-12, log_up, np.expm1(lam * log_up) / np.where(lam == 0, 1.0, lam))
            two = 2.0 - lam
            down = np.where(np.abs(two) < 1e-12, -log_up, -np.expm1(two * log_up) / np.where(two == 0, 1.0, two))
            warped = np.where(pos, up, down)
            jacobian = (LAMBDAS - 1.0) * np.sum(np.sign(x) * log_up)
        variance = warped.var(axis=1)
        likelihood = -0.5 * len(x) * np.log(variance) + jacobian
    likelihood[~np.isfinite(likelihood) | ~np.all(np.isfinite(warped), axis=1)] = -np.inf
    if not np.isfinite(likelihood).any():
        return y
    best = warped[int(np.argmax(likelihood))]
    if float(best.std()) == 0 or np.any(np.diff(best[np.argsort(y, kind="stable")]) < 0):
        return y  # order lost to rounding at an extreme λ
    return best
