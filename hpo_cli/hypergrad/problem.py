"""The bilevel problem every hypergradient method works on.

    inner:  θ_T = T steps of SGD with momentum on L(θ, h, t), from θ_0
    outer:  minimize Q(θ_T, h) over h

``gauss_newton`` (optional): the generalized Gauss-Newton products of the full inner loss, for
the implicit method's linear system (``curvature=ggn``).

Shapes: θ is a flat tensor (p,); h is a flat tensor (m,) whose named pieces are described by a
:class:`HyperLayout` (e.g. ``log_precision`` (12,), ``log_lr`` (), ``momentum`` ()).

Hyperparameters the optimizer itself understands:

* ``log_lr``: the learning rate is exp(log_lr) (else ``InnerOptimizer.lr``): one for all of θ,
  one per parameter tensor, or one per tensor per training stage (Maclaurin's schedules; see
  :class:`ParameterTensors`);
* ``momentum``: the momentum μ, a scalar (else ``InnerOptimizer.momentum``).

Momentum conventions (the hypergradients with respect to lr and momentum differ between them):

* ``torch``:     buf ← μ·buf + g;       θ ← θ − lr·buf   (torch.optim.SGD, dampening 0)
* ``maclaurin``: v ← μ·v − (1 − μ)·g;   θ ← θ + lr·v     (Maclaurin 2015, DrMAD, Bakhteev)

``rmad_exact`` needs the maclaurin convention (its reversal divides by μ); the others take both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

Hyper = Mapping[str, Tensor]
InnerLoss = Callable[[Tensor, Hyper, "int | None"], Tensor]  # (θ, hp, step or None=full) -> ()
OuterLoss = Callable[[Tensor, Hyper], Tensor]  # (θ, hp) -> ()
GaussNewton = Callable[[Tensor, Hyper], "Callable[[Tensor], Tensor] | None"]
CONVENTIONS = ("torch", "maclaurin")


@dataclass(frozen=True)
class HyperLayout:
    """Names and shapes of the pieces of the flat hyperparameter vector, in order."""

    shapes: tuple[tuple[str, tuple[int, ...]], ...]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.shapes]

    def unflatten(self, h: Tensor) -> dict[str, Tensor]:
        """h: (m,) -> {name: tensor of its shape} (views, so autograd flows through)."""
        out, start = {}, 0
        for name, shape in self.shapes:
            n = _numel(shape)
            out[name] = h[start : start + n].reshape(shape)
            start += n
        return out

    def flatten(self, values: Mapping[str, Tensor | float | list[float]], like: Tensor) -> Tensor:
        """{name: value} -> h: (m,) with the dtype and device of ``like``."""
        parts = [
            torch.as_tensor(values[name], dtype=like.dtype, device=like.device).reshape(-1) for name, _ in self.shapes
        ]
        return torch.cat(parts)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


class ParameterTensors:
    """θ as the concatenation of flattened tensors (a network's weight matrices and biases, in
    order), and the number of stages of a learning-rate schedule.

    A per-parameter hyperparameter may be given at three granularities, told apart by length:
    1 (shared), ``count`` (one per tensor) or ``n_params`` (one per entry of θ); a learning
    rate also as ``stages × count`` (one per tensor per stage: step t of T is in stage
    ⌊t·stages/T⌋). With ``copies`` > 1, θ is that many copies of the tensors and each
    hyperparameter applies to all of them (the shapes above are those of one copy).
    """

    def __init__(
        self, sizes: Sequence[int], stages: int = 1, device: torch.device | None = None, copies: int = 1
    ) -> None:
        self.sizes, self.stages, self.copies = tuple(int(s) for s in sizes), int(stages), int(copies)
        self.count, self.n_params = len(self.sizes), sum(self.sizes)
        ids = torch.arange(self.count, device=device)
        one = torch.repeat_interleave(ids, torch.tensor(self.sizes, device=device))  # (p,) tensor of θ_i
        self.index = one.repeat(self.copies)  # (copies·p,)

    def repeated(self, copies: int) -> ParameterTensors:
        """The same tensors, θ holding ``copies`` of them one after another (k-fold models, the
        mean and variance of a variational posterior): a hyperparameter keeps its granularities
        and applies to every copy."""
        return ParameterTensors(self.sizes, self.stages, self.index.device, self.copies * copies)

    def granularities(self, schedule: bool = False) -> dict[int, str]:
        """{length: meaning} of the vector lengths a hyperparameter may have."""
        out = {1: "shared", self.count: "per tensor", self.n_params: "per parameter"}
        if schedule and self.stages > 1:
            out[self.stages * self.count] = "per tensor per stage"
        return out

    def per_parameter(self, value: Tensor) -> Tensor:
        """A hyperparameter of any granularity -> () or (p,), differentiable."""
        n = value.numel()
        if n == 1:
            return value.reshape(())
        if n == self.n_params:
            return value.reshape(-1).repeat(self.copies) if self.copies > 1 else value.reshape(-1)
        if n == self.count:
            return value.reshape(-1)[self.index]
        raise ValueError(f"a hyperparameter of length {n} fits neither 1, {self.count} nor {self.n_params}")

    def at_step(self, value: Tensor, t: int, n_steps: int) -> Tensor:
        """A learning rate-like hyperparameter at inner step t of n_steps -> () or (p,)."""
        if self.stages > 1 and value.numel() == self.stages * self.count:
            stage = min(t * self.stages // max(n_steps, 1), self.stages - 1)
            return value.reshape(self.stages, self.count)[stage][self.index]
        return self.per_parameter(value)


@dataclass(frozen=True)
class InnerOptimizer:
    """SGD with momentum; ``lr``/``momentum`` are used unless h carries log_lr/momentum."""

    lr: float = 0.1
    momentum: float = 0.0
    convention: str = "torch"

    def __post_init__(self) -> None:
        if self.convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {self.convention!r}")


@dataclass
class BilevelProblem:
    """θ_0 (p,), the losses, the number of inner steps and the inner optimizer.

    ``inner_loss(θ, hp, t)`` is the training loss on the t-th minibatch of a deterministic
    sequence, and on the full training set when t is None (used by the implicit method).
    ``outer_loss(θ, hp)`` is the criterion Q to minimize (e.g. validation loss).
    """

    theta0: Tensor
    inner_loss: InnerLoss
    outer_loss: OuterLoss
    layout: HyperLayout
    n_steps: int = 100
    optimizer: InnerOptimizer = field(default_factory=InnerOptimizer)
    tensors: ParameterTensors | None = None  # None: θ is one tensor
    solve_iterations: int = 1000  # the most L-BFGS iterations of an inner solve to tolerance
    gauss_newton: GaussNewton | None = None  # (θ, hp) -> v ↦ G v of the full inner loss, where offered

    def __post_init__(self) -> None:
        if self.tensors is None:
            self.tensors = ParameterTensors([self.theta0.numel()], device=self.theta0.device)

    def rates(self, hp: Hyper, t: int) -> tuple[Tensor | float, Tensor | float]:
        """(learning rate, momentum) at inner step t: scalars or (p,) tensors."""
        assert self.tensors is not None
        lr = torch.exp(self.tensors.at_step(hp["log_lr"], t, self.n_steps)) if "log_lr" in hp else self.optimizer.lr
        return lr, hp.get("momentum", self.optimizer.momentum)

    def step(
        self, theta: Tensor, velocity: Tensor, h: Tensor, t: int, graph: bool = False, hp: Hyper | None = None
    ) -> tuple[Tensor, Tensor]:
        """One inner optimizer step: (θ_t, v_t) -> (θ_{t+1}, v_{t+1}); pure, differentiable by
        torch.func; ``graph``: the inner gradient by torch.autograd with ``create_graph``, so
        that plain autograd (and its saved-tensor hooks) sees the whole step (θ must require grad);
        ``hp``: h already unflattened (a caller stepping many times with one h)."""
        hp = self.layout.unflatten(h) if hp is None else hp
        if graph:
            (g,) = torch.autograd.grad(self.inner_loss(theta, hp, t), theta, create_graph=True)
        else:
            g = torch.func.grad(self.inner_loss)(theta, hp, t)
        lr, mu = self.rates(hp, t)
        if self.optimizer.convention == "torch":  # fixed rates: one fused op each, as torch.optim.SGD
            velocity = mu * velocity + g if isinstance(mu, Tensor) else torch.add(g, velocity, alpha=mu)
            return (
                theta - lr * velocity if isinstance(lr, Tensor) else torch.add(theta, velocity, alpha=-lr)
            ), velocity
        velocity = mu * velocity - (1 - mu) * g
        return theta + lr * velocity, velocity

    def train(self, h: Tensor, steps: int | None = None) -> tuple[Tensor, Tensor]:
        """(θ_T, v_T) after ``steps`` (default n_steps) inner steps from θ_0; no graph kept."""
        theta, velocity = self.theta0, torch.zeros_like(self.theta0)
        with torch.no_grad():
            for t in range(self.n_steps if steps is None else steps):
                theta, velocity = self.step(theta, velocity, h, t)
        return theta, velocity

    def objective(self, h: Tensor) -> Tensor:
        """Q(θ_T(h), h) of the unrolled inner training."""
        theta, _ = self.train(h)
        return self.outer_loss(theta, self.layout.unflatten(h))

    def full_inner_loss(self, theta: Tensor, h: Tensor) -> Tensor:
        return self.inner_loss(theta, self.layout.unflatten(h), None)

    def outer(self, theta: Tensor, h: Tensor) -> Tensor:
        return self.outer_loss(theta, self.layout.unflatten(h))

    def gauss_newton_operator(self, theta: Tensor, h: Tensor) -> Callable[[Tensor], Tensor] | None:
        """v ↦ G v, the generalized Gauss-Newton matrix of the full inner loss at (θ, h) (positive
        definite with a prior), or None when the problem offers none."""
        if self.gauss_newton is None:
            return None
        return self.gauss_newton(theta.detach(), self.layout.unflatten(h.detach()))


@dataclass
class Cost:
    """What a hypergradient cost: inner optimizer steps, Hessian-vector products (or
    equivalent vector-Jacobian products), seconds, and the bytes the method holds at its peak
    (trajectory, tangents, buffers; counted from tensor sizes, so comparable across devices)."""

    inner_steps: int = 0
    hvp: int = 0
    seconds: float = 0.0
    peak_bytes: int = 0


@dataclass
class Hypergradient:
    """value = Q, grad = dQ/dh (m,), cost counters, and method-specific extras."""

    value: float
    grad: Tensor
    cost: Cost
    extras: dict[str, object] = field(default_factory=dict)


def outer_gradients(problem: BilevelProblem, theta: Tensor, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(Q, ∂Q/∂θ (p,), ∂Q/∂h (m,)) at (θ, h), detached."""
    (d_theta, d_h), value = torch.func.grad_and_value(problem.outer, argnums=(0, 1))(theta, h)
    return value.detach(), d_theta.detach(), d_h.detach()


def pullback(fn: Callable[..., Any], *primals: Tensor) -> tuple[Any, Callable[..., tuple[Tensor, ...]]]:
    """(fn(*primals), the vector-Jacobian product function) — torch.func.vjp, typed."""
    out = torch.func.vjp(fn, *primals)
    return out[0], out[1]


def nbytes(*tensors: Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)
