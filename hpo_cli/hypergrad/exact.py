"""Reverse mode with exactly reversible SGD with momentum (Maclaurin, Duvenaud & Adams 2015).

Instead of storing the trajectory, the forward pass runs in fixed point: θ and v are integers
in units of 2^-F. With the maclaurin convention (μ = n/d as a fraction)

    V ← μ·V − round((1 − μ)·g(θ)·2^F)        Θ ← Θ + round(lr·V)

every step can be undone exactly, except that multiplying by μ = n/d discards information.
That information is kept in a per-parameter *information buffer*, an unbounded integer used as
a stack of mixed-radix digits: dividing V by d pushes the remainder (a digit in base d), and
multiplying by n pops a digit in base n back into V. The buffer therefore grows by
log2(d/n) = log2(1/μ) bits per parameter per step (0.152 at μ = 0.9).

The backward pass runs the steps in reverse, reconstructing (θ_t, v_t) exactly, and pulls the
adjoint through each step in floating point, like :func:`hpo_cli.hypergrad.unrolled.reverse`.
At the end θ_0 and v_0 = 0 are restored bit for bit and the buffer is empty again.
"""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

from hpo_cli.hypergrad.problem import BilevelProblem, Cost, Hypergradient, outer_gradients
from hpo_cli.hypergrad.unrolled import backprop_step

LIMIT = 2**62


class InformationBuffer:
    """One unbounded non-negative integer per parameter, used as a stack of digits."""

    def __init__(self, size: int) -> None:
        self.store = np.zeros(size, dtype=object)
        self.store[:] = 0

    def push(self, digits: Tensor, base: int) -> None:
        """Push ``digits`` (int64, each in [0, base)) on top of every parameter's stack."""
        self.store = self.store * base + digits.cpu().numpy().astype(object)

    def pop(self, base: int, like: Tensor) -> Tensor:
        """Pop one digit in ``base`` from every stack (0 from an empty one)."""
        digits = self.store % base
        self.store = self.store // base
        return torch.tensor(digits.astype(np.int64), device=like.device)

    def bits(self) -> int:
        return int(sum(int(x).bit_length() for x in self.store))

    def is_empty(self) -> bool:
        return not any(self.store)


def momentum_fraction(mu: float, max_denominator: int = 2**16) -> Fraction:
    frac = Fraction(mu).limit_denominator(max_denominator)
    if not 0 < frac < 1:
        raise ValueError(f"rmad_exact needs 0 < momentum < 1, got {mu}")
    return frac


class ExactSGD:
    """Fixed-point SGD with momentum (maclaurin convention) that can run backwards."""

    def __init__(self, problem: BilevelProblem, h: Tensor, fraction_bits: int) -> None:
        if problem.optimizer.convention != "maclaurin":
            raise ValueError("rmad_exact needs optimizer convention 'maclaurin'")
        self.problem, self.h = problem, h
        self.scale = float(2**fraction_bits)
        self.hp = problem.layout.unflatten(h)
        _, mu = problem.rates(self.hp, 0)
        if isinstance(mu, Tensor) and mu.numel() != 1:
            raise ValueError("rmad_exact needs one momentum for all parameters")
        self.mu = float(mu)
        frac = momentum_fraction(self.mu)
        self.n, self.d = frac.numerator, frac.denominator
        self.buffer = InformationBuffer(problem.theta0.numel())

    def to_int(self, x: Tensor) -> Tensor:
        scaled = torch.round(x * self.scale)
        if scaled.abs().max() >= LIMIT:
            raise OverflowError("rmad_exact: a value left the fixed-point range; lower fraction_bits")
        return scaled.to(torch.int64)

    def to_float(self, x: Tensor) -> Tensor:
        return x.to(self.problem.theta0.dtype) / self.scale

    def lr(self, t: int) -> Tensor | float:
        """The learning rate of step t: a float, or a (p,) tensor for per-tensor rates."""
        return self.problem.rates(self.hp, t)[0]

    def _gradient_term(self, theta: Tensor, t: int) -> Tensor:
        g = torch.func.grad(self.problem.inner_loss)(self.to_float(theta), self.hp, t)
        return self.to_int((1 - self.mu) * g)

    def _times_mu(self, v: Tensor) -> Tensor:
        self.buffer.push(torch.remainder(v, self.d), self.d)
        return torch.div(v, self.d, rounding_mode="floor") * self.n + self.buffer.pop(self.n, v)

    def _divided_by_mu(self, v: Tensor) -> Tensor:
        self.buffer.push(torch.remainder(v, self.n), self.n)
        return torch.div(v, self.n, rounding_mode="floor") * self.d + self.buffer.pop(self.d, v)

    def forward(self, theta: Tensor, v: Tensor, t: int) -> tuple[Tensor, Tensor]:
        v = self._times_mu(v) - self._gradient_term(theta, t)
        return theta + self.to_int(self.lr(t) * self.to_float(v)), v

    def backward(self, theta: Tensor, v: Tensor, t: int) -> tuple[Tensor, Tensor]:
        theta = theta - self.to_int(self.lr(t) * self.to_float(v))
        return theta, self._divided_by_mu(v + self._gradient_term(theta, t))


def rmad_exact(problem: BilevelProblem, h: Tensor, fraction_bits: int = 44) -> Hypergradient:
    """Exact-reversal RMAD: nothing but the information buffer and the current state is held.
    Extras: ``theta0_restored`` (float, bit-equal to the quantized θ_0) and
    ``buffer_bits_per_param_step``."""
    started = time.perf_counter()
    machine = ExactSGD(problem, h.detach(), fraction_bits)
    theta0_int = machine.to_int(problem.theta0)
    theta, v = theta0_int, torch.zeros_like(theta0_int)
    with torch.no_grad():
        for t in range(problem.n_steps):
            theta, v = machine.forward(theta, v, t)
    T, p = problem.n_steps, problem.theta0.numel()
    buffer_bits = machine.buffer.bits()
    theta_T = machine.to_float(theta)
    value, d_theta, d_h = outer_gradients(problem, theta_T, h)
    d_velocity = torch.zeros_like(d_theta)
    for t in reversed(range(T)):
        with torch.no_grad():
            theta, v = machine.backward(theta, v, t)
        adjoint = (d_theta, d_velocity)
        d_theta, d_velocity, d_step = backprop_step(
            problem, machine.to_float(theta), machine.to_float(v), h, t, adjoint
        )
        d_h = d_h + d_step
    held = (buffer_bits + 7) // 8 + 2 * theta.numel() * theta.element_size()
    cost = Cost(inner_steps=T, hvp=T, seconds=time.perf_counter() - started, peak_bytes=held)
    extras = {
        "theta": theta_T,
        "theta0_int": theta0_int,
        "theta0_restored_int": theta,
        "velocity0_restored_int": v,
        "theta0_restored": machine.to_float(theta),
        "buffer_empty_after": machine.buffer.is_empty(),
        "buffer_bits_per_param_step": buffer_bits / (p * T) if T else 0.0,
        "expected_bits_per_param_step": float(np.log2(machine.d / machine.n)),
    }
    return Hypergradient(float(value), d_h, cost, extras)
