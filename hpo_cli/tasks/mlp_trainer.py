"""Black-box training of the MLP's flat parameter vector with ``torch.optim``.

The optimizer families of the lecture (sgd, momentum, nesterov, adagrad, rmsprop, adam), weight
decay, minibatches and dropout, for strategies that only see the validation score. The network
is :func:`hpo_cli.tasks.mlp_model.mlp_logits` over one flat θ, the same function the
hypergradient methods differentiate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from hpo_cli import curves
from hpo_cli.tasks.bilevel_models import Split
from hpo_cli.tasks.mlp_model import mlp_logits

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")


def make_optimizer(name: str, theta: Tensor, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    if name in ("sgd", "momentum", "nesterov"):
        mu = 0.0 if name == "sgd" else momentum
        return torch.optim.SGD([theta], lr=lr, momentum=mu, nesterov=name == "nesterov", weight_decay=weight_decay)
    cls = {"adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}[name]
    return cls([theta], lr=lr, weight_decay=weight_decay)


@dataclass
class Checkpoint:
    """A training in progress: θ (a leaf tensor), its optimizer, the random stream, epochs done."""

    theta: Tensor
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    epochs: int

    def state_dict(self) -> dict[str, Any]:
        """θ, the optimizer's state and the random stream's, on the CPU, for a checkpoint file."""
        return {
            "epochs": self.epochs,
            "theta": self.theta.detach().cpu(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Continue the training ``saved`` by :meth:`state_dict` (for the same configuration):
        the next epochs are those an uninterrupted training would take. Raises ValueError
        (or torch's RuntimeError) when it does not fit this training; then discard this object."""
        theta = saved["theta"]
        if not isinstance(theta, Tensor) or theta.shape != self.theta.shape:
            raise ValueError(f"θ of shape {getattr(theta, 'shape', None)}, not {tuple(self.theta.shape)}")
        with torch.no_grad():
            self.theta.copy_(theta)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.generator.set_state(saved["generator"])
        self.epochs = int(saved["epochs"])


def start(theta0: Tensor, hp: Mapping[str, Any], generator: torch.Generator) -> Checkpoint:
    theta = theta0.detach().clone().requires_grad_(True)
    opt = make_optimizer(hp["optimizer"], theta, float(hp["lr"]), float(hp["momentum"]), float(hp["weight_decay"]))
    return Checkpoint(theta, opt, generator, 0)


def train_step(state: Checkpoint, sizes: Sequence[int], hp: Mapping[str, Any], x: Tensor, y: Tensor) -> Tensor:
    """One minibatch step; returns the batch loss (a detached tensor on the device: no sync)."""
    state.optimizer.zero_grad(set_to_none=True)
    logits = mlp_logits(state.theta, x, sizes, hp["activation"], hp["dropout"], state.generator)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    state.optimizer.step()
    return loss.detach()


def train_epochs(state: Checkpoint, sizes: Sequence[int], hp: Mapping[str, Any], train: Split, epochs: int) -> int:
    """Train until ``state.epochs == epochs``; returns the number of minibatch steps taken."""
    steps = 0
    while state.epochs < epochs:
        order = torch.randperm(len(train.y), generator=state.generator).to(train.X.device)
        worst = total = torch.zeros((), device=train.X.device)
        batches = order.split(int(hp["batch_size"]))
        for rows in batches:
            loss = train_step(state, sizes, hp, train.X[rows], train.y[rows])
            worst, total = torch.maximum(worst, loss.nan_to_num(math.inf)), total + loss
            steps += 1
        if not math.isfinite(float(worst)):  # one host sync per epoch, not per step
            raise FloatingPointError(f"the training loss became not finite during epoch {state.epochs + 1}")
        state.epochs += 1
        curves.report(state.epochs, train_loss=total / len(batches))  # the loggers' learning curve
    return steps
