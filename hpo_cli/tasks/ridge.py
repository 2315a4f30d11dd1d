"""Ridge regression on the diabetes data as a bilevel problem (``task=ridge`` with
``space=ridge_log_precision`` or ``ridge_per_feature``; ``conf/task_space/`` picks this class
for those spaces, scikit-learn's :class:`~hpo_cli.tasks.linear.RidgeTask` otherwise).

With ``log_precision`` (shared, or one per feature: ``size: n_features``), y is centred by its
training mean (the intercept) and
L(θ, h) = 1/(2n)·‖Xθ − y‖² + 1/(2n)·Σ exp(h_j)·θ_j², whose minimizer
θ* = (XᵀX + diag(e^h))⁻¹Xᵀy is scikit-learn's ``Ridge(alpha=e^h)`` for a shared h.
Gradient strategies and ``hpo gradcheck`` work on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from hpo_cli.errors import ConfigError
from hpo_cli.tasks.bilevel_models import LinearRegressionModel, Split, split_of
from hpo_cli.tasks.differentiable import DifferentiableTask
from hpo_cli.tasks.linear import DiabetesData


class DifferentiableRidgeTask(DifferentiableTask):
    name = "ridge"
    metric = "val_mse"
    training_config = "task_space/ridge_ridge_log_precision.yaml:task"

    def __init__(
        self,
        seed: int = 0,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        device: str = "cpu",
        dtype: str = "float64",
        **training: Any,
    ) -> None:
        super().__init__(seed, device, dtype, training)
        self.data = DiabetesData(seed, val_fraction, test_fraction)
        self.intercept = float(self.data.y_train.mean())
        self._model: LinearRegressionModel | None = None

    def dimensions(self) -> dict[str, int]:
        return {**super().dimensions(), "n_features": self.data.X_train.shape[1]}

    def check_hyperparameters(self, names: list[str]) -> None:
        if "alpha" in names:
            raise ConfigError(
                "space.params.alpha",
                "alpha",
                "the differentiable ridge tunes log_precision (alpha = e^h): use "
                "space=ridge_log_precision or space=ridge_per_feature",
            )
        super().check_hyperparameters(names)

    def model(self) -> LinearRegressionModel:
        if self._model is None:
            d = self.data
            train, val = self._split(d.X_train, d.y_train), self._split(d.X_val, d.y_val)
            self._model = LinearRegressionModel(train, val, None)
        return self._model

    def _split(self, X: np.ndarray, y: np.ndarray) -> Split:
        return split_of(X, y - self.intercept, self.dtype, self.device)

    def test_metrics(self, theta: Tensor) -> dict[str, float]:
        coef = theta.detach().cpu().double().numpy()
        residual = self.data.y_test - (self.data.X_test @ coef + self.intercept)
        return {"test_mse": float(np.mean(residual**2))}
