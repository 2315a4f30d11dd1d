"""Tasks against known answers: closed forms, scikit-learn directly, determinism."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Lasso, Ridge
from sklearn.metrics import mean_squared_error
from sklearn.preprocessing import StandardScaler

from hpo_cli.errors import ConfigError
from hpo_cli.tasks.function import FunctionTask
from hpo_cli.tasks.linear import LassoTask, LinearTask, RidgeTask
from hpo_cli.tasks.polynomial import PolynomialTask


def test_polynomial_data_follow_the_published_protocol() -> None:
    task = PolynomialTask(seed=0, standardize=False)
    assert task.n_coefficients == 12
    assert task.dimensions() == {"n_coefficients": 12, "n_params": 12, "n_train": 30, "n_tensors": 1}
    assert len(task.y_train) + len(task.y_val) == 40 and len(task.y_val) == 10
    x = task.X_train[:, 1]
    np.testing.assert_allclose(task.X_train[:, 9], x**9)
    np.testing.assert_allclose(task.X_train[:, 10:], np.stack([np.sin(x), np.cos(x)], 1))
    assert PolynomialTask(seed=0, degree=3, trig=False).n_coefficients == 4
    scaled = PolynomialTask(seed=0)  # columns scaled by their training std; x^0 stays 1
    np.testing.assert_allclose(scaled.X_train.std(axis=0)[1:], 1.0)
    scale = task.X_train.std(axis=0)
    scale[0] = 1.0
    np.testing.assert_allclose(scaled.X_train, task.X_train / scale, rtol=1e-12)


def test_polynomial_map_fit_matches_ridge_without_intercept() -> None:
    task = PolynomialTask(seed=3)
    h = 1.7  # shared log precision; MAP = ridge with alpha = exp(h) * noise^2
    ridge = Ridge(alpha=np.exp(h) * task.noise**2, fit_intercept=False, solver="cholesky")
    ridge.fit(task.X_train, task.y_train)
    np.testing.assert_allclose(task.fit({"log_precision": h}), ridge.coef_, rtol=1e-6, atol=1e-10)
    ev = task.evaluate({"log_precision": h})
    assert ev.value == pytest.approx(mean_squared_error(task.y_val, ridge.predict(task.X_val)), rel=1e-6)
    assert set(ev.metrics) >= {"val_mse", "test_mse", "test_rmse", "train_mse"}


def test_polynomial_limits_of_the_prior_precision() -> None:
    task = PolynomialTask(seed=1, degree=3)
    huge = task.evaluate({"log_precision": 40.0})  # theta -> 0
    assert huge.value == pytest.approx(np.mean(task.y_val**2), rel=1e-9)
    tiny = task.fit({"log_precision": [-30.0] * task.n_coefficients})  # -> least squares
    lstsq = np.linalg.lstsq(task.X_train, task.y_train, rcond=None)[0]
    np.testing.assert_allclose(tiny, lstsq, rtol=1e-6)


def test_polynomial_per_coefficient_precision_acts_per_coefficient() -> None:
    task = PolynomialTask(seed=2)
    h = np.full(12, -2.0)
    h[9] = 30.0  # pin the x^9 coefficient to zero only
    theta = task.fit({"log_precision": list(h)})
    assert abs(theta[9]) < 1e-9 and np.all(np.abs(np.delete(theta, 9)) > 1e-9)
    with pytest.raises(ValueError, match="expected a scalar or"):
        task.fit({"log_precision": [0.0] * 5})


def test_polynomial_is_deterministic_in_the_seed() -> None:
    a, b, c = PolynomialTask(seed=5), PolynomialTask(seed=5), PolynomialTask(seed=6)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.X_train, c.X_train)


def independent_diabetes_split(seed: int) -> tuple[np.ndarray, ...]:
    """The documented split, rebuilt here: permutation(seed) -> 20 % val, 20 % test, rest train."""
    X, y = load_diabetes(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = n_test = round(len(y) * 0.2)
    val, test, train = order[:n_val], order[n_val : n_val + n_test], order[n_val + n_test :]
    scaler = StandardScaler().fit(X[train])
    return (
        scaler.transform(X[train]),
        y[train],
        scaler.transform(X[val]),
        y[val],
        scaler.transform(X[test]),
        y[test],
    )


def test_ridge_and_lasso_match_scikit_learn_on_the_documented_split() -> None:
    Xtr, ytr, Xva, yva, Xte, yte = independent_diabetes_split(seed=4)
    ridge = RidgeTask(seed=4).evaluate({"alpha": 3.0})
    fitted = Ridge(alpha=3.0).fit(Xtr, ytr)
    assert ridge.value == mean_squared_error(yva, fitted.predict(Xva))
    assert ridge.metrics["test_mse"] == mean_squared_error(yte, fitted.predict(Xte))
    lasso = LassoTask(seed=4).evaluate({"alpha": 0.5})
    fitted_lasso = Lasso(alpha=0.5, max_iter=10_000).fit(Xtr, ytr)
    assert lasso.value == mean_squared_error(yva, fitted_lasso.predict(Xva))
    assert lasso.metrics["n_nonzero"] == np.count_nonzero(fitted_lasso.coef_) < 10


def test_linear_task_uses_the_alpha_of_the_chosen_model() -> None:
    task = LinearTask(seed=0)
    assert (
        task.evaluate({"model": "ridge", "ridge_alpha": 2.0}).value == RidgeTask(seed=0).evaluate({"alpha": 2.0}).value
    )
    assert (
        task.evaluate({"model": "lasso", "lasso_alpha": 0.1}).value == LassoTask(seed=0).evaluate({"alpha": 0.1}).value
    )
    with pytest.raises(ConfigError, match="needs parameter 'lasso_alpha'"):
        task.evaluate({"model": "lasso", "ridge_alpha": 0.1})


def test_function_task_imports_from_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "user_objective_mod.py").write_text(
        "def f(p):\n    return (p['x'] - 1) ** 2\ndef g(p):\n    return {'acc': 1 - p['x'], 'loss': p['x']}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert FunctionTask(fn="user_objective_mod.f").evaluate({"x": 3.0}).value == 4.0
    ev = FunctionTask(fn="user_objective_mod:g", metric="acc", direction="maximize").evaluate({"x": 0.25})
    assert ev.value == 0.75 and ev.metrics == {"acc": 0.75, "loss": 0.25}
    with pytest.raises(ConfigError, match=r"task.fn='no_such_mod.f': cannot import module 'no_such_mod'"):
        FunctionTask(fn="no_such_mod.f")
    with pytest.raises(ConfigError, match="has no callable 'h'"):
        FunctionTask(fn="user_objective_mod.h")
    with pytest.raises(ConfigError, match=r"task\.direction='up'"):
        FunctionTask(fn="user_objective_mod.f", direction="up")
