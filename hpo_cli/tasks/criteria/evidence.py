"""``criterion=evidence``: Q = −log p(y | X, h) / n, the negative log marginal likelihood (MacKay's
evidence) of D per example, at the MAP parameters the inner problem trains.

With the negative log-likelihood NLL(θ) = Σ_i ℓ_i(θ) + n·c (``nll_constant``), the prior
N(0, diag(α)⁻¹) and H the Hessian of the negative log posterior,

    −log p(y | h) ≈ NLL(θ) + ½ Σ_j α_j θ_j² − ½ Σ_j log α_j + ½ log det H      (θ at the MAP)

* ``method=closed_form`` (linear regression): H = β XᵀX + diag(α) and the formula is exact at
  the MAP (and Q is stationary in θ there, so the hypergradient is the partial derivative);
* ``method=laplace`` (any model): H is the generalized Gauss-Newton matrix Σ_i J_iᵀ Λ_i J_i plus
  diag(α), with J_i the Jacobian of example i's outputs and Λ_i the Hessian of its loss in
  them (exact for linear regression, where Laplace equals the closed form); ``hessian=full``
  takes log det of the p × p matrix, ``hessian=diagonal`` only its diagonal (for networks:
  memory ~ chunk·k·p per block of examples);
* ``method=auto`` (the default): closed form where it exists, Laplace elsewhere.

The noise precision β is the task's, or exp(log_noise_precision) when the space tunes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from hpo_cli.errors import ConfigError
from hpo_cli.hypergrad.problem import Hyper
from hpo_cli.tasks.bilevel_models import BilevelModel, LinearRegressionModel
from hpo_cli.tasks.criteria.base import (
    Context,
    Criterion,
    CriterionModel,
    Scores,
    all_examples,
    refuse_example_weights,
)
from hpo_cli.validate import one_of, positive_int

METHODS = ("auto", "closed_form", "laplace")
HESSIANS = ("full", "diagonal")
MAX_FULL = 5000  # the most parameters whose full p × p Hessian is formed


def precisions(model: BilevelModel, hp: Hyper, like: Tensor) -> Tensor:
    """The prior precision α as a (p,) tensor; a ConfigError when the model has no prior."""
    alpha = model.precision(hp)
    if alpha is None:
        raise ConfigError("criterion", "evidence/elbo", "needs a prior: tune log_precision or set task.log_precision")
    return torch.as_tensor(alpha, dtype=like.dtype, device=like.device).expand(like.shape[0])


def gauss_newton(model: BilevelModel, theta: Tensor, hp: Hyper, diagonal: bool, chunk: int) -> Tensor:
    """Σ_i J_iᵀ Λ_i J_i over the model's training examples: (p, p), or its diagonal (p,)."""
    X, y = model.train.X, model.train.y

    def example_loss(out: Tensor, target: Tensor) -> Tensor:
        return model.output_losses(out[None], target[None], hp)[0]

    total = None
    for start in range(0, X.shape[0], chunk):
        Xc, yc = X[start : start + chunk], y[start : start + chunk]
        jac = torch.func.jacrev(lambda th, Xc=Xc: model.outputs(th, Xc))(theta)  # (c, k, p)
        out = model.outputs(theta, Xc)
        lam = torch.func.vmap(torch.func.hessian(example_loss))(out, yc)  # (c, k, k)
        part = (
            torch.einsum("ckp,ckl,clp->p", jac, lam, jac)
            if diagonal
            else torch.einsum("ckp,ckl,clq->pq", jac, lam, jac)
        )
        total = part if total is None else total + part
    assert total is not None
    return total


def log_det_posterior(model: BilevelModel, theta: Tensor, hp: Hyper, alpha: Tensor, hessian: str, chunk: int) -> Tensor:
    if isinstance(model, LinearRegressionModel) and hessian == "closed_form":
        X = model.train.X
        matrix = model.noise_precision(hp) * (X.T @ X) + torch.diag(alpha)
    elif hessian == "diagonal":
        return torch.log(gauss_newton(model, theta, hp, True, chunk) + alpha).sum()
    else:
        matrix = gauss_newton(model, theta, hp, False, chunk) + torch.diag(alpha)
    return 2.0 * torch.log(torch.diagonal(torch.linalg.cholesky(matrix))).sum()


class EvidenceModel(CriterionModel):
    def __init__(self, model: BilevelModel, theta0: Tensor, context: Context, hessian: str, chunk: int) -> None:
        data = all_examples(model)
        self.model = model.with_data(data, data)
        self.model.batches = context.schedule(self.model.n, 0)
        self.theta0, self.tensors, self.hessian, self.chunk = theta0, model.tensors, hessian, chunk

    def inner_loss(self, theta: Tensor, hp: Hyper, t: int | None) -> Tensor:
        return self.model.inner_loss(theta, hp, t)  # the negative log posterior per example

    def neg_log_evidence(self, theta: Tensor, hp: Hyper) -> Tensor:
        m = self.model
        alpha = precisions(m, hp, theta)
        nll = m.example_losses(theta, m.train.X, m.train.y, hp).sum() + m.n * m.nll_constant(hp)
        prior = 0.5 * (alpha * theta**2).sum() - 0.5 * torch.log(alpha).sum()
        return nll + prior + 0.5 * log_det_posterior(m, theta, hp, alpha, self.hessian, self.chunk)

    def outer_loss(self, theta: Tensor, hp: Hyper) -> Tensor:
        return self.neg_log_evidence(theta, hp) / self.model.n

    def gauss_newton(self, theta: Tensor, hp: Hyper) -> Callable[[Tensor], Tensor]:
        return self.model.gauss_newton(theta, hp)

    def points(self, theta: Tensor) -> list[Tensor]:
        return [theta.detach()]

    def report(self, theta: Tensor, hp: Hyper, scores: Scores) -> dict[str, float]:
        with torch.no_grad():
            return {"log_evidence": -float(self.neg_log_evidence(theta, hp))}


class Evidence(Criterion):
    name = "evidence"

    def __init__(self, method: str = "auto", hessian: str = "full", chunk: int = 256) -> None:
        self.method = one_of(method, "criterion.method", METHODS)
        self.hessian = one_of(hessian, "criterion.hessian", HESSIANS)
        self.chunk = positive_int(chunk, "criterion.chunk")

    def metric(self, base: str) -> str:
        return "neg_log_evidence"

    def resolved(self, model: BilevelModel) -> str:
        """closed_form, or the Laplace Hessian (full | diagonal)."""
        linear = isinstance(model, LinearRegressionModel)
        if self.method == "closed_form" and not linear:
            raise ConfigError("criterion.method", self.method, "exists for linear regression only; use laplace")
        return "closed_form" if self.method == "closed_form" or (self.method == "auto" and linear) else self.hessian

    def check(self, model: BilevelModel, names: Sequence[str]) -> None:
        refuse_example_weights(self.name, names)
        if self.resolved(model) == "full" and model.n_params > MAX_FULL:
            raise ConfigError(
                "criterion.hessian",
                self.hessian,
                f"a full Hessian of {model.n_params:,} parameters is too large (> {MAX_FULL:,}); "
                "use criterion.hessian=diagonal",
            )

    def wrap(self, model: BilevelModel, theta0: Tensor, context: Context) -> CriterionModel:
        return EvidenceModel(model, theta0, context, self.resolved(model), self.chunk)

    def describe(self, model: BilevelModel | None = None) -> str:
        how = self.method if model is None else self.resolved(model)
        if how in HESSIANS:
            return f"evidence (laplace, {how} GGN Hessian)"
        return f"evidence ({how})"
