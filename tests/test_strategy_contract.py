"""The contract every strategy honours (models: optuna's pytest_samplers, botorch's testing)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest
from conftest import MIXED_SPACE, VECTOR_SPACE, make_space
from strategy_cases import STRATEGIES, StrategyCase

from hpo_cli.space import SearchSpace
from hpo_cli.strategies.base import Strategy
from hpo_cli.trial import Observation, Suggestion, TrialState

GRADIENT_SPACES: list[dict[str, Any]] = [
    {"x": {"type": "float", "low": -1.0, "high": 1.0}},
    {
        "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
        "h": {"type": "float", "low": -2.0, "high": 10.0, "size": "n"},
    },
]


def spaces_for(case: StrategyCase) -> list[SearchSpace]:
    if case.gradient:
        return [make_space(raw, n=6) for raw in GRADIENT_SPACES]
    if case.min_dim > 1:
        return [make_space(MIXED_SPACE), make_space(VECTOR_SPACE, n=6)]

    spaces = [
        make_space(MIXED_SPACE),
        make_space({"x": {"type": "float", "low": -1.0, "high": 1.0}}),
    ]
    if case.vectors:
        spaces.append(make_space(VECTOR_SPACE, n=6))
    return spaces


def loss_of(s: Suggestion) -> float:
    """A deterministic objective over any space: distance of the unit point from 0.3."""
    assert s.unit is not None
    return float(np.sum((np.asarray(s.unit) - 0.3) ** 2))


def observe(s: Suggestion, failed: bool = False) -> Observation:
    """A failed trial, or the loss with its gradient d loss / d params when one is asked for."""
    if failed:
        return Observation(s, TrialState.FAILED, None, error="planted failure")
    if not s.request:
        return Observation(s, TrialState.COMPLETE, loss_of(s))
    values = np.concatenate([np.ravel(v) for v in s.params.values()])  # float params only
    target = 0.3 * np.ones_like(values)
    return Observation(
        s,
        TrialState.COMPLETE,
        float(np.sum((values - target) ** 2)),
        gradient=tuple(2 * (values - target)),
    )


def drive(strategy: Strategy, n: int, batch: int = 3) -> list[Suggestion]:
    """Ask in batches and tell every outcome, until n suggestions or the strategy finishes."""
    asked: list[Suggestion] = []
    while len(asked) < n and not strategy.is_finished():
        got = strategy.ask(min(batch, n - len(asked)))
        if not got:
            break
        strategy.tell([observe(s, failed=(s.key % 5 == 4 and not s.request)) for s in got])
        asked += got
    return asked


def params_of(suggestions: list[Suggestion]) -> list[str]:
    return [json.dumps(s.params, sort_keys=True) for s in suggestions]


CASES = [(case, i) for case in STRATEGIES for i in range(len(spaces_for(case)))]


@pytest.fixture(params=CASES, ids=[f"{c}-space{i}" for c, i in CASES])
def case_and_space(request: Any) -> tuple[StrategyCase, SearchSpace]:
    case, i = request.param
    return case, spaces_for(case)[i]


def test_suggestions_respect_bounds_and_types(
    case_and_space: tuple[StrategyCase, SearchSpace],
) -> None:
    case, space = case_and_space
    for s in drive(case.make(space), 40):
        assert space.contains(s.params), s.params
        assert s.unit is not None and len(s.unit) == space.dim
        assert all(0.0 <= x <= 1.0 for x in s.unit)


def test_same_seed_gives_the_same_suggestions(
    case_and_space: tuple[StrategyCase, SearchSpace],
) -> None:
    case, space = case_and_space
    first = params_of(drive(case.make(space, seed=7), 20))
    assert first == params_of(drive(case.make(space, seed=7), 20))
    other = params_of(drive(case.make(space, seed=8), 20))
    assert (other != first) == case.stochastic


def test_ask_and_tell_in_any_order(case_and_space: tuple[StrategyCase, SearchSpace]) -> None:
    case, space = case_and_space
    strategy = case.make(space)
    a, b = strategy.ask(3), strategy.ask(2)
    assert len({s.key for s in a + b}) == len(a + b)
    if case.sequential:  # one at a time: nothing more until the outcome is told
        assert len(a) == 1 and b == []
    outcomes = [observe(s, failed=i == 1) for i, s in enumerate(a + b)]
    strategy.tell(outcomes[::-1][:2])
    strategy.tell(outcomes[::-1][2:])
    assert not strategy.pending
    with pytest.raises(ValueError, match="not pending"):
        strategy.tell(outcomes[:1])
    assert all(space.contains(s.params) for s in strategy.ask(2))


def test_ask_n_returns_n_distinct_points_unless_exhausted(
    case_and_space: tuple[StrategyCase, SearchSpace],
) -> None:
    case, space = case_and_space
    strategy = case.make(space)
    got = strategy.ask(4)
    expected = 1 if case.sequential else 4
    assert len(got) == expected or (len(got) < expected and strategy.is_finished())
    assert len(set(params_of(got))) == len(got)


def test_state_dict_round_trip_continues_identically(
    case_and_space: tuple[StrategyCase, SearchSpace],
) -> None:
    case, space = case_and_space
    original = case.make(space, seed=3)
    drive(original, 7)
    restored = case.make(space, seed=3)
    restored.load_state_dict(json.loads(json.dumps(original.state_dict())))
    assert params_of(drive(original, 9)) == params_of(drive(restored, 9))


def test_trial_state_is_a_pure_query(case_and_space: tuple[StrategyCase, SearchSpace]) -> None:
    """Asking for a trial's state twice gives the same answer, and asking changes nothing."""
    case, space = case_and_space
    strategy = case.make(space, seed=5)
    asked = drive(strategy, 16)  # Hyperband's first rung (9 configurations) is decided by then
    before = json.dumps(strategy.state_dict(), sort_keys=True)
    first = [strategy.trial_state(s.key) for s in asked]
    assert first == [strategy.trial_state(s.key) for s in asked]
    assert all(state is None or isinstance(state, TrialState) for state in first)
    assert any(state is not None for state in first)
    assert json.dumps(strategy.state_dict(), sort_keys=True) == before
    assert strategy.trial_state(10_000) is None  # never suggested


@pytest.mark.parametrize("case", [c for c in STRATEGIES if not c.gradient], ids=str)
def test_strategy_finishes(case: StrategyCase) -> None:

    space = make_space({"x": {"type": "float", "low": 0.0, "high": 1.0}, "k": {"type": "int", "low": 1, "high": 2}})
    strategy = case.make(space, n_trials=100)
    asked = drive(strategy, 100)
    if case.finite:
        assert strategy.is_finished() and len(asked) == case.total
        assert strategy.ask(5) == []
        # never the same configuration twice at the same budget
        assert len({(p, s.budget) for p, s in zip(params_of(asked), asked, strict=True)}) == case.total
    else:
        assert len(asked) == 100 and not strategy.is_finished()


@pytest.mark.parametrize("case", [c for c in STRATEGIES if c.gradient], ids=str)
def test_gradient_strategies_descend_and_stop_on_a_failed_trial(case: StrategyCase) -> None:
    space = make_space(GRADIENT_SPACES[0])
    far = dataclasses.replace(case, overrides={**case.overrides, "init": "low"})  # x = -1, minimum 0.3
    strategy = far.make(space, n_trials=100)
    losses = [observe(s).loss for s in drive(strategy, 60, batch=1)]
    assert losses[-1] < 0.05 * losses[0] or losses[-1] < 1e-6  # the minimum is x = 0.3
    if strategy.is_finished():  # landed exactly on x = 0.3 (HOAG's Newton steps can): a zero gradient
        assert "hypergradient is exactly zero" in strategy.finish_message and losses[-1] == 0.0
        strategy = far.make(space, n_trials=100)
        drive(strategy, 1, batch=1)
    (s,) = strategy.ask(1)
    strategy.tell([observe(s, failed=True)])
    assert strategy.is_finished() and strategy.ask(1) == []
    assert "the trial failed (planted failure)" in strategy.finish_message


@pytest.mark.parametrize("case", [c for c in STRATEGIES if c.gradient], ids=str)
def test_gradient_strategies_refuse_discrete_parameters(case: StrategyCase) -> None:
    from hpo_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="gradient strategies tune continuous float parameters only"):
        case.make(make_space(MIXED_SPACE))
