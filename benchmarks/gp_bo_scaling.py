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

``--same-history N``: does Optuna's GPSampler choose differently from ours *on the same data*?
Per problem (it needs a categorical parameter) and seed: gp_bo runs N trials, then suggests the
next one; Optuna's GPSampler is given the same N trials (values included) and suggests the next
one ``--draws`` times (sampler seeds 0, 1, ...). Printed: how often its choice of the space's
first categorical equals ours, and how often ours is the incumbent's choice.

    python benchmarks/gp_bo_scaling.py [--sizes 50 100 200 500]
    python benchmarks/gp_bo_scaling.py --spaces [--problems conditional,mixed,levy12,hartmann6]
        [--trials 100] [--seeds 3] [--override trust_region=true] [--optuna]
    python benchmarks/gp_bo_scaling.py --same-history 15 40 [--problems mixed] [--seeds 10] [--draws 20]
        [--override explore_categories=0]
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
from ask_tell import ask_tell
from tpe_conditional import PROBLEMS, Problem, compare, run_optuna, suggest_optuna

from hpo_cli.build import build_strategy, compose_config, compose_study
from hpo_cli.settings import read_settings
from hpo_cli.space import CategoricalParam, IntParam, Param, SearchSpace, parse_space
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


def optuna_distribution(param: Param) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(param, CategoricalParam):
        return CategoricalDistribution(list(param.choices))
    if isinstance(param, IntParam):
        return IntDistribution(param.low, param.high, log=param.log)
    return FloatDistribution(param.low, param.high, log=param.log)


def gp_sampler_choices(
    space: SearchSpace, history: list[tuple[dict[str, Any], float]], name: str, draws: int
) -> list[Any]:
    """The value of ``name`` in Optuna's GPSampler's next suggestion after ``history`` (parameters,
    value), once per sampler seed 0 .. ``draws`` - 1."""
    return [suggest_optuna(study_with_history(space, history, seed).ask(), space)[name] for seed in range(draws)]


def study_with_history(space: SearchSpace, history: list[tuple[dict[str, Any], float]], seed: int) -> Any:
    """An Optuna study (GPSampler, ``seed``) holding ``history`` as completed trials, each with the
    parameters active in it."""
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=seed), direction="minimize")
    for params, value in history:
        distributions = {key: optuna_distribution(space[key]) for key in params}
        study.add_trial(optuna.trial.create_trial(params=dict(params), distributions=distributions, value=value))
    return study


def same_history_row(problem: Problem, trials: int, seeds: int, draws: int, overrides: list[str] | None = None) -> str:
    """One row of ``--same-history``: agreement of GPSampler's draws with gp_bo's next choice
    (gp_bo composed with ``overrides``, e.g. ``strategy.explore_categories=0``: the acquisition alone)."""
    space = parse_space(problem.space, {})
    name = next(p.name for p in space.params if isinstance(p, CategoricalParam))
    agree = incumbent = 0
    for seed in range(seeds):
        cfg = compose_config(["strategy=gp_bo", f"seed={seed}", f"n_trials={trials + 1}", *(overrides or [])])
        strategy = build_strategy(cfg.strategy, space, read_settings(cfg))
        regrets, _, asked = ask_tell(strategy, problem.objective, problem.optimum, trials)
        (ours,) = strategy.ask(1)
        history = [(dict(s.params), r + problem.optimum) for s, r in zip(asked, regrets, strict=True)]
        theirs = gp_sampler_choices(space, history, name, draws)
        agree += sum(c == ours.params[name] for c in theirs)
        incumbent += ours.params[name] == asked[int(np.argmin(regrets))].params[name]
    return (
        f"| {problem.name} | {name} | {trials} | {agree}/{seeds * draws} ({agree / (seeds * draws):.0%})"
        f" | {incumbent}/{seeds} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 500])
    parser.add_argument("--spaces", action="store_true", help="whole runs per kind of space instead of --sizes")
    parser.add_argument("--problems", default="conditional,mixed,levy12,hartmann6")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--override", action="append", default=[], help="a gp_bo override, e.g. trust_region=true")
    parser.add_argument("--optuna", action="store_true", help="Optuna's GPSampler beside ours (the bench extra)")
    parser.add_argument(
        "--same-history", type=int, nargs="+", metavar="N", help="GPSampler's next choice after gp_bo's first N trials"
    )
    parser.add_argument("--draws", type=int, default=20, help="GPSampler seeds per history (--same-history)")
    args = parser.parse_args()
    overrides = [f"strategy.{o}" for o in args.override]
    if args.spaces or args.same_history:
        unknown = [p for p in args.problems.split(",") if p not in PROBLEMS]
        if unknown:
            raise SystemExit(f"--problems={','.join(unknown)}: not a problem (they are: {', '.join(PROBLEMS)})")
        warnings.filterwarnings("ignore")
        if args.optuna or args.same_history:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.ERROR)  # not a warning per independently drawn parameter
    if args.same_history:
        problems = [PROBLEMS[p] for p in args.problems.split(",")]
        flat = [p.name for p in problems if not any(s.get("type") == "categorical" for s in p.space.values())]
        if flat:
            raise SystemExit(f"--problems={','.join(flat)}: --same-history needs a categorical parameter")
        print(
            "| problem | categorical | history (trials) | GPSampler draws choosing as gp_bo does"
            " | gp_bo keeps the incumbent's choice |\n|---|---|---:|---:|---:|",
            flush=True,
        )
        for problem in problems:
            for n in args.same_history:
                print(same_history_row(problem, n, args.seeds, args.draws, overrides), flush=True)
        return
    if args.spaces:
        print_spaces_table(args.problems.split(","), args.trials, args.seeds, overrides, args.optuna)
        return
    print("| observations | first ask (cold fit) s | next ask s |\n|---:|---:|---:|")
    for n in args.sizes:
        cold, warm = seconds_per_ask(n)
        print(f"| {n} | {cold:.3f} | {warm:.3f} |", flush=True)


if __name__ == "__main__":
    main()
