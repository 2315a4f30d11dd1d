"""The contract every task keeps, checked on every task of conf/task/ (tests/task_cases.py):
built the way `hpo run` builds it; deterministic in the seed; its metric recorded and equal to
the value; a valid direction; its known optimum reached at its declared minimizers; dimensions
answered without training; the data following task.seed; bad parameters raising (the loop then
records a failed trial)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import CONF, REPO
from task_cases import TASKS, TaskCase

from hpo_cli.build import Study, compose_study
from hpo_cli.tasks.base import DIRECTIONS
from hpo_cli.trial import Evaluation


def build(case: TaskCase, monkeypatch: pytest.MonkeyPatch, *extra: str) -> Study:
    if case.in_examples:
        monkeypatch.chdir(REPO / "examples")
        monkeypatch.syspath_prepend(str(REPO / "examples"))
    return compose_study(case.args(*extra))


def centre(study: Study) -> Evaluation:
    return study.task.evaluate(study.space.decode(np.full(study.space.dim, 0.5)))


@pytest.mark.parametrize("case", [c.param() for c in TASKS])
def test_deterministic_in_the_seed_with_its_metric_and_direction(
    case: TaskCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, again = centre(build(case, monkeypatch)), centre(build(case, monkeypatch))
    assert first == again
    task = build(case, monkeypatch).task
    assert task.direction in DIRECTIONS and isinstance(task.name, str) and task.name
    assert math.isfinite(first.value) and first.metrics[task.metric] == first.value


@pytest.mark.parametrize("case", [c.param() for c in TASKS if c.data_seeded])
def test_the_data_follow_task_seed(case: TaskCase, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (
        centre(build(case, monkeypatch, "task.seed=0")).value != centre(build(case, monkeypatch, "task.seed=1")).value
    )


@pytest.mark.parametrize("case", [c for c in TASKS if c.name in ("branin", "hartmann6", "rosenbrock", "levy")], ids=str)
def test_the_known_optimum_is_reached_at_every_declared_minimizer(
    case: TaskCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = build(case, monkeypatch).task
    assert task.known_optimum is not None and task.known_minimizers
    for point in task.known_minimizers:
        value = task.evaluate(point).value
        assert abs(value - task.known_optimum) <= 1e-5 * max(1.0, abs(task.known_optimum)), (point, value)
        assert value >= task.known_optimum - 1e-5  # nothing below the optimum at its minimizers


@pytest.mark.parametrize("case", [c.param() for c in TASKS])
def test_dimensions_are_answered_without_training(case: TaskCase, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("dimensions() trained something")

    task = build(case, monkeypatch).task
    import sklearn.linear_model

    import hpo_cli.hypergrad.problem
    import hpo_cli.tasks.mlp_trainer

    monkeypatch.setattr(hpo_cli.tasks.mlp_trainer, "train_step", no_training)
    monkeypatch.setattr(hpo_cli.hypergrad.problem.BilevelProblem, "step", no_training)
    for model in (sklearn.linear_model.Ridge, sklearn.linear_model.Lasso):
        monkeypatch.setattr(model, "fit", no_training)
    dims = task.dimensions()
    assert all(isinstance(k, str) and isinstance(v, int) and v > 0 for k, v in dims.items())


@pytest.mark.parametrize("case", [c.param() for c in TASKS])
def test_a_bad_configuration_raises_so_the_trial_is_recorded_as_failed(
    case: TaskCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = build(case, monkeypatch).task
    with pytest.raises(Exception):  # noqa: B017 - any exception: the loop turns it into a failed row
        task.evaluate({"no_such_parameter": 1.0})


def test_every_task_config_joins_the_contract_suite() -> None:
    shipped = {p.stem for p in (CONF / "task").glob("*.yaml")}
    assert shipped == {case.name for case in TASKS}, shipped ^ {case.name for case in TASKS}


def test_the_examples_folder_is_where_the_bilevel_case_expects_it() -> None:
    assert (Path(REPO) / "examples" / "conf" / "space" / "my_bilevel.yaml").is_file()
