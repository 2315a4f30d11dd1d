"""Seconds per gp_bo suggestion against the number of observations (hartmann6).

For each n: tell n Sobol points of hartmann6, then time two asks: the first refits the GP cold
(with its restarts), the second warm (from 200 observations on, a warm refit starts from the
previous fit alone; every 25th observation gets the full restarts again).

    python benchmarks/gp_bo_scaling.py [--sizes 50 100 200 500]
"""

from __future__ import annotations

import argparse
import time

from hpo_cli.build import compose_study
from hpo_cli.strategies.base import Strategy
from hpo_cli.tasks.base import Task
from hpo_cli.trial import Observation, Suggestion, TrialState


def tell(strategy: Strategy, task: Task, suggestions: list[Suggestion]) -> None:
    strategy.tell([Observation(s, TrialState.COMPLETE, task.evaluate(s.params).value) for s in suggestions])


def seconds_per_ask(n: int) -> tuple[float, float]:
    study = compose_study(["strategy=gp_bo", "task=hartmann6", "n_trials=100000", f"strategy.n_initial={n}"])
    task, strategy = study.task, study.strategy
    tell(strategy, task, strategy.ask(n))
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        batch = strategy.ask(1)
        times.append(time.perf_counter() - t0)
        tell(strategy, task, batch)
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 500])
    args = parser.parse_args()
    print("| observations | first ask (cold fit) s | next ask s |\n|---:|---:|---:|")
    for n in args.sizes:
        cold, warm = seconds_per_ask(n)
        print(f"| {n} | {cold:.3f} | {warm:.3f} |", flush=True)


if __name__ == "__main__":
    main()
