"""Tasks whose training can be differentiated with respect to the hyperparameters.

A differentiable task builds a :class:`~hpo_cli.hypergrad.problem.BilevelProblem` for the
hyperparameters the space declares (see :mod:`hpo_cli.tasks.bilevel_models` for the kinds) and
answers ``evaluate(params, budget, request)`` where ``request["hypergradient"]`` is one of

* ``reverse``, ``forward``, ``drmad``, ``rmad_exact``: unrolled training of ``inner_steps`` from
  θ_0, then the hypergradient of the criterion (options: ``truncate``, ``skip``, ``stride``,
  ``fraction_bits``);
* ``implicit``: inner solve to tolerance ``tol`` (relative to the first gradient norm of the
  run), then CG (HOAG); θ and q are warm-started from the previous call when ``warm_start``;
* ``greedy``, ``rtho``: online methods. Training continues from the previous call for
  ``steps`` more inner steps with the current h; greedy returns the one-step look-ahead
  hypergradient of the last step (Luketina 2016), rtho the forward-mode hypergradient of
  the tangents carried through the whole run (Franceschi 2017, real-time).

Without a request the task evaluates the hyperparameters as a black box: at the inner
optimum, or, when the space tunes the optimizer itself (log_lr, momentum), after
``inner_steps`` of training.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from torch import Tensor

from hpo_cli.errors import ConfigError
from hpo_cli.hypergrad import compute
from hpo_cli.hypergrad.implicit import solve_inner
from hpo_cli.hypergrad.problem import (
    CONVENTIONS,
    BilevelProblem,
    Cost,
    Hypergradient,
    HyperLayout,
    InnerOptimizer,
    outer_gradients,
)
from hpo_cli.hypergrad.unrolled import one_step, push_tangents
from hpo_cli.tasks.base import Evaluation, Task
from hpo_cli.tasks.bilevel_models import (
    KINDS,
    LinearRegressionModel,
    SoftmaxRegressionModel,
    batch_schedule,
    build_problem,
    initial_theta,
    make_layout,
)
from hpo_cli.validate import one_of, positive_float, positive_int

Model = LinearRegressionModel | SoftmaxRegressionModel
UNROLLED = ("reverse", "forward", "drmad", "rmad_exact")
ONLINE = ("greedy", "rtho")
OPTIMIZER_KINDS = ("log_lr", "momentum")
DTYPES = {"float64": torch.float64, "float32": torch.float32}


@dataclass
class _OnlineState:
    theta: Tensor
    velocity: Tensor
    step: int
    z_theta: Tensor | None = None  # rtho tangents dθ/dh, shape (m, p)
    z_velocity: Tensor | None = None


TRAINING_KEYS = ("inner_steps", "inner_lr", "inner_momentum", "convention", "batch_size", "init_scale")


class DifferentiableTask(Task):
    """Base class: subclasses provide the model, the data and the test metrics.

    The inner training is set by the keywords in TRAINING_KEYS (``task.inner_steps``, …); a
    subclass states its own defaults in ``training_defaults``.
    """

    training_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {
            "inner_steps": 100,
            "inner_lr": 0.1,
            "inner_momentum": 0.9,
            "convention": "torch",
            "batch_size": None,
            "init_scale": 0.0,
        }
    )

    def __init__(self, seed: int, device: str, dtype: str, training: Mapping[str, Any]) -> None:
        unknown = sorted(set(training) - set(TRAINING_KEYS))
        if unknown:
            raise ConfigError(f"task.{unknown[0]}", training[unknown[0]], f"not an option of task {self.name}")
        t = {**self.training_defaults, **training}
        self.seed = seed
        self.inner_steps = positive_int(t["inner_steps"], "task.inner_steps")
        positive_float(t["inner_lr"], "task.inner_lr")
        if not 0.0 <= t["inner_momentum"] < 1.0:
            raise ConfigError("task.inner_momentum", t["inner_momentum"], "must be in [0, 1)")
        convention = one_of(t["convention"], "task.convention", CONVENTIONS)
        self.optimizer = InnerOptimizer(float(t["inner_lr"]), float(t["inner_momentum"]), convention)
        self.batch_size = None if t["batch_size"] is None else positive_int(t["batch_size"], "task.batch_size")
        self.init_scale = float(t["init_scale"])
        self.device = torch.device("cuda" if device == "cuda" else "cpu")
        self.dtype = DTYPES[one_of(dtype, "dtype", tuple(DTYPES))]
        self._problems: dict[tuple[Any, ...], BilevelProblem] = {}
        self._warm: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._online: dict[tuple[Any, ...], _OnlineState] = {}

    # -- for subclasses --------------------------------------------------------------

    @abstractmethod
    def model(self) -> Model:
        """The differentiable model on this task's data (built once, on the device)."""

    @abstractmethod
    def test_metrics(self, theta: Tensor) -> dict[str, float]:
        """Metrics of parameters θ (p,) on held-out data (test scores)."""

    # -- problems ----------------------------------------------------------------------

    def dimensions(self) -> dict[str, int]:
        model = self.model()
        return {"n_params": model.n_params, "n_train": model.n}

    def check_space(self, names: list[str]) -> None:
        self.check_hyperparameters(names)

    def check_hyperparameters(self, names: list[str]) -> None:
        """Raise a ConfigError unless hypergradients with respect to ``names`` exist here."""
        unknown = [n for n in names if n not in KINDS]
        if unknown:
            raise ConfigError(
                f"space.params.{unknown[0]}",
                unknown[0],
                f"task {self.name} tunes only {', '.join(KINDS)}",
            )

    def layout_of(self, params: Mapping[str, Any]) -> HyperLayout:
        try:
            return make_layout([(k, len(v) if isinstance(v, list) else None) for k, v in params.items()])
        except ValueError as exc:
            raise ConfigError("space.params", sorted(params), str(exc)) from None

    def problem(self, layout: HyperLayout) -> BilevelProblem:
        if layout.shapes not in self._problems:
            model = self.model()
            batches = batch_schedule(model.n, self.batch_size, self.inner_steps, self.seed, self.device)
            model.batches = batches
            theta0 = initial_theta(model.n_params, self.seed, self.init_scale, self.dtype, self.device)
            self._problems[layout.shapes] = build_problem(model, layout, self.inner_steps, self.optimizer, theta0)
        return self._problems[layout.shapes]

    def hyper_vector(self, layout: HyperLayout, params: Mapping[str, Any]) -> Tensor:
        like = torch.empty(0, dtype=self.dtype, device=self.device)
        return layout.flatten({k: params[k] for k in layout.names}, like)

    # -- evaluation --------------------------------------------------------------------

    def evaluate(
        self,
        params: Mapping[str, Any],
        budget: float | None = None,
        request: Mapping[str, Any] | None = None,
    ) -> Evaluation:
        layout = self.layout_of(params)
        problem, h = self.problem(layout), self.hyper_vector(layout, params)
        if not request:
            return self.evaluate_blackbox(problem, layout, h)
        result = self.hypergradient(problem, layout, h, request)
        theta = result.extras["theta"]
        assert isinstance(theta, Tensor)
        metrics = {
            self.metric: result.value,
            "hypergradient_norm": float(torch.linalg.vector_norm(result.grad)),
            **self.test_metrics(theta),
            **{k: v for k, v in result.extras.items() if isinstance(v, int | float) and not isinstance(v, bool)},
        }
        cost = {"inner_steps": result.cost.inner_steps, "hvp": result.cost.hvp}
        return Evaluation(result.value, metrics, cost, [float(g) for g in result.grad.cpu()])

    def evaluate_blackbox(self, problem: BilevelProblem, layout: HyperLayout, h: Tensor) -> Evaluation:
        """Q after inner training when the optimizer is tuned, else Q at the inner optimum."""
        if any(name in OPTIMIZER_KINDS for name in layout.names):
            theta, _ = problem.train(h)
            steps = problem.n_steps
        else:
            solution = solve_inner(problem, h, problem.theta0, tol=1e-8)
            theta, steps = solution.theta, solution.iterations
        value = float(problem.outer(theta, h))
        metrics = {self.metric: value, **self.test_metrics(theta)}
        return Evaluation(value, metrics, {"inner_steps": steps})

    def hypergradient(
        self, problem: BilevelProblem, layout: HyperLayout, h: Tensor, request: Mapping[str, Any]
    ) -> Hypergradient:
        method = request.get("hypergradient")
        options = {k: v for k, v in request.items() if k not in ("hypergradient", "tol", "warm_start", "steps")}
        if method in UNROLLED:
            return compute(str(method), problem, h, **options)
        if method == "implicit":
            return self._implicit(problem, layout, h, request)
        if method in ONLINE:
            return self._online_step(str(method), problem, layout, h, int(request.get("steps", 1)))
        raise ConfigError(
            "strategy.method",
            method,
            f"must be one of {', '.join((*UNROLLED, 'implicit', *ONLINE))}",
        )

    def _implicit(
        self, problem: BilevelProblem, layout: HyperLayout, h: Tensor, request: Mapping[str, Any]
    ) -> Hypergradient:
        warm = self._warm.setdefault(layout.shapes, {})
        if "scale" not in warm:  # tolerances are relative to the first inner gradient norm
            g0 = torch.func.grad(problem.full_inner_loss)(problem.theta0, h)
            warm["scale"] = max(float(g0.abs().max()), 1e-300)
        tol = float(request.get("tol", 1e-10)) * warm["scale"]
        use_warm = bool(request.get("warm_start", True))
        result = compute(
            "implicit",
            problem,
            h,
            inner_tol=tol,
            cg_rtol=float(request.get("tol", 1e-10)),
            theta_init=warm.get("theta") if use_warm else None,
            q0=warm.get("q") if use_warm else None,
        )
        warm["theta"], warm["q"] = result.extras["theta"], result.extras.pop("q")
        return result

    def _online_step(
        self, method: str, problem: BilevelProblem, layout: HyperLayout, h: Tensor, steps: int
    ) -> Hypergradient:
        state = self._online.get(layout.shapes)
        if state is None:
            theta0 = problem.theta0
            state = _OnlineState(theta0, torch.zeros_like(theta0), 0)
            if method == "rtho":
                state.z_theta = torch.zeros(h.numel(), theta0.numel(), dtype=theta0.dtype, device=theta0.device)
                state.z_velocity = torch.zeros_like(state.z_theta)
            self._online[layout.shapes] = state
        theta, velocity = state.theta, state.velocity
        if method == "greedy":
            with torch.no_grad():
                for _ in range(steps - 1):
                    theta, velocity = problem.step(theta, velocity, h, state.step)
                    state.step += 1
            theta, velocity, grad, value = one_step(problem, theta, velocity, h, state.step)
            state.step += 1
            hvp = 1
        else:
            directions = torch.eye(h.numel(), dtype=h.dtype, device=h.device)
            assert state.z_theta is not None and state.z_velocity is not None
            with torch.no_grad():
                for _ in range(steps):
                    state.z_theta, state.z_velocity = push_tangents(
                        problem,
                        theta,
                        velocity,
                        h,
                        state.step,
                        state.z_theta,
                        state.z_velocity,
                        directions,
                    )
                    theta, velocity = problem.step(theta, velocity, h, state.step)
                    state.step += 1
            q, d_theta, d_h = outer_gradients(problem, theta, h)
            grad, value, hvp = state.z_theta @ d_theta + d_h, float(q), steps * h.numel()
        state.theta, state.velocity = theta, velocity
        return Hypergradient(
            value,
            grad,
            Cost(inner_steps=steps, hvp=hvp),
            {"theta": theta, "online_step": state.step},
        )
