"""Polynomial regression with a Gaussian prior, as in Bakhteev & Strijov (2020).

Data: m points, x ~ N(0, 1), y = x + ε with ε ~ N(0, noise²); features
{x^0, ..., x^degree, sin x, cos x} (12 coefficients at degree 9), each non-constant column
scaled by its training standard deviation when ``standardize`` (so that gradient-based inner
training is well conditioned; the function class is unchanged). Model: y ~ N(Φθ, β⁻¹) with
β = 1/noise², prior θ ~ N(0, A⁻¹), A = diag(exp(h)). The hyperparameter ``log_precision`` is h:
shared, or one per coefficient (``size: n_coefficients``). Black-box evaluation solves the MAP
in closed form, θ* = (βΦᵀΦ + A)⁻¹ βΦᵀy; value = hold-out validation MSE.

As a bilevel problem the inner loss is the negative log posterior divided by the number of
training points: L(θ, h) = β/(2n)·Σ(φ_iᵀθ − y_i)² + 1/(2n)·Σ exp(h_j)·θ_j² (same minimizer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from hpo_cli.errors import ConfigError
from hpo_cli.hypergrad.problem import BilevelProblem, HyperLayout
from hpo_cli.tasks.base import mse, split_indices
from hpo_cli.tasks.bilevel_models import LinearRegressionModel, Split, split_of
from hpo_cli.tasks.differentiable import DifferentiableTask
from hpo_cli.trial import Evaluation
from hpo_cli.validate import flag, one_of, positive_float, positive_int


def polynomial_features(x: np.ndarray, degree: int, trig: bool) -> np.ndarray:
    """x: shape (n,) -> Φ: shape (n, degree + 1 [+ 2]) with columns x^0..x^degree[, sin, cos]."""
    columns = [x**k for k in range(degree + 1)]
    if trig:
        columns += [np.sin(x), np.cos(x)]
    return np.stack(columns, axis=1)


class PolynomialTask(DifferentiableTask):
    name = "polynomial"
    metric = "val_mse"
    training_config = "task/polynomial.yaml"

    def __init__(
        self,
        seed: int = 0,
        m: int = 40,
        degree: int = 9,
        trig: bool = True,
        noise: float = 0.5,
        val_fraction: float = 0.25,
        n_test: int = 1000,
        standardize: bool = True,
        solver: str = "closed_form",
        log_precision: float | None = 0.0,
        device: str = "cpu",
        dtype: str = "float64",
        **training: Any,
    ) -> None:
        super().__init__(seed, device, dtype, training)
        m, degree, n_test = (
            positive_int(m, "task.m"),
            positive_int(degree, "task.degree"),
            positive_int(n_test, "task.n_test"),
        )
        self.noise = positive_float(noise, "task.noise")
        self.solver = one_of(solver, "task.solver", ("closed_form", "lbfgs"))
        self.fixed_log_precision = log_precision
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(m)
        y = x + self.noise * rng.standard_normal(m)
        x_test = rng.standard_normal(n_test)
        y_test = x_test + self.noise * rng.standard_normal(n_test)
        train, val, _ = split_indices(m, seed, val_fraction, 0.0)
        phi, phi_test = (
            polynomial_features(x, degree, flag(trig, "task.trig")),
            polynomial_features(x_test, degree, trig),
        )
        if flag(standardize, "task.standardize"):
            scale = phi[train].std(axis=0)
            scale[0] = 1.0
            phi, phi_test = phi / scale, phi_test / scale
        self.X_train, self.y_train = phi[train], y[train]
        self.X_val, self.y_val = phi[val], y[val]
        self.X_test, self.y_test = phi_test, y_test
        self.n_coefficients = phi.shape[1]
        self._model: LinearRegressionModel | None = None

    def dimensions(self) -> dict[str, int]:
        return {**super().dimensions(), "n_coefficients": self.n_coefficients}

    def model(self) -> LinearRegressionModel:
        if self._model is None:

            def split(X: np.ndarray, y: np.ndarray) -> Split:
                return split_of(X, y, self.dtype, self.device)

            self._model = LinearRegressionModel(
                split(self.X_train, self.y_train),
                split(self.X_val, self.y_val),
                None,
                1.0 / self.noise**2,
            )
            self._model.fixed_log_precision = self.fixed_log_precision
        return self._model

    def test_metrics(self, theta: Tensor) -> dict[str, float]:
        coef = theta.detach().cpu().double().numpy()
        test_mse = mse(self.y_test, self.X_test @ coef)
        return {
            "train_mse": mse(self.y_train, self.X_train @ coef),
            "test_mse": test_mse,
            "test_rmse": float(np.sqrt(test_mse)),
            **self.parameter_noise(theta.detach().cpu().double(), self._test_rmse),
        }

    def _test_rmse(self, theta: Tensor) -> dict[str, float]:
        return {"test_rmse": float(np.sqrt(mse(self.y_test, self.X_test @ theta.numpy())))}

    def precisions(self, params: Mapping[str, Any]) -> np.ndarray:
        """exp(log_precision), broadcast to shape (n_coefficients,)."""
        if "log_precision" not in params:
            raise ConfigError("space.params", sorted(params), "polynomial needs 'log_precision'")
        h = np.asarray(params["log_precision"], dtype=float)
        if h.ndim > 1 or (h.ndim == 1 and h.shape[0] != self.n_coefficients):
            raise ValueError(f"log_precision has shape {h.shape}; expected a scalar or ({self.n_coefficients},)")
        return np.broadcast_to(np.exp(h), (self.n_coefficients,))

    def fit(self, params: Mapping[str, Any]) -> np.ndarray:
        """The MAP coefficients θ* in closed form, shape (n_coefficients,)."""
        beta = 1.0 / self.noise**2
        a = beta * self.X_train.T @ self.X_train + np.diag(self.precisions(params))
        return scipy.linalg.solve(a, beta * self.X_train.T @ self.y_train, assume_a="pos")

    def evaluate_blackbox(self, problem: BilevelProblem, layout: HyperLayout, h: Tensor) -> Evaluation:
        if layout.names != ["log_precision"] or self.solver != "closed_form" or self.criterion.name != "holdout":
            return super().evaluate_blackbox(problem, layout, h)
        params = layout.unflatten(h.cpu())
        theta = self.fit({"log_precision": params["log_precision"].numpy()})
        metrics = {
            "val_mse": mse(self.y_val, self.X_val @ theta),
            **self.test_metrics(torch.as_tensor(theta)),
        }
        return Evaluation(
            metrics["val_mse"], metrics, {"inner_solves": 1}, model=self.trained_model(torch.as_tensor(theta))
        )
