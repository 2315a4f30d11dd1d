"""Methods whose hyper-iterations carry state: pure functions of (problem, h, previous state)
that return the hypergradient and the next state.

* greedy, rtho (online): one training run continues across hyper-iterations, ``steps`` inner
  steps each; greedy returns the one-step look-ahead hypergradient of the last step (Luketina
  2016), rtho the forward-mode hypergradient of the tangents carried through the whole run
  (Franceschi 2017, real-time). State: θ, velocity, step (and rtho's tangents dθ/dh, dv/dh).
* implicit (HOAG): the inner solve and CG start from the previous solution (θ, q) when
  ``warm_start``; tolerances are relative to the inner gradient's size at θ0 on the first call
  (``scale``), which is therefore carried too.

The state is an :class:`~hpo_cli.request.InnerState` of numpy arrays in the problem's
dtype: the strategy keeps it (and so does its checkpoint), never the task.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

from hpo_cli.hypergrad.problem import BilevelProblem, Cost, Hypergradient, outer_gradients
from hpo_cli.hypergrad.unrolled import one_step, push_tangents
from hpo_cli.request import InnerState


def _tensor(a: np.ndarray, like: Tensor) -> Tensor:
    return torch.from_numpy(np.array(a, copy=True)).to(device=like.device, dtype=like.dtype)


def _array(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _start(problem: BilevelProblem, state: InnerState | None) -> tuple[Tensor, Tensor, int]:
    """(θ, velocity, step) to continue from: the carried state, or θ0 at rest."""
    like = problem.theta0
    if state is None:
        return like, torch.zeros_like(like), 0
    return _tensor(state.arrays["theta"], like), _tensor(state.arrays["velocity"], like), state.step


def _finish(result: Hypergradient, arrays: dict[str, np.ndarray], step: int, started: float) -> InnerState:
    result.extras["online_step"] = step
    result.cost.seconds = time.perf_counter() - started
    result.cost.peak_bytes = sum(a.nbytes for a in arrays.values())  # the carried state: θ, v (and tangents)
    return InnerState(arrays, step)


def greedy_step(
    problem: BilevelProblem, h: Tensor, state: InnerState | None, steps: int
) -> tuple[Hypergradient, InnerState]:
    """``steps`` more inner steps with the current h from the carried state (θ0 at first); the
    hypergradient is the one-step look-ahead one of the last step."""
    started = time.perf_counter()
    theta, velocity, step = _start(problem, state)
    with torch.no_grad():
        for _ in range(steps - 1):
            theta, velocity = problem.step(theta, velocity, h, step)
            step += 1
    theta, velocity, grad, value = one_step(problem, theta, velocity, h, step)
    result = Hypergradient(value, grad, Cost(inner_steps=steps, hvp=1), {"theta": theta})
    return result, _finish(result, {"theta": _array(theta), "velocity": _array(velocity)}, step + 1, started)


def rtho_step(
    problem: BilevelProblem, h: Tensor, state: InnerState | None, steps: int
) -> tuple[Hypergradient, InnerState]:
    """``steps`` more inner steps from the carried state, the tangents dθ/dh carried along."""
    started = time.perf_counter()
    theta, velocity, step = _start(problem, state)
    result, theta, velocity, tangents = _rtho(problem, h, steps, theta, velocity, step, state)
    arrays = {"theta": _array(theta), "velocity": _array(velocity), **tangents}
    return result, _finish(result, arrays, step + steps, started)


def _rtho(
    problem: BilevelProblem, h: Tensor, steps: int, theta: Tensor, velocity: Tensor, step: int, state: InnerState | None
) -> tuple[Hypergradient, Tensor, Tensor, dict[str, np.ndarray]]:
    """Real-time forward mode: push the tangents (m, p) through ``steps`` steps, then dQ/dh."""
    if state is None:
        z_theta = torch.zeros(h.numel(), theta.numel(), dtype=theta.dtype, device=theta.device)
        z_velocity = torch.zeros_like(z_theta)
    else:
        z_theta, z_velocity = _tensor(state.arrays["z_theta"], theta), _tensor(state.arrays["z_velocity"], theta)
    directions = torch.eye(h.numel(), dtype=h.dtype, device=h.device)
    with torch.no_grad():
        for t in range(step, step + steps):
            z_theta, z_velocity = push_tangents(problem, theta, velocity, h, t, z_theta, z_velocity, directions)
            theta, velocity = problem.step(theta, velocity, h, t)
    q, d_theta, d_h = outer_gradients(problem, theta, h)
    result = Hypergradient(float(q), z_theta @ d_theta + d_h, Cost(inner_steps=steps, hvp=steps * h.numel()))
    result.extras["theta"] = theta
    return result, theta, velocity, {"z_theta": _array(z_theta), "z_velocity": _array(z_velocity)}


def implicit_step(
    problem: BilevelProblem, h: Tensor, state: InnerState | None, tol: float, warm_start: bool, curvature: str
) -> tuple[Hypergradient, InnerState]:
    """HOAG's hypergradient at tolerance ``tol``: the inner solve to ‖∇θL‖∞ ≤ tol·scale (scale:
    its size at θ0, carried), CG to relative residual ``tol``; warm-started from the carried θ
    and q when ``warm_start``."""
    from hpo_cli.hypergrad.implicit import implicit, solve_inner

    like = problem.theta0
    if state is None or "scale" not in state.arrays:
        g0 = torch.func.grad(problem.full_inner_loss)(problem.theta0, h)
        scale = np.array(max(float(g0.abs().max()), 1e-300))
    else:
        scale = state.arrays["scale"]
    warm = warm_start and state is not None and "theta" in state.arrays
    start = _tensor(state.arrays["theta"], like) if warm and state is not None else like
    q0 = _tensor(state.arrays["q"], like) if warm and state is not None else None
    solution = solve_inner(problem, h, start, tol * float(scale))
    result = implicit(problem, h, solution.theta, tol, q0, solution.iterations, curvature)
    q = result.extras.pop("q")
    assert isinstance(q, Tensor)
    result.extras["theta"] = solution.theta
    result.extras["inner_grad_norm"] = solution.grad_norm
    # Q at an inexact θ misses Q(θ*) by ≈ ∇θQᵀ(θ − θ*) ≈ qᵀ∇θL(θ) (q = A⁻¹∇θQ): what HOAG allows for
    inner_grad = torch.func.grad(problem.full_inner_loss)(solution.theta, h)
    result.extras["value_error"] = abs(float(q @ inner_grad))
    return result, InnerState({"theta": _array(solution.theta), "q": _array(q), "scale": scale})
