"""``criterion=elbo``: the variational lower bound of the evidence with a diagonal Gaussian
q(w) = N(μ, diag σ²) (Graves 2011; Bakhteev & Strijov 2020).

θ = [μ (p), log σ² (p)]; with D (training + validation examples), n = |D| and the prior
p(w | h) = N(0, diag(α)⁻¹),

    ELBO(θ, h) = E_q[log p(y | X, w)] − KL(q ‖ p(w | h))
    KL         = ½ Σ_j [α_j (σ_j² + μ_j²) − 1 − log α_j − log σ_j²]
    Q = L      = −ELBO / n      (the lecture's L = −Q with Q = ELBO; here both are minimized)

The expectation is exact for linear regression (``expectation=analytic``, the default there:
E (y − xᵀw)² = (y − xᵀμ)² + Σ_j x_j² σ_j²) and otherwise a Monte-Carlo mean over
reparameterized draws w = μ + σ ⊙ ε: ``samples`` fresh draws per inner step t and
``eval_samples`` fixed draws for Q, every ε from (seed, t), so runs are deterministic and the
hypergradient methods replay the same draws.

Graves' pruning: a weight whose relative density exp(−μ²/(2σ²)) exceeds a threshold is set to
zero; for each of ``prune_thresholds`` a trial reports the task's test metrics after pruning
(``pruned_<threshold>_<metric>``) and the fraction removed (``pruned_<threshold>_fraction``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

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
from hpo_cli.tasks.criteria.evidence import precisions
from hpo_cli.validate import is_number, one_of, positive_int

EXPECTATIONS = ("auto", "analytic", "sampled")


def kl_to_prior(mean: Tensor, log_variance: Tensor, alpha: Tensor) -> Tensor:
    """KL(N(mean, diag e^log_variance) ‖ N(0, diag α⁻¹)), a scalar."""
    return 0.5 * (alpha * (torch.exp(log_variance) + mean**2) - 1.0 - torch.log(alpha) - log_variance).sum()


def relative_density(mean: Tensor, log_variance: Tensor) -> Tensor:
    """q(0)/q(μ) = exp(−μ²/(2σ²)) per weight (p,)."""
    return torch.exp(-(mean**2) / (2.0 * torch.exp(log_variance)))


class VariationalModel(CriterionModel):
    def __init__(self, model: BilevelModel, theta0: Tensor, context: Context, criterion: Elbo) -> None:
        data = all_examples(model)
        self.model = model.with_data(data, data)
        self.model.batches = context.schedule(self.model.n, 0)
        self.p, self.seed, self.criterion = model.n_params, context.seed, criterion
        self.theta0 = torch.cat([theta0, torch.full_like(theta0, criterion.init_log_variance)])
        self.tensors = model.tensors.repeated(2)
        self.analytic = criterion.expectation == "analytic" or (
            criterion.expectation == "auto" and isinstance(model, LinearRegressionModel)
        )

    def noise(self, t: int | None, draws: int, like: Tensor) -> Tensor:
        """ε (draws, p) of inner step t (None: the fixed draws of Q), from the seed alone."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + (0 if t is None else t + 1))
        return torch.randn(draws, self.p, generator=gen, dtype=torch.float64).to(like)

    def expected_losses(self, theta: Tensor, hp: Hyper, t: int | None, draws: int) -> Tensor:
        """E_q of the per-example losses (batch,) of minibatch t."""
        mean, log_variance = theta[: self.p], theta[self.p :]
        X, y, _ = self.model._batch(t)
        if self.analytic:
            assert isinstance(self.model, LinearRegressionModel)
            return self.model.expected_output_losses(mean, torch.exp(log_variance), X, y, hp)
        eps = self.noise(t, draws, theta)
        std = torch.exp(0.5 * log_variance)
        return torch.stack([self.model.example_losses(mean + std * e, X, y, hp) for e in eps]).mean(0)

    def neg_elbo(self, theta: Tensor, hp: Hyper, t: int | None, draws: int) -> Tensor:
        """−ELBO / n, the expectation estimated on minibatch t."""
        m = self.model
        alpha = precisions(m, hp, theta[: self.p])
        data = self.expected_losses(theta, hp, t, draws).mean() + m.nll_constant(hp)
        return data + kl_to_prior(theta[: self.p], theta[self.p :], alpha) / m.n

    def inner_loss(self, theta: Tensor, hp: Hyper, t: int | None) -> Tensor:
        return self.neg_elbo(theta, hp, t, self.criterion.samples)

    def outer_loss(self, theta: Tensor, hp: Hyper) -> Tensor:
        return self.neg_elbo(theta, hp, None, self.criterion.eval_samples)

    def points(self, theta: Tensor) -> list[Tensor]:
        return [theta[: self.p].detach()]

    def report(self, theta: Tensor, hp: Hyper, scores: Scores) -> dict[str, float]:
        theta = theta.detach()
        mean, log_variance = theta[: self.p], theta[self.p :]
        with torch.no_grad():
            out: dict[str, float] = {
                "elbo": -float(self.outer_loss(theta, hp)) * self.model.n,
                "kl": float(kl_to_prior(mean, log_variance, precisions(self.model, hp, mean))),
                "mean_log_variance": float(log_variance.mean()),
            }
            density = relative_density(mean, log_variance)
        for threshold in self.criterion.prune_thresholds:
            removed = density > threshold
            kept = scores(torch.where(removed, torch.zeros_like(mean), mean))
            tag = f"pruned_{threshold:g}"
            out[f"{tag}_fraction"] = float(removed.double().mean())
            out.update({f"{tag}_{k}": v for k, v in kept.items() if k.startswith("test_") and "pnoise" not in k})
        return out


class Elbo(Criterion):
    name = "elbo"

    def __init__(
        self,
        samples: int = 1,
        eval_samples: int = 8,
        init_log_variance: float = -6.0,
        expectation: str = "auto",
        prune_thresholds: Sequence[float] = (0.1, 0.5, 0.9),
    ) -> None:
        self.samples = positive_int(samples, "criterion.samples")
        self.eval_samples = positive_int(eval_samples, "criterion.eval_samples")
        if not is_number(init_log_variance) or not math.isfinite(init_log_variance):
            raise ConfigError("criterion.init_log_variance", init_log_variance, "must be a finite number")
        self.init_log_variance = float(init_log_variance)
        self.expectation = one_of(expectation, "criterion.expectation", EXPECTATIONS)
        self.prune_thresholds = tuple(_threshold(t) for t in prune_thresholds or ())

    def metric(self, base: str) -> str:
        return "neg_elbo"

    def check(self, model: BilevelModel, names: Sequence[str]) -> None:
        refuse_example_weights(self.name, names)
        if self.expectation == "analytic" and not isinstance(model, LinearRegressionModel):
            raise ConfigError("criterion.expectation", self.expectation, "exists for linear regression only")

    def wrap(self, model: BilevelModel, theta0: Tensor, context: Context) -> CriterionModel:
        return VariationalModel(model, theta0, context, self)


def _threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value < 1.0:
        raise ConfigError("criterion.prune_thresholds", value, "must be relative densities in (0, 1)")
    return float(value)
