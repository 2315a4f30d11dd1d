"""Hypergradients checked by value in float64 (model: HIPS/hypergrad tests/test_grads.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hpo_cli.errors import ConfigError
from hpo_cli.hypergrad import compute, unrolled
from hpo_cli.hypergrad.check import finite_difference, relative_error
from hpo_cli.hypergrad.implicit import conjugate_gradient, solve_inner
from hpo_cli.hypergrad.problem import BilevelProblem, InnerOptimizer, outer_gradients
from hpo_cli.hypergrad.registry import AT_THE_OPTIMUM, method, names
from hpo_cli.hypergrad.unrolled import one_step
from hpo_cli.tasks.bilevel_models import (
    LinearRegressionModel,
    SoftmaxRegressionModel,
    Split,
    batch_schedule,
    build_problem,
    initial_theta,
    make_layout,
)

F64 = torch.float64
N_TRAIN, N_VAL, D = 24, 12, 4


def regression_data(seed: int = 0) -> tuple[Split, Split]:
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(N_TRAIN + N_VAL, D, generator=gen, dtype=F64)
    w = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=F64)
    y = X @ w + 0.3 * torch.randn(N_TRAIN + N_VAL, generator=gen, dtype=F64)
    return Split(X[:N_TRAIN], y[:N_TRAIN]), Split(X[N_TRAIN:], y[N_TRAIN:])


KINDS = {
    "shared_precision": ([("log_precision", None)], [0.3]),
    "per_param_precision": ([("log_precision", D)], [0.3, -0.5, 1.0, 2.0]),
    "log_lr": ([("log_lr", None), ("log_precision", None)], [math.log(0.05), 0.1]),
    "momentum": ([("momentum", None), ("log_precision", None)], [0.7, 0.1]),
    "example_weights": ([("example_weights", N_TRAIN)], list(np.linspace(0.2, 0.9, N_TRAIN))),
}
TOLERANCE = {"log_lr": 1e-4, "momentum": 1e-4}


def regression_problem(
    kind: str, convention: str = "maclaurin", steps: int = 25, momentum: float = 0.9
) -> tuple[BilevelProblem, torch.Tensor]:
    train, val = regression_data()
    names, values = KINDS[kind]
    layout = make_layout(names)
    model = LinearRegressionModel(train, val, batch_schedule(N_TRAIN, 6, steps, seed=1, device=torch.device("cpu")))
    optimizer = InnerOptimizer(lr=0.05, momentum=momentum, convention=convention)
    problem = build_problem(model, layout, steps, optimizer, initial_theta(D, 3, 0.5, F64, torch.device("cpu")))
    return problem, torch.tensor(values, dtype=F64)


def fd_of_unrolled(problem: BilevelProblem, h: torch.Tensor) -> torch.Tensor:
    return finite_difference(lambda x: float(problem.objective(x)), h)


def checkable_cases() -> list[tuple[str, str, str]]:
    """(method, convention, kind) for every method gradcheck may check, in every convention and
    hyperparameter kind it supports (the registry says which)."""
    return [
        (name, convention, kind)
        for name in names(checkable=True)
        for convention in method(name).conventions
        for kind, (hp_names, _) in KINDS.items()
        if all(n in method(name).kinds for n, _ in hp_names)
    ]


def fd_reference(problem: BilevelProblem, h: torch.Tensor, at_optimum: bool) -> torch.Tensor:
    """Central differences of Q as the method differentiates it: after the unrolled training, or
    at the inner optimum (solved to round-off)."""
    if not at_optimum:
        return fd_of_unrolled(problem, h)
    return finite_difference(lambda x: float(problem.outer(solve_inner(problem, x, problem.theta0, 1e-13).theta, x)), h)


@pytest.mark.parametrize(("method_name", "convention", "kind"), checkable_cases())
def test_every_checkable_method_matches_finite_differences(method_name: str, convention: str, kind: str) -> None:
    spec = method(method_name)
    steps = 25 if spec.exact else 1  # an approximation (drmad) is exact on a single step only
    problem, h = regression_problem(kind, convention, steps=steps)
    result = compute(method_name, problem, h, **({"tol": 1e-13} if spec.warm else {}))
    at_optimum = spec.kinds == AT_THE_OPTIMUM
    if not at_optimum:
        assert result.value == pytest.approx(float(problem.objective(h)), rel=1e-10)
    reference = fd_reference(problem, h, at_optimum)
    assert relative_error(result.grad, reference) <= TOLERANCE.get(kind, 1e-6)


def test_the_checked_cases_cover_every_checkable_method() -> None:
    assert {case[0] for case in checkable_cases()} == set(names(checkable=True)) >= {"reverse", "implicit", "drmad"}


def test_options_of_another_method_are_refused_naming_key_and_value() -> None:
    problem, h = regression_problem("shared_precision")
    with pytest.raises(ConfigError, match=r"^reverse.steps=50: not an option of method reverse \(its options: trunc"):
        compute("reverse", problem, h, steps=50)
    assert compute("reverse", problem, h).extras["graph_tape"] == 1.0  # the default tape: auto, as strategies'


@pytest.mark.parametrize("kind", ["shared_precision", "per_param_precision", "momentum"])
def test_reverse_rmad_exact_and_forward_agree_to_round_off(kind: str) -> None:
    problem, h = regression_problem(kind, "maclaurin", steps=40)
    grads = {m: compute(m, problem, h).grad for m in ("reverse", "rmad_exact", "forward")}
    assert relative_error(grads["rmad_exact"], grads["reverse"]) <= 1e-10
    assert relative_error(grads["forward"], grads["reverse"]) <= 1e-10


def test_softmax_hypergradients_match_finite_differences() -> None:
    gen = torch.Generator().manual_seed(5)
    X = torch.randn(30, 3, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (30,), generator=gen)
    model = SoftmaxRegressionModel(Split(X[:20], y[:20]), Split(X[20:], y[20:]), None, n_classes=3)
    layout = make_layout([("log_precision", model.n_params), ("example_weights", 20)])
    problem = build_problem(
        model,
        layout,
        15,
        InnerOptimizer(0.5, 0.5, "maclaurin"),
        initial_theta(model.n_params, 0, 0.1, F64, torch.device("cpu")),
    )
    h = torch.cat([torch.linspace(-1, 1, model.n_params, dtype=F64), torch.linspace(0.1, 1, 20, dtype=F64)])
    reference = fd_of_unrolled(problem, h)
    for name in ("reverse", "forward", "rmad_exact"):
        assert relative_error(compute(name, problem, h).grad, reference) <= 1e-6, name


def test_rmad_exact_restores_theta0_bit_for_bit_and_buffers_log2_one_over_mu_bits() -> None:
    problem, h = regression_problem("shared_precision", "maclaurin", steps=300)
    result = compute("rmad_exact", problem, h)
    assert torch.equal(result.extras["theta0_restored_int"], result.extras["theta0_int"])
    assert torch.equal(result.extras["velocity0_restored_int"], torch.zeros(D, dtype=torch.int64))
    assert result.extras["buffer_empty_after"] is True
    expected = math.log2(1 / 0.9)
    assert result.extras["expected_bits_per_param_step"] == pytest.approx(expected, rel=1e-12)
    assert result.extras["buffer_bits_per_param_step"] == pytest.approx(expected, abs=0.01)


def test_inner_sgd_matches_torch_optim_sgd_to_1e_12() -> None:
    problem, h = regression_problem("per_param_precision", "torch", steps=30, momentum=0.8)
    theta, _ = problem.train(h)
    reference = problem.theta0.clone().requires_grad_(True)
    sgd = torch.optim.SGD([reference], lr=0.05, momentum=0.8)
    hp = problem.layout.unflatten(h)
    for t in range(problem.n_steps):
        sgd.zero_grad()
        problem.inner_loss(reference, hp, t).backward()
        sgd.step()
    assert float((theta - reference.detach()).abs().max()) <= 1e-12


def ridge_setup(
    per_feature: bool,
) -> tuple[BilevelProblem, torch.Tensor, torch.Tensor, torch.Tensor]:
    train, val = regression_data(seed=2)
    layout = make_layout([("log_precision", D if per_feature else None)])
    model = LinearRegressionModel(train, val, None)
    problem = build_problem(model, layout, 1, InnerOptimizer(), torch.zeros(D, dtype=F64))
    h = torch.tensor([0.5, -1.0, 2.0, 0.1] if per_feature else [0.7], dtype=F64)
    return problem, h, train.X, train.y


@pytest.mark.parametrize("per_feature", [False, True], ids=["scalar_h", "vector_h"])
def test_implicit_matches_the_closed_form_ridge_hypergradient(per_feature: bool) -> None:
    problem, h, X, y = ridge_setup(per_feature)
    # inner loss = (1/2n)‖Xθ − y‖² + (1/2n)Σ e^h θ²  =>  θ* = (XᵀX + diag(e^h))⁻¹ Xᵀy
    lam = torch.exp(h).expand(D)
    A = X.T @ X + torch.diag(lam)
    theta_star = torch.linalg.solve(A, X.T @ y)
    val = problem.outer_loss  # validation MSE
    theta = theta_star.clone().requires_grad_(True)
    val(theta, {}).backward()
    # dθ*/dh_j = −A⁻¹ e_j λ_j θ*_j  =>  dQ/dh_j = −λ_j θ*_j (A⁻¹∇θQ)_j
    closed = -(lam * theta_star * torch.linalg.solve(A, theta.grad))
    if not per_feature:
        closed = closed.sum().reshape(1)
    result = compute("implicit", problem, h, tol=1e-13)
    assert relative_error(result.extras["theta"], theta_star) <= 1e-10
    assert relative_error(result.grad, closed) <= 1e-8


@pytest.mark.parametrize("kind", ["shared_precision", "per_param_precision", "example_weights"])
def test_implicit_at_tight_tolerance_matches_finite_differences(kind: str) -> None:
    problem, h = regression_problem(kind)
    result = compute("implicit", problem, h, tol=1e-13)

    def q_at_optimum(x: torch.Tensor) -> float:
        solution = solve_inner(problem, x, result.extras["theta"], tol=1e-13)
        return float(problem.outer(solution.theta, x))

    assert relative_error(result.grad, finite_difference(q_at_optimum, h)) <= 1e-6


@pytest.mark.parametrize("seed", range(5))
def test_conjugate_gradient_reaches_its_tolerance_and_returns_the_final_iterate(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    M = torch.randn(40, 40, generator=gen, dtype=F64)
    A = M @ M.T + 0.1 * torch.eye(40, dtype=F64)  # SPD, condition number ~1e4
    b = torch.randn(40, generator=gen, dtype=F64)
    for rtol in (1e-3, 1e-8, 1e-12):
        out = conjugate_gradient(lambda v: A @ v, b, rtol=rtol)
        true_residual = float(torch.linalg.vector_norm(b - A @ out.x))
        assert out.converged and true_residual <= rtol * float(torch.linalg.vector_norm(b)) * 1.0001
        assert out.residual == true_residual  # the residual of the returned iterate itself
    exact = torch.linalg.solve(A, b)
    assert conjugate_gradient(lambda v: A @ v, b, x0=exact, rtol=1e-8).iterations <= 2


def test_conjugate_gradient_refuses_an_indefinite_matrix() -> None:
    A = torch.diag(torch.tensor([1.0, -1.0], dtype=F64))
    with pytest.raises(ValueError, match="non-positive curvature"):
        conjugate_gradient(lambda v: A @ v, torch.tensor([1.0, 1.0], dtype=F64))


def test_drmad_is_exact_on_a_single_step_and_an_approximation_after() -> None:
    line = {"anchors": 1, "clip": None, "skip": 0.0}  # Fu et al.'s DrMAD
    problem, h = regression_problem("per_param_precision", steps=1)
    assert relative_error(compute("drmad", problem, h, **line).grad, compute("reverse", problem, h).grad) <= 1e-12
    problem, h = regression_problem("per_param_precision", steps=40)
    approx, exact = compute("drmad", problem, h, **line).grad, compute("reverse", problem, h).grad
    cosine = float(approx @ exact / (approx.norm() * exact.norm()))
    assert 0.5 < cosine < 1 - 1e-9


def test_drmad_with_an_anchor_at_every_step_is_the_exact_reverse_pass() -> None:
    problem, h = regression_problem("per_param_precision", steps=40)
    exact = compute("reverse", problem, h).grad
    anchored = compute("drmad", problem, h, anchors=40, clip=None, skip=0.0)
    assert relative_error(anchored.grad, exact) <= 1e-12
    assert anchored.cost.peak_bytes == 41 * 2 * problem.theta0.numel() * 8  # (θ_t, v_t) at 41 points, float64


def test_drmad_anchors_bring_it_closer_to_the_exact_hypergradient() -> None:
    problem, h = regression_problem("per_param_precision", steps=40)
    exact = compute("reverse", problem, h).grad
    line = {"clip": None, "skip": 0.0}
    errors = [relative_error(compute("drmad", problem, h, anchors=k, **line).grad, exact) for k in (1, 4, 20)]
    assert errors[0] > errors[1] > errors[2] > 0


def test_drmad_clips_the_adjoint_to_its_norm_at_the_end_of_training() -> None:
    """A clipped reverse pass never lets the adjoint grow past clip × ‖∇θQ(θ_T)‖; clipping
    changes nothing where the adjoint never grows that far, and is counted where it does."""
    problem, h = regression_problem("per_param_precision", steps=40)
    free = compute("drmad", problem, h, anchors=1, clip=None)
    loose = compute("drmad", problem, h, anchors=1, clip=1e6)
    assert torch.equal(free.grad, loose.grad) and loose.extras["adjoint_clipped"] == 0.0
    tight = compute("drmad", problem, h, anchors=1, clip=1e-3)
    assert tight.extras["adjoint_clipped"] > 0
    assert float(tight.grad.norm()) < float(free.grad.norm())


def test_drmad_s_clip_bounds_the_joint_adjoint_entering_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every adjoint (dθ, dv) the reverse pass pulls back through a step, after the first, has a
    joint norm ≤ clip × ‖∇θQ(θ_T)‖, and exactly that where the clip acted (dθ and dv scaled together)."""
    problem, h = regression_problem("per_param_precision", steps=40)
    seen: list[tuple[float, float]] = []
    pull_back = unrolled.backprop_step

    def recording(*args: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d_theta, d_velocity = args[-1]  # type: ignore[misc]
        seen.append((float(d_theta.norm()), float(d_velocity.norm())))
        return pull_back(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(unrolled, "backprop_step", recording)
    clip = 1e-3
    result = compute("drmad", problem, h, anchors=1, clip=clip)
    _, d_theta_T, _ = outer_gradients(problem, result.extras["theta"], h)  # type: ignore[arg-type]
    limit = clip * float(d_theta_T.norm())
    assert seen[0] == (float(d_theta_T.norm()), 0.0)  # the first step gets ∇θQ(θ_T) itself, unclipped
    joint = [math.hypot(a, b) for a, b in seen[1:]]
    assert max(joint) <= limit * (1 + 1e-12)
    assert joint[0] == pytest.approx(limit, rel=1e-12)  # 1e-3 of ‖∇θQ‖: the first step's output was cut
    at_limit = sum(abs(n - limit) <= 1e-12 * limit for n in joint)
    assert result.extras["adjoint_clipped"] >= 1 and at_limit >= result.extras["adjoint_clipped"] - 1
    assert all(b > 0 for _, b in seen[1:])  # the velocity adjoint is carried (and clipped with dθ)


def test_truncated_reverse_keeps_only_the_last_steps() -> None:
    problem, h = regression_problem("shared_precision", steps=30)
    full = compute("reverse", problem, h, tape="recompute")  # its memory: θ_t, v_t of the steps it reverses
    assert torch.equal(compute("reverse", problem, h, truncate=30, tape="recompute").grad, full.grad)
    short = compute("reverse", problem, h, truncate=5, tape="recompute")
    assert short.cost.peak_bytes == full.cost.peak_bytes * 5 // 30
    assert not torch.allclose(short.grad, full.grad)


def test_greedy_one_step_is_the_exact_hypergradient_of_one_step() -> None:
    problem, h = regression_problem("per_param_precision", "torch", steps=1, momentum=0.0)
    theta, _, grad, value = one_step(problem, problem.theta0, torch.zeros(D, dtype=F64), h, 0)
    assert value == pytest.approx(float(problem.objective(h)), rel=1e-12)
    assert relative_error(grad, fd_of_unrolled(problem, h)) <= 1e-6
    # for plain SGD: dQ/dh = −lr · ∇²_{hθ} L · ∇θQ(θ_1)
    theta1 = theta.clone().requires_grad_(True)
    problem.outer(theta1, h).backward()
    mixed = torch.autograd.functional.jacobian(
        lambda hh: torch.func.grad(problem.inner_loss)(problem.theta0, problem.layout.unflatten(hh), 0),
        h,
    )
    assert relative_error(grad, -0.05 * mixed.T @ theta1.grad) <= 1e-12


def test_forward_memory_is_flat_in_steps_and_reverse_memory_grows() -> None:
    short, h = regression_problem("shared_precision", steps=10)
    long, _ = regression_problem("shared_precision", steps=40)
    assert compute("forward", short, h).cost.peak_bytes == compute("forward", long, h).cost.peak_bytes
    tape = {"tape": "recompute"}
    reverse_bytes = [compute("reverse", p, h, **tape).cost.peak_bytes for p in (short, long)]
    assert reverse_bytes[1] == 4 * reverse_bytes[0]
    assert compute("drmad", short, h, anchors=5).cost.peak_bytes == compute("drmad", long, h, anchors=5).cost.peak_bytes
