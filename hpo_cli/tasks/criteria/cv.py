"""``criterion=cv``: k-fold cross-validation as one bilevel problem (Bakhteev & Strijov 2020).

D (training + validation examples) is split into k folds by scikit-learn's
``KFold(k, shuffle=True, random_state=seed)``; θ = [w_1 … w_k], one model per fold, w_q
trained on D without fold q. With n = |D| and L_q the negative log posterior of w_q per
example of D:

    L_q = k/(k−1) · Σ_{i ∉ fold q} ℓ_i(w_q) / n  +  ½ Σ_j e^{h_j} w_qj² / n
    L   = Σ_q L_q      (k times the lecture's mean over folds: the same minimizer, and each
                        w_q takes the steps a hold-out model would at the same learning rate)
    Q   = (1/k) Σ_q  heldout_metric(w_q on fold q)

The factor k/(k−1) lets each fold's likelihood weigh as the whole D does, so at a shared
precision α a ridge fold model is scikit-learn's ``Ridge(alpha=α·(k−1)/k)``. Q is the mean of
the per-fold values (reported as ``cv_fold<q>``), as ``cross_val_score`` averages its folds.
Test metrics are the mean over the k fold models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from sklearn.model_selection import KFold
from torch import Tensor

from hpo_cli.errors import ConfigError
from hpo_cli.hypergrad.problem import Hyper
from hpo_cli.tasks.bilevel_models import BilevelModel, Split
from hpo_cli.tasks.criteria.base import (
    Context,
    Criterion,
    CriterionModel,
    Scores,
    all_examples,
    refuse_example_weights,
)
from hpo_cli.validate import positive_int


def fold_indices(n: int, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(training rows, held-out rows)] of k shuffled folds of range(n) (scikit-learn's KFold)."""
    if k > n:
        raise ConfigError("criterion.k", k, f"exceeds the {n} examples to split")
    return [(tr, te) for tr, te in KFold(n_splits=k, shuffle=True, random_state=seed).split(np.arange(n))]


class FoldsModel(CriterionModel):
    def __init__(self, model: BilevelModel, theta0: Tensor, k: int, context: Context) -> None:
        data = all_examples(model)
        n = data.X.shape[0]
        self.k, self.p = k, model.n_params
        self.folds: list[BilevelModel] = []
        self.scale: list[float] = []
        for q, (train_rows, test_rows) in enumerate(fold_indices(n, k, context.seed)):
            tr = torch.as_tensor(train_rows, device=data.X.device)
            te = torch.as_tensor(test_rows, device=data.X.device)
            fold = model.with_data(Split(data.X[tr], data.y[tr]), Split(data.X[te], data.y[te]))
            fold.prior_count = n
            fold.batches = context.schedule(fold.n, q + 1)
            self.folds.append(fold)
            self.scale.append(k * fold.n / ((k - 1) * n))  # the minibatch mean -> k/(k−1)·Σ/n
        self.theta0 = theta0.repeat(k)
        self.tensors = model.tensors.repeated(k)

    def split(self, theta: Tensor) -> list[Tensor]:
        return list(theta.reshape(self.k, self.p).unbind(0))

    def inner_loss(self, theta: Tensor, hp: Hyper, t: int | None) -> Tensor:
        total = theta.new_zeros(())
        for fold, scale, w in zip(self.folds, self.scale, self.split(theta), strict=True):
            total = total + scale * fold.data_loss(w, hp, t) + fold.prior(w, hp)
        return total

    def gauss_newton(self, theta: Tensor, hp: Hyper) -> Callable[[Tensor], Tensor]:
        """Block-diagonal: one block per fold model."""
        parts = zip(self.folds, self.scale, self.split(theta), strict=True)
        blocks = [fold.gauss_newton(w, hp, scale) for fold, scale, w in parts]

        def matvec(v: Tensor) -> Tensor:
            return torch.cat([block(part) for block, part in zip(blocks, self.split(v), strict=True)])

        return matvec

    def fold_values(self, theta: Tensor, hp: Hyper) -> list[Tensor]:
        return [fold.outer_loss(w, hp) for fold, w in zip(self.folds, self.split(theta), strict=True)]

    def outer_loss(self, theta: Tensor, hp: Hyper) -> Tensor:
        return torch.stack(self.fold_values(theta, hp)).mean()

    def points(self, theta: Tensor) -> list[Tensor]:
        return self.split(theta.detach())

    def report(self, theta: Tensor, hp: Hyper, scores: Scores) -> dict[str, float]:
        with torch.no_grad():
            return {f"cv_fold{q}": float(v) for q, v in enumerate(self.fold_values(theta, hp))}


class CrossValidation(Criterion):
    name = "cv"

    def __init__(self, k: int = 4) -> None:
        self.k = positive_int(k, "criterion.k")
        if self.k < 2:
            raise ConfigError("criterion.k", k, "must be at least 2 folds")

    def metric(self, base: str) -> str:
        return "cv_" + base.removeprefix("val_")

    def check(self, model: BilevelModel, names: Sequence[str]) -> None:
        refuse_example_weights(self.name, names)
        n = model.train.X.shape[0] + model.val.X.shape[0]
        if self.k > n:
            raise ConfigError("criterion.k", self.k, f"exceeds the {n} examples to split")

    def wrap(self, model: BilevelModel, theta0: Tensor, context: Context) -> CriterionModel:
        return FoldsModel(model, theta0, self.k, context)

    def describe(self, model: BilevelModel | None = None) -> str:
        return f"cv (k={self.k})"
