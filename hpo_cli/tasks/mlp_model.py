"""The multilayer perceptron as a plain function of one flat parameter vector.

θ is the concatenation of the flattened tensors W1 (d, h1), b1 (h1,), …, W_out (h_L, k),
b_out (k,) (row-major), so the same θ is trained by ``torch.optim`` (black-box strategies) and
differentiated through by the hypergradient methods (as the inner problem of a
:class:`~hpo_cli.hypergrad.problem.BilevelProblem`). Initialization: Uniform(±1/√fan_in) for
weights and biases, as ``torch.nn.Linear`` does, drawn in float64 from the seed and then cast,
so float32 and float64 runs start from the same point.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from hpo_cli.hypergrad.problem import Hyper
from hpo_cli.tasks.bilevel_models import BilevelModel, Split

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "softplus": F.softplus,
}
SMOOTH = ("tanh", "sigmoid", "gelu", "softplus")  # twice differentiable: for gradient checks


def layer_sizes(d_in: int, hidden: int, layers: int, n_classes: int) -> list[int]:
    """[d_in, hidden × layers, n_classes]."""
    return [d_in, *[hidden] * layers, n_classes]


def tensor_sizes(sizes: Sequence[int]) -> list[int]:
    """Number of entries of each parameter tensor: [d·h1, h1, h1·h2, h2, …]."""
    return [n for fan_in, fan_out in itertools.pairwise(sizes) for n in (fan_in * fan_out, fan_out)]


def initial_theta(sizes: Sequence[int], seed: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """θ_0 (p,): Uniform(±1/√fan_in) weights and biases, from the seed alone."""
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = 1.0 / math.sqrt(fan_in)
        for n in (fan_in * fan_out, fan_out):
            parts.append((torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * bound)
    return torch.cat(parts).to(dtype=dtype, device=device)


def mlp_logits(
    theta: Tensor,
    X: Tensor,
    sizes: Sequence[int],
    activation: str = "relu",
    dropout: float = 0.0,
    gen: torch.Generator | None = None,
) -> Tensor:
    """Logits (n, k) of inputs X (n, d); inverted dropout on hidden units only when ``gen``."""
    act, start, x = ACTIVATIONS[activation], 0, X
    pairs = list(itertools.pairwise(sizes))
    for i, (fan_in, fan_out) in enumerate(pairs):
        W = theta[start : start + fan_in * fan_out].reshape(fan_in, fan_out)
        start += fan_in * fan_out
        b = theta[start : start + fan_out]
        start += fan_out
        x = x @ W + b
        if i < len(pairs) - 1:
            x = act(x)
            if dropout > 0 and gen is not None:
                keep = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device) >= dropout
                x = x * keep / (1 - dropout)
    return x


class MLPModel(BilevelModel):
    """Cross-entropy of an MLP; the inner loss adds the Gaussian prior (see :class:`BilevelModel`)."""

    def __init__(
        self, train: Split, val: Split, batches: Tensor | None, sizes: Sequence[int], activation: str, stages: int
    ) -> None:
        super().__init__(train, val, batches, tensor_sizes(sizes), stages)
        self.sizes, self.activation = list(sizes), activation

    def logits(self, theta: Tensor, X: Tensor) -> Tensor:
        return mlp_logits(theta, X, self.sizes, self.activation)

    def outputs(self, theta: Tensor, X: Tensor) -> Tensor:
        return self.logits(theta, X)

    def output_losses(self, out: Tensor, y: Tensor, hp: Hyper) -> Tensor:
        return F.cross_entropy(out, y, reduction="none")

    def heldout_loss(self, theta: Tensor, split: Split, hp: Hyper) -> Tensor:
        """Cross-entropy."""
        return self.loss(theta, split)

    def loss(self, theta: Tensor, split: Split) -> Tensor:
        return F.cross_entropy(self.logits(theta, split.X), split.y)

    def accuracy(self, theta: Tensor, split: Split) -> float:
        return float((self.logits(theta, split.X).argmax(1) == split.y).double().mean())
