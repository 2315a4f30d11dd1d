"""Softmax (multinomial logistic) regression on scikit-learn's 8×8 digits or on MNIST.

Data (``task.data``): ``digits``, scikit-learn's bundled 1,797 images, pixels scaled to [0, 1]
(the default); ``mnist``, the bundled 5,000-image subset, or with ``task.data_dir`` the MNIST
IDX files (see :mod:`hpo_cli.tasks.data.mnist`). The split is seeded: validation, then test,
then training rows of one permutation of the pool; the IDX files' own test set stays the test
set (its first ``n_test`` images in a seeded order). Split sizes: ``task.n_train``, ``n_val``,
``n_test``; each null takes its default (validation and test: ``val_fraction`` and
``test_fraction`` of the pool, training: the rest; a separate test set: all of it). Sizes the
data cannot hold are refused, or with ``scale_to_fit: true`` all scaled down by one factor.

Data hyper-cleaning (Franceschi et al. 2017), label noise and the cleaning arms are another task
built on this one: ``task=hypercleaning`` (:class:`hpo_cli.tasks.hypercleaning.HyperCleaningTask`).
A space with ``example_weights`` (``size: n_train``) weighs each training example's loss here too.

Value: validation cross-entropy. Metrics: validation and test accuracy.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from hpo_cli.errors import ConfigError
from hpo_cli.tasks.base import split_indices
from hpo_cli.tasks.bilevel_models import SoftmaxRegressionModel, Split, split_of
from hpo_cli.tasks.differentiable import DifferentiableTask
from hpo_cli.validate import flag, is_int, one_of

log = logging.getLogger(__name__)
DATA = ("digits", "mnist")
N_CLASSES = 10


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
        log_precision: float | None = -2.0,
        data: str = "digits",
        data_dir: str | None = None,
        n_train: int | None = None,
        n_val: int | None = None,
        n_test: int | None = None,
        scale_to_fit: bool = False,
        device: str = "cpu",
        dtype: str = "float64",
        **training: Any,
    ) -> None:
        super().__init__(seed, device, dtype, training)
        self.data = one_of(data, "task.data", DATA)
        if data_dir is not None and data != "mnist":
            raise ConfigError("task.data_dir", data_dir, "the IDX files' folder is for task.data=mnist")
        self.fixed_log_precision = log_precision

        X, y, X_test, y_test = load_arrays(self.data, data_dir)
        scale = flag(scale_to_fit, "task.scale_to_fit")
        n_test_pool = None if y_test is None else len(y_test)
        train, val, test = self._rows(
            len(y), n_test_pool, (n_train, n_val, n_test), (val_fraction, test_fraction), scale
        )
        if X_test is None or y_test is None:
            X_test, y_test = X, y
        self.train = split_of(X[train], y[train], self.dtype, self.device, labels=True)
        self.val = split_of(X[val], y[val], self.dtype, self.device, labels=True)
        self.test = split_of(X_test[test], y_test[test], self.dtype, self.device, labels=True)
        if self.data == "mnist":
            log.info("%s on MNIST: %d train, %d validation, %d test", self.name, len(train), len(val), len(test))
        self._model: SoftmaxRegressionModel | None = None

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

    def model(self) -> SoftmaxRegressionModel:
        """The model on the training examples (built once)."""
        if self._model is None:
            self._model = self.regression_model(self.train)
        return self._model

    def regression_model(self, train: Split) -> SoftmaxRegressionModel:
        """A softmax regression on ``train``, validated on the validation split, with the
        task's prior when the space does not tune it."""
        model = SoftmaxRegressionModel(train, self.val, None, n_classes=N_CLASSES)
        model.fixed_log_precision = self.fixed_log_precision
        return model

    def test_metrics(self, theta: Tensor) -> dict[str, float]:
        model = self.model()
        return {
            "val_accuracy": model.accuracy(theta, self.val),
            "test_accuracy": model.accuracy(theta, self.test),
        }
