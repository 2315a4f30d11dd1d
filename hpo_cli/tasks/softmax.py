"""Softmax (multinomial logistic) regression on scikit-learn's bundled 8×8 digits (1,797 images).

Pixels are scaled to [0, 1]; the train/validation/test split is seeded. With
``label_noise > 0`` that fraction of training labels is replaced by a random wrong class, the
setting of data hyper-cleaning (Franceschi 2017): a space with ``example_weights``
(``size: n_train``) learns to down-weight the corrupted examples. Value: validation
cross-entropy; accuracy and, with label noise, the F1 of detecting the flipped examples
(weight below 1e-3 counts as discarded) are recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from torch import Tensor

from hpo_cli.hypergrad.request import HypergradRequest
from hpo_cli.tasks.base import split_indices
from hpo_cli.tasks.bilevel_models import SoftmaxRegressionModel, Split, split_of
from hpo_cli.tasks.differentiable import DifferentiableTask
from hpo_cli.trial import Evaluation

DISCARDED = 1e-3


def flip_labels(y: np.ndarray, fraction: float, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the flipped examples; ``y`` is changed in place to a random *wrong* class."""
    flipped = rng.choice(len(y), size=round(fraction * len(y)), replace=False)
    y[flipped] = (y[flipped] + rng.integers(1, n_classes, size=len(flipped))) % n_classes
    return np.sort(flipped)


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
        device: str = "cpu",
        dtype: str = "float64",
        **training: Any,
    ) -> None:
        super().__init__(seed, device, dtype, training)
        X, y = load_digits(return_X_y=True)
        train, val, test = split_indices(len(y), seed, val_fraction, test_fraction)
        y_train = y[train].copy()
        self.flipped = (
            flip_labels(y_train, label_noise, 10, np.random.default_rng(seed + 1))
            if label_noise > 0
            else np.array([], dtype=int)
        )
        self.fixed_log_precision = log_precision

        def split(rows: np.ndarray, labels: np.ndarray) -> Split:
            return split_of(X[rows] / 16.0, labels, self.dtype, self.device, labels=True)

        self.train, self.val, self.test = (
            split(train, y_train),
            split(val, y[val]),
            split(test, y[test]),
        )
        self._model: SoftmaxRegressionModel | None = None

    def model(self) -> SoftmaxRegressionModel:
        if self._model is None:
            self._model = SoftmaxRegressionModel(self.train, self.val, None, n_classes=10)
            self._model.fixed_log_precision = self.fixed_log_precision
        return self._model

    def test_metrics(self, theta: Tensor) -> dict[str, float]:
        model = self.model()
        return {
            "val_accuracy": model.accuracy(theta, self.val),
            "test_accuracy": model.accuracy(theta, self.test),
        }

    def cleaning_f1(self, weights: np.ndarray) -> float:
        """F1 of 'weight < 1e-3' as a detector of the flipped training examples."""
        discarded = set(np.flatnonzero(np.asarray(weights) < DISCARDED))
        flipped = set(self.flipped.tolist())
        hits = len(discarded & flipped)
        return 0.0 if hits == 0 else 2 * hits / (len(discarded) + len(flipped))

    def evaluate(
        self,
        params: Mapping[str, Any],
        budget: float | None = None,
        request: HypergradRequest | None = None,
    ) -> Evaluation:
        ev = super().evaluate(params, budget, request)
        if "example_weights" in params and len(self.flipped):
            ev.metrics["cleaning_f1"] = self.cleaning_f1(np.asarray(params["example_weights"]))
        return ev
