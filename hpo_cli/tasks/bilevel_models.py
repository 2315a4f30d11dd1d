"""Differentiable models as bilevel problems: linear regression and softmax regression.

Hyperparameter kinds (names in the space, pieces of the flat h):

* ``log_precision``: log prior precision of the parameters, shared (scalar), one per parameter
  tensor or one per parameter (vector of length p; see
  :class:`~hpo_cli.hypergrad.problem.ParameterTensors`); the prior adds
  ½·Σ exp(h_j)·θ_j² / n_train to the loss;
* ``log_lr``, ``momentum``: the inner optimizer's own (see :mod:`hpo_cli.hypergrad.problem`);
* ``example_weights``: one weight in [0, 1] per training example, multiplying its loss
  (data hyper-cleaning);
* ``log_noise_precision``: log β of a regression likelihood N(y | xᵀθ, β⁻¹) (MacKay's
  evidence framework tunes it with the prior), a scalar.

The inner loss on minibatch t averages the (weighted) per-example losses of the t-th batch of
a seeded, fixed batch sequence; t = None means the whole training set.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from hpo_cli.hypergrad.problem import BilevelProblem, Hyper, HyperLayout, InnerOptimizer, ParameterTensors
from hpo_cli.validate import one_of

KINDS = ("log_precision", "log_lr", "momentum", "example_weights", "log_noise_precision")


TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def torch_device(name: str) -> torch.device:
    """The torch device of a resolved ``device`` setting ("cpu" or "cuda")."""
    return torch.device("cuda" if name == "cuda" else "cpu")


def torch_dtype(name: str) -> torch.dtype:
    return TORCH_DTYPES[one_of(name, "dtype", tuple(TORCH_DTYPES))]


def split_of(X: np.ndarray, y: np.ndarray, dtype: torch.dtype, device: torch.device, labels: bool = False) -> Split:
    """Arrays as a :class:`Split` on the device: X in ``dtype``; y too, or int64 class labels."""
    X_t = torch.as_tensor(X, dtype=dtype, device=device)
    return Split(X_t, torch.as_tensor(y, dtype=torch.int64 if labels else dtype, device=device))


@dataclass(frozen=True)
class Split:
    """Tensors of one data split: X (n, d); y (n,) float targets or int64 class labels."""

    X: Tensor
    y: Tensor


def make_layout(
    names_and_sizes: Sequence[tuple[str, int | None]], tensors: ParameterTensors | None = None, n_train: int = 0
) -> HyperLayout:
    """[(name, vector length or None for a scalar)] -> layout; names must be known kinds and,
    given the model's ``tensors`` and ``n_train``, lengths must be granularities of the kind."""
    shapes = []
    for name, size in names_and_sizes:
        if name not in KINDS:
            raise ValueError(f"unknown hyperparameter {name!r}; differentiable tasks know {', '.join(KINDS)}")
        if tensors is not None and size is not None:
            _check_length(name, int(size), tensors, n_train)
        shapes.append((name, () if size is None else (int(size),)))
    return HyperLayout(tuple(shapes))


def _check_length(name: str, size: int, tensors: ParameterTensors, n_train: int) -> None:
    allowed = {
        "log_precision": tensors.granularities(),
        "log_lr": tensors.granularities(schedule=True),
        "momentum": {1: "shared"},
        "example_weights": {n_train: "per training example"},
        "log_noise_precision": {1: "shared"},
    }[name]
    if size not in allowed:
        told = ", ".join(f"{n} ({what})" for n, what in sorted(allowed.items()))
        raise ValueError(f"{name} has {size} values; this model takes {told}")


def batch_schedule(n: int, batch_size: int | None, n_steps: int, seed: int, device: torch.device) -> Tensor | None:
    """(n_steps, batch_size) example indices: seeded epochs of permutations; None = full batch."""
    if batch_size is None or batch_size >= n:
        return None
    rng = np.random.default_rng(seed)
    needed = n_steps * batch_size
    order = np.concatenate([rng.permutation(n) for _ in range(needed // n + 1)])[:needed]
    return torch.as_tensor(order.reshape(n_steps, batch_size), device=device)


class BilevelModel:
    """A model trained on data: θ (p,) is the concatenation of ``sizes`` tensors; shared pieces:
    the prior, example weights and the batch sequence.

    A subclass says what the model predicts (``outputs``), the per-example loss of those
    predictions (``output_losses``: the negative log-likelihood up to ``nll_constant``) and the
    task's hold-out metric (``heldout_loss``). The criteria of :mod:`hpo_cli.tasks.criteria`
    build their L and Q from these alone.
    """

    def __init__(self, train: Split, val: Split, batches: Tensor | None, sizes: Sequence[int], stages: int = 1) -> None:
        self.train, self.val, self.batches = train, val, batches
        self.tensors = ParameterTensors(sizes, stages, device=train.X.device)
        self.n_params, self.n = self.tensors.n_params, train.X.shape[0]
        self.prior_count = self.n  # the prior is divided by this (a k-fold model keeps the whole set's)
        self.fixed_log_precision: float | None = None  # the prior when h does not tune it

    # -- what a model says ---------------------------------------------------------------

    def outputs(self, theta: Tensor, X: Tensor) -> Tensor:
        """Predictions (n, k) of inputs X (n, d): regression values (k = 1) or class logits."""
        raise NotImplementedError

    def output_losses(self, out: Tensor, y: Tensor, hp: Hyper) -> Tensor:
        """Per-example training losses (n,) of predictions ``out`` (n, k) for targets y (n,)."""
        raise NotImplementedError

    def nll_constant(self, hp: Hyper) -> Tensor | float:
        """Per example, the negative log-likelihood minus ``output_losses`` (a normalizer)."""
        return 0.0

    def heldout_loss(self, theta: Tensor, split: Split, hp: Hyper) -> Tensor:
        """The task's hold-out metric of θ on ``split`` (the hold-out criterion's Q)."""
        raise NotImplementedError

    noise_precision_tunable = False  # True when hp may carry log_noise_precision (regression)

    # -- the hold-out criterion ------------------------------------------------------------

    def example_losses(self, theta: Tensor, X: Tensor, y: Tensor, hp: Hyper) -> Tensor:
        return self.output_losses(self.outputs(theta, X), y, hp)

    def data_loss(self, theta: Tensor, hp: Hyper, t: int | None) -> Tensor:
        """The (weighted) mean training loss on minibatch t (None: the whole training set)."""
        X, y, rows = self._batch(t)
        return self._weighted_mean(self.example_losses(theta, X, y, hp), hp, rows)

    def inner_loss(self, theta: Tensor, hp: Hyper, t: int | None) -> Tensor:
        """Training loss on minibatch t (None: the whole training set), prior included."""
        return self.data_loss(theta, hp, t) + self.prior(theta, hp)

    def outer_loss(self, theta: Tensor, hp: Hyper) -> Tensor:
        """The hold-out criterion Q: the task's metric on the validation split."""
        return self.heldout_loss(theta, self.val, hp)

    def with_data(self, train: Split, val: Split) -> BilevelModel:
        """The same model (architecture, prior, noise) on other data, full batch."""
        twin = copy.copy(self)
        twin.train, twin.val, twin.batches = train, val, None
        twin.n = twin.prior_count = train.X.shape[0]
        return twin

    def _rows(self, t: int | None) -> Tensor | None:
        return None if t is None or self.batches is None else self.batches[t % len(self.batches)]

    def _weighted_mean(self, losses: Tensor, hp: Hyper, rows: Tensor | None) -> Tensor:
        """losses: (batch,) per-example losses -> their (weighted) mean."""
        if "example_weights" in hp:
            w = hp["example_weights"] if rows is None else hp["example_weights"][rows]
            losses = w * losses
        return losses.mean()

    def precision(self, hp: Hyper) -> Tensor | float | None:
        """The prior precision: () or (p,) from h, the fixed one, or None (no prior)."""
        if "log_precision" in hp:
            return torch.exp(self.tensors.per_parameter(hp["log_precision"]))
        if self.fixed_log_precision is not None:
            return math.exp(self.fixed_log_precision)
        return None

    def prior(self, theta: Tensor, hp: Hyper) -> Tensor:
        precision = self.precision(hp)
        if precision is None:
            return theta.new_zeros(())
        return 0.5 * (precision * theta**2).sum() / self.prior_count

    def gauss_newton(self, theta: Tensor, hp: Hyper, scale: float = 1.0) -> Callable[[Tensor], Tensor]:
        """v ↦ G v for the full-batch inner loss (``scale`` × the data term): the generalized
        Gauss-Newton matrix (1/n) Σ_i w_i J_iᵀ Λ_i J_i of the (weighted) mean data loss, with J_i
        the Jacobian of example i's outputs and Λ_i the Hessian of its loss in them (positive
        semi-definite for cross-entropy and Gaussian likelihoods), plus the prior's Hessian
        diag(α)/prior_count, which makes G positive definite. The Hessian without the term
        Σ_i ℓ_i'·∇²outputs_i: exact for linear models, PSD everywhere for networks.

        θ (p,), v (p,) -> (p,). The outputs' vector-Jacobian product is linearized once; each
        product costs one forward-mode and one reverse pass through the model."""
        X, y = self.train.X, self.train.y
        theta = theta.detach()
        vjp = torch.func.vjp(lambda th: self.outputs(th, X), theta)
        out, pull = vjp[0].detach(), vjp[1]
        weights = hp.get("example_weights")
        coef = scale / X.shape[0] if weights is None else (scale / X.shape[0]) * weights.detach()[:, None]
        loss_grad = torch.func.grad(lambda o: self.output_losses(o, y, hp).sum())
        precision = self.precision(hp)
        prior = 0.0 if precision is None else (precision.detach() if isinstance(precision, Tensor) else precision)
        prior = prior / self.prior_count

        def matvec(v: Tensor) -> Tensor:
            jv = torch.func.jvp(lambda th: self.outputs(th, X), (theta,), (v,))[1]
            lam_jv = torch.func.jvp(loss_grad, (out,), (jv,))[1]
            (gv,) = pull(coef * lam_jv)
            return (gv + prior * v).detach()

        return matvec

    def _batch(self, t: int | None) -> tuple[Tensor, Tensor, Tensor | None]:
        rows = self._rows(t)
        if rows is None:
            return self.train.X, self.train.y, None
        return self.train.X[rows], self.train.y[rows], rows


class LinearRegressionModel(BilevelModel):
    """y ≈ X θ; per-example loss β/2·(x_iᵀθ − y_i)², β the noise precision: fixed, or
    exp(log_noise_precision) when h carries it."""

    noise_precision_tunable = True

    def __init__(self, train: Split, val: Split, batches: Tensor | None, noise_precision: float = 1.0) -> None:
        super().__init__(train, val, batches, [train.X.shape[1]])
        self.beta = noise_precision

    def noise_precision(self, hp: Hyper) -> Tensor | float:
        return torch.exp(hp["log_noise_precision"]) if "log_noise_precision" in hp else self.beta

    def outputs(self, theta: Tensor, X: Tensor) -> Tensor:
        return (X @ theta)[:, None]

    def output_losses(self, out: Tensor, y: Tensor, hp: Hyper) -> Tensor:
        return 0.5 * self.noise_precision(hp) * (out[:, 0] - y) ** 2

    def nll_constant(self, hp: Hyper) -> Tensor | float:
        beta = self.noise_precision(hp)
        log_beta = torch.log(beta) if isinstance(beta, Tensor) else math.log(beta)
        return 0.5 * (math.log(2 * math.pi) - log_beta)

    def expected_output_losses(self, mean: Tensor, variance: Tensor, X: Tensor, y: Tensor, hp: Hyper) -> Tensor:
        """E over θ ~ N(mean, diag(variance)) of the per-example losses (n,), in closed form."""
        return 0.5 * self.noise_precision(hp) * ((X @ mean - y) ** 2 + (X**2) @ variance)

    def heldout_loss(self, theta: Tensor, split: Split, hp: Hyper) -> Tensor:
        """Mean squared error."""
        return ((split.X @ theta - split.y) ** 2).mean()


class SoftmaxRegressionModel(BilevelModel):
    """Multinomial logistic regression; θ = [W (d, k) row-major, b (k,)] flattened."""

    def __init__(self, train: Split, val: Split, batches: Tensor | None, n_classes: int) -> None:
        d = train.X.shape[1]
        super().__init__(train, val, batches, [d * n_classes, n_classes])
        self.k, self.d = n_classes, d

    def logits(self, theta: Tensor, X: Tensor) -> Tensor:
        W = theta[: self.d * self.k].reshape(self.d, self.k)
        return X @ W + theta[self.d * self.k :]

    def outputs(self, theta: Tensor, X: Tensor) -> Tensor:
        return self.logits(theta, X)

    def output_losses(self, out: Tensor, y: Tensor, hp: Hyper) -> Tensor:
        return torch.nn.functional.cross_entropy(out, y, reduction="none")

    def heldout_loss(self, theta: Tensor, split: Split, hp: Hyper) -> Tensor:
        """Cross-entropy."""
        return torch.nn.functional.cross_entropy(self.logits(theta, split.X), split.y)

    def accuracy(self, theta: Tensor, split: Split) -> float:
        return float((self.logits(theta, split.X).argmax(1) == split.y).double().mean())


def build_problem(
    model: BilevelModel, layout: HyperLayout, n_steps: int, optimizer: InnerOptimizer, theta0: Tensor, **options: int
) -> BilevelProblem:
    """``options``: BilevelProblem's ``solve_iterations``."""
    return BilevelProblem(
        theta0,
        model.inner_loss,
        model.outer_loss,
        layout,
        n_steps,
        optimizer,
        model.tensors,
        gauss_newton=model.gauss_newton,
        **options,
    )


def initial_theta(n_params: int, seed: int, scale: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """θ_0 ~ N(0, scale²), seeded, shape (n_params,)."""
    gen = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(n_params, generator=gen, dtype=torch.float64)).to(dtype=dtype, device=device)
