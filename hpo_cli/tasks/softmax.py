"""Softmax (multinomial logistic) regression on scikit-learn's 8×8 digits or on MNIST.

Data (``task.data``): ``digits``, scikit-learn's bundled 1,797 images, pixels scaled to [0, 1]
(the default); ``mnist``, the bundled 5,000-image subset, or with ``task.data_dir`` the MNIST
IDX files (see :mod:`hpo_cli.tasks.data.mnist`). The split is seeded: validation, then test,
then training rows of one permutation of the pool; the IDX files' own test set stays the test
set (its first ``n_test`` images in a seeded order). Split sizes: ``task.n_train``, ``n_val``,
``n_test``; each null takes its default (validation and test: ``val_fraction`` and
``test_fraction`` of the pool, training: the rest; a separate test set: all of it). Sizes the
data cannot hold are refused, or with ``scale_to_fit: true`` all scaled down by one factor.

Data hyper-cleaning (Franceschi et al. 2017; :mod:`hpo_cli.tasks.hypercleaning`): with
``label_noise > 0`` that fraction of training labels is replaced by a random wrong class, and a
space with ``example_weights`` (``size: n_train``, conf/space/hypercleaning.yaml) weighs each
training example's loss. ``task.cleaning`` picks the arm:

* ``learned`` (the default): the example weights λ come from the space and are tuned;
* ``oracle``: training on the clean examples only (the flipped ones dropped);
* ``baseline``: training on every example.

The references are *plain training* — the task's inner optimizer, ``inner_steps`` steps from
θ_0, weight 1 per example — whatever λ the strategy proposes: their value does not depend on
the example weights (their hypergradient is zero), any other hyperparameter of the space is
applied as given, so ``strategy=fixed`` or a one-trial run gives them. They are evaluated
after ``inner_steps`` of training even by black-box strategies (the references are defined by
the training the learned weights are tuned through); ``learned`` keeps the task's black-box
rule (the inner optimum) for black-box strategies.

``task.l1_budget`` R (a number, ``clean`` = the number of clean training examples, or null):
the inner loss is mean_i(λ_i ℓ_i) over the N training examples; with R set, its step size is
``inner_lr``·N/R (Franceschi's normalization: a step of ``inner_lr`` on the λ-weighted average
loss when ‖λ‖₁ = R; the strategy's ``l1_budget`` keeps ‖λ‖₁ ≤ R).

``task.retrain: true`` adds ``final_test_accuracy`` to every trial's metrics: a model trained
from θ_0 for ``retrain_steps`` (null: ``inner_steps``) on training + validation examples —
learned: the training examples weighted by λ and the validation examples by max(λ); oracle: the
clean training examples and the validation examples, weight 1; baseline: all of them, weight 1
— with the step on the weighted average loss (``inner_lr``·n/Σw, the counterpart of N/R, when
``l1_budget`` is set).

Value: validation cross-entropy. Metrics: validation and test accuracy; with label noise and
example weights (the arm's own: λ, the clean-example indicator, all ones), the precision,
recall and F1 of "weight < 1e-3" as a detector of the flipped examples.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hpo_cli.errors import ConfigError
from hpo_cli.hypergrad.problem import HyperLayout, InnerOptimizer
from hpo_cli.request import HypergradRequest
from hpo_cli.tasks.base import split_indices
from hpo_cli.tasks.bilevel_models import (
    BilevelModel,
    SoftmaxRegressionModel,
    Split,
    batch_schedule,
    build_problem,
    make_layout,
    split_of,
)
from hpo_cli.tasks.differentiable import DifferentiableTask
from hpo_cli.tasks.hypercleaning import CLEANING, cleaning_scores, l1_radius
from hpo_cli.trial import Evaluation, Request, SavedModel
from hpo_cli.validate import flag, is_int, one_of, positive_int

log = logging.getLogger(__name__)
DATA = ("digits", "mnist")
N_CLASSES = 10
WEIGHTS = "example_weights"


def flip_labels(y: np.ndarray, fraction: float, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the flipped examples; ``y`` is changed in place to a random *wrong* class."""
    flipped = rng.choice(len(y), size=round(fraction * len(y)), replace=False)
    y[flipped] = (y[flipped] + rng.integers(1, n_classes, size=len(flipped))) % n_classes
    return np.sort(flipped)


def load_arrays(data: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(X, y) of the pool and the separate test set (X_test, y_test) or None; X in [0, 1]."""
    if data == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return X / 16.0, y, None, None
    from hpo_cli.tasks.data.idx import IdxError
    from hpo_cli.tasks.data.mnist import load_mnist

    try:
        mnist = load_mnist(data_dir)
    except IdxError as exc:
        raise ConfigError("task.data_dir", data_dir, str(exc)) from None
    return mnist.X, mnist.y, mnist.X_test, mnist.y_test


@dataclass(frozen=True)
class SplitSizes:
    train: int
    val: int
    test: int


def split_sizes(
    n_pool: int,
    n_test_pool: int | None,
    requested: tuple[Any, Any, Any],
    fractions: tuple[float, float],
    scale_to_fit: bool,
) -> SplitSizes:
    """The (train, validation, test) sizes of a task's split.

    ``n_pool``: the examples train and validation (and test, when ``n_test_pool`` is None) are
    drawn from; ``n_test_pool``: the size of a separate test set, or None. ``requested``:
    ``task.n_train``, ``n_val``, ``n_test``, each None for its default: validation and (pooled)
    test take their fraction of the pool, training the rest; a separate test set is used whole.
    Sizes that do not fit are refused, or with ``scale_to_fit`` all multiplied by one factor
    (rounded down) so that they fit: the ratios between them are kept.
    """
    for key, value in zip(("n_train", "n_val", "n_test"), requested, strict=True):
        if value is not None and (not is_int(value) or value < 1):
            raise ConfigError(f"task.{key}", value, "must be a positive integer or null")
    val_fraction, test_fraction = fractions
    n_val = requested[1] if requested[1] is not None else round(val_fraction * n_pool)
    if n_test_pool is None:
        n_test = requested[2] if requested[2] is not None else round(test_fraction * n_pool)
        n_train = requested[0] if requested[0] is not None else n_pool - n_val - n_test
        pooled = n_train + n_val + n_test
        factor = n_pool / pooled
    else:
        n_test = requested[2] if requested[2] is not None else n_test_pool
        n_train = requested[0] if requested[0] is not None else n_pool - n_val
        pooled = n_train + n_val
        factor = min(n_pool / pooled, n_test_pool / n_test)
    if factor < 1:
        if not scale_to_fit:
            where = f"{n_pool} examples" + ("" if n_test_pool is None else f" and {n_test_pool} test examples")
            raise ConfigError(
                "task.n_train",
                requested[0],
                f"the split ({n_train} train, {n_val} validation, {n_test} test) needs more than the data's {where}; "
                "set smaller sizes or task.scale_to_fit=true",
            )
        scaled = tuple(math.floor(n * factor) for n in (n_train, n_val, n_test))
        log.info(
            "split %d/%d/%d (train/validation/test) scaled by %.3g to fit the data: %d/%d/%d",
            n_train, n_val, n_test, factor, *scaled,
        )  # fmt: skip
        n_train, n_val, n_test = scaled
    if n_train < 2 or n_val < 1 or n_test < 1:
        raise ConfigError("task.n_train", n_train, f"leaves too few examples (validation {n_val}, test {n_test})")
    return SplitSizes(n_train, n_val, n_test)


class SoftmaxTask(DifferentiableTask):
    name = "softmax"
    metric = "val_loss"
    training_config = "task/softmax.yaml"

    def __init__(
        self,
        seed: int = 0,
        val_fraction: float = 0.25,
        test_fraction: float = 0.25,
        label_noise: float = 0.0,
        log_precision: float | None = -2.0,
        data: str = "digits",
        data_dir: str | None = None,
        n_train: int | None = None,
        n_val: int | None = None,
        n_test: int | None = None,
        scale_to_fit: bool = False,
        cleaning: str = "learned",
        l1_budget: float | str | None = None,
        retrain: bool = False,
        retrain_steps: int | None = None,
        device: str = "cpu",
        dtype: str = "float64",
        **training: Any,
    ) -> None:
        super().__init__(seed, device, dtype, training)
        self.data = one_of(data, "task.data", DATA)
        if data_dir is not None and data != "mnist":
            raise ConfigError("task.data_dir", data_dir, "the IDX files' folder is for task.data=mnist")
        self.cleaning = one_of(cleaning, "task.cleaning", CLEANING)
        self.retrain = flag(retrain, "task.retrain")
        self.retrain_steps = (
            self.inner_steps if retrain_steps is None else positive_int(retrain_steps, "task.retrain_steps")
        )
        if isinstance(label_noise, bool) or not isinstance(label_noise, int | float) or not 0 <= label_noise < 1:
            raise ConfigError("task.label_noise", label_noise, "must be in [0, 1)")
        self.fixed_log_precision = log_precision

        X, y, X_test, y_test = load_arrays(self.data, data_dir)
        scale = flag(scale_to_fit, "task.scale_to_fit")
        n_test_pool = None if y_test is None else len(y_test)
        train, val, test = self._rows(
            len(y), n_test_pool, (n_train, n_val, n_test), (val_fraction, test_fraction), scale
        )
        if X_test is None or y_test is None:
            X_test, y_test = X, y
        y_train = y[train].copy()
        self.flipped = (
            flip_labels(y_train, label_noise, N_CLASSES, np.random.default_rng(seed + 1))
            if label_noise > 0
            else np.array([], dtype=int)
        )
        self.clean = np.setdiff1d(np.arange(len(train)), self.flipped)
        self.radius = l1_radius(l1_budget, len(train), float(label_noise), "task.l1_budget")
        self.train = split_of(X[train], y_train, self.dtype, self.device, labels=True)
        self.val = split_of(X[val], y[val], self.dtype, self.device, labels=True)
        self.test = split_of(X_test[test], y_test[test], self.dtype, self.device, labels=True)
        if self.data == "mnist":
            log.info(
                "softmax on MNIST: %d train (%d flipped), %d validation, %d test; cleaning=%s",
                len(train), len(self.flipped), len(val), len(test), self.cleaning,
            )  # fmt: skip
        self._model: SoftmaxRegressionModel | None = None
        self._final: Split | None = None  # the retraining examples (training + validation)

    def _rows(
        self,
        n_pool: int,
        n_test_pool: int | None,
        requested: tuple[Any, Any, Any],
        fractions: tuple[float, float],
        scale_to_fit: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(train, validation, test) row indices: of the pool, the test ones of the separate
        test set when there is one."""
        if n_test_pool is None and requested == (None, None, None):
            return split_indices(n_pool, self.seed, *fractions)  # the fractions alone, as always
        for key, fraction in zip(("val_fraction", "test_fraction"), fractions, strict=True):
            if not 0.0 <= fraction < 1.0:
                raise ConfigError(f"task.{key}", fraction, "must be in [0, 1)")
        sizes = split_sizes(n_pool, n_test_pool, requested, fractions, scale_to_fit)
        order = np.random.default_rng(self.seed).permutation(n_pool)
        val = order[: sizes.val]
        if n_test_pool is None:
            test = order[sizes.val : sizes.val + sizes.test]
            train = order[sizes.val + sizes.test : sizes.val + sizes.test + sizes.train]
        else:
            train = order[sizes.val : sizes.val + sizes.train]
            test = np.random.default_rng(self.seed + 2).permutation(n_test_pool)[: sizes.test]
        return train, val, test

    # -- the model of this arm ---------------------------------------------------------

    def model(self) -> SoftmaxRegressionModel:
        """The model on the examples this arm trains on: all training examples (learned,
        baseline) or the clean ones (oracle)."""
        if self._model is None:
            train = self.train
            if self.cleaning == "oracle":
                rows = torch.as_tensor(self.clean, device=self.device)
                train = Split(self.train.X[rows], self.train.y[rows])
            self._model = SoftmaxRegressionModel(train, self.val, None, n_classes=N_CLASSES)
            self._model.fixed_log_precision = self.fixed_log_precision
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

    def test_metrics(self, theta: Tensor) -> dict[str, float]:
        model = self.model()
        return {
            "val_accuracy": model.accuracy(theta, self.val),
            "test_accuracy": model.accuracy(theta, self.test),
        }

    # -- hyper-cleaning ------------------------------------------------------------------

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
        model = SoftmaxRegressionModel(split, self.val, None, n_classes=N_CLASSES)
        model.fixed_log_precision = self.fixed_log_precision
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
