"""Implicit differentiation (Pedregosa 2016, HOAG): at an inner optimum θ*(h),

    dQ/dh = ∂Q/∂h − (∂²L/∂h∂θ) q,   where   H q = ∇θQ,   H = ∇²θθ L(θ*, h),

with q found by conjugate gradient on Hessian-vector products (never forming H). The gradient
∇θL is linearized once per hypergradient (one reverse pass whose graph every product reuses),
not once per product.

Negative curvature (a network's loss is not convex, and an inexact θ* may sit off a minimum):
when CG meets a direction with pᵀHp ≤ 0 it restarts on H + λI with λ ← max(10λ, 10⁻³), up to
:data:`MAX_DAMPING_TRIES` times; the damping used is reported (``cg_damping``), so a damped
hypergradient is never silent. Damping biases q towards a multiple of ∇θQ (a shorter, safer
step), which is the usual trust-region answer for an indefinite Hessian.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.func import grad

from hpo_cli.errors import ConfigError
from hpo_cli.hypergrad.problem import (
    BilevelProblem,
    Cost,
    Hypergradient,
    nbytes,
    outer_gradients,
    pullback,
)

MAX_DAMPING_TRIES = 8
DENSE_NEWTON_MAX = 200  # parameters: up to this many, inner solves use the dense Hessian
NEWTON_HANDOFF = 1e-4  # of the starting gradient: below it, inexact Newton steps finish the solve
NEWTON_BELOW = 1e-7  # ‖∇θL‖∞ below which L-BFGS hands over anyway (it stalls near 1e-9 on networks)


class NegativeCurvature(ValueError):
    """CG met pᵀAp ≤ 0: the matrix is not positive definite (after ``iterations`` products)."""

    def __init__(self, message: str, iterations: int = 0) -> None:
        super().__init__(message)
        self.iterations = iterations


@dataclass(frozen=True)
class CGResult:
    x: Tensor  # the final iterate, shape like b
    iterations: int
    residual: float  # ‖b − A x‖ of the returned x
    converged: bool


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor],
    b: Tensor,
    x0: Tensor | None = None,
    rtol: float = 1e-10,
    atol: float = 0.0,
    max_iter: int | None = None,
) -> CGResult:
    """Solve A x = b for symmetric positive definite A given as ``matvec``.

    Stops when the *true* residual ‖b − A x‖ ≤ max(rtol·‖b‖, atol) and returns that final
    iterate. The cheap recursive residual drifts from the true one near round-off, so when it
    claims convergence the true residual is checked and, if short, CG restarts from x (until a
    restart no longer halves it: the round-off floor).
    ``x0`` warm-starts the solve; ``iterations`` counts matrix-vector products.
    """
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    target = max(rtol * float(torch.linalg.vector_norm(b)), atol)
    limit = 10 * b.numel() if max_iter is None else max_iter
    k = 0
    r = b - matvec(x) if x0 is not None else b.clone()
    k += x0 is not None
    previous = float("inf")
    while True:
        x, r, k = _cg_run(matvec, x, r, target, k, limit)
        true_residual = b - matvec(x)
        k += 1
        residual = float(torch.linalg.vector_norm(true_residual))
        stalled = residual > 0.5 * previous  # a restart that did not halve it: round-off reached
        if residual <= target or k >= limit or stalled or float(torch.linalg.vector_norm(true_residual - r)) == 0.0:
            return CGResult(x, k, residual, residual <= target)
        r, previous = true_residual, residual


def _cg_run(
    matvec: Callable[[Tensor], Tensor], x: Tensor, r: Tensor, target: float, k: int, limit: int
) -> tuple[Tensor, Tensor, int]:
    """Plain CG iterations from (x, r = b − A x) until the recursive residual meets target."""
    p, rs = r.clone(), float(r @ r)
    while rs**0.5 > target and k < limit:
        ap = matvec(p)
        curvature = float(p @ ap)
        if curvature <= 0:
            raise NegativeCurvature(
                f"conjugate gradient met non-positive curvature {curvature:.3g}: the Hessian is not positive definite",
                k + 1,
            )
        alpha = rs / curvature
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = float(r @ r)
        p = r + (rs_new / rs) * p
        rs = rs_new
        k += 1
    return x, r, k


def hvp_operator(problem: BilevelProblem, theta: Tensor, h: Tensor) -> Callable[[Tensor], Tensor]:
    """w ↦ ∇²θθ L(θ, h) w on the full training objective. ∇θL is linearized once (reverse over
    reverse: H is symmetric, so the vector-Jacobian product of the gradient is Hw)."""
    _, back = pullback(lambda th: grad(problem.full_inner_loss)(th, h), theta)

    def matvec(w: Tensor) -> Tensor:
        return back(w)[0].detach()

    return matvec


def curvature_operator(
    problem: BilevelProblem, theta: Tensor, h: Tensor, curvature: str = "hessian"
) -> tuple[Callable[[Tensor], Tensor], str]:
    """(v ↦ A v, the curvature used) for the implicit linear system: ``hessian``, the exact
    ∇²θθL; ``ggn``, the problem's generalized Gauss-Newton matrix (positive definite with a
    prior: no damping, but it drops the term of the model's own curvature)."""
    if curvature == "ggn":
        gauss_newton = problem.gauss_newton_operator(theta, h)
        if gauss_newton is None:
            raise ConfigError(
                "strategy.curvature",
                curvature,
                "this problem offers no Gauss-Newton products (its inner loss is not a likelihood of model "
                "outputs plus a prior, e.g. criterion=elbo or a user's bilevel problem): use hessian or auto",
            )
        return gauss_newton, "ggn"
    return hvp_operator(problem, theta, h), "hessian"


def solve_system(
    problem: BilevelProblem, theta: Tensor, h: Tensor, b: Tensor, curvature: str, **cg: Any
) -> tuple[CGResult, float, str]:
    """A q = b by CG: (result, damping, curvature used). ``auto``: the exact Hessian while it is
    positive definite along CG's directions; where it is not, the Gauss-Newton matrix when the
    problem offers one (positive definite: no damping), else the Hessian damped."""
    if curvature == "auto":
        gauss_newton = problem.gauss_newton_operator(theta, h)
        if gauss_newton is None:
            return (*damped_solve(hvp_operator(problem, theta, h), b, **cg), "hessian")
        try:
            return conjugate_gradient(hvp_operator(problem, theta, h), b, **cg), 0.0, "hessian"
        except NegativeCurvature as exc:
            solved, damping = damped_solve(gauss_newton, b, **{**cg, "x0": None})
            return dataclasses.replace(solved, iterations=solved.iterations + exc.iterations), damping, "ggn"
    matrix, used = curvature_operator(problem, theta, h, curvature)
    return (*damped_solve(matrix, b, **cg), used)


def damped_solve(matrix: Callable[[Tensor], Tensor], b: Tensor, **cg: Any) -> tuple[CGResult, float]:
    """CG on (A + λI) x = b with λ = 0 first, raised on negative curvature; (result, λ). The
    result's ``iterations`` count the products of the abandoned attempts too."""
    damping, spent = 0.0, 0
    for _ in range(MAX_DAMPING_TRIES + 1):

        def matvec(w: Tensor, lam: float = damping) -> Tensor:
            return matrix(w) + lam * w if lam else matrix(w)

        try:
            solved = conjugate_gradient(matvec, b, **cg)
            return dataclasses.replace(solved, iterations=solved.iterations + spent), damping
        except NegativeCurvature as exc:
            spent += exc.iterations
            damping = max(10 * damping, 1e-3)
            cg = {**cg, "x0": None}
    raise NegativeCurvature(f"the Hessian stays indefinite with damping {damping:g}")


@dataclass(frozen=True)
class InnerSolution:
    theta: Tensor
    iterations: int
    grad_norm: float


def solve_inner(
    problem: BilevelProblem,
    h: Tensor,
    theta_init: Tensor,
    tol: float,
    max_iter: int | None = None,
    newton_steps: int = 20,
) -> InnerSolution:
    """Minimize the full training loss over θ until ‖∇θL‖∞ ≤ tol, warm-started at theta_init.

    Small problems (≤ DENSE_NEWTON_MAX parameters) take Newton steps with the exact Hessian
    (one Cholesky factorization each, backtracking on the loss) while it is positive definite;
    otherwise L-BFGS does the bulk, down to NEWTON_HANDOFF of the starting gradient (or
    NEWTON_BELOW), and
    inexact Newton steps (CG on Hessian-vector products, forcing term min(0.1, √‖g‖∞): locally
    superlinear) finish the job: L-BFGS alone stalls near 1e-9 on a network in float64. Where
    the Hessian is not positive definite (not near a minimum yet), L-BFGS goes on to ``tol``.
    ``iterations`` counts them all.
    """
    h = h.detach()
    max_iter = problem.solve_iterations if max_iter is None else max_iter
    gradient = grad(problem.full_inner_loss)
    theta = theta_init.detach().clone()
    iterations = 0
    if theta.numel() <= DENSE_NEWTON_MAX:
        theta, iterations = _dense_newton(problem, h, theta, tol, max_iter)
    start = float(gradient(theta, h).abs().max())
    if start > tol:
        theta, more = _lbfgs(problem, h, theta, max(tol, NEWTON_HANDOFF * start, NEWTON_BELOW), max_iter)
        iterations += more
    theta, more, g_max = _newton_cg(problem, h, theta, tol, newton_steps, max_iter)
    iterations += more
    if g_max > tol:  # Newton met negative curvature: L-BFGS the rest of the way
        theta, more = _lbfgs(problem, h, theta, tol, max_iter)
        iterations += more
        g_max = float(gradient(theta, h).abs().max())
    return InnerSolution(theta, iterations, g_max)


def _newton_cg(
    problem: BilevelProblem, h: Tensor, theta: Tensor, tol: float, steps: int, max_iter: int
) -> tuple[Tensor, int, float]:
    """Inexact Newton steps until ‖∇θL‖∞ ≤ tol or a direction of non-positive curvature:
    (θ, steps taken, final ‖∇θL‖∞)."""
    gradient = grad(problem.full_inner_loss)
    g = gradient(theta, h)
    g_max, taken = float(g.abs().max()), 0
    while g_max > tol and taken < steps:
        rtol = min(0.1, g_max**0.5)
        try:
            step = conjugate_gradient(hvp_operator(problem, theta, h), g, rtol=rtol, max_iter=max_iter)
        except NegativeCurvature:
            break
        candidate = theta - step.x
        g_new = gradient(candidate, h)
        if not float(g_new.abs().max()) < g_max:  # round-off: no progress left
            break
        theta, g, g_max, taken = candidate, g_new, float(g_new.abs().max()), taken + 1
    return theta, taken, g_max


def _dense_newton(problem: BilevelProblem, h: Tensor, theta: Tensor, tol: float, max_iter: int) -> tuple[Tensor, int]:
    """Damped Newton with the dense Hessian; stops at ``tol``, at an indefinite Hessian, or when
    the loss no longer decreases (round-off). Returns (θ, iterations)."""

    def loss(th: Tensor) -> Tensor:
        return problem.full_inner_loss(th, h)

    gradient = grad(loss)
    hessian = torch.func.jacrev(gradient)  # reverse over reverse: several times faster than hessian()'s jacfwd here
    for k in range(max_iter):
        g = gradient(theta)
        if float(g.abs().max()) <= tol:
            return theta, k
        factor, info = torch.linalg.cholesky_ex(hessian(theta))
        if int(info) != 0:
            return theta, k  # not positive definite here: L-BFGS takes over
        step = torch.cholesky_solve(g.unsqueeze(1), factor).squeeze(1)
        f0, slope, t = float(loss(theta)), float(g @ step), 1.0
        while t >= 1e-8:
            candidate = theta - t * step
            if float(loss(candidate)) <= f0 - 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            return theta, k  # no decrease left to find: round-off
        theta = candidate
    return theta, max_iter


def _lbfgs(problem: BilevelProblem, h: Tensor, theta: Tensor, tol: float, max_iter: int) -> tuple[Tensor, int]:
    variable = theta.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [variable],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tol,
        tolerance_change=0.0,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = problem.full_inner_loss(variable, h)
        loss.backward()
        return loss

    opt.step(closure)
    return variable.detach(), int(opt.state[variable].get("n_iter", 0))


def implicit(
    problem: BilevelProblem,
    h: Tensor,
    theta_star: Tensor,
    cg_rtol: float = 1e-10,
    q0: Tensor | None = None,
    inner_steps: int = 0,
    curvature: str = "hessian",
) -> Hypergradient:
    """The implicit hypergradient at a (near-)optimal θ*, the linear system on ``curvature``
    (hessian | ggn | auto, see :func:`solve_system`); extras carry ``q`` for a warm start, the CG iteration
    count, residual and whether it met ``cg_rtol`` (``cg_converged``: CG stops after
    max(``problem.solve_iterations``, 10) products, so a capped solve is not silent), the damping
    used and ``ggn`` (1.0 when the system used the GGN)."""
    started = time.perf_counter()
    value, d_theta, d_h = outer_gradients(problem, theta_star, h)
    cg = {"x0": q0, "rtol": cg_rtol, "max_iter": max(problem.solve_iterations, 10)}
    solved, damping, used = solve_system(problem, theta_star, h, d_theta, curvature, **cg)
    _, back = pullback(lambda hh: grad(problem.full_inner_loss)(theta_star, hh), h)
    (mixed,) = back(solved.x)
    cost = Cost(
        inner_steps=inner_steps,
        hvp=solved.iterations + 1 + (q0 is not None),
        seconds=time.perf_counter() - started,
        peak_bytes=nbytes(theta_star, solved.x) * 3,
    )
    extras = {
        "q": solved.x,
        "cg_iterations": solved.iterations,
        "cg_residual": solved.residual,
        "cg_converged": float(solved.converged),  # 0.0: CG stopped at its cap (max(solve_iterations, 10))
        "cg_damping": damping,
        "ggn": float(used == "ggn"),
    }
    return Hypergradient(float(value), (d_h - mixed).detach(), cost, extras)
