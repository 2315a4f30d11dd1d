"""What "good hyperparameters" means: a criterion turns a model, its data and its prior into
the bilevel problem's inner loss L(θ, h, t) and outer criterion Q(θ, h).

The hypergradient methods see only L and Q (:class:`~hpo_cli.hypergrad.problem.BilevelProblem`),
so every method works with every criterion. A criterion may give θ another shape than the
model's: k copies for k-fold cross-validation, [mean, log variance] for the ELBO;
``ParameterTensors.repeated`` keeps each hyperparameter's granularities the model's.

All criteria but hold-out use the model's training and validation examples together (D); the
test split stays out. Q is scaled per example of D (the hold-out criterion's per example of
the validation split), so that one learning rate suits every criterion.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from hpo_cli.errors import ConfigError

if TYPE_CHECKING:  # torch is imported by the tasks that train a model, not by building a criterion
    from torch import Tensor

    from hpo_cli.hypergrad.problem import Hyper, ParameterTensors
    from hpo_cli.tasks.bilevel_models import BilevelModel, Split

Schedule = Callable[[int, int], "Tensor | None"]  # (examples, salt) -> the minibatch rows of each step
Scores = Callable[["Tensor"], dict[str, float]]  # the task's test metrics of a model's θ


@dataclass(frozen=True)
class Context:
    """What a criterion needs from the task: the seed and the minibatch schedule maker."""

    seed: int
    schedule: Schedule


class CriterionModel(ABC):
    """A model under a criterion: θ_0, the tensors of θ, L and Q, and how a trained θ reads back."""

    theta0: Tensor
    tensors: ParameterTensors

    @abstractmethod
    def inner_loss(self, theta: Tensor, hp: Hyper, t: int | None) -> Tensor:
        """L on minibatch t (None: all the examples the criterion trains on)."""

    @abstractmethod
    def outer_loss(self, theta: Tensor, hp: Hyper) -> Tensor:
        """Q, the value a trial reports (minimized)."""

    @abstractmethod
    def points(self, theta: Tensor) -> list[Tensor]:
        """The model parameters (p,) that θ holds; test metrics are averaged over them."""

    def gauss_newton(self, theta: Tensor, hp: Hyper) -> Callable[[Tensor], Tensor] | None:
        """v ↦ G v, the generalized Gauss-Newton matrix of the full inner loss at θ (positive
        definite with a prior), or None where L is no likelihood of model outputs plus a prior."""
        return None

    def report(self, theta: Tensor, hp: Hyper, scores: Scores) -> dict[str, float]:
        """Metrics the criterion adds to a trial (per-fold values, pruning, …)."""
        return {}


class Criterion(ABC):
    """A model-selection criterion (``criterion=NAME``; ``conf/criterion/NAME.yaml``)."""

    name: ClassVar[str]
    uses_validation_split: ClassVar[bool] = False  # hold-out alone keeps D's two parts apart

    def metric(self, base: str) -> str:
        """The name of Q given the task's hold-out metric ``base`` (e.g. val_mse)."""
        return base

    def check(self, model: BilevelModel, names: Sequence[str]) -> None:  # noqa: B027 - optional hook
        """Raise a ConfigError when this criterion cannot use the model or these hyperparameters."""

    @abstractmethod
    def wrap(self, model: BilevelModel, theta0: Tensor, context: Context) -> CriterionModel:
        """The model under this criterion; ``theta0`` (p,) is the model's initial θ."""

    def describe(self, model: BilevelModel | None = None) -> str:
        """One line for summaries and tables (``model``: the model it selects, when known)."""
        return self.name


def all_examples(model: BilevelModel) -> Split:
    """D: the model's training examples followed by its validation examples."""
    import torch

    from hpo_cli.tasks.bilevel_models import Split

    return Split(torch.cat([model.train.X, model.val.X]), torch.cat([model.train.y, model.val.y]))


def refuse_example_weights(criterion: str, names: Sequence[str]) -> None:
    if "example_weights" in names:
        raise ConfigError(
            "criterion",
            criterion,
            "example_weights weigh the hold-out training examples; tune them with criterion=holdout",
        )


def test_scores(points: Sequence[Tensor], scores: Scores) -> dict[str, float]:
    """The mean over ``points`` of each test metric."""
    total: dict[str, float] = {}
    for theta in points:
        for name, value in scores(theta).items():
            total[name] = total.get(name, 0.0) + value / len(points)
    return total
