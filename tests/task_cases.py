"""The one list every task joins to run the shared task contract tests.

Adding a task = one module, one conf/task/*.yaml and one entry here (fast settings: a case
evaluates in a second or two).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EXAMPLES_SPACE = "my_bilevel"  # examples/conf/space/my_bilevel.yaml, for the user's bilevel task


def sphere(params: Mapping[str, Any]) -> float:
    """A user's objective for task=function (0 at the origin)."""
    return float(params["x1"]) ** 2 + float(params["x2"]) ** 2


@dataclass(frozen=True)
class TaskCase:
    name: str  # conf/task/<name>.yaml
    overrides: tuple[str, ...] = ()
    data_seeded: bool = True  # task.seed draws the data or its split
    in_examples: bool = False  # runs from examples/ (its ./conf and modules)
    slow: bool = False  # only in make test-slow (digits covers the same MLP in make test)
    id: str = ""

    def param(self) -> Any:
        """This case for pytest.mark.parametrize (marked slow where it is)."""
        import pytest

        return pytest.param(self, id=str(self), marks=pytest.mark.slow if self.slow else ())

    def args(self, *extra: str) -> list[str]:
        return [f"task={self.name}", *self.overrides, *extra]

    def __str__(self) -> str:
        return self.id or self.name


TASKS = [
    TaskCase("polynomial"),
    TaskCase("polynomial", ("space=polynomial_per_coef", "task.solver=lbfgs"), id="polynomial-lbfgs"),
    TaskCase("ridge"),
    TaskCase("ridge", ("space=ridge_per_feature",), id="ridge-differentiable"),
    TaskCase("lasso"),
    TaskCase("linear"),
    TaskCase("softmax", ("task.inner_steps=5",)),
    TaskCase("hypercleaning", ("task.inner_steps=5",)),
    TaskCase("digits", ("task.epochs=1", "task.hidden=16")),
    TaskCase("mnist", ("task.epochs=1", "task.hidden=16"), slow=True),
    TaskCase(
        "bilevel", ("task.build=my_bilevel.build", f"space={EXAMPLES_SPACE}"), data_seeded=False, in_examples=True
    ),
    TaskCase("branin", data_seeded=False),
    TaskCase("hartmann6", data_seeded=False),
    TaskCase("rosenbrock", ("task.dim=3",), data_seeded=False),
    TaskCase("levy", ("task.dim=4",), data_seeded=False),
    TaskCase("function", ("task.fn=task_cases.sphere", "space=branin"), data_seeded=False),
]
