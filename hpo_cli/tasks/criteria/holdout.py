"""``criterion=holdout``: train on the training split, Q = the task's metric on the validation
split (validation MSE or cross-entropy). The default, and the only criterion that takes
per-example weights (hyper-cleaning)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hpo_cli.tasks.criteria.base import Context, Criterion, CriterionModel

if TYPE_CHECKING:  # the default criterion is built for every task: no torch until a model trains
    from torch import Tensor

    from hpo_cli.hypergrad.problem import Hyper
    from hpo_cli.tasks.bilevel_models import BilevelModel


class HoldoutModel(CriterionModel):
    def __init__(self, model: BilevelModel, theta0: Tensor) -> None:
        self.model, self.theta0, self.tensors = model, theta0, model.tensors

    def inner_loss(self, theta: Tensor, hp: Hyper, t: int | None) -> Tensor:
        return self.model.inner_loss(theta, hp, t)

    def outer_loss(self, theta: Tensor, hp: Hyper) -> Tensor:
        return self.model.outer_loss(theta, hp)

    def gauss_newton(self, theta: Tensor, hp: Hyper) -> Callable[[Tensor], Tensor]:
        return self.model.gauss_newton(theta, hp)

    def points(self, theta: Tensor) -> list[Tensor]:
        return [theta]


class Holdout(Criterion):
    name = "holdout"
    uses_validation_split = True

    def wrap(self, model: BilevelModel, theta0: Tensor, context: Context) -> CriterionModel:
        return HoldoutModel(model, theta0)
