"""The GP model, acquisitions and their maximizer, checked by value (finite differences, known answers)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpo_cli.strategies._gp.acquisition import acquisition, expected_improvement, log_h
from hpo_cli.strategies._gp.gp import (
    GaussianProcess,
    HyperPrior,
    fit_gp,
    matern52,
    neg_log_posterior,
    neg_log_posterior_warped,
    squared_differences,
)
from hpo_cli.strategies._gp.optimize import maximize
from hpo_cli.strategies._gp.warping import warp, warp_parameter_slopes, warp_slope


def central_difference(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = eps
        grad[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return grad


def mixed_data(n: int = 15, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three continuous dimensions and one categorical one with 3 choices."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 4))
    x[:, 3] = rng.integers(0, 3, n)
    y = np.sin(6 * x[:, 0]) + x[:, 1] ** 2 + 0.5 * (x[:, 3] == 1)
    return x, (y - y.mean()) / y.std(), np.array([False, False, False, True])


@pytest.mark.parametrize("prior", [False, True])
def test_marginal_likelihood_gradient_matches_finite_differences(prior: bool) -> None:
    x, y, cat = mixed_data()
    hyper = HyperPrior.for_dim(4) if prior else None
    theta = np.array([-1.0, -0.5, 0.3, 0.1, 0.2, math.log(1e-3)])
    raw = squared_differences(x, x, cat)
    _, grad = neg_log_posterior(theta, raw, y, hyper)
    fd = central_difference(lambda t: neg_log_posterior(t, raw, y, hyper)[0], theta)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)


WARPED_PARAMS = np.array([-1.0, -0.5, 0.3, 0.1, 0.2, math.log(1e-3), 0.3, -0.4, 0.7, -0.2, 0.5, -0.6])


@pytest.mark.parametrize("prior", [False, True])
def test_warped_marginal_likelihood_gradient_matches_finite_differences(prior: bool) -> None:
    x, y, cat = mixed_data()
    hyper = HyperPrior.for_dim(4) if prior else None
    _, grad = neg_log_posterior_warped(WARPED_PARAMS, x, y, cat, hyper)
    fd = central_difference(lambda p: neg_log_posterior_warped(p, x, y, cat, hyper)[0], WARPED_PARAMS)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)


def test_the_identity_warp_is_the_plain_likelihood_and_its_slopes_match_finite_differences() -> None:
    x, y, cat = mixed_data()
    identity = WARPED_PARAMS.copy()
    identity[6:] = 0.0  # a = b = 1
    plain, _ = neg_log_posterior(identity[:6], squared_differences(x, x, cat), y, None)
    assert neg_log_posterior_warped(identity, x, y, cat, None)[0] == pytest.approx(plain, rel=1e-6)
    log_ab = WARPED_PARAMS[6:].reshape(2, 3)
    points = np.random.default_rng(2).random((6, 4))
    warped = warp(points, log_ab, ~cat)
    assert np.all(np.diff(warp(np.linspace(0, 1, 50)[:, None].repeat(4, 1), log_ab, ~cat)[:, :3], axis=0) > 0)
    assert np.array_equal(warped[:, 3], points[:, 3])  # the categorical column is not warped
    eps = 1e-6
    fd = (warp(points + eps, log_ab, ~cat) - warp(points - eps, log_ab, ~cat)) / (2 * eps)
    np.testing.assert_allclose(warp_slope(points, log_ab, ~cat)[:, :3], fd[:, :3], rtol=1e-6)
    for side, slopes in enumerate(warp_parameter_slopes(points, log_ab, ~cat)):
        shifted = [log_ab.copy(), log_ab.copy()]
        shifted[0][side] += eps
        shifted[1][side] -= eps
        fd = (warp(points, shifted[0], ~cat) - warp(points, shifted[1], ~cat)) / (2 * eps)
        np.testing.assert_allclose(slopes, fd[:, :3], rtol=1e-6, atol=1e-10)


def test_warped_posterior_gradients_match_finite_differences() -> None:
    x, y, cat = mixed_data()
    gp = GaussianProcess(x, y, WARPED_PARAMS[:6], cat, warp=WARPED_PARAMS[6:].reshape(2, 3))
    for point in (np.array([0.3, 0.6, 0.45, 2.0]), np.array([0.02, 0.97, 0.5, 1.0])):
        _, _, dmean, dstd = gp.predict_with_gradient(point[None, :])
        for value, grad in (
            (lambda p: gp.predict(p[None, :])[0][0], dmean),
            (lambda p: gp.predict(p[None, :])[1][0], dstd),
        ):
            fd = central_difference(value, point, eps=1e-7)
            fd[3] = 0.0
            np.testing.assert_allclose(grad[0], fd, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 3])
def test_the_fitted_warp_stretches_where_the_function_varies_fast(seed: int) -> None:
    """sin(12 √x0) oscillates fast near x0 = 0 and slowly near 1 — it is sin(12 w(x0)) for the
    Kumaraswamy warp a = 1/2, b = 1: the fit should find a well below 1 and b near 1 for x0 (0.36–0.39
    over seeds 0–3), and leave x1, a gentle linear slope, near the identity."""
    rng = np.random.default_rng(seed)
    x = rng.random((40, 2))
    values = np.sin(12 * np.sqrt(x[:, 0])) + 0.3 * x[:, 1]
    cat = np.zeros(2, dtype=bool)
    gp = fit_gp(x, values, cat, np.random.default_rng(1), restarts=2, warp=True)
    assert gp.warp is not None and gp.warp.shape == (2, 2)
    (a0, a1), (b0, b1) = np.exp(gp.warp)
    assert a0 < 0.6 and 0.7 < b0 < 1.4, (a0, b0)
    assert 0.7 < a1 < 1.4 and 0.7 < b1 < 1.4, (a1, b1)
    # the warm start carries θ and the warping; refitting from it alone keeps the fit
    again = fit_gp(x, values, cat, np.random.default_rng(5), restarts=0, warm_start=gp.fitted, warp=True)
    np.testing.assert_allclose(again.fitted, gp.fitted, atol=1e-3)


def fitted_model(seed: int = 0) -> GaussianProcess:
    x, y, cat = mixed_data(seed=seed)
    return GaussianProcess(x, y, np.array([-1.0, -0.5, 0.3, 0.1, 0.2, math.log(1e-4)]), cat)


def test_posterior_gradients_match_finite_differences() -> None:
    gp = fitted_model()
    point = np.array([0.3, 0.6, 0.45, 2.0])
    mean, std, dmean, dstd = gp.predict_with_gradient(point[None, :])
    m2, s2 = gp.predict(point[None, :])
    np.testing.assert_allclose([mean[0], std[0]], [m2[0], s2[0]], rtol=1e-12)
    for values, grad in (
        (lambda p: gp.predict(p[None, :])[0][0], dmean),
        (lambda p: gp.predict(p[None, :])[1][0], dstd),
    ):
        fd = central_difference(values, point)
        fd[3] = 0.0  # categorical: held fixed, gradient reported as 0
        np.testing.assert_allclose(grad[0], fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["ei", "pi", "lcb"])
def test_acquisition_gradients_match_finite_differences(name: str) -> None:
    gp = fitted_model()
    best = float(gp.y.min())
    for point in (np.array([0.3, 0.6, 0.45, 2.0]), np.array([0.9, 0.05, 0.7, 0.0])):

        def value(p: np.ndarray) -> float:
            mean, std = gp.predict(p[None, :])
            return float(acquisition(name, mean, std, best, 1.5)[0][0])

        mean, std, dmean, dstd = gp.predict_with_gradient(point[None, :])
        _, grad = acquisition(name, mean, std, best, 1.5, dmean, dstd)
        assert grad is not None
        fd = central_difference(value, point)
        fd[3] = 0.0
        np.testing.assert_allclose(grad[0], fd, rtol=1e-4, atol=1e-6)


def test_log_ei_equals_log_of_plain_ei_and_stays_finite_far_away() -> None:
    mean = np.linspace(-3, 3, 13)
    std = np.full(13, 0.7)
    value, _ = acquisition("ei", mean, std, 0.2)
    np.testing.assert_allclose(value, np.log(expected_improvement(mean, std, 0.2)), rtol=1e-10)
    # far below the incumbent plain EI underflows to 0; log-EI stays finite, increasing and smooth
    z = np.concatenate([-np.logspace(4, 0, 400), np.linspace(-0.99, 30, 100), np.logspace(1.5, 8, 50)])
    lh, dlh = log_h(z)
    assert np.all(np.isfinite(lh)) and np.all(np.isfinite(dlh))
    assert np.all(np.diff(lh) > 0)
    assert expected_improvement(np.array([60.0]), np.array([1.0]), 0.0)[0] == 0.0
    # both sides of the switch to the asymptotic series agree with the exact derivative
    for z0 in (-30.0, -25.0001, -24.9999, -20.0, -1e-9, 1e-9, 3.0, 50.0):
        fd = (log_h(np.array([z0 + 1e-5]))[0] - log_h(np.array([z0 - 1e-5]))[0]) / 2e-5
        np.testing.assert_allclose(log_h(np.array([z0]))[1], fd, rtol=1e-5)
    # asymptotically log h(z) ≈ log φ(z) − 2 log|z|
    np.testing.assert_allclose(lh[0], -0.5 * 1e8 - 0.5 * math.log(2 * math.pi) - 2 * math.log(1e4), rtol=1e-12)


def test_noiseless_gp_interpolates_its_data() -> None:
    x, y, cat = mixed_data()
    gp = GaussianProcess(x, y, np.array([-1.0, -0.5, 0.3, 0.1, 0.2, math.log(1e-8)]), cat)
    mean, std = gp.predict(x)
    np.testing.assert_allclose(mean, y, atol=1e-5)
    assert np.all(std < 1e-3)
    assert matern52(np.array([0.0]))[0] == 1.0


def test_fit_finds_the_irrelevant_dimension() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((40, 2))
    values = np.sin(5 * x[:, 0]) * 3 + 10
    gp = fit_gp(x, values, np.zeros(2, dtype=bool), rng, restarts=2, prior=False)
    assert gp.lengths[1] > 5 * gp.lengths[0]
    # standardized inside, predicted in standardized units
    assert gp.y_std == pytest.approx(values.std())
    mean, _ = gp.predict(np.array([[0.3, 0.9]]))
    assert mean[0] * gp.y_std + gp.y_mean == pytest.approx(np.sin(1.5) * 3 + 10, abs=0.05)


def test_fixed_noise_is_kept() -> None:
    x, y, cat = mixed_data()
    gp = fit_gp(x, y, cat, np.random.default_rng(0), restarts=0, noise=1e-3)
    assert gp.noise == pytest.approx(1e-3)


def test_maximize_finds_the_optimum_and_the_best_category() -> None:
    target = np.array([0.3, 0.7])

    def acq(points: np.ndarray, with_gradient: bool) -> tuple[np.ndarray, np.ndarray | None]:
        diff = points[:, :2] - target
        values = -np.sum(diff**2, axis=1) + (points[:, 2] == 2)
        grad = np.zeros_like(points)
        grad[:, :2] = -2 * diff
        return values, grad if with_gradient else None

    rng = np.random.default_rng(0)
    candidates = np.column_stack([rng.random((50, 2)), np.zeros(50)])
    free = np.array([True, True, False])
    (point, value), *_ = maximize(acq, candidates, free, [(2, np.arange(4.0))], n_starts=3)
    np.testing.assert_allclose(point[:2], target, atol=1e-5)
    assert point[2] == 2 and value == pytest.approx(1.0)


def bimodal_in_k(points: np.ndarray, with_gradient: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """x's optimum at 0.3; along k (an int's unit coordinate, 8 values at (i + 0.5) / 8) a lower
    peak at the first value, 1/16, and the higher one at the third, 5/16."""
    x, k = points[:, 0], points[:, 1]
    low, high = np.exp(-(((k - 1 / 16) / 0.05) ** 2)), np.exp(-(((k - 5 / 16) / 0.05) ** 2))
    values = -((x - 0.3) ** 2) + 0.5 * low + high
    grad = np.zeros_like(points)
    grad[:, 0] = -2 * (x - 0.3)
    grad[:, 1] = 0.5 * low * (-2 * (k - 1 / 16) / 0.05**2) + high * (-2 * (k - 5 / 16) / 0.05**2)
    return values, grad if with_gradient else None


def test_an_int_leaves_a_local_peak_for_the_best_value_of_its_grid() -> None:
    """The ascent from starts near k = 0 stops on the lower peak; the coordinate search over the
    int's values finds the higher one, and puts k exactly on a value (where it is suggested)."""
    rng = np.random.default_rng(0)
    candidates = np.column_stack([rng.random(40), rng.uniform(0.0, 0.1, 40)])
    free = np.array([True, True])
    grid = (np.arange(8) + 0.5) / 8
    (ascended, _), *_ = maximize(bimodal_in_k, candidates, free, [], n_starts=3)
    assert abs(ascended[1] - 1 / 16) < 0.01  # without the grid: the lower peak
    (point, value), *_ = maximize(bimodal_in_k, candidates, free, [(1, grid)], n_starts=3)
    assert point[1] == 5 / 16
    assert point[0] == pytest.approx(0.3, abs=1e-4) and value == pytest.approx(1.0, abs=1e-6)


def test_an_int_off_its_grid_moves_onto_it_even_where_the_ascent_scored_higher() -> None:
    """k's best value on the grid scores below the continuous peak the ascent found; the point
    still moves to a grid value, the best one (a suggestion is scored where it will be made)."""
    grid = np.array([0.0, 0.5, 1.0])

    def peak(points: np.ndarray, with_gradient: bool) -> tuple[np.ndarray, np.ndarray | None]:
        values = -((points[:, 0] - 0.3) ** 2)
        return values, -2 * (points - 0.3) if with_gradient else None

    candidates = np.array([[0.25], [0.9]])
    (point, value), *_ = maximize(peak, candidates, np.array([True]), [(0, grid)], n_starts=1)
    assert point[0] == 0.5 and value == pytest.approx(-0.04)


def test_a_category_tied_with_the_point_keeps_the_point() -> None:
    def flat(points: np.ndarray, with_gradient: bool) -> tuple[np.ndarray, np.ndarray | None]:
        return np.zeros(len(points)), np.zeros_like(points) if with_gradient else None

    candidates = np.array([[0.5, 2.0]])
    (point, _), *_ = maximize(flat, candidates, np.array([True, False]), [(1, np.arange(4.0))], n_starts=1)
    assert point[1] == 2.0
