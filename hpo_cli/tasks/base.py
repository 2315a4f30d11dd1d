"""The task interface: what an objective must provide to be optimized by ``hpo run``.

A task is built from its YAML (``conf/task/NAME.yaml``: ``_target_`` plus knobs, with
``_partial_: true``); the runner completes it with the run-time context ``device``.

Attributes (metadata):
    name:        short name used in run directories and tables.
    direction:   "minimize" or "maximize" for ``Evaluation.value``.
    metric:      what ``value`` is, e.g. "val_mse" (it is also a key of ``metrics``).
    known_optimum: the best achievable value when known (synthetic functions), else None.
    fidelity:    (low, high) budget range for multi-fidelity strategies, or None.
    criterion:   for tasks that train a model, the model-selection criterion
                 (:mod:`hpo_cli.tasks.criteria`) their value follows; None for functions.

    known_minimizers: the parameters at which ``known_optimum`` is reached, when known.

Methods:
    dimensions() -> {name: int}: vector lengths a space may refer to with ``size: name``
                     (e.g. ``{"n_coefficients": 12}``); answered without training anything.
    check_space(names): optional; raise a ConfigError for parameter names it cannot use.
    objective_for(names) -> (metric, direction): what ``value`` is for a space of these
                     names (by default ``metric`` and ``direction``; a task whose value
                     depends on the kind of space, like the MLPs, says so here).
    evaluate(params, budget=None, request=None) -> Evaluation: train/score one configuration
                     (``budget``: the fidelity, e.g. epochs, for multi-fidelity strategies).
                     Raise an exception or return NaN to mark the trial failed; the run goes on.
                     ``request`` (a :class:`~hpo_cli.request.HypergradRequest`) comes
                     only to tasks whose ``check_hypergradient`` accepted it: the others ignore it.
    check_hypergradient(request, names): raise a ConfigError unless this task can return that
                     hypergradient for those hyperparameters (the default: it cannot).
    refit(params, budget) -> {metric: value} or None: the parameters trained again by the
                     task's standard training, the protocol black-box strategies see (one
                     yardstick for every strategy's best); None for a task with no model.
    attach(folder), release(params), release_all(): optional; where a task that continues a
                     configuration's training at a higher budget keeps its checkpoints (the
                     run's ``checkpoints/``, reached by every worker), and when they may go.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo_cli.errors import ConfigError
from hpo_cli.request import HypergradRequest
from hpo_cli.trial import Evaluation, Request

if TYPE_CHECKING:
    from hpo_cli.tasks.criteria.base import Criterion

DIRECTIONS = ("minimize", "maximize")


class Task(ABC):
    name: str = "task"
    direction: str = "minimize"
    metric: str = "value"
    known_optimum: float | None = None
    known_minimizers: tuple[Mapping[str, Any], ...] = ()
    fidelity: tuple[float, float] | None = None
    criterion: Criterion | None = None  # tasks that train a model: what selects its hyperparameters
    # metrics the run's summary (the console box, summary.json's best.metrics) shows first, in
    # this order: the numbers to compare with a paper or a reference (see report.console.headline_first)
    headline: tuple[str, ...] = ()

    def dimensions(self) -> dict[str, int]:
        return {}

    def criterion_text(self) -> str:
        """The criterion in words for summaries and tables; "none" for a task without one."""
        return "none" if self.criterion is None else self.criterion.describe()

    def check_space(self, names: list[str]) -> None:  # noqa: B027 - optional hook
        """Raise a ConfigError when the space's parameter names cannot drive this task."""

    def objective_for(self, names: Sequence[str]) -> tuple[str, str]:
        """(metric, direction) of ``Evaluation.value`` for a space with parameters ``names``."""
        return self.metric, self.direction

    def check_hypergradient(self, request: HypergradRequest, names: list[str]) -> None:
        """Raise a ConfigError unless ``evaluate`` can answer ``request`` for hyperparameters ``names``."""
        from hpo_cli.options import a_differentiable_task

        raise ConfigError("task", self.name, f"strategy {request.method!r} needs {a_differentiable_task()}")

    def refit(self, params: Mapping[str, Any], budget: float | None = None) -> dict[str, Any] | None:
        """Metrics of ``params`` trained again by the task's standard training, with a
        ``protocol`` line saying what that was; None: the task trains no model."""
        return None

    @abstractmethod
    def evaluate(
        self, params: Mapping[str, Any], budget: float | None = None, request: Request | None = None
    ) -> Evaluation:
        """Score one configuration (and, when asked and supported, its hypergradient)."""

    # -- what a task keeps between trials (promotion checkpoints): optional hooks ------------

    def attach(self, folder: Path) -> None:  # noqa: B027 - optional hook
        """``folder`` (the run's ``checkpoints/``, shared by every worker) is where this task keeps
        what continues a configuration's training at a higher budget; before, it keeps it in
        memory or not at all."""

    def release(self, params: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """The strategy stopped ``params`` for good: what the task keeps for them may go."""

    def release_all(self) -> None:  # noqa: B027 - optional hook
        """The run ended: nothing kept for a configuration is needed any more."""


def split_indices(
    n: int, seed: int, val_fraction: float, test_fraction: float, prefix: str = "task"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded random partition of ``range(n)`` into (train, validation, test) indices."""
    for key, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ConfigError(f"{prefix}.{key}", frac, "must be in [0, 1)")
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    if n - n_val - n_test < 2 or (val_fraction > 0 and n_val < 1):
        raise ConfigError(f"{prefix}.val_fraction", val_fraction, f"leaves too few of {n} examples for training")
    order = np.random.default_rng(seed).permutation(n)
    return order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]


def mse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean((np.asarray(y_true) - np.asarray(y_pred)) ** 2))
