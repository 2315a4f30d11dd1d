"""Methods whose hyper-iterations carry state: pure functions of (problem, h, previous state)
that return the hypergradient and the next state.

* greedy, rtho (online): one training run continues across hyper-iterations, ``steps`` inner
  steps each; greedy returns the one-step look-ahead hypergradient of the last step (Luketina
  2016), rtho the forward-mode hypergradient of the tangents carried through the whole run
  (Franceschi 2017, real-time). State: θ, velocity, step (and rtho's tangents dθ/dh, dv/dh).
* implicit (HOAG): the inner solve and CG start from the previous solution (θ, q) when
  ``warm_start``; tolerances are relative to the inner gradient's size at θ0 on the first call
  (``scale``), which is therefore carried too.

The state is an :class:`~hpo_cli.hypergrad.request.InnerState` of numpy arrays in the problem's
dtype: the strategy keeps it (and so does its checkpoint), never the task.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

from hpo_cli.hypergrad.problem import BilevelProblem, Cost, Hypergradient, outer_gradients
from hpo_cli.hypergrad.request import HypergradRequest, InnerState
from hpo_cli.hypergrad.unrolled import one_step, push_tangents


def _tensor(a: np.ndarray, like: Tensor) -> Tensor:
    return torch.from_numpy(np.array(a, copy=True)).to(device=like.device, dtype=like.dtype)


def _array(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def online_step(problem: BilevelProblem, h: Tensor, request: HypergradRequest) -> tuple[Hypergradient, InnerState]:
    """``request.steps`` more inner steps with the current h from the carried state (θ0 at first)."""
    started, like, state = time.perf_counter(), problem.theta0, request.state
    if state is None:
        theta, velocity, step = like, torch.zeros_like(like), 0
    else:
        theta, velocity = _tensor(state.arrays["theta"], like), _tensor(state.arrays["velocity"], like)
        step = state.step
    if request.method == "greedy":
        with torch.no_grad():
            for _ in range(request.steps - 1):
                theta, velocity = problem.step(theta, velocity, h, step)
                step += 1
        theta, velocity, grad, value = one_step(problem, theta, velocity, h, step)
        step += 1
        arrays = {"theta": _array(theta), "velocity": _array(velocity)}
        result = Hypergradient(value, grad, Cost(inner_steps=request.steps, hvp=1), {"theta": theta})
    else:
        result, theta, velocity, tangents = _rtho(problem, h, request.steps, theta, velocity, step, state)
        step += request.steps
        arrays = {"theta": _array(theta), "velocity": _array(velocity), **tangents}
    result.extras["online_step"] = step
    result.cost.seconds = time.perf_counter() - started
    result.cost.peak_bytes = sum(a.nbytes for a in arrays.values())  # the carried state: θ, v (and tangents)
    return result, InnerState(arrays, step)


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


def implicit_step(problem: BilevelProblem, h: Tensor, request: HypergradRequest) -> tuple[Hypergradient, InnerState]:
    """HOAG's hypergradient at tolerance ``request.tol`` (relative to the carried scale)."""
    from hpo_cli.hypergrad import compute

    like, state = problem.theta0, request.state
    if state is None or "scale" not in state.arrays:
        g0 = torch.func.grad(problem.full_inner_loss)(problem.theta0, h)
        scale = np.array(max(float(g0.abs().max()), 1e-300))
    else:
        scale = state.arrays["scale"]
    warm = request.warm_start and state is not None and "theta" in state.arrays
    result = compute(
        "implicit",
        problem,
        h,
        inner_tol=request.tol * float(scale),
        cg_rtol=request.tol,
        theta_init=_tensor(state.arrays["theta"], like) if warm and state is not None else None,
        q0=_tensor(state.arrays["q"], like) if warm and state is not None else None,
    )
    q = result.extras.pop("q")
    assert isinstance(q, Tensor)
    theta = result.extras["theta"]
    assert isinstance(theta, Tensor)
    return result, InnerState({"theta": _array(theta), "q": _array(q), "scale": scale})
