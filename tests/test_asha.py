"""ASHA: the promotion rule on hand-made results, brackets, failures, resume, and a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import Hpo, make_space

from hpo_cli.errors import ConfigError
from hpo_cli.loop import Budget, StudyLoop
from hpo_cli.store import RunStore
from hpo_cli.strategies.asha import ASHAStrategy
from hpo_cli.strategies.base import fill_history
from hpo_cli.trial import Evaluation, Observation, Suggestion, TrialState

SPACE = make_space({"x": {"type": "float", "low": 0.0, "high": 1.0}})


def asha(**kwargs: Any) -> ASHAStrategy:
    options: dict[str, Any] = {"eta": 3, "fidelity": (1, 9), **kwargs}
    return ASHAStrategy(SPACE, seed=options.pop("seed", 0), n_trials=100, **options)


def tell(strategy: ASHAStrategy, suggestions: Sequence[Suggestion], failed: Sequence[int] = ()) -> None:
    """Loss = x (smaller x is better) at every budget; keys in ``failed`` fail."""
    strategy.tell(
        [
            Observation(s, TrialState.FAILED, None, error="planted")
            if s.key in failed
            else Observation(s, TrialState.COMPLETE, float(s.params["x"]))
            for s in suggestions
        ]
    )


def best(suggestions: Sequence[Suggestion], k: int = 1) -> list[float]:
    return sorted(float(s.params["x"]) for s in suggestions)[:k]


def xs_and_budgets(suggestions: Sequence[Suggestion]) -> list[tuple[float, float | None]]:
    return [(float(s.params["x"]), s.budget) for s in suggestions]


def test_rungs_follow_min_budget_times_eta_up_to_max_budget() -> None:
    assert asha(fidelity=(1, 27)).budgets == [1, 3, 9, 27]
    assert asha(eta=2, min_budget=2, max_budget=16).budgets == [2, 4, 8, 16]
    assert asha(fidelity=(1, 10)).budgets == pytest.approx([10 / 9, 10 / 3, 10])  # as Hyperband: top = max


def test_the_best_of_three_is_promoted_once_three_results_are_in() -> None:
    strategy = asha()
    first = strategy.ask(3)
    assert [s.budget for s in first] == [1, 1, 1]
    tell(strategy, first[:2])
    (fresh,) = strategy.ask(1)  # two results: ⌊2/3⌋ = 0 promotable, a new configuration
    assert fresh.budget == 1 and fresh.params not in [s.params for s in first]
    tell(strategy, first[2:])
    (promoted,) = strategy.ask(1)
    assert (promoted.params["x"], promoted.budget) == (best(first)[0], 3)
    assert promoted.unit == min(first, key=lambda s: s.params["x"]).unit
    (again,) = strategy.ask(1)  # the pending promotion is not made twice
    assert again.budget == 1 and again.params != promoted.params
    tell(strategy, [promoted])
    (after,) = strategy.ask(1)  # nor once told: it stays promoted
    assert after.budget == 1
    assert strategy.trial_state(first[0].key) == TrialState.COMPLETE  # never pruned: see the module


def test_ask_returns_promotions_highest_rung_first_then_new_configurations() -> None:
    strategy = asha()
    rung0 = strategy.ask(9)
    tell(strategy, rung0)
    got = strategy.ask(5)  # ⌊9/3⌋ = 3 promotions, best first, then 2 new configurations
    assert [s.budget for s in got] == [3, 3, 3, 1, 1]
    assert [s.params["x"] for s in got[:3]] == best(rung0, 3)
    tell(strategy, got[:3])  # the new configurations stay pending
    top = strategy.ask(2)  # rung 1 has 3 results: its best goes to rung 2 before anything else
    assert xs_and_budgets(top) == [(best(rung0)[0], 9), (top[1].params["x"], 1)]
    assert top[1].params["x"] not in [s.params["x"] for s in rung0]


def test_failed_trials_are_never_promoted_and_do_not_count_in_a_rung() -> None:
    strategy = asha()
    rung0 = strategy.ask(4)
    winner = min(rung0, key=lambda s: s.params["x"])
    others = [s for s in rung0 if s is not winner]
    tell(strategy, [winner, *others[:2]], failed=[winner.key])
    assert strategy.ask(1)[0].budget == 1  # 2 completed results: nothing to promote
    tell(strategy, others[2:])
    (promoted,) = strategy.ask(1)  # 3 completed: the best that did not fail
    assert (promoted.params["x"], promoted.budget) == (best(others)[0], 3)
    assert strategy.trial_state(winner.key) == TrialState.FAILED


def test_a_failed_promotion_is_not_promoted_again() -> None:
    strategy = asha()
    rung0 = strategy.ask(3)
    tell(strategy, rung0)
    (promoted,) = strategy.ask(1)
    tell(strategy, [promoted], failed=[promoted.key])
    assert [s.budget for s in strategy.ask(3)] == [1, 1, 1]


def test_only_a_top_rung_or_failed_trial_stops_its_configuration_for_good() -> None:
    """Any other result may still be promoted as its rung grows: its checkpoint stays."""
    strategy = asha(fidelity=(1, 3))  # rungs 1 and 3
    rung0 = strategy.ask(4)
    tell(strategy, rung0, failed=[rung0[3].key])
    assert [strategy.stops(s.key) for s in rung0] == [False, False, False, True]
    (promoted,) = strategy.ask(1)
    assert promoted.budget == 3
    tell(strategy, [promoted])
    assert strategy.stops(promoted.key)
    restored = asha(fidelity=(1, 3))
    restored.load_state_dict(strategy.state_dict())
    assert [restored.stops(s.key) for s in [*rung0, promoted]] == [False, False, False, True, True]


def test_brackets_start_new_configurations_round_robin() -> None:
    hyperband = asha(fidelity=(1, 27), brackets="hyperband")
    assert hyperband.n_brackets == 4
    assert [s.budget for s in hyperband.ask(8)] == [1, 3, 9, 27, 1, 3, 9, 27]
    assert [s.budget for s in asha(fidelity=(1, 27), brackets=2).ask(5)] == [1, 3, 1, 3, 1]
    with pytest.raises(ConfigError, match=r"strategy\.brackets=4: must be hyperband or an integer from 1 to 3"):
        asha(brackets=4)  # only 3 rungs: 1, 3, 9


def test_each_bracket_ranks_its_own_rungs() -> None:
    strategy = asha(brackets=2)
    got = strategy.ask(6)
    assert [s.budget for s in got] == [1, 3, 1, 3, 1, 3]  # configurations 0, 2, 4 in bracket 0
    losses = [0.5, 0.4, 0.6, 0.8, 0.7, 0.9]
    strategy.tell([Observation(s, TrialState.COMPLETE, loss) for s, loss in zip(got, losses, strict=True)])
    top, up = strategy.ask(2)  # highest rung first: bracket 1's rung 1, then bracket 0's rung 0
    assert (top.params, top.budget, up.params, up.budget) == (got[1].params, 9, got[0].params, 3)
    strategy.tell([Observation(up, TrialState.COMPLETE, 0.1), Observation(top, TrialState.COMPLETE, 0.3)])
    # bracket 0's rung 1 holds one result (0.1): not promotable, though it beats bracket 1's rung 1
    (fresh,) = strategy.ask(1)
    assert fresh.budget == 1 and fresh.params not in [s.params for s in got]


def drive(strategy: ASHAStrategy, n: int, batch: int = 2) -> list[Suggestion]:
    asked: list[Suggestion] = []
    while len(asked) < n:
        got = strategy.ask(batch)
        tell(strategy, got)
        asked += got
    return asked


def test_the_same_seed_gives_the_same_suggestions() -> None:
    first = xs_and_budgets(drive(asha(seed=4, brackets="hyperband"), 30))
    assert first == xs_and_budgets(drive(asha(seed=4, brackets="hyperband"), 30))
    assert first != xs_and_budgets(drive(asha(seed=5, brackets="hyperband"), 30))


def test_no_fidelity_is_one_config_error_naming_the_strategy() -> None:
    with pytest.raises(ConfigError, match="pick a task with a fidelity"):
        ASHAStrategy(SPACE, seed=0, n_trials=10)
    with pytest.raises(ConfigError, match=r"strategy\.eta=1"):
        asha(eta=1)


def test_no_fidelity_from_the_cli(hpo: Hpo) -> None:
    res = hpo("run", "strategy=asha", "task=branin", "n_trials=3")
    assert res.returncode == 2 and "Traceback" not in res.output
    assert "hpo: error: strategy.max_budget=None: set it, or pick a task with a fidelity" in res.stderr


C = 0.5  # the budget term of the objective


def objective(params: Mapping[str, Any], budget: float | None, request: Any = None) -> Evaluation:
    """f(x) + c/budget, noise-free: the ranking at every budget is f's."""
    assert budget is not None
    return Evaluation((params["x"] - 0.3) ** 2 + C / budget, {"budget": budget})


def test_asha_two_at_a_time_finds_a_good_configuration_at_the_max_budget_cheaply(tmp_path: Path) -> None:
    strategy = asha(fidelity=(1, 27), seed=2)
    records = StudyLoop(strategy, objective, RunStore(tmp_path), Budget(80, batch_size=2)).run().records
    assert len(records) == 80 and all(r.state == "complete" for r in records)
    at_max = [r for r in records if r.budget == 27]
    assert at_max, "some configuration reached the max budget"
    f_best = min((r.params["x"] - 0.3) ** 2 for r in records)
    assert min(r.value for r in at_max if r.value is not None) - C / 27 == pytest.approx(f_best)
    configs = {r.params["x"] for r in records}
    assert sum(r.budget for r in records if r.budget is not None) < 0.5 * len(configs) * 27


def test_a_resumed_run_continues_exactly(tmp_path: Path) -> None:
    def run(folder: Path, n: int, resume: bool = False) -> list[tuple[Any, Any]]:
        strategy, store = asha(fidelity=(1, 27), brackets=2, seed=1), RunStore(folder)
        previous, told = (), 0
        if resume:
            checkpoint = store.read_checkpoint()
            assert checkpoint is not None
            told, state = checkpoint
            previous = store.read_trials()
            strategy.load_state_dict(fill_history(state, {r.trial: r for r in previous}, SPACE, 1.0))
        loop = StudyLoop(strategy, objective, store, Budget(n, batch_size=3))
        return [(r.params, r.budget) for r in sorted(loop.run(previous, told).records, key=lambda r: r.trial)]

    whole = run(tmp_path / "whole", 40)
    run(tmp_path / "cut", 17)  # a short last batch; its checkpoint is older than its last trials (replayed)
    assert run(tmp_path / "cut", 40, resume=True) == whole
