"""Seconds per gp_bo suggestion: against the number of observations, and per kind of space.

``--sizes``: tell n Sobol points of hartmann6, then time two asks: the first refits the GP cold
(with its restarts), the second warm (from 200 observations on, a warm refit starts from the
previous fit alone; every 25th observation gets the full restarts again).

``--spaces``: whole sequential runs (ask, evaluate, tell) on the problems of ``make bench-tpe``:
a tree-structured space (13 parameters, 11 of them conditional on a categorical), a mixed one
(categoricals, floats, an int), 12-D continuous (levy12) and hartmann6. Per problem: the median
and the 90th percentile of our seconds per suggestion (ask + tell) after the initial design, the
median regret at the end; with ``--optuna``, Optuna's GPSampler on the same problems and seeds,
in the same process, for a ratio, and the seed-by-seed wins–losses of our final regret against
its, with a two-sided Wilcoxon signed-rank p.

    python benchmarks/gp_bo_scaling.py [--sizes 50 100 200 500]
    python benchmarks/gp_bo_scaling.py --spaces [--problems conditional,mixed,levy12,hartmann6]
        [--trials 100] [--seeds 3] [--override trust_region=true] [--optuna]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from ask_tell import ask_tell
from tpe_conditional import PROBLEMS, Problem, compare, run_optuna

from hpo_cli.build import build_strategy, compose_config, compose_study
from hpo_cli.settings import read_settings
from hpo_cli.space import parse_space
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


def model_based_seconds(seconds: list[float], skip: int) -> np.ndarray:
    """The seconds of the suggestions after the first ``skip`` (the initial design costs nothing)."""
    return np.asarray(seconds[skip:], dtype=float)


def run_gp_bo(problem: Problem, trials: int, seed: int, overrides: list[str]) -> tuple[float, np.ndarray]:
    """(final regret, seconds per model-based suggestion) of one sequential gp_bo run."""
    cfg = compose_config(["strategy=gp_bo", f"seed={seed}", f"n_trials={trials}", *overrides])
    space = parse_space(problem.space, {})
    strategy = build_strategy(cfg.strategy, space, read_settings(cfg))
    regrets, seconds, _ = ask_tell(strategy, problem.objective, problem.optimum, trials)
    return min(regrets), model_based_seconds(seconds, int(cfg.strategy.n_initial))


def run_gp_sampler(problem: Problem, trials: int, seed: int, skip: int) -> tuple[float, np.ndarray]:
    regrets, seconds, _ = run_optuna(problem, parse_space(problem.space, {}), trials, seed, "GPSampler")
    return min(regrets), model_based_seconds(seconds, skip)


def summary(runs: list[tuple[float, np.ndarray]]) -> tuple[float, float, float]:
    """(median seconds, 90th percentile seconds, median regret) over the runs' suggestions."""
    seconds = np.concatenate([s for _, s in runs])
    return float(np.median(seconds)), float(np.percentile(seconds, 90)), float(np.median([r for r, _ in runs]))


def print_spaces_table(problems: list[str], trials: int, seeds: int, overrides: list[str], optuna: bool) -> None:
    head = "| problem | parameters | gp_bo s / suggestion: median, p90 | gp_bo median regret |"
    rule = "|---|---:|---|---:|"
    if optuna:
        head += (
            " GPSampler s / suggestion: median, p90 | GPSampler median regret | ratio of medians"
            " | gp_bo vs GPSampler: wins–losses, Wilcoxon p |"
        )
        rule += "---|---:|---:|---|"
    print(f"{head}\n{rule}", flush=True)
    n_initial = int(compose_config(["strategy=gp_bo", *overrides]).strategy.n_initial)
    for name in problems:
        problem = PROBLEMS[name]
        our_runs = [run_gp_bo(problem, trials, seed, overrides) for seed in range(seeds)]
        ours = summary(our_runs)
        row = f"| {name} | {len(problem.space)} | {ours[0]:.3f}, {ours[1]:.3f} | {ours[2]:.4g} |"
        if optuna:
            their_runs = [run_gp_sampler(problem, trials, seed, n_initial) for seed in range(seeds)]
            theirs = summary(their_runs)
            a, b = np.array([r for r, _ in our_runs]), np.array([r for r, _ in their_runs])  # paired by seed
            row += (
                f" {theirs[0]:.3f}, {theirs[1]:.3f} | {theirs[2]:.4g} | {theirs[0] / ours[0]:.1f}×"
                f" | {int(np.sum(a < b))}–{int(np.sum(a > b))}, p = {compare(a, b)['wilcoxon_p']:.2g} |"
            )
        print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 500])
    parser.add_argument("--spaces", action="store_true", help="whole runs per kind of space instead of --sizes")
    parser.add_argument("--problems", default="conditional,mixed,levy12,hartmann6")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--override", action="append", default=[], help="a gp_bo override, e.g. trust_region=true")
    parser.add_argument("--optuna", action="store_true", help="Optuna's GPSampler beside ours (the bench extra)")
    args = parser.parse_args()
    if args.spaces:
        unknown = [p for p in args.problems.split(",") if p not in PROBLEMS]
        if unknown:
            raise SystemExit(f"--problems={','.join(unknown)}: not a problem (they are: {', '.join(PROBLEMS)})")
        warnings.filterwarnings("ignore")
        if args.optuna:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.ERROR)  # not a warning per independently drawn parameter
        overrides = [f"strategy.{o}" for o in args.override]
        print_spaces_table(args.problems.split(","), args.trials, args.seeds, overrides, args.optuna)
        return
    print("| observations | first ask (cold fit) s | next ask s |\n|---:|---:|---:|")
    for n in args.sizes:
        cold, warm = seconds_per_ask(n)
        print(f"| {n} | {cold:.3f} | {warm:.3f} |", flush=True)


if __name__ == "__main__":
    main()
