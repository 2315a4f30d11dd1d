"""Ridge and Lasso regression on scikit-learn's bundled diabetes data (442 patients, 10 features).

Features are standardized with the training split's statistics; the split is seeded.
Value: validation MSE; the test MSE and R² are recorded for every trial.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Lasso, Ridge
from sklearn.metrics import mean_squared_error
from sklearn.preprocessing import StandardScaler

from hpo_cli.errors import ConfigError
from hpo_cli.request import HypergradRequest
from hpo_cli.tasks.base import Task, split_indices
from hpo_cli.tasks.criteria.base import Criterion
from hpo_cli.tasks.criteria.cv import CrossValidation, fold_indices
from hpo_cli.tasks.criteria.holdout import Holdout
from hpo_cli.trial import Evaluation, Request, TrainedModel

MODELS = ("ridge", "lasso")


class DiabetesData:
    """Standardized (train, validation, test) arrays: X_* shape (n, 10), y_* shape (n,)."""

    def __init__(self, seed: int, val_fraction: float, test_fraction: float) -> None:
        X, y = load_diabetes(return_X_y=True)
        train, val, test = split_indices(len(y), seed, val_fraction, test_fraction)
        scaler = StandardScaler().fit(X[train])
        self.X_train, self.y_train = scaler.transform(X[train]), y[train]
        self.X_val, self.y_val = scaler.transform(X[val]), y[val]
        self.X_test, self.y_test = scaler.transform(X[test]), y[test]


def make_model(model: str, alpha: float, max_iter: int) -> Ridge | Lasso:
    if model == "ridge":
        return Ridge(alpha=alpha)
    return Lasso(alpha=alpha, max_iter=max_iter)


class _LinearBase(Task):
    metric = "val_mse"

    def __init__(
        self,
        seed: int = 0,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        max_iter: int = 10_000,
        device: str = "cpu",
        criterion: Criterion | None = None,
    ) -> None:
        self.data = DiabetesData(seed, val_fraction, test_fraction)
        self.max_iter, self.seed = max_iter, seed
        self.criterion = Holdout() if criterion is None else criterion
        if not isinstance(self.criterion, Holdout | CrossValidation):
            raise ConfigError(
                "criterion",
                self.criterion.name,
                f"task {self.name} tunes scikit-learn's alpha: hold-out or cv only; the evidence and the ELBO "
                "need the Bayesian ridge (task=ridge space=ridge_log_precision or ridge_evidence)",
            )
        self.metric = self.criterion.metric(type(self).metric)

    def refit(self, params: Mapping[str, Any], budget: float | None = None) -> dict[str, Any] | None:
        protocol = "scikit-learn's fit of the training split (the evaluation itself)"
        return {"protocol": protocol, **self.evaluate(params).metrics}

    def _score(self, model: str, alpha: float) -> Evaluation:
        if isinstance(self.criterion, CrossValidation):
            return score_folds(self.data, model, alpha, self.max_iter, self.criterion.k, self.seed)
        return score_linear(self.data, model, alpha, self.max_iter)


def score_folds(data: DiabetesData, model: str, alpha: float, max_iter: int, k: int, seed: int) -> Evaluation:
    """k-fold cross-validation on training + validation rows (the folds of
    :func:`~hpo_cli.tasks.criteria.cv.fold_indices`): the mean held-out MSE (``cv_fold<q>``
    each); test metrics are the mean over the fold models."""
    X, y = np.vstack([data.X_train, data.X_val]), np.concatenate([data.y_train, data.y_val])
    metrics: dict[str, float] = {}
    folds = fold_indices(len(y), k, seed)
    for q, (train, held) in enumerate(folds):
        fitted = make_model(model, alpha, max_iter).fit(X[train], y[train])
        metrics[f"cv_fold{q}"] = float(mean_squared_error(y[held], fitted.predict(X[held])))
        for name, value in test_scores(fitted, data).items():
            metrics[name] = metrics.get(name, 0.0) + value / k
    metrics["cv_mse"] = float(np.mean([metrics[f"cv_fold{q}"] for q in range(k)]))
    return Evaluation(metrics["cv_mse"], metrics, {"inner_solves": k})


def test_scores(fitted: Ridge | Lasso, data: DiabetesData) -> dict[str, float]:
    return {
        "test_mse": float(mean_squared_error(data.y_test, fitted.predict(data.X_test))),
        "test_r2": float(fitted.score(data.X_test, data.y_test)),
        "n_nonzero": int(np.count_nonzero(fitted.coef_)),
    }


def score_linear(data: DiabetesData, model: str, alpha: float, max_iter: int) -> Evaluation:
    """Fit scikit-learn's Ridge or Lasso with ``alpha``; validation MSE plus test metrics."""
    d = data
    fitted = make_model(model, alpha, max_iter).fit(d.X_train, d.y_train)
    metrics = {"val_mse": float(mean_squared_error(d.y_val, fitted.predict(d.X_val))), **test_scores(fitted, d)}
    arrays = {"coef": np.asarray(fitted.coef_), "intercept": np.asarray(fitted.intercept_)}
    trained = TrainedModel(arrays, {"model": model, "alpha": alpha, "features": "standardized diabetes (10)"})
    return Evaluation(metrics["val_mse"], metrics, {"inner_solves": 1}, model=trained)


def required(params: Mapping[str, Any], name: str, task: str) -> Any:
    if name not in params:
        raise ConfigError("space.params", sorted(params), f"task {task} needs parameter {name!r}")
    return params[name]


class RidgeTask(_LinearBase):
    """scikit-learn's Ridge with ``alpha`` (the differentiable ridge, tuned by log precisions, is
    :class:`hpo_cli.tasks.ridge.DifferentiableRidgeTask`)."""

    name = "ridge"

    def evaluate(
        self, params: Mapping[str, Any], budget: float | None = None, request: Request | None = None
    ) -> Evaluation:
        return self._score("ridge", float(required(params, "alpha", self.name)))

    def check_hypergradient(self, request: HypergradRequest, names: list[str]) -> None:
        raise ConfigError(
            "space.params.alpha" if "alpha" in names else "space",
            "alpha" if "alpha" in names else names,
            "gradient strategies on ridge tune log_precision (alpha = e^h): use "
            "space=ridge_log_precision or space=ridge_per_feature",
        )


class LassoTask(_LinearBase):
    name = "lasso"

    def evaluate(
        self, params: Mapping[str, Any], budget: float | None = None, request: Request | None = None
    ) -> Evaluation:
        return self._score("lasso", float(required(params, "alpha", self.name)))


class LinearTask(_LinearBase):
    """The conditional space of the Optuna lecture: ``model`` in {ridge, lasso}, each with its
    own regularization strength ``ridge_alpha`` / ``lasso_alpha``."""

    name = "linear"

    def evaluate(
        self, params: Mapping[str, Any], budget: float | None = None, request: Request | None = None
    ) -> Evaluation:
        model = required(params, "model", self.name)
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}")
        return self._score(model, float(required(params, f"{model}_alpha", self.name)))
