"""Tasks that can build a :class:`~hpo_cli.hypergrad.problem.BilevelProblem` for the space's
hyperparameters: gradient strategies and ``hpo gradcheck`` work on them.

A subclass says how to build the problem for a layout (names and shapes of the hyperparameters)
and how a black-box strategy's evaluation goes; this base turns parameters into the flat h,
answers hypergradient requests (the methods are in :mod:`hpo_cli.hypergrad.registry`) and
returns the inner state the next request must carry (``Evaluation.carry``): the task itself
keeps nothing that depends on earlier trials. A task that also trains a model of its own on
data is a :class:`~hpo_cli.tasks.differentiable.DifferentiableTask`; a user's own problem is a
:class:`~hpo_cli.tasks.user_bilevel.BilevelFunctionTask`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hpo_cli.hypergrad import answer
from hpo_cli.hypergrad.problem import BilevelProblem, Hypergradient, HyperLayout
from hpo_cli.hypergrad.registry import check_support
from hpo_cli.request import HypergradRequest, InnerState
from hpo_cli.tasks.base import Task
from hpo_cli.trial import Evaluation, Request, SavedModel, TrainedModel


class BilevelTask(Task):
    """A task whose evaluation is a bilevel problem: inner training, outer criterion."""

    @abstractmethod
    def problem(self, layout: HyperLayout) -> BilevelProblem:
        """The bilevel problem for these hyperparameters (built once per layout)."""

    @abstractmethod
    def evaluate_blackbox(self, problem: BilevelProblem, layout: HyperLayout, h: Tensor) -> Evaluation:
        """A black-box strategy's evaluation of h (no hypergradient)."""

    def kinks(self) -> str | None:
        """Why the criterion is not smooth in h (finite differences may cross kinks), or None."""
        return None

    def test_metrics(self, theta: Tensor) -> dict[str, float]:
        """Metrics of trained parameters θ (p,) on held-out data; none by default."""
        return {}

    def trained_metrics(self, layout: HyperLayout, theta: Tensor, h: Tensor) -> dict[str, float]:
        """The metrics a trial records of the θ its training ended at (the test metrics)."""
        return self.test_metrics(theta)

    def layout_of(self, params: Mapping[str, Any]) -> HyperLayout:
        """The layout of a parameter dict: vectors (lists) keep their length, scalars are ()."""
        return HyperLayout(tuple((k, (len(v),) if isinstance(v, list) else ()) for k, v in params.items()))

    def hyper_vector(self, layout: HyperLayout, params: Mapping[str, Any]) -> Tensor:
        """h (m,) in the problem's dtype and device."""
        return layout.flatten({k: params[k] for k in layout.names}, self.problem(layout).theta0)

    def check_hypergradient(self, request: HypergradRequest, names: list[str]) -> None:
        check_support(request.spec, names, None)  # the momentum convention: checked once the problem is built

    def evaluate(
        self, params: Mapping[str, Any], budget: float | None = None, request: Request | None = None
    ) -> Evaluation:
        layout = self.layout_of(params)
        problem, h = self.problem(layout), self.hyper_vector(layout, params)
        if isinstance(request, SavedModel):
            return self.evaluate_saved(problem, layout, h, request)
        if request is None:
            return self.evaluate_blackbox(problem, layout, h)
        result, carry = self.hypergradient(problem, layout, h, request)
        theta = result.extras["theta"]
        assert isinstance(theta, Tensor)
        metrics = {
            **self.trained_metrics(layout, theta, h),
            self.objective_for(layout.names)[0]: result.value,
            "hypergradient_norm": float(torch.linalg.vector_norm(result.grad)),
            "hypergradient_seconds": result.cost.seconds,
            **{k: v for k, v in result.extras.items() if isinstance(v, int | float) and not isinstance(v, bool)},
        }
        cost = {"inner_steps": result.cost.inner_steps, "hvp": result.cost.hvp, "held_bytes": result.cost.peak_bytes}
        if "cg_damping" in result.extras:  # summed over trials into summary.json's cost: never silent
            cost["damped_hypergradients"] = int(float(result.extras["cg_damping"]) > 0)  # type: ignore[arg-type]
        gradient = [float(g) for g in result.grad.cpu()]
        spec = request.spec
        unrolled = not (spec.online or spec.warm)  # trained inner_steps from θ0, as nothing else
        model = self.trained_model(theta, from_scratch=unrolled and self.blackbox_trains(layout.names))
        return Evaluation(result.value, metrics, cost, gradient, carry, model)

    def blackbox_trains(self, names: list[str]) -> bool:
        """True when the black-box evaluation trains the inner steps from θ0 (so an unrolled
        method's trained θ is what it gives back), False when it solves to the inner optimum."""
        return False

    def model_meta(self) -> dict[str, Any]:
        """What a saved θ is (written beside it in ``best_model.npz``): the task, and for
        networks their layer sizes and activation."""
        return {"task": self.name}

    def trained_model(self, theta: Tensor, from_scratch: bool = True) -> TrainedModel:
        """θ (p,) as the weights a trial returns (``from_scratch``: training h again from θ0
        reproduces it)."""
        arrays = {"theta": theta.detach().cpu().numpy().copy()}
        return TrainedModel(arrays, {**self.model_meta(), "n_params": int(theta.numel())}, from_scratch)

    def evaluate_saved(self, problem: BilevelProblem, layout: HyperLayout, h: Tensor, saved: SavedModel) -> Evaluation:
        """The criterion and metrics of saved weights θ at h, without training."""
        theta = torch.as_tensor(saved.arrays["theta"] if "theta" in saved.arrays else np.empty(0))
        if theta.shape != problem.theta0.shape:
            raise ValueError(
                f"the saved weights have shape {tuple(theta.shape)}; this task's model has "
                f"{tuple(problem.theta0.shape)} (a different task, space, criterion or architecture)"
            )
        theta = theta.to(problem.theta0)
        value = float(problem.outer(theta, h))
        metrics = {**self.trained_metrics(layout, theta, h), self.objective_for(layout.names)[0]: value}
        return Evaluation(value, metrics, {"inner_steps": 0}, model=self.trained_model(theta, from_scratch=False))

    def hypergradient(
        self, problem: BilevelProblem, layout: HyperLayout, h: Tensor, request: HypergradRequest
    ) -> tuple[Hypergradient, InnerState | None]:
        """The hypergradient ``request`` asks for, and the state to carry to the next call."""
        check_support(request.spec, layout.names, problem.optimizer.convention)
        return answer(problem, h, request)
