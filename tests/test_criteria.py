"""Model-selection criteria checked by value against independent references (scikit-learn's
cross_val_score, BayesianRidge and ARDRegression), closed forms, Monte Carlo and central finite
differences in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import ARDRegression, BayesianRidge, Ridge
from sklearn.model_selection import KFold, cross_val_score

from hpo_cli.hypergrad import compute
from hpo_cli.hypergrad.check import finite_difference, relative_error
from hpo_cli.hypergrad.implicit import solve_inner
from hpo_cli.tasks.criteria.cv import CrossValidation
from hpo_cli.tasks.criteria.elbo import Elbo, kl_to_prior
from hpo_cli.tasks.criteria.evidence import Evidence
from hpo_cli.tasks.polynomial import PolynomialTask
from hpo_cli.tasks.ridge import DifferentiableRidgeTask
from hpo_cli.tasks.softmax import SoftmaxTask

F64 = torch.float64


def ridge_data(task: DifferentiableRidgeTask) -> tuple[np.ndarray, np.ndarray]:
    """D of the differentiable ridge: training then validation rows, y centred as the task does."""
    d = task.data
    return np.vstack([d.X_train, d.X_val]), np.concatenate([d.y_train, d.y_val]) - task.intercept


def at_optimum(task, params):
    layout = task.layout_of(params)
    problem, h = task.problem(layout), task.hyper_vector(layout, params)
    theta = solve_inner(problem, h, problem.theta0, tol=1e-12).theta
    return problem, theta, h


@pytest.mark.parametrize(("k", "log_alpha"), [(5, 1.3), (3, -0.7), (4, 4.0)])
def test_cv_on_ridge_equals_sklearn_cross_val_score(k: int, log_alpha: float) -> None:
    task = DifferentiableRidgeTask(seed=3, criterion=CrossValidation(k=k))
    value = task.evaluate({"log_precision": log_alpha}).value
    X, y = ridge_data(task)
    # each fold's likelihood is scaled by k/(k-1) (see criteria/cv.py): Ridge(alpha·(k−1)/k)
    ridge = Ridge(alpha=math.exp(log_alpha) * (k - 1) / k, fit_intercept=False)
    folds = KFold(n_splits=k, shuffle=True, random_state=3)
    reference = -cross_val_score(ridge, X, y, cv=folds, scoring="neg_mean_squared_error").mean()
    assert value == pytest.approx(reference, rel=1e-8)


def test_cv_records_the_folds_and_their_mean() -> None:
    ev = DifferentiableRidgeTask(seed=0, criterion=CrossValidation(k=4)).evaluate({"log_precision": 0.5})
    folds = [ev.metrics[f"cv_fold{q}"] for q in range(4)]
    assert ev.metrics["cv_mse"] == pytest.approx(np.mean(folds), rel=1e-12) == ev.value
    assert len(set(folds)) == 4


@pytest.mark.parametrize(("log_beta", "log_lambda"), [(-8.0, 0.0), (-7.5, 2.5), (-9.0, -3.0)])
def test_evidence_equals_bayesian_ridge_log_marginal_likelihood(log_beta: float, log_lambda: float) -> None:
    task = DifferentiableRidgeTask(seed=1, criterion=Evidence())
    ev = task.evaluate({"log_precision": log_lambda, "log_noise_precision": log_beta})
    X, y = ridge_data(task)
    reference = BayesianRidge(
        compute_score=True,
        alpha_init=math.exp(log_beta),
        lambda_init=math.exp(log_lambda),
        alpha_1=0.0,
        alpha_2=0.0,
        lambda_1=0.0,
        lambda_2=0.0,
        fit_intercept=False,
        max_iter=1,
    ).fit(X, y)
    assert ev.metrics["log_evidence"] == pytest.approx(reference.scores_[0], rel=1e-8)
    assert ev.value == pytest.approx(-reference.scores_[0] / len(y), rel=1e-8)


def log_evidence(X: np.ndarray, y: np.ndarray, beta: float, lam: np.ndarray) -> float:
    """The exact log marginal likelihood of y ~ N(Xw, 1/β), w ~ N(0, diag(λ)⁻¹), in numpy."""
    n = len(y)
    cov = np.diag(1.0 / lam) @ X.T
    marginal = X @ cov + np.eye(n) / beta
    _sign, logdet = np.linalg.slogdet(marginal)
    return float(-0.5 * (logdet + y @ np.linalg.solve(marginal, y) + n * math.log(2 * math.pi)))


@pytest.mark.slow
def test_gradient_maximized_evidence_reaches_ard_regression() -> None:
    from hpo_cli.runner import run_in_memory

    overrides = [
        "task=ridge",
        "space=ridge_evidence",
        "criterion=evidence",
        "strategy=reverse",  # Adam on exact implicit hypergradients
        "strategy.method=implicit",
        "strategy.lr=0.3",
        "n_trials=200",
        "seed=0",
    ]
    records = [r for r in run_in_memory(overrides) if r.value is not None]
    best = min(records, key=lambda r: r.value)
    task = DifferentiableRidgeTask(seed=0)
    X, y = ridge_data(task)
    ard = ARDRegression(alpha_1=0.0, alpha_2=0.0, lambda_1=0.0, lambda_2=0.0, fit_intercept=False, max_iter=1000).fit(
        X, y
    )
    reference = log_evidence(X, y, ard.alpha_, ard.lambda_)
    ours = best.metrics["log_evidence"]
    assert ours >= reference - 1e-3 * abs(reference), (ours, reference)


@pytest.mark.parametrize("seed", [0, 1])
def test_laplace_evidence_of_a_linear_gaussian_model_equals_its_closed_form(seed: int) -> None:
    params = {"log_precision": [0.5 * j - 2.0 for j in range(12)], "log_noise_precision": 1.2}
    values = []
    for method in ("closed_form", "laplace"):
        task = PolynomialTask(seed=seed, criterion=Evidence(method=method))
        problem, theta, h = at_optimum(task, params)
        values.append(float(problem.outer(theta, h)))
        off_optimum = theta + 0.01 * torch.arange(theta.numel(), dtype=F64)
        values.append(float(problem.outer(off_optimum, h)))
    assert values[2] == pytest.approx(values[0], rel=1e-10)
    assert values[3] == pytest.approx(values[1], rel=1e-10)


@pytest.mark.parametrize("log_precision", [-2.0, 0.0, 3.0])
def test_elbo_never_exceeds_the_exact_log_evidence(log_precision: float) -> None:
    params = {"log_precision": [log_precision + 0.3 * j for j in range(12)], "log_noise_precision": 1.0}
    evidence = PolynomialTask(seed=2, criterion=Evidence()).evaluate(params).metrics["log_evidence"]
    task = PolynomialTask(seed=2, criterion=Elbo())
    optimum = task.evaluate(params).metrics["elbo"]
    # the best diagonal q has μ = the posterior mean and σ_j² = 1/H_jj (H the posterior
    # precision), so ELBO* = log evidence − ½(Σ log H_jj − log det H)
    X = np.vstack([task.X_train, task.X_val])
    H = math.e * X.T @ X + np.diag(np.exp(params["log_precision"]))
    gap = 0.5 * (np.log(np.diag(H)).sum() - np.linalg.slogdet(H)[1])
    assert optimum == pytest.approx(evidence - gap, rel=1e-8)
    assert optimum <= evidence
    problem, theta, h = at_optimum(task, params)
    n = X.shape[0]
    for scale in (0.01, 0.1, 1.0):
        moved = theta + scale * torch.randn(theta.numel(), generator=torch.Generator().manual_seed(1), dtype=F64)
        assert -float(problem.outer(moved, h)) * n <= optimum <= evidence


def test_kl_term_matches_a_monte_carlo_estimate() -> None:
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(5, generator=gen, dtype=F64)
    log_variance = torch.randn(5, generator=gen, dtype=F64) - 1.0
    alpha = torch.exp(torch.randn(5, generator=gen, dtype=F64))
    draws = 400_000
    w = mean + torch.exp(0.5 * log_variance) * torch.randn(draws, 5, generator=gen, dtype=F64)
    log_q = -0.5 * (((w - mean) ** 2) / torch.exp(log_variance) + log_variance + math.log(2 * math.pi)).sum(1)
    log_p = -0.5 * (alpha * w**2 - torch.log(alpha) + math.log(2 * math.pi)).sum(1)
    sample = log_q - log_p
    standard_error = float(sample.std()) / math.sqrt(draws)
    exact = float(kl_to_prior(mean, log_variance, alpha))
    assert abs(float(sample.mean()) - exact) < 4 * standard_error


CRITERIA = {
    "cv": lambda: CrossValidation(k=3),
    "evidence": lambda: Evidence(),
    "laplace_full": lambda: Evidence(method="laplace"),
    "laplace_diagonal": lambda: Evidence(method="laplace", hessian="diagonal"),
    "elbo_analytic": lambda: Elbo(),
    "elbo_sampled": lambda: Elbo(expectation="sampled", samples=2, eval_samples=3),
}


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
@pytest.mark.parametrize("method", ["reverse", "implicit"])
def test_hypergradients_of_every_criterion_match_finite_differences(criterion: str, method: str) -> None:
    task = PolynomialTask(seed=0, m=24, degree=3, inner_steps=40, inner_lr=0.05, criterion=CRITERIA[criterion]())
    params = {"log_precision": [0.2, -0.4, 1.0, 0.5, 0.0, 1.5], "log_noise_precision": 0.8}
    layout = task.layout_of(params)
    problem, h = task.problem(layout), task.hyper_vector(layout, params)
    result = compute(method, problem, h, **({"tol": 1e-13} if method == "implicit" else {}))
    if method == "implicit":

        def q(x: torch.Tensor) -> float:
            return float(problem.outer(solve_inner(problem, x, problem.theta0, tol=1e-13).theta, x))

    else:

        def q(x: torch.Tensor) -> float:
            return float(problem.objective(x))

    reference = finite_difference(q, h, eps=1e-5)
    assert relative_error(result.grad, reference) <= 1e-6


SOFTMAX_SLOW = ("cv", "laplace_full", "elbo_sampled")  # make test-slow: seconds each


SOFTMAX_CASES = ["laplace_diagonal", *(pytest.param(c, marks=pytest.mark.slow) for c in SOFTMAX_SLOW)]


@pytest.mark.parametrize("criterion", SOFTMAX_CASES)
def test_hypergradients_on_softmax_match_finite_differences(criterion: str) -> None:
    task = SoftmaxTask(seed=0, n_train=40, n_val=20, n_test=20, inner_steps=15, criterion=CRITERIA[criterion]())
    params = {"log_precision": [0.5, -1.0]}
    layout = task.layout_of(params)
    problem, h = task.problem(layout), task.hyper_vector(layout, params)
    result = compute("reverse", problem, h)
    reference = finite_difference(lambda x: float(problem.objective(x)), h, eps=1e-5)
    assert relative_error(result.grad, reference) <= 1e-6


@pytest.mark.parametrize("k", [3, 5])
def test_cv_on_scikit_learns_ridge_equals_cross_val_score(k: int) -> None:
    from hpo_cli.tasks.linear import RidgeTask

    task = RidgeTask(seed=2, criterion=CrossValidation(k=k))
    value = task.evaluate({"alpha": 7.5}).value
    d = task.data
    X, y = np.vstack([d.X_train, d.X_val]), np.concatenate([d.y_train, d.y_val])
    folds = KFold(n_splits=k, shuffle=True, random_state=2)
    reference = -cross_val_score(Ridge(alpha=7.5), X, y, cv=folds, scoring="neg_mean_squared_error").mean()
    assert value == pytest.approx(reference, rel=1e-10)


@pytest.mark.parametrize(
    "criterion", [lambda: CrossValidation(k=3), lambda: Elbo(samples=1, eval_samples=2)], ids=["cv", "elbo"]
)
def test_hypergradients_on_an_mlp_match_finite_differences(criterion) -> None:
    from hpo_cli.tasks.mlp import DigitsTask

    task = DigitsTask(
        seed=0, hidden=4, activation="tanh", dtype="float64", inner_steps=6, batch_size=64, inner_lr=0.3,
        param_noise=[], criterion=criterion(),
    )  # fmt: skip
    params = {"log_precision": [1.0, 0.0, 2.0, -1.0], "log_lr": -1.5}
    layout = task.layout_of(params)
    problem, h = task.problem(layout), task.hyper_vector(layout, params)
    result = compute("reverse", problem, h)
    reference = finite_difference(lambda x: float(problem.objective(x)), h, eps=1e-5)
    assert relative_error(result.grad, reference) <= 1e-6


def test_graves_pruning_reports_what_removing_low_density_weights_costs() -> None:
    task = PolynomialTask(seed=0, criterion=Elbo())
    params = {"log_precision": [8.0, -2.0, 8.0, 0.0, 6.0, 8.0, 2.0, 8.0, 4.0, 8.0, -1.0, 3.0]}
    ev = task.evaluate(params)
    fractions = [ev.metrics[f"pruned_{t}_fraction"] for t in ("0.1", "0.5", "0.9")]
    assert 0.0 < fractions[2] <= fractions[1] <= fractions[0] < 1.0  # a lower threshold removes more
    _, theta, _ = at_optimum(task, params)  # a black-box trial's θ (a convex model: the optimum)
    mean, log_variance = theta[:12], theta[12:]
    for threshold in (0.1, 0.5, 0.9):
        removed = torch.exp(-(mean**2) / (2 * torch.exp(log_variance))) > threshold
        kept = torch.where(removed, 0.0, mean)
        assert ev.metrics[f"pruned_{threshold}_test_rmse"] == pytest.approx(task.test_metrics(kept)["test_rmse"])
        assert ev.metrics[f"pruned_{threshold}_fraction"] == pytest.approx(float(removed.double().mean()))
    assert ev.metrics["test_rmse"] == pytest.approx(task.test_metrics(mean)["test_rmse"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ["criterion=cv", "strategy=rmad", "task.inner_steps=10"],
        ["criterion=elbo", "strategy=rmad", "task.inner_steps=10"],
        ["criterion=cv", "strategy=random", "task.epochs=1"],  # k networks by torch.optim
        ["criterion=elbo", "strategy=random", "space=mnist_gradient", "task.inner_steps=10"],
    ],
    ids=["cv-rmad", "elbo-rmad", "cv-random", "elbo-random"],
)
def test_mnist_runs_under_cv_and_elbo(overrides: list[str]) -> None:
    from hpo_cli.runner import run_in_memory

    records = run_in_memory(["task=mnist", "task.hidden=16", "n_trials=2", *overrides])
    assert len(records) == 2 and all(r.value is not None and math.isfinite(r.value) for r in records)
    metric = "neg_elbo" if "criterion=elbo" in overrides else ("cv_loss" if "rmad" in str(overrides) else "cv_accuracy")
    assert all(metric in r.metrics and "test_accuracy" in r.metrics for r in records)
