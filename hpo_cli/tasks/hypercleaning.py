"""Data hyper-cleaning (Franceschi et al. 2017, §5.1): the pieces the softmax task and the
``hypercleaning_franceschi2017`` experiment share.

The problem: a fraction of the training labels is flipped to a random wrong class; one weight
λ_i ∈ [0, 1] per training example multiplies its loss, with ‖λ‖₁ ≤ R; the weights are tuned by
descending the validation loss through the unrolled inner training. Three arms
(``task.cleaning``) train on the same split:

* ``learned``: the training examples weighted by the space's ``example_weights`` (λ);
* ``oracle``:  the clean examples only (the flipped ones dropped), weight 1;
* ``baseline``: every training example, weight 1.

The references do not depend on λ: their hypergradient is exactly zero, and a gradient strategy
stops after that one evaluation.

The L1 budget R appears twice: in the outer projection onto ‖λ‖₁ ≤ R (the gradient strategy's
``l1_budget``) and in the inner step, lr·N/R (the task's ``l1_budget``: with the loss
mean_i(λ_i ℓ_i) over N examples, that is a step of lr on the λ-weighted *average* loss when
‖λ‖₁ = R). ``clean`` means the number of clean training examples, N − round(noise·N): the
value of the paper's setting (2,500 of 5,000), resolved by :func:`l1_radius` from the split
the data source gives. The experiment's strategy says the same as a share of N (``50%``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hpo_cli.errors import ConfigError
from hpo_cli.validate import is_number

CLEANING = ("learned", "oracle", "baseline")
DISCARDED = 1e-3  # a weight below this counts as "the example was discarded"
CLEAN = "clean"  # l1_budget: the number of clean training examples


def n_flipped(n_train: int, label_noise: float) -> int:
    """How many of ``n_train`` labels a noise fraction flips (as :func:`flip_labels` does)."""
    return round(label_noise * n_train)


def l1_radius(value: Any, n_train: int, label_noise: float, key: str) -> float | None:
    """R of ``l1_budget``: a positive number, ``clean`` (the clean examples' count) or None."""
    if value is None:
        return None
    if value == CLEAN:
        clean = n_train - n_flipped(n_train, label_noise)
        if clean < 1:
            raise ConfigError(key, value, f"no clean training example left (label_noise={label_noise})")
        return float(clean)
    if not is_number(value) or not value > 0:
        raise ConfigError(key, value, f"must be a positive number, {CLEAN!r} or null")
    return float(value)


def cleaning_scores(weights: np.ndarray, flipped: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of "weight < 1e-3" as a detector of the flipped examples (the
    paper's cut-off), and two rank-based scores that mean something from the first
    hyper-iteration on, before any weight reaches the cut-off: precision at R (the share of
    flipped examples among the R lowest weights, R = the number flipped; chance level: the
    noise fraction; ties at the R-th weight shared as a random tie-break would, in expectation)
    and the ROC AUC of a low weight as the detector (chance level 0.5; ties count half).

    ``weights``: (n_train,); ``flipped``: the flipped examples' indices. An empty detection
    has precision 0; F1 = 2·hits / (discarded + flipped)."""
    weights = np.asarray(weights, dtype=float)
    discarded = np.flatnonzero(weights < DISCARDED)
    hits = len(np.intersect1d(discarded, flipped))
    return {
        "cleaning_precision": hits / len(discarded) if len(discarded) else 0.0,
        "cleaning_recall": hits / len(flipped) if len(flipped) else 0.0,
        "cleaning_f1": 2 * hits / (len(discarded) + len(flipped)) if hits else 0.0,
        **rank_scores(weights, flipped),
    }


def rank_scores(weights: np.ndarray, flipped: np.ndarray) -> dict[str, float]:
    """Precision at R and ROC AUC of a low weight as the detector of the flipped examples."""
    from scipy.stats import rankdata

    n, r = len(weights), len(flipped)
    if r == 0 or r == n:
        return {}
    is_flipped = np.zeros(n, dtype=bool)
    is_flipped[flipped] = True
    cut = np.sort(weights)[r - 1]
    below, tied = weights < cut, weights == cut
    hits = is_flipped[below].sum() + (r - below.sum()) * is_flipped[tied].mean()
    ranks = rankdata(-weights)  # the lowest weight ranks highest; ties share their mean rank
    auc = (ranks[is_flipped].sum() - r * (r + 1) / 2) / (r * (n - r))
    return {"cleaning_precision_at_r": float(hits / r), "cleaning_auc": float(auc)}
