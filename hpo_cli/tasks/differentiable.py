"""Tasks whose training can be differentiated with respect to the hyperparameters.

A differentiable task builds a :class:`~hpo_cli.hypergrad.problem.BilevelProblem` for the
hyperparameters the space declares (see :mod:`hpo_cli.tasks.bilevel_models` for the kinds) and
answers ``evaluate(params, budget, request)`` with a
:class:`~hpo_cli.request.HypergradRequest` (the methods are listed in
:mod:`hpo_cli.hypergrad.registry`): unrolled methods train ``inner_steps`` from θ_0 each time;
online methods (greedy, rtho) and HOAG's warm starts continue from the state the request
carries, and the evaluation returns the next state (``Evaluation.carry``) for the strategy to
keep: the task holds nothing that depends on earlier trials.

Without a request the task evaluates the hyperparameters as a black box: at the inner
optimum, or, when the space tunes the optimizer itself (log_lr, momentum), after
``inner_steps`` of training.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any, ClassVar

import torch
import yaml
from torch import Tensor

from hpo_cli.errors import ConfigError
from hpo_cli.hypergrad.implicit import solve_inner
from hpo_cli.hypergrad.problem import CONVENTIONS, BilevelProblem, HyperLayout, InnerOptimizer
from hpo_cli.hypergrad.registry import check_support
from hpo_cli.options import tasks_with_option
from hpo_cli.request import HypergradRequest
from hpo_cli.tasks.bilevel import BilevelTask
from hpo_cli.tasks.bilevel_models import (
    KINDS,
    BilevelModel,
    batch_schedule,
    initial_theta,
    make_layout,
    torch_device,
    torch_dtype,
)
from hpo_cli.tasks.criteria.base import Context, Criterion, CriterionModel, test_scores
from hpo_cli.tasks.criteria.holdout import Holdout
from hpo_cli.trial import Evaluation
from hpo_cli.validate import one_of, positive_float, positive_int

OPTIMIZER_KINDS = ("log_lr", "momentum")


TRAINING_KEYS = ("inner_steps", "inner_lr", "inner_momentum", "convention", "batch_size", "init_scale")
NOISE_KEYS = ("param_noise", "param_noise_draws")  # Bakhteev's robustness metric


def training_defaults(where: str, keys: tuple[str, ...] = TRAINING_KEYS) -> dict[str, Any]:
    """The inner-training keys of a packaged config file (``path`` or ``path:node``)."""
    path, _, node = where.partition(":")
    text = resources.files("hpo_cli.conf").joinpath(path).read_text(encoding="utf-8")
    loaded = yaml.safe_load(text) or {}
    section = loaded.get(node, {}) if node else loaded
    return {k: section[k] for k in keys if k in section}


class DifferentiableTask(BilevelTask):
    """A bilevel task that trains a model of its own on data: subclasses provide the model, the
    data and the test metrics; hyperparameters are the kinds of :data:`KINDS`.

    The inner training is set by the keywords in TRAINING_KEYS (``task.inner_steps``, …). Their
    defaults have one source, the task's YAML (``training_config``, a file of ``conf/``): a task
    built from Python without them reads them from there.
    """

    training_config: ClassVar[str] = ""  # e.g. "task/polynomial.yaml"; "a/b.yaml:task" for a sub-node
    training_keys: ClassVar[tuple[str, ...]] = TRAINING_KEYS
    at_optimum: bool = True  # black-box value at the inner optimum (convex models; the MLP's task.inner)

    def __init__(self, seed: int, device: str, dtype: str, training: Mapping[str, Any]) -> None:
        training = dict(training)
        criterion = training.pop("criterion", None)  # built from conf/criterion/ by build.py
        self.criterion: Criterion = Holdout() if criterion is None else criterion
        self.metric = self.criterion.metric(type(self).metric)
        keys = (*self.training_keys, *NOISE_KEYS)
        unknown = sorted(set(training) - set(keys))
        if unknown:
            owners = [f"task={name}" for name in tasks_with_option(unknown[0]) if name != self.name]
            where = f" (an option of {', '.join(owners)})" if owners else ""
            raise ConfigError(f"task.{unknown[0]}", training[unknown[0]], f"not an option of task {self.name}{where}")
        t = {**training_defaults(self.training_config, keys), **training}
        self.seed = seed
        self.inner_steps = positive_int(t["inner_steps"], "task.inner_steps")
        positive_float(t["inner_lr"], "task.inner_lr")
        if not 0.0 <= t["inner_momentum"] < 1.0:
            raise ConfigError("task.inner_momentum", t["inner_momentum"], "must be in [0, 1)")
        convention = one_of(t["convention"], "task.convention", CONVENTIONS)
        self.optimizer = InnerOptimizer(float(t["inner_lr"]), float(t["inner_momentum"]), convention)
        self.batch_size = None if t["batch_size"] is None else positive_int(t["batch_size"], "task.batch_size")
        self.init_scale = float(t.get("init_scale", 0.0))
        self.param_noise = tuple(_sigma(s) for s in t.get("param_noise") or ())
        self.param_noise_draws = positive_int(t.get("param_noise_draws", 5), "task.param_noise_draws")
        self.device, self.dtype = torch_device(device), torch_dtype(dtype)
        self._problems: dict[tuple[Any, ...], BilevelProblem] = {}  # a cache: a function of the config
        self._wrapped: dict[tuple[Any, ...], CriterionModel] = {}  # the criterion's model of each problem

    # -- for subclasses --------------------------------------------------------------

    @abstractmethod
    def model(self) -> BilevelModel:
        """The differentiable model on this task's data (built once, on the device)."""

    @abstractmethod
    def test_metrics(self, theta: Tensor) -> dict[str, float]:
        """Metrics of parameters θ (p,) on held-out data (test scores)."""

    # -- problems ----------------------------------------------------------------------

    def theta0(self) -> Tensor:
        """The initial parameters θ_0 (p,) of every inner training."""
        return initial_theta(self.model().n_params, self.seed, self.init_scale, self.dtype, self.device)

    def dimensions(self) -> dict[str, int]:
        model = self.model()
        return {"n_params": model.n_params, "n_train": model.n, "n_tensors": model.tensors.count}

    def parameter_noise(self, theta: Tensor, score: Callable[[Tensor], dict[str, float]]) -> dict[str, float]:
        """Robustness (Bakhteev & Strijov 2020): for each σ of ``task.param_noise``, the mean of
        ``score`` over ``param_noise_draws`` draws of θ + N(0, σ²) (seeded; keys ``<name>_pnoise_<σ>``)."""
        out: dict[str, float] = {}
        gen = torch.Generator().manual_seed(self.seed + 7919)
        for sigma in self.param_noise:
            sums: dict[str, float] = {}
            for _ in range(self.param_noise_draws):
                noise = torch.randn(theta.numel(), generator=gen, dtype=torch.float64).to(theta)
                for name, value in score(theta.detach() + sigma * noise).items():
                    sums[name] = sums.get(name, 0.0) + value / self.param_noise_draws
            out.update({f"{name}_pnoise_{sigma:g}": value for name, value in sums.items()})
        return out

    def check_space(self, names: list[str]) -> None:
        self.check_hyperparameters(names)

    def check_hypergradient(self, request: HypergradRequest, names: list[str]) -> None:
        self.check_hyperparameters(names)
        check_support(request.spec, names, self.optimizer.convention)

    def check_hyperparameters(self, names: list[str]) -> None:
        """Raise a ConfigError unless hypergradients with respect to ``names`` exist here."""
        unknown = [n for n in names if n not in KINDS]
        if unknown:
            raise ConfigError(
                f"space.params.{unknown[0]}",
                unknown[0],
                f"task {self.name} tunes only {', '.join(KINDS)}",
            )
        self.check_criterion(names)

    def check_criterion(self, names: Sequence[str]) -> None:
        """The model's own limits (a noise precision needs a regression likelihood) and the
        criterion's."""
        model = self.model()
        if "log_noise_precision" in names and not model.noise_precision_tunable:
            raise ConfigError(
                "space.params.log_noise_precision",
                "log_noise_precision",
                f"task {self.name} has no noise precision (its likelihood is not Gaussian)",
            )
        self.criterion.check(model, names)

    def objective_for(self, names: Sequence[str]) -> tuple[str, str]:
        return self.metric, self.direction

    def criterion_text(self) -> str:
        return self.criterion.describe(self.model())

    def layout_of(self, params: Mapping[str, Any]) -> HyperLayout:
        model = self.model()
        try:
            sizes = [(k, len(v) if isinstance(v, list) else None) for k, v in params.items()]
            return make_layout(sizes, model.tensors, model.n)
        except ValueError as exc:
            raise ConfigError("space.params", sorted(params), str(exc)) from None

    def problem(self, layout: HyperLayout) -> BilevelProblem:
        """The bilevel problem of the model under the task's criterion (built once per layout)."""
        if layout.shapes not in self._problems:
            model = self.model()
            model.batches = self.schedule(model.n, 0)
            wrapped = self.criterion.wrap(model, self.theta0(), Context(self.seed, self.schedule))
            self._wrapped[layout.shapes] = wrapped
            self._problems[layout.shapes] = BilevelProblem(
                wrapped.theta0,
                wrapped.inner_loss,
                wrapped.outer_loss,
                layout,
                self.inner_steps,
                self.inner_optimizer(layout, model),
                wrapped.tensors,
                gauss_newton=wrapped.gauss_newton,
                **self.solve_options(),
            )
        return self._problems[layout.shapes]

    def schedule(self, n: int, salt: int) -> Tensor | None:
        """The minibatch rows of every inner step for n examples (salt: one sequence per fold)."""
        return batch_schedule(n, self.batch_size, self.inner_steps, self.seed + salt, self.device)

    def inner_optimizer(self, layout: HyperLayout, model: BilevelModel) -> InnerOptimizer:
        return self.optimizer

    def trained_metrics(self, layout: HyperLayout, theta: Tensor, h: Tensor) -> dict[str, float]:
        """Test metrics of a trained θ of the criterion's shape (the mean over the models it
        holds: k folds) and the criterion's own metrics."""
        wrapped = self._wrapped[layout.shapes]
        metrics = test_scores(wrapped.points(theta), self.test_metrics)
        metrics.update(wrapped.report(theta, layout.unflatten(h.detach()), self.test_metrics))
        return metrics

    def solve_options(self) -> dict[str, int]:
        """Options of the problem's inner solve to tolerance (``solve_iterations``)."""
        return {}

    def hyper_vector(self, layout: HyperLayout, params: Mapping[str, Any]) -> Tensor:
        like = torch.empty(0, dtype=self.dtype, device=self.device)
        return layout.flatten({k: params[k] for k in layout.names}, like)

    # -- evaluation --------------------------------------------------------------------

    def blackbox_trains(self, names: list[str]) -> bool:
        return not self.at_optimum or any(name in OPTIMIZER_KINDS for name in names)

    def refit(self, params: Mapping[str, Any], budget: float | None = None) -> dict[str, Any] | None:
        """Black-box evaluation: the inner optimum (convex models) or the inner training from θ0."""
        protocol = (
            f"inner SGD from θ0: task.inner_steps={self.inner_steps}, task.inner_lr={self.optimizer.lr:g}"
            if self.blackbox_trains(list(params))
            else "the inner optimum solved from θ0 (to ‖∇θL‖∞ ≤ 1e-8"
            + "".join(f", at most {n} L-BFGS iterations" for n in self.solve_options().values())
            + ")"
        )
        return {"protocol": protocol, **self.evaluate(params).metrics}

    def evaluate_blackbox(self, problem: BilevelProblem, layout: HyperLayout, h: Tensor) -> Evaluation:
        """Q after inner training when the optimizer is tuned or the model is not convex, else Q
        at the inner optimum."""
        if self.blackbox_trains(layout.names):
            theta, _ = problem.train(h)
            steps = problem.n_steps
        else:
            solution = solve_inner(problem, h, problem.theta0, tol=1e-8)
            theta, steps = solution.theta, solution.iterations
        value = float(problem.outer(theta, h))
        metrics = {**self.trained_metrics(layout, theta, h), self.objective_for(layout.names)[0]: value}
        return Evaluation(value, metrics, {"inner_steps": steps}, model=self.trained_model(theta))


def _sigma(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError("task.param_noise", value, "must be a list of standard deviations >= 0")
    return float(value)
