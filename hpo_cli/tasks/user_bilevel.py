"""Your own differentiable problem: ``task=bilevel task.build=my_module.build``.

``build(layout)`` receives the :class:`~hpo_cli.hypergrad.problem.HyperLayout` of your space
(names and shapes of the hyperparameters, e.g. ``log_precision`` (5,)) and returns a
:class:`~hpo_cli.hypergrad.problem.BilevelProblem`: θ_0, ``inner_loss(θ, hp, t)``,
``outer_loss(θ, hp)``, the number of inner steps and the inner optimizer. Every gradient
strategy and ``hpo gradcheck`` then work on it; black-box strategies evaluate Q after training
(or at the inner optimum when ``blackbox: optimum``).
"""

from __future__ import annotations

from torch import Tensor

from hpo_cli.errors import ConfigError
from hpo_cli.hypergrad.implicit import solve_inner
from hpo_cli.hypergrad.problem import BilevelProblem, HyperLayout
from hpo_cli.tasks.bilevel import BilevelTask
from hpo_cli.tasks.function import import_callable
from hpo_cli.trial import Evaluation
from hpo_cli.validate import one_of


class BilevelFunctionTask(BilevelTask):
    name = "bilevel"
    metric = "criterion"

    def __init__(self, build: str | None = None, blackbox: str = "trained", seed: int = 0) -> None:
        if build is None:
            raise ConfigError("task.build", build, "set it to your builder, e.g. task.build=my_module.build")
        self.build = import_callable(build, "task.build")
        self.blackbox = one_of(blackbox, "task.blackbox", ("trained", "optimum"))
        self.name = build.replace(":", ".")
        self._problems: dict[HyperLayout, BilevelProblem] = {}  # a cache: a function of the config

    def problem(self, layout: HyperLayout) -> BilevelProblem:
        if layout not in self._problems:
            problem = self.build(layout)
            if not isinstance(problem, BilevelProblem):
                raise ConfigError("task.build", self.name, f"returned {type(problem).__name__}, not a BilevelProblem")
            self._problems[layout] = problem
        return self._problems[layout]

    def blackbox_trains(self, names: list[str]) -> bool:
        return self.blackbox == "trained"

    def evaluate_blackbox(self, problem: BilevelProblem, layout: HyperLayout, h: Tensor) -> Evaluation:
        if self.blackbox == "optimum":
            solution = solve_inner(problem, h, problem.theta0, tol=1e-8)
            theta, steps = solution.theta, solution.iterations
        else:
            theta, steps = problem.train(h)[0], problem.n_steps
        value = float(problem.outer(theta, h))
        return Evaluation(value, {self.metric: value}, {"inner_steps": steps}, model=self.trained_model(theta))
