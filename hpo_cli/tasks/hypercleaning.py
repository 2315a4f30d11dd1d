"""Data hyper-cleaning (Franceschi et al. 2017, §5.1): ``task=hypercleaning``, softmax regression
(:class:`hpo_cli.tasks.softmax.SoftmaxTask`: its data, split and inner training) on training
labels of which a fraction is flipped, with one weight per training example.

The problem: ``task.label_noise`` of the training labels is flipped to a random wrong class; one
weight λ_i ∈ [0, 1] per training example (the space's ``example_weights``, ``size: n_train``,
conf/space/hypercleaning.yaml) multiplies its loss, with ‖λ‖₁ ≤ R; the weights are tuned by
descending the validation loss through the unrolled inner training. Three arms
(``task.cleaning``) train on the same split:

* ``learned`` (the default): the training examples weighted by λ, which the strategy tunes;
* ``oracle``:  the clean examples only (the flipped ones dropped), weight 1;
* ``baseline``: every training example, weight 1.

The references are *plain training* — the task's inner optimizer, ``inner_steps`` steps from
θ_0, weight 1 per example — whatever λ the strategy proposes: their value does not depend on
the example weights (their hypergradient is exactly zero, and a gradient strategy stops after
that one evaluation), any other hyperparameter of the space is applied as given, so
``strategy=fixed`` or a one-trial run gives them. They are evaluated after ``inner_steps`` of
training even by black-box strategies (the references are defined by the training the learned
weights are tuned through); ``learned`` keeps the task's black-box rule (the inner optimum) for
black-box strategies.

The L1 budget R (``task.l1_budget``: a number, ``clean`` = the number of clean training
examples, or null) appears twice: in the outer projection onto ‖λ‖₁ ≤ R (the gradient
strategy's ``l1_budget``) and in the inner step, ``inner_lr``·N/R (with the loss mean_i(λ_i ℓ_i)
over N examples, that is a step of ``inner_lr`` on the λ-weighted *average* loss when ‖λ‖₁ = R:
Franceschi's normalization). ``clean`` means N − round(noise·N): the value of the paper's
setting (2,500 of 5,000), resolved by :func:`l1_radius` from the split the data source gives.
The ``hypercleaning_franceschi2017`` experiment's strategy says the same as a share of N (``50%``).

``task.retrain: true`` adds ``final_test_accuracy`` to every trial's metrics: a model trained
from θ_0 for ``retrain_steps`` (null: ``inner_steps``) on training + validation examples —
learned: the training examples weighted by λ and the validation examples by max(λ); oracle: the
clean training examples and the validation examples, weight 1; baseline: all of them, weight 1
— with the step on the weighted average loss (``inner_lr``·n/Σw, the counterpart of N/R, when
``l1_budget`` is set).

Value: validation cross-entropy. Metrics: the softmax task's (validation and test accuracy) and
the detection scores of the arm's weights (λ, the clean-example indicator, all ones) as a
detector of the flipped examples (:func:`cleaning_scores`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from hpo_cli.errors import ConfigError
from hpo_cli.hypergrad.problem import HyperLayout, InnerOptimizer
from hpo_cli.request import HypergradRequest
from hpo_cli.tasks.bilevel_models import (
    BilevelModel,
    SoftmaxRegressionModel,
    Split,
    batch_schedule,
    build_problem,
    make_layout,
)
from hpo_cli.tasks.softmax import N_CLASSES, SoftmaxTask
from hpo_cli.trial import Evaluation, Request, SavedModel
from hpo_cli.validate import flag, is_number, one_of, positive_int

log = logging.getLogger(__name__)

CLEANING = ("learned", "oracle", "baseline")
DISCARDED = 1e-3  # a weight below this counts as "the example was discarded"
CLEAN = "clean"  # l1_budget: the number of clean training examples
WEIGHTS = "example_weights"


def flip_labels(y: np.ndarray, fraction: float, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the flipped examples; ``y`` is changed in place to a random *wrong* class."""
    flipped = rng.choice(len(y), size=round(fraction * len(y)), replace=False)
    y[flipped] = (y[flipped] + rng.integers(1, n_classes, size=len(flipped))) % n_classes
    return np.sort(flipped)


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


def gap_closed(learned: float, baseline: float, oracle: float) -> float:
    """The fraction of the Baseline→Oracle gap the learned weights close: (learned − baseline) /
    (oracle − baseline); 1 at the oracle, 0 at the baseline, negative below it (nan without a gap)."""
    gap = oracle - baseline
    return (learned - baseline) / gap if gap else float("nan")


class HyperCleaningTask(SoftmaxTask):
    """Softmax regression on noisy training labels, one weight per training example (see the
    module); every option of task=softmax plus the hyper-cleaning ones."""

    name = "hypercleaning"
    # the paper's number (the retrained model's test accuracy), then the detection of the flipped labels
    headline = ("final_test_accuracy", "cleaning_precision_at_r", "cleaning_auc")

    def __init__(
        self,
        label_noise: float = 0.5,
        cleaning: str = "learned",
        l1_budget: float | str | None = None,
        retrain: bool = False,
        retrain_steps: int | None = None,
        **softmax: Any,
    ) -> None:
        if isinstance(label_noise, bool) or not isinstance(label_noise, int | float) or not 0 <= label_noise < 1:
            raise ConfigError("task.label_noise", label_noise, "must be in [0, 1)")
        self.cleaning = one_of(cleaning, "task.cleaning", CLEANING)
        self.retrain = flag(retrain, "task.retrain")
        super().__init__(**softmax)
        self.retrain_steps = (
            self.inner_steps if retrain_steps is None else positive_int(retrain_steps, "task.retrain_steps")
        )
        labels = self.train.y.cpu().numpy().copy()
        self.flipped = (
            flip_labels(labels, label_noise, N_CLASSES, np.random.default_rng(self.seed + 1))
            if label_noise > 0
            else np.array([], dtype=int)
        )
        self.train = Split(self.train.X, torch.as_tensor(labels, device=self.device))
        self.clean = np.setdiff1d(np.arange(len(labels)), self.flipped)
        self.radius = l1_radius(l1_budget, len(labels), float(label_noise), "task.l1_budget")
        flipped, n = len(self.flipped), len(labels)
        log.info("hyper-cleaning: %d of %d training labels flipped; cleaning=%s", flipped, n, self.cleaning)
        self._final: Split | None = None  # the retraining examples (training + validation)

    # -- the model of this arm ---------------------------------------------------------

    def model(self) -> SoftmaxRegressionModel:
        """The model on the examples this arm trains on: all training examples (learned,
        baseline) or the clean ones (oracle)."""
        if self._model is None:
            train = self.train
            if self.cleaning == "oracle":
                rows = torch.as_tensor(self.clean, device=self.device)
                train = Split(self.train.X[rows], self.train.y[rows])
            self._model = self.regression_model(train)
        return self._model

    def dimensions(self) -> dict[str, int]:
        """``n_train`` is the number of training examples whatever the arm (one weight each)."""
        return {**super().dimensions(), "n_train": len(self.train.y)}

    def inner_optimizer(self, layout: HyperLayout, model: BilevelModel) -> InnerOptimizer:
        """The inner step inner_lr·N/R when the example weights are tuned under an L1 budget R
        (``task.l1_budget``)."""
        if WEIGHTS in layout.names and self.radius is not None:
            return dataclasses.replace(self.optimizer, lr=self.optimizer.lr * model.n / self.radius)
        return self.optimizer

    # -- the arms ------------------------------------------------------------------------

    def arm_weights(self, params: Mapping[str, Any]) -> np.ndarray | None:
        """The training examples' weights of this arm: λ (learned; None without
        example_weights), 1 on the clean examples and 0 on the flipped ones (oracle), all 1
        (baseline)."""
        if self.cleaning == "learned":
            return np.asarray(params[WEIGHTS], dtype=float) if WEIGHTS in params else None
        weights = np.ones(len(self.train.y))
        if self.cleaning == "oracle":
            weights[self.flipped] = 0.0
        return weights

    def cleaning_f1(self, weights: np.ndarray) -> float:
        """F1 of 'weight < 1e-3' as a detector of the flipped training examples."""
        return cleaning_scores(weights, self.flipped)["cleaning_f1"]

    def check_hypergradient(self, request: HypergradRequest, names: list[str]) -> None:
        others = [n for n in names if n != WEIGHTS]
        if self.cleaning != "learned" and others:
            raise ConfigError(
                "task.cleaning",
                self.cleaning,
                f"the {self.cleaning} reference takes no hypergradient for {others[0]!r}; "
                "tune it with task.cleaning=learned",
            )
        super().check_hypergradient(request, names)

    def evaluate(
        self,
        params: Mapping[str, Any],
        budget: float | None = None,
        request: Request | None = None,
    ) -> Evaluation:
        if self.cleaning == "learned" or isinstance(request, SavedModel):
            ev = super().evaluate(params, budget, request)
        else:
            ev = self.evaluate_reference(params, request)
        weights = self.arm_weights(params)
        if weights is not None and len(self.flipped):
            ev.metrics.update(cleaning_scores(weights, self.flipped))
        if self.retrain:
            ev.metrics["final_test_accuracy"] = self.final_test_accuracy(params)
        return ev

    def evaluate_reference(self, params: Mapping[str, Any], request: HypergradRequest | None) -> Evaluation:
        """Oracle or baseline: ``inner_steps`` of plain training on the arm's examples, the
        example weights ignored (their hypergradient is zero), other hyperparameters applied."""
        others = {k: v for k, v in params.items() if k != WEIGHTS}
        if request is not None:
            self.check_hypergradient(request, list(params))
        layout = self.layout_of(others)
        problem = self.problem(layout)
        h = self.hyper_vector(layout, others) if others else problem.theta0.new_zeros(0)
        theta, _ = problem.train(h)
        value = float(problem.outer(theta, h))
        metrics = {**self.trained_metrics(layout, theta, h), self.metric: value}
        gradient = None
        if request is not None:
            gradient = [0.0] * sum(len(v) if isinstance(v, list) else 1 for v in params.values())
        return Evaluation(value, metrics, {"inner_steps": problem.n_steps}, gradient, model=self.trained_model(theta))

    # -- the retraining on training + validation -------------------------------------------

    def final_training_set(self, params: Mapping[str, Any]) -> tuple[Split, np.ndarray]:
        """The retraining examples (the arm's training examples, then the validation set) and
        their weights (learned: λ, then max(λ) for validation; the references: 1)."""
        if self._final is None:
            rows = self.clean if self.cleaning == "oracle" else np.arange(len(self.train.y))
            index = torch.as_tensor(rows, device=self.device)
            self._final = Split(
                torch.cat([self.train.X[index], self.val.X]),
                torch.cat([self.train.y[index], self.val.y]),
            )
        if self.cleaning == "learned":
            lam = self.arm_weights(params)
            lam = np.ones(len(self.train.y)) if lam is None else lam
            weights = np.concatenate([lam, np.full(len(self.val.y), lam.max())])
        else:
            weights = np.ones(len(self._final.y))
        return self._final, weights

    def final_test_accuracy(self, params: Mapping[str, Any]) -> float:
        """Test accuracy of the model retrained on training + validation (see the module)."""
        split, weights = self.final_training_set(params)
        model = self.regression_model(split)
        model.batches = batch_schedule(model.n, self.batch_size, self.retrain_steps, self.seed, self.device)
        others = {k: v for k, v in params.items() if k != WEIGHTS}
        sizes = [(k, len(v) if isinstance(v, list) else None) for k, v in others.items()]
        layout = make_layout([*sizes, (WEIGHTS, model.n)], model.tensors, model.n)
        optimizer = self.optimizer
        if self.radius is not None and weights.sum() > 0:
            optimizer = dataclasses.replace(optimizer, lr=optimizer.lr * model.n / float(weights.sum()))
        problem = build_problem(model, layout, self.retrain_steps, optimizer, self.theta0())
        like = torch.empty(0, dtype=self.dtype, device=self.device)
        h = layout.flatten({**others, WEIGHTS: weights.tolist()}, like)
        theta, _ = problem.train(h)
        return model.accuracy(theta, self.test)
