"""Synthetic tasks against their known optima; evolution and CMA-ES make progress on them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpo_cli.errors import ConfigError
from hpo_cli.runner import run_in_memory
from hpo_cli.tasks.synthetic import Branin, Hartmann6, Levy, Rosenbrock, SyntheticTask

CLASSES: dict[str, type[SyntheticTask]] = {
    "branin": Branin,
    "hartmann6": Hartmann6,
    "rosenbrock": Rosenbrock,
    "levy": Levy,
}
MINIMIZERS = {
    "branin": [{"x1": -math.pi, "x2": 12.275}, {"x1": math.pi, "x2": 2.275}, {"x1": 9.42478, "x2": 2.475}],
    "hartmann6": [{"x": [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]}],
    "rosenbrock": [{"x": [1.0] * 4}],
    "levy": [{"x": [1.0] * 4}],
}


@pytest.mark.parametrize("function", list(MINIMIZERS))
def test_known_optimum_at_its_minimizers(function: str) -> None:
    task = CLASSES[function](dim=4)
    assert task.name == function and list(task.known_minimizers) == MINIMIZERS[function]
    for point in MINIMIZERS[function]:
        ev = task.evaluate(point)
        assert ev.value == pytest.approx(task.known_optimum, abs=1e-5)
        assert abs(ev.metrics["regret"]) < 1e-5
    away = {
        k: (np.asarray(v) * 0.5).tolist() if isinstance(v, list) else v * 0.5
        for k, v in MINIMIZERS[function][0].items()
    }
    assert task.evaluate(away).metrics["regret"] > 1e-3


def test_dimensions_and_errors() -> None:
    assert Rosenbrock(dim=7).dimensions() == {"dim": 7}
    assert Hartmann6(dim=3).dim == 6 and Branin(dim=5).dimensions() == {"dim": 2}  # fixed dimensions ignore dim
    assert (Branin.known_optimum, Hartmann6.known_optimum, Levy.known_optimum) == (0.397887, -3.32237, 0.0)
    with pytest.raises(ConfigError, match=r"task\.dim=0: must be a positive integer"):
        Levy(dim=0)
    with pytest.raises(ValueError, match=r"x has shape \(2,\); levy takes \(3,\)"):
        Levy(dim=3).evaluate({"x": [1.0, 1.0]})


@pytest.mark.parametrize("function", list(CLASSES))
def test_each_task_option_builds_its_own_class(function: str) -> None:
    from hpo_cli.build import compose_study

    task = compose_study([f"task={function}", "n_trials=1"]).task
    assert type(task) is CLASSES[function] and task.name == function


@pytest.mark.parametrize("strategy", ["evolution", "cmaes"])
def test_population_strategies_improve_on_their_first_generation(strategy: str) -> None:
    records = run_in_memory(["task=branin", f"strategy={strategy}", "n_trials=80"])
    first = min(r.value for r in records[:10] if r.value is not None)
    best = min(r.value for r in records if r.value is not None)
    assert best - 0.397887 < 0.5 * (first - 0.397887)  # regret at least halved (one seed: a smoke test)


def test_cmaes_refuses_one_dimension() -> None:
    from conftest import make_space

    from hpo_cli.strategies.cmaes import CmaEsStrategy

    with pytest.raises(ConfigError, match="CMA-ES needs at least 2 dimensions"):
        CmaEsStrategy(make_space({"x": {"type": "float", "low": 0.0, "high": 1.0}}), seed=0, n_trials=10)
