"""The simulated cluster (benchmarks/scale.py): the real loop, strategy and store on a virtual
clock. Its clock is injected here, so these checks do not depend on this machine's speed."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from hpo_cli.build import compose_study
from hpo_cli.executors.simulated import Durations, SimulatedExecutor
from hpo_cli.loop import StudyLoop
from hpo_cli.store import TOLD, RunStore


def ticking(step: float):  # type: ignore[no-untyped-def]
    """A clock that advances ``step`` seconds each time it is read (the driver's cost)."""
    counter = itertools.count()
    return lambda: step * next(counter)


def simulate(strategy: str, workers: int, n_trials: int, step: float, run_dir: Path) -> SimulatedExecutor:
    extra = ["strategy.min_budget=1", "strategy.max_budget=9"] if strategy == "asha" else []
    study = compose_study(["task=branin", f"strategy={strategy}", *extra, f"n_trials={n_trials}", "seed=1"])
    executor = SimulatedExecutor(workers, Durations(unit_budget=1.0 if extra else None), clock=ticking(step))
    loop = StudyLoop(study.strategy, study.task.evaluate, RunStore(run_dir), study.budget, executor=executor)
    records = loop.run().records
    assert sorted(r.trial for r in records) == list(range(n_trials))  # each trial recorded once
    assert sorted(int(n) for n in (run_dir / TOLD).read_text().split()) == list(range(n_trials))
    return executor


@pytest.mark.parametrize("strategy", ["random", "asha"])
def test_a_driver_that_costs_nothing_keeps_every_virtual_worker_busy(strategy: str, tmp_path: Path) -> None:
    executor = simulate(strategy, 50, 200, 0.0, tmp_path)
    assert executor.utilization() == pytest.approx(1.0)
    assert executor.results == 200 and executor.now > 60.0  # virtual minutes passed, not real ones


def test_a_slow_driver_idles_virtual_workers_and_receives_results_in_groups(tmp_path: Path) -> None:
    fast = simulate("random", 50, 200, 0.0, tmp_path / "fast")
    slow = simulate("random", 50, 200, 2.0, tmp_path / "slow")  # seconds of driver time per clock reading
    assert slow.utilization() < 0.9 < fast.utilization()
    assert slow.results / slow.batches > 1.5  # results that arrived while the driver worked come together
    assert slow.driver_s > 0.0 == fast.driver_s


def test_durations_are_lognormal_around_the_median_with_a_tail_and_failures() -> None:
    durations = Durations(median_s=60.0, tail=0.05, failure_rate=0.1)
    draws = [durations.draw(seed, None) for seed in range(4000)]
    seconds = sorted(d for d, _ in draws)
    assert 55.0 < seconds[len(seconds) // 2] < 66.0
    assert seconds[-1] > 10 * 60.0  # the heavy tail
    assert 0.08 < sum(failed for _, failed in draws) / len(draws) < 0.12
    assert Durations(unit_budget=9.0).draw(0, 3.0)[0] == pytest.approx(Durations().draw(0, None)[0] / 3)
