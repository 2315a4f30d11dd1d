"""The one list every model-selection criterion joins to run the shared criterion contract tests.

Adding a criterion = one module in hpo_cli/tasks/criteria/, one conf/criterion/*.yaml and one
entry here: the knobs that make it fast, the value's metric name and how summaries describe it.
The criteria run on the tasks of SETUPS (a regression model and a classifier), small enough that
a run of a few trials takes a second or two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setup:
    """A task that trains a model, made small, on which every criterion runs."""

    name: str
    overrides: tuple[str, ...]
    base_metric: str  # the task's hold-out metric (the hold-out criterion's value)
    gradient: tuple[str, ...]  # gradient strategies run on it (conf/strategy/<name>.yaml)

    def __str__(self) -> str:
        return self.name


SETUPS = [
    Setup(
        "polynomial",
        ("task=polynomial", "space=polynomial_per_coef", "task.inner_steps=10"),
        "val_mse",
        ("hoag", "rmad"),
    ),
    Setup(
        "softmax",
        # log precisions >= 2: the black-box inner solve to tolerance converges in a few dozen steps
        (
            "task=softmax",
            "task.n_train=30",
            "task.n_val=20",
            "task.n_test=20",
            "task.inner_steps=5",
            "space.params.log_precision.low=2.0",
        ),
        "val_loss",
        ("hoag", "rmad"),
    ),
]


@dataclass(frozen=True)
class CriterionCase:
    name: str  # conf/criterion/<name>.yaml
    overrides: tuple[str, ...] = ()  # criterion.* knobs that keep a run fast
    metric: str = "{base}"  # the value's name; {base}: the task's hold-out metric, {bare}: it without val_
    described: str = ""  # how summary.json's "criterion" starts (default: the name)
    folds: int = 0  # cross-validation: the number of cv_fold<q> metrics, whose mean is the value
    slow: tuple[str, ...] = ()  # "<setup>-<strategy>" runs that take over ~5 s (make test-slow only)

    def args(self, setup: Setup, strategy: str, *extra: str) -> list[str]:
        """The `hpo run` overrides of this criterion on ``setup`` with ``strategy``."""
        init = ("strategy.init=random",) if strategy != "random" else ()
        return [*setup.overrides, f"criterion={self.name}", *self.overrides, f"strategy={strategy}", *init, *extra]

    def metric_on(self, setup: Setup) -> str:
        base = setup.base_metric
        return self.metric.format(base=base, bare=base.removeprefix("val_"))

    def param(self, setup: Setup, strategy: str) -> Any:
        """(this case, setup, strategy) for pytest.mark.parametrize, marked slow where it is."""
        import pytest

        run = f"{setup}-{strategy}"
        marks = pytest.mark.slow if run in self.slow else ()
        return pytest.param(self, setup, strategy, id=f"{self}-{run}", marks=marks)

    def __str__(self) -> str:
        return self.name


CRITERIA = [
    CriterionCase("holdout", described="holdout"),
    CriterionCase("cv", ("criterion.k=3",), metric="cv_{bare}", described="cv (k=3)", folds=3),
    CriterionCase("evidence", metric="neg_log_evidence", described="evidence"),
    CriterionCase(
        "elbo",
        ("criterion.samples=2", "criterion.eval_samples=2", "criterion.prune_thresholds=[0.5]"),
        metric="neg_elbo",
        described="elbo",
        slow=("softmax-random",),  # the black-box value solves μ and log σ² to tolerance: hundreds of steps
    ),
]
