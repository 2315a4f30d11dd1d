"""Hypergradients through the unrolled inner training (iterative differentiation).

* :func:`reverse`: reverse mode over the stored trajectory (Reverse-HG / RMAD with a tape),
  optionally truncated to the last K steps. Memory grows with T × p, time is flat in m. The
  tape holds θ_t, v_t and each step is re-linearized on the way back; :func:`reverse_graph`
  keeps autograd's whole graph instead (what higher and torchopt do): about one linearization
  less per step, several times the memory. :func:`reverse_auto` picks by a memory budget.
* :func:`forward`: forward mode, propagating the tangents dθ_t/dh (Forward-HG). Memory is
  flat in T; time grows with the number of hyperparameters m.
* :func:`drmad`: DrMAD, the reverse pass along straight lines between (θ_t, v_t) kept at a few
  evenly spaced steps (``anchors``; one line θ_0 → θ_T as Fu et al.) instead of the stored
  trajectory, its adjoint optionally clipped.
* :func:`one_step`: the greedy one-step look-ahead hypergradient (Luketina et al. 2016).
"""

from __future__ import annotations

import time

import torch
from torch import Tensor
from torch.func import jvp, vmap

from hpo_cli.hypergrad.problem import (
    BilevelProblem,
    Cost,
    Hypergradient,
    nbytes,
    outer_gradients,
    pullback,
)


def backprop_step(
    problem: BilevelProblem,
    theta: Tensor,
    velocity: Tensor,
    h: Tensor,
    t: int,
    adjoint: tuple[Tensor, Tensor],
) -> tuple[Tensor, Tensor, Tensor]:
    """Pull the adjoint (dθ_{t+1}, dv_{t+1}) back through step t: (dθ_t, dv_t, dh from step t)."""
    _, back = pullback(lambda a, b, c: problem.step(a, b, c, t), theta, velocity, h)
    d_theta, d_velocity, d_h = back(adjoint)
    return d_theta.detach(), d_velocity.detach(), d_h.detach()


def reverse_auto(
    problem: BilevelProblem, h: Tensor, truncate: int | None = None, tape: str = "auto", memory_mb: float = 1024.0
) -> Hypergradient:
    """Reverse mode with the tape asked for; ``auto``: the graph when one step's saved tensors
    times the number of steps fit ``memory_mb``, else the recomputing tape."""
    if tape == "auto":
        steps = problem.n_steps if truncate is None else min(int(truncate), problem.n_steps)
        tape = "graph" if steps * graph_bytes_per_step(problem, h) <= memory_mb * 2**20 else "recompute"
    result = reverse_graph(problem, h, truncate) if tape == "graph" else reverse(problem, h, truncate)
    result.extras["graph_tape"] = float(tape == "graph")  # a number, so it lands in the trial's metrics
    return result


class SavedBytes:
    """Counts the bytes autograd saves for backward (each storage once) while active."""

    def __init__(self) -> None:
        self.bytes, self._seen = 0, set[tuple[int, int]]()

    def pack(self, x: Tensor) -> Tensor:
        key = (x.untyped_storage().data_ptr(), x.untyped_storage().nbytes())
        if key not in self._seen:
            self._seen.add(key)
            self.bytes += key[1]
        return x

    def hooks(self) -> torch.autograd.graph.saved_tensors_hooks:
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda x: x)


def graph_bytes_per_step(problem: BilevelProblem, h: Tensor) -> int:
    """Bytes autograd saves for backward in one inner step (measured on step 0)."""
    counter = SavedBytes()
    theta = problem.theta0.detach().requires_grad_(True)
    with torch.enable_grad(), counter.hooks():
        problem.step(theta, torch.zeros_like(theta), h.detach().requires_grad_(True), 0, graph=True)
    return counter.bytes


def reverse_graph(problem: BilevelProblem, h: Tensor, truncate: int | None = None) -> Hypergradient:
    """Reverse mode through autograd's graph of the unrolled training (one backward pass)."""
    started = time.perf_counter()
    T = problem.n_steps
    first = 0 if truncate is None else max(T - int(truncate), 0)
    theta, velocity = problem.theta0, torch.zeros_like(problem.theta0)
    with torch.no_grad():
        for t in range(first):
            theta, velocity = problem.step(theta, velocity, h, t)
    counter, h_var = SavedBytes(), h.detach().requires_grad_(True)
    theta = theta.detach().requires_grad_(True)
    with torch.enable_grad():
        with counter.hooks():  # the training's graph: what this tape holds
            hp = problem.layout.unflatten(h_var)
            for t in range(first, T):
                theta, velocity = problem.step(theta, velocity, h_var, t, graph=True, hp=hp)
        value = problem.outer(theta, h_var)  # outside the hooks: Q may use torch.func (a Laplace Hessian)
    (d_h,) = torch.autograd.grad(value, h_var)
    cost = Cost(inner_steps=T, hvp=T - first, seconds=time.perf_counter() - started, peak_bytes=counter.bytes)
    return Hypergradient(float(value.detach()), d_h.detach(), cost, {"theta": theta.detach()})


def reverse(problem: BilevelProblem, h: Tensor, truncate: int | None = None) -> Hypergradient:
    """Reverse mode through the stored trajectory; ``truncate``: only the last K steps."""
    started = time.perf_counter()
    T = problem.n_steps
    first = 0 if truncate is None else max(T - int(truncate), 0)
    theta, velocity = problem.theta0, torch.zeros_like(problem.theta0)
    tape: list[tuple[Tensor, Tensor]] = []
    with torch.no_grad():
        for t in range(T):
            if t >= first:
                tape.append((theta, velocity))
            theta, velocity = problem.step(theta, velocity, h, t)
    value, d_theta, d_h = outer_gradients(problem, theta, h)
    d_velocity = torch.zeros_like(velocity)
    for t in reversed(range(first, T)):
        th, vel = tape[t - first]
        d_theta, d_velocity, d_step = backprop_step(problem, th, vel, h, t, (d_theta, d_velocity))
        d_h = d_h + d_step
    held = nbytes(*(x for pair in tape for x in pair))
    cost = Cost(inner_steps=T, hvp=T - first, seconds=time.perf_counter() - started, peak_bytes=held)
    return Hypergradient(float(value), d_h, cost, {"theta": theta})


def forward(problem: BilevelProblem, h: Tensor) -> Hypergradient:
    """Forward mode: tangents Z_t = dθ_t/dh and dv_t/dh, shape (m, p), pushed through each step."""
    started = time.perf_counter()
    m = h.numel()
    theta, velocity = problem.theta0, torch.zeros_like(problem.theta0)
    z_theta = torch.zeros(m, theta.numel(), dtype=theta.dtype, device=theta.device)
    z_velocity = torch.zeros_like(z_theta)
    directions = torch.eye(m, dtype=h.dtype, device=h.device)
    for t in range(problem.n_steps):
        with torch.no_grad():
            z_theta, z_velocity = push_tangents(problem, theta, velocity, h, t, z_theta, z_velocity, directions)
            theta, velocity = problem.step(theta, velocity, h, t)
    value, d_theta, d_h = outer_gradients(problem, theta, h)
    grad = z_theta @ d_theta + d_h
    held = nbytes(z_theta, z_velocity, theta, velocity)
    cost = Cost(
        inner_steps=problem.n_steps,
        hvp=problem.n_steps * m,
        seconds=time.perf_counter() - started,
        peak_bytes=held,
    )
    return Hypergradient(float(value), grad, cost, {"theta": theta})


def push_tangents(
    problem: BilevelProblem,
    theta: Tensor,
    velocity: Tensor,
    h: Tensor,
    t: int,
    z_theta: Tensor,
    z_velocity: Tensor,
    directions: Tensor,
) -> tuple[Tensor, Tensor]:
    """Tangents through step t, one hyperparameter direction per row: shapes (m, p)."""

    def one_direction(zt: Tensor, zv: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        out = jvp(lambda a, b, c: problem.step(a, b, c, t), (theta, velocity, h), (zt, zv, e))
        return out[1]

    result = vmap(one_direction)(z_theta, z_velocity, directions)
    return result[0], result[1]


def drmad(
    problem: BilevelProblem,
    h: Tensor,
    skip: float = 0.0,
    stride: int = 1,
    anchors: int = 1,
    clip: float | None = None,
) -> Hypergradient:
    """DrMAD: reverse pass over θ_t ≈ (1 − w)·θ_a + w·θ_b, w = (t − a)/(b − a), between the kept
    points a ≤ t < b of the training (likewise v_t); with one segment θ_t ≈ (1 − t/T)·θ_0 + (t/T)·θ_T.

    ``skip``: the fraction of initial steps left out of the reverse pass (Bakhteev: 0.05);
    ``stride``: use every stride-th step of the reverse pass (Bakhteev: 10 on MNIST);
    ``anchors``: the training is cut into this many equal segments and their endpoints kept, the
    reverse pass interpolating within each (1: Fu et al.'s single line; n_steps: exact reverse);
    ``clip``: the adjoint (dθ_t, dv_t) is rescaled whenever its norm exceeds ``clip`` times its
    norm at θ_T (Pascanu et al. 2013's remedy for gradients exploding through long products: off
    the trajectory, a network's curvature can exceed what the step size keeps stable, and the
    adjoint then grows without bound); None: never.
    """
    if not 0.0 <= skip < 1.0 or stride < 1 or anchors < 1 or (clip is not None and not clip > 0):
        got = f"skip={skip}, stride={stride}, anchors={anchors}, clip={clip}"
        raise ValueError(f"drmad needs 0 <= skip < 1, stride >= 1, anchors >= 1 and clip > 0 or None, got {got}")
    started = time.perf_counter()
    T = problem.n_steps
    marks = sorted({round(T * k / anchors) for k in range(anchors + 1)})
    kept = [(problem.theta0, torch.zeros_like(problem.theta0))]
    theta, velocity = kept[0]
    with torch.no_grad():
        for t in range(T):
            theta, velocity = problem.step(theta, velocity, h, t)
            if t + 1 in marks:
                kept.append((theta, velocity))
    value, d_theta, d_h = outer_gradients(problem, theta, h)
    d_velocity = torch.zeros_like(velocity)
    limit = None if clip is None else clip * float(torch.linalg.vector_norm(d_theta))
    used = clipped = 0
    segment = len(marks) - 2
    for t in range(T - 1, int(skip * T) - 1, -stride):
        while marks[segment] > t:
            segment -= 1
        a, b = marks[segment], marks[segment + 1]
        w = (t - a) / (b - a)
        (theta_a, velocity_a), (theta_b, velocity_b) = kept[segment], kept[segment + 1]
        theta_t = (1 - w) * theta_a + w * theta_b
        velocity_t = (1 - w) * velocity_a + w * velocity_b
        d_theta, d_velocity, d_step = backprop_step(problem, theta_t, velocity_t, h, t, (d_theta, d_velocity))
        d_h = d_h + d_step
        used += 1
        if limit is not None:
            norm = float(torch.sqrt(d_theta.square().sum() + d_velocity.square().sum()))
            if norm > limit:
                d_theta, d_velocity, clipped = d_theta * (limit / norm), d_velocity * (limit / norm), clipped + 1
    held = nbytes(*(x for pair in kept for x in pair))
    cost = Cost(inner_steps=T, hvp=used, seconds=time.perf_counter() - started, peak_bytes=held)
    return Hypergradient(float(value), d_h, cost, {"theta": theta, "adjoint_clipped": float(clipped)})


def one_step(
    problem: BilevelProblem, theta: Tensor, velocity: Tensor, h: Tensor, t: int
) -> tuple[Tensor, Tensor, Tensor, float]:
    """Greedy hypergradient of Q(θ_{t+1}) through the single step t (Luketina et al. 2016):
    dQ/dh = ∂Q/∂h + (∂θ_{t+1}/∂h)ᵀ ∇θQ(θ_{t+1}); for plain SGD the second term is
    −lr · ∇²_{hθ}L · ∇θQ. Returns (θ_{t+1}, v_{t+1}, dQ/dh (m,), Q(θ_{t+1}))."""
    (theta_next, velocity_next), back = pullback(lambda a, b, c: problem.step(a, b, c, t), theta, velocity, h)
    value, d_theta, d_h = outer_gradients(problem, theta_next.detach(), h)
    _, _, d_step = back((d_theta, torch.zeros_like(velocity_next)))
    return theta_next.detach(), velocity_next.detach(), (d_h + d_step).detach(), float(value)
