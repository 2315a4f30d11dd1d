"""Nelder–Mead and particle swarm: their steps by hand, restarts, batches, and a win over random
search at the same budget (the contract suite checks the ask/tell plumbing)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from conftest import make_space

from hpo_cli.errors import ConfigError
from hpo_cli.strategies.base import Strategy
from hpo_cli.strategies.nelder_mead import NelderMeadStrategy
from hpo_cli.strategies.pso import ParticleSwarmStrategy, constriction
from hpo_cli.strategies.random_search import RandomStrategy
from hpo_cli.tasks.synthetic import branin
from hpo_cli.trial import Observation, TrialState

BRANIN = {"x1": {"type": "float", "low": -5.0, "high": 10.0}, "x2": {"type": "float", "low": 0.0, "high": 15.0}}
QUADRATIC = {f"x{i}": {"type": "float", "low": -1.0, "high": 1.0} for i in range(4)}
Loss = Callable[[dict], float]


def branin_regret(p: dict) -> float:
    return branin(p["x1"], p["x2"]) - 0.397887


def quadratic(p: dict) -> float:
    return sum((p[f"x{i}"] - 0.1 * (i + 1)) ** 2 for i in range(4))


def best_found(strategy: Strategy, loss: Loss, n: int, batch: int) -> float:
    best, asked = np.inf, 0
    while asked < n:
        got = strategy.ask(min(batch, n - asked))
        asked += len(got)
        values = [loss(s.params) for s in got]
        strategy.tell([Observation(s, TrialState.COMPLETE, v) for s, v in zip(got, values, strict=True)])
        best = min(best, *values)
    return best


def median_best(cls: type[Strategy], raw: dict, loss: Loss, n: int, batch: int) -> float:
    return float(np.median([best_found(cls(make_space(raw), seed, n), loss, n, batch) for seed in range(7)]))


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize(
    ("cls", "raw", "loss", "n"),
    [
        (NelderMeadStrategy, QUADRATIC, quadratic, 80),
        (NelderMeadStrategy, BRANIN, branin_regret, 60),
        (ParticleSwarmStrategy, QUADRATIC, quadratic, 80),
        (ParticleSwarmStrategy, BRANIN, branin_regret, 150),
    ],
    ids=["nelder_mead-quadratic4", "nelder_mead-branin", "pso-quadratic4", "pso-branin"],
)
def test_beats_random_search_at_the_same_budget(cls: type[Strategy], raw: dict, loss: Loss, n: int, batch: int) -> None:
    """Median best over 7 seeds under half of random search's (measured: Nelder–Mead 0.0004 and
    0.055 vs 0.16 on the quadratic, 7e-5 and 0.12 vs 0.65 on branin; PSO 0.039 vs 0.16)."""
    ours = median_best(cls, raw, loss, n, batch)
    random = median_best(RandomStrategy, raw, loss, n, batch)
    assert ours < 0.5 * random, (ours, random)


def tell(strategy: Strategy, loss: Loss, n: int = 1) -> list[Observation]:
    got = strategy.ask(n)
    observations = [Observation(s, TrialState.COMPLETE, loss(s.params)) for s in got]
    strategy.tell(observations)
    return observations


def test_nelder_mead_starts_with_a_simplex_then_reflects_the_worst_vertex() -> None:
    space = make_space(
        {"x": {"type": "float", "low": 0.0, "high": 1.0}, "y": {"type": "float", "low": 0.0, "high": 1.0}}
    )
    strategy = NelderMeadStrategy(space, 0, 20, initial_step=0.25)
    start = [np.asarray(o.suggestion.unit) for o in tell(strategy, lambda p: p["x"] + 2 * p["y"], 3)]
    edges = [np.abs(p - start[0]) for p in start[1:]]
    for axis, edge in enumerate(edges):  # one coordinate moved by the step per vertex
        np.testing.assert_allclose(edge, 0.25 * np.eye(2)[axis])
    values = [p[0] + 2 * p[1] for p in start]
    order = np.argsort(values)
    worst, others = start[order[-1]], [start[i] for i in order[:-1]]
    (reflection,) = strategy.ask(1)
    np.testing.assert_allclose(reflection.unit, np.clip(2 * np.mean(others, axis=0) - worst, 0, 1), atol=1e-12)


def test_nelder_mead_restarts_once_the_simplex_collapses() -> None:
    space = make_space(QUADRATIC)
    strategy = NelderMeadStrategy(space, 1, 400, tolerance=0.05)
    for _ in range(400):
        tell(strategy, quadratic)
    assert strategy.restarts >= 2


def test_nelder_mead_serves_a_batch_from_several_simplices() -> None:
    space = make_space(BRANIN)
    strategy = NelderMeadStrategy(space, 0, 50)
    first = strategy.ask(3)  # the first simplex's 3 start vertices
    more = strategy.ask(2)  # it waits for them: a second simplex starts
    assert len(strategy.simplices) == 2 and len({s.unit for s in first + more}) == 5


def test_pso_constriction_and_a_swarm_of_a_batch() -> None:
    assert constriction(4.1) == pytest.approx(0.7298, abs=1e-4)
    strategy = ParticleSwarmStrategy(make_space(BRANIN), 0, 50, swarm=5)
    batch = strategy.ask(5)
    assert sorted(strategy.waiting.values()) == [0, 1, 2, 3, 4]
    strategy.tell([Observation(s, TrialState.COMPLETE, branin_regret(s.params)) for s in batch[2:3]])
    (moved,) = strategy.ask(1)  # only particle 2 is free: it flies again at once (asynchronous)
    assert strategy.waiting[moved.key] == 2


@pytest.mark.parametrize(
    ("cls", "key", "value"),
    [
        (ParticleSwarmStrategy, "social", 1.0),
        (ParticleSwarmStrategy, "swarm", 0),
        (NelderMeadStrategy, "initial_step", 1.5),
        (NelderMeadStrategy, "simplices", 0),
    ],
)
def test_bad_options_are_one_config_error(cls: type[Strategy], key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"strategy.{key}"):
        cls(make_space(BRANIN), 0, 10, **{key: value})
