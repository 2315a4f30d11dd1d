"""Polynomial regression with a Gaussian prior, as in Bakhteev & Strijov (2020).

Data: m points, x ~ N(0, 1), y = x + ε with ε ~ N(0, noise²); features
{x^0, ..., x^degree, sin x, cos x} (12 coefficients at degree 9). Model: y ~ N(Φθ, β⁻¹),
β = 1 / noise², prior θ ~ N(0, A⁻¹) with A = diag(exp(h)). The hyperparameter ``log_precision``
is h: one shared value, or one per coefficient (``size: n_coefficients``). The inner problem is
solved in closed form (MAP): θ* = (βΦᵀΦ + A)⁻¹ βΦᵀy. Value: hold-out validation MSE.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.linalg

from hpo_cli.errors import ConfigError
from hpo_cli.tasks.base import Evaluation, Task, mse, split_indices
from hpo_cli.validate import positive_float, positive_int


def polynomial_features(x: np.ndarray, degree: int, trig: bool) -> np.ndarray:
    """x: shape (n,) -> Φ: shape (n, degree + 1 [+ 2]) with columns x^0..x^degree[, sin, cos]."""
    columns = [x**k for k in range(degree + 1)]
    if trig:
        columns += [np.sin(x), np.cos(x)]
    return np.stack(columns, axis=1)


class PolynomialTask(Task):
    name = "polynomial"
    metric = "val_mse"

    def __init__(
        self,
        seed: int = 0,
        m: int = 40,
        degree: int = 9,
        trig: bool = True,
        noise: float = 0.5,
        val_fraction: float = 0.25,
        n_test: int = 1000,
        device: str = "cpu",
    ) -> None:
        m = positive_int(m, "task.m")
        degree = positive_int(degree, "task.degree")
        self.noise = positive_float(noise, "task.noise")
        n_test = positive_int(n_test, "task.n_test")
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(m)
        y = x + self.noise * rng.standard_normal(m)
        x_test = rng.standard_normal(n_test)
        y_test = x_test + self.noise * rng.standard_normal(n_test)
        train, val, _ = split_indices(m, seed, val_fraction, 0.0)
        phi = polynomial_features(x, degree, trig)
        self.X_train, self.y_train = phi[train], y[train]
        self.X_val, self.y_val = phi[val], y[val]
        self.X_test, self.y_test = polynomial_features(x_test, degree, trig), y_test
        self.n_coefficients = phi.shape[1]

    def dimensions(self) -> dict[str, int]:
        return {"n_coefficients": self.n_coefficients}

    def precisions(self, params: Mapping[str, Any]) -> np.ndarray:
        """exp(log_precision), broadcast to shape (n_coefficients,)."""
        if "log_precision" not in params:
            raise ConfigError("space.params", sorted(params), "polynomial needs 'log_precision'")
        h = np.asarray(params["log_precision"], dtype=float)
        if h.ndim > 1 or (h.ndim == 1 and h.shape[0] != self.n_coefficients):
            raise ValueError(
                f"log_precision has shape {h.shape}; expected a scalar or ({self.n_coefficients},)"
            )
        return np.broadcast_to(np.exp(h), (self.n_coefficients,))

    def fit(self, params: Mapping[str, Any]) -> np.ndarray:
        """The MAP coefficients θ*, shape (n_coefficients,)."""
        beta = 1.0 / self.noise**2
        a = beta * self.X_train.T @ self.X_train + np.diag(self.precisions(params))
        return scipy.linalg.solve(a, beta * self.X_train.T @ self.y_train, assume_a="pos")

    def evaluate(self, params: Mapping[str, Any], budget: float | None = None) -> Evaluation:
        theta = self.fit(params)
        metrics = {
            "val_mse": mse(self.y_val, self.X_val @ theta),
            "train_mse": mse(self.y_train, self.X_train @ theta),
            "test_mse": mse(self.y_test, self.X_test @ theta),
        }
        metrics["test_rmse"] = float(np.sqrt(metrics["test_mse"]))
        return Evaluation(metrics["val_mse"], metrics, {"inner_solves": 1})
