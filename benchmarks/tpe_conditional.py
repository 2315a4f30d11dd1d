"""Our TPE against Optuna's TPESampler on tree-structured, mixed and continuous spaces.

Problems (each a plain Python objective over one space, declared once in our space format; the
Optuna side suggests the same parameters, conditions included, define-by-run):

* ``conditional``: a shared log-scaled ``lr`` and a categorical ``model`` that decides which
  parameters exist: ``linear`` (1 parameter, floor 0.4), ``tree`` (3, floor 0.2) and ``net``
  (7, floor 0). The best branch is the largest, and its random configurations are the worst: a
  TPE that settles on the first branch to look good never finds it.
* ``mixed``: two categoricals (the optimizer shifts the continuous optimum) with four floats and
  an int; the best optimizer is sharp, a worse one flat (its random configurations look better).
* ``mixed_additive``: three categoricals, each choice a penalty, plus a 4-D Rosenbrock valley.
* ``levy12``, ``styblinski12``: 12-D continuous; ``branin``, ``hartmann6``: the continuous wins
  to keep.

Per problem and method: the median and quartiles of the simple regret at ``--trials`` (and at
50) over ``--seeds`` seeds, two-sided Mann-Whitney U and Wilcoxon signed-rank p-values (seed by
seed) of ours against Optuna's, the median seconds per suggestion (ask + tell), and on the
conditional space the share of the trials in the second half that went to each branch.

``--timing`` measures our seconds per suggestion at 100 and at 1,000 trials of history.

    python benchmarks/tpe_conditional.py [--seeds 15] [--trials 100] [--problems conditional,mixed]
        [--timing] [--out benchmarks/results/tpe_conditional.md]

Optuna is a benchmark-only extra (``pip install -c constraints.txt '.[bench]'``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ask_tell import ask_tell
from scipy import stats

from hpo_cli.build import build_strategy, compose_config
from hpo_cli.settings import read_settings
from hpo_cli.space import CategoricalParam, FloatParam, IntParam, SearchSpace, parse_space
from hpo_cli.tasks.synthetic import branin, hartmann6, levy

Objective = Callable[[Mapping[str, Any]], float]


@dataclass(frozen=True)
class Problem:
    name: str
    space: dict[str, dict[str, Any]]
    objective: Objective
    optimum: float


def _quadratic(values: list[float], centre: np.ndarray) -> float:
    return float(np.mean((np.asarray(values, dtype=float) - centre) ** 2))


def conditional_objective(p: Mapping[str, Any]) -> float:
    lr_term = 0.1 * ((math.log10(p["lr"]) + 2.0) / 2.0) ** 2  # best at lr = 1e-2
    if p["model"] == "linear":
        return lr_term + 0.4 + 0.3 * (p["l_c"] - 0.7) ** 2
    if p["model"] == "tree":
        depth = (p["t_depth"] - 1) / 9.0
        return lr_term + 0.2 + 2.0 * _quadratic([depth, p["t_a"], p["t_b"]], np.array([0.55, 0.2, 0.8]))
    width = (math.log2(p["n_width"]) - 4.0) / 6.0
    values = [width, p["n_drop"], p["n_a"], p["n_b"], p["n_c"], p["n_d"], (math.log10(p["n_decay"]) + 6) / 5]
    return lr_term + 3.5 * _quadratic(values, np.array([0.6, 0.3, 0.8, 0.15, 0.65, 0.4, 0.3]))


CONDITIONAL = {
    "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
    "model": {"type": "categorical", "choices": ["linear", "tree", "net"]},
    "l_c": {"type": "float", "low": 0.0, "high": 1.0, "when": {"model": "linear"}},
    "t_depth": {"type": "int", "low": 1, "high": 10, "when": {"model": "tree"}},
    "t_a": {"type": "float", "low": 0.0, "high": 1.0, "when": {"model": "tree"}},
    "t_b": {"type": "float", "low": 0.0, "high": 1.0, "when": {"model": "tree"}},
    "n_width": {"type": "int", "low": 16, "high": 1024, "log": True, "when": {"model": "net"}},
    "n_drop": {"type": "float", "low": 0.0, "high": 1.0, "when": {"model": "net"}},
    "n_a": {"type": "float", "low": 0.0, "high": 1.0, "when": {"model": "net"}},
    "n_b": {"type": "float", "low": 0.0, "high": 1.0, "when": {"model": "net"}},
    "n_c": {"type": "float", "low": 0.0, "high": 1.0, "when": {"model": "net"}},
    "n_d": {"type": "float", "low": 0.0, "high": 1.0, "when": {"model": "net"}},
    "n_decay": {"type": "float", "low": 1e-6, "high": 0.1, "log": True, "when": {"model": "net"}},
}

OPTIMIZER_PENALTY = {"sgd": 0.3, "adam": 0.0, "rmsprop": 0.1, "adagrad": 0.15}
OPTIMIZER_SCALE = {"sgd": 1.0, "adam": 2.0, "rmsprop": 3.0, "adagrad": 0.3}  # adam: best but sharp
OPTIMIZER_CENTRE = {
    "sgd": np.array([0.2, 0.8, 0.5, 0.3]),
    "adam": np.array([0.75, 0.25, 0.6, 0.1]),
    "rmsprop": np.array([0.4, 0.4, 0.9, 0.7]),
    "adagrad": np.array([0.5, 0.5, 0.5, 0.5]),
}
ACTIVATION_PENALTY = {"relu": 0.05, "tanh": 0.2, "gelu": 0.0}


def mixed_objective(p: Mapping[str, Any]) -> float:
    xs = [p["x1"], p["x2"], p["x3"], p["x4"]]
    continuous = OPTIMIZER_SCALE[p["optimizer"]] * _quadratic(xs, OPTIMIZER_CENTRE[p["optimizer"]])
    return (
        OPTIMIZER_PENALTY[p["optimizer"]]
        + ACTIVATION_PENALTY[p["activation"]]
        + continuous
        + 0.01 * (p["layers"] - 5) ** 2
    )


MIXED = {
    "optimizer": {"type": "categorical", "choices": list(OPTIMIZER_PENALTY)},
    "activation": {"type": "categorical", "choices": list(ACTIVATION_PENALTY)},
    **{f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(1, 5)},
    "layers": {"type": "int", "low": 1, "high": 8},
}


ADDITIVE_PENALTIES = {
    "kernel": {"rbf": 0.0, "linear": 0.4, "poly": 0.2, "sigmoid": 0.6, "laplace": 0.1},
    "solver": {"lbfgs": 0.25, "adam": 0.0, "sgd": 0.35},
    "scale": {"yes": 0.0, "no": 0.3},
}


def mixed_additive_objective(p: Mapping[str, Any]) -> float:
    """Penalties per choice plus a 4-D Rosenbrock valley (minimum 0 at x = 1)."""
    penalty = sum(table[p[name]] for name, table in ADDITIVE_PENALTIES.items())
    x = np.array([p[f"x{i}"] for i in range(4)])
    valley = float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))
    return penalty + 0.01 * valley


MIXED_ADDITIVE = {
    **{name: {"type": "categorical", "choices": list(table)} for name, table in ADDITIVE_PENALTIES.items()},
    **{f"x{i}": {"type": "float", "low": -2.0, "high": 2.0} for i in range(4)},
}


def styblinski_tang(x: np.ndarray) -> float:
    return float(0.5 * np.sum(x**4 - 16 * x**2 + 5 * x))


def _vector(name: str, low: float, high: float, dim: int) -> dict[str, dict[str, Any]]:
    return {f"{name}{i}": {"type": "float", "low": low, "high": high} for i in range(dim)}


def _xs(p: Mapping[str, Any], dim: int) -> np.ndarray:
    return np.array([p[f"x{i}"] for i in range(dim)], dtype=float)


PROBLEMS = {
    "conditional": Problem("conditional", CONDITIONAL, conditional_objective, 0.0),
    "mixed": Problem("mixed", MIXED, mixed_objective, 0.0),
    "mixed_additive": Problem("mixed_additive", MIXED_ADDITIVE, mixed_additive_objective, 0.0),
    "levy12": Problem("levy12", _vector("x", -10.0, 10.0, 12), lambda p: levy(_xs(p, 12)), 0.0),
    "styblinski12": Problem(
        "styblinski12", _vector("x", -5.0, 5.0, 12), lambda p: styblinski_tang(_xs(p, 12)), -39.16617 * 12
    ),
    "branin": Problem(
        "branin",
        {"x1": {"type": "float", "low": -5.0, "high": 10.0}, "x2": {"type": "float", "low": 0.0, "high": 15.0}},
        lambda p: branin(p["x1"], p["x2"]),
        0.397887,
    ),
    "hartmann6": Problem("hartmann6", _vector("x", 0.0, 1.0, 6), lambda p: hartmann6(_xs(p, 6)), -3.32237),
}

Run = tuple[list[float], list[float], list[str]]  # regret per trial, seconds per suggestion, branch


def run_ours(problem: Problem, space: SearchSpace, n: int, seed: int, overrides: list[str]) -> Run:
    cfg = compose_config(["strategy=tpe", f"seed={seed}", f"n_trials={n}", *overrides])
    strategy = build_strategy(cfg.strategy, space, read_settings(cfg))
    regrets, seconds, asked = ask_tell(strategy, problem.objective, problem.optimum, n)
    return regrets, seconds, [str(s.params.get("model", "")) for s in asked]


def suggest_optuna(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """Our space, define-by-run: a parameter is suggested when its condition holds."""
    values: dict[str, Any] = {}
    for p in space.params:
        if not space.is_active(p, values):
            continue
        if isinstance(p, CategoricalParam):
            values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif isinstance(p, IntParam):
            values[p.name] = trial.suggest_int(p.name, p.low, p.high, log=p.log)
        elif isinstance(p, FloatParam):
            values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
    return values


def run_optuna(problem: Problem, space: SearchSpace, n: int, seed: int, sampler: str = "TPESampler") -> Run:
    """Optuna's ``sampler`` (a class of ``optuna.samplers``) on the problem, define-by-run."""
    import optuna

    sampler_class = getattr(optuna.samplers, sampler)
    study = optuna.create_study(sampler=sampler_class(seed=seed), direction="minimize")
    regrets, seconds, branches = [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        trial = study.ask()
        params = suggest_optuna(trial, space)
        t1 = time.perf_counter()
        value = problem.objective(params)
        t2 = time.perf_counter()
        study.tell(trial, value)
        seconds.append(t1 - t0 + time.perf_counter() - t2)
        regrets.append(value - problem.optimum)
        branches.append(str(params.get("model", "")))
    return regrets, seconds, branches


def best_at(runs: list[Run], at: int) -> np.ndarray:
    return np.array([min(regrets[:at]) for regrets, _, _ in runs])


def branch_shares(runs: list[Run], n: int) -> dict[str, float]:
    late = [b for _, _, branches in runs for b in branches[n // 2 :]]
    return {b: late.count(b) / len(late) for b in sorted(set(late))}


def compare(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """Two-sided p-values: Mann-Whitney U (unpaired) and Wilcoxon signed-rank (paired by seed)."""
    mann_whitney = stats.mannwhitneyu(ours, theirs, alternative="two-sided").pvalue
    differences = ours - theirs
    wilcoxon = stats.wilcoxon(ours, theirs).pvalue if np.any(differences != 0) else 1.0
    return {"mann_whitney_p": float(mann_whitney), "wilcoxon_p": float(wilcoxon)}


def summarize(runs: list[Run], at: int) -> dict[str, float]:
    best = best_at(runs, at)
    q25, median, q75 = np.percentile(best, [25, 50, 75])
    seconds = float(np.median([np.mean(s) for _, s, _ in runs]))
    return {"median": float(median), "q25": float(q25), "q75": float(q75), "seconds": seconds}


def run_problem(
    problem: Problem, seeds: int, n: int, overrides: list[str], log: Callable[[str], None]
) -> dict[str, Any]:
    space = parse_space(problem.space, {})
    t0 = time.perf_counter()
    ours = [run_ours(problem, space, n, seed, overrides) for seed in range(seeds)]
    t_ours = time.perf_counter() - t0
    theirs = [run_optuna(problem, space, n, seed) for seed in range(seeds)]
    t_theirs = time.perf_counter() - t0 - t_ours
    result: dict[str, Any] = {"seeds": seeds, "trials": n, "wall_s": {"ours": t_ours, "optuna": t_theirs}}
    for at in sorted({min(50, n), n}):
        result[f"at_{at}"] = {
            "ours": summarize(ours, at),
            "optuna": summarize(theirs, at),
            **compare(best_at(ours, at), best_at(theirs, at)),
        }
    if "model" in problem.space:
        result["late_branch_share"] = {"ours": branch_shares(ours, n), "optuna": branch_shares(theirs, n)}
    last, early = result[f"at_{n}"], result[f"at_{min(50, n)}"]
    log(
        f"{problem.name:13s} at 50: ours {early['ours']['median']:.4g} optuna {early['optuna']['median']:.4g} "
        f"(MW p={early['mann_whitney_p']:.3g}); n={n} median regret ours {last['ours']['median']:.4g} "
        f"[{last['ours']['q25']:.3g}, {last['ours']['q75']:.3g}] optuna {last['optuna']['median']:.4g} "
        f"[{last['optuna']['q25']:.3g}, {last['optuna']['q75']:.3g}] MW p={last['mann_whitney_p']:.3g} "
        f"W p={last['wilcoxon_p']:.3g}  s/sugg {last['ours']['seconds']:.3g} vs {last['optuna']['seconds']:.3g}"
        + (f"  late branches {result['late_branch_share']}" if "late_branch_share" in result else "")
    )
    return result


def timing(trials: int, seed: int = 0) -> dict[str, float]:
    """Our seconds per suggestion (median over the 20 before each mark) at 100, 300 and ``trials``
    trials of history, on a 5-D sphere (g's window is 250 rest trials: flat beyond it)."""
    problem = Problem("sphere5", _vector("x", -1.0, 1.0, 5), lambda p: float(np.sum(_xs(p, 5) ** 2)), 0.0)
    _, seconds, _ = run_ours(problem, parse_space(problem.space, {}), trials, seed, [])
    marks = [m for m in (100, 300, trials) if m <= trials]
    return {f"at_{m}": float(np.median(seconds[m - 20 : m])) for m in marks}


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| problem | trials | seeds | ours median [q25, q75] | Optuna TPE median [q25, q75] | Mann-Whitney p "
        "| Wilcoxon p | ours s/sugg | Optuna s/sugg |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        for key in (k for k in result if k.startswith("at_")):
            r = result[key]
            o, t = r["ours"], r["optuna"]
            lines.append(
                f"| {name} | {key[3:]} | {result['seeds']} | {o['median']:.4g} [{o['q25']:.3g}, {o['q75']:.3g}] "
                f"| {t['median']:.4g} [{t['q25']:.3g}, {t['q75']:.3g}] | {r['mann_whitney_p']:.3g} "
                f"| {r['wilcoxon_p']:.3g} | {o['seconds'] * 1e3:.1f} ms | {t['seconds'] * 1e3:.1f} ms |"
            )
    for name, result in results.items():
        if "late_branch_share" in result:
            lines.append(f"\n{name}: share of the second half's trials per branch: {result['late_branch_share']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=15)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--override", action="append", default=[], help="a strategy override for ours")
    parser.add_argument("--timing", action="store_true", help="also our s/suggestion at 100 and 1,000 trials")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tpe_conditional.md"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("optuna").setLevel(logging.WARNING)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    overrides = [f"strategy.{o}" for o in args.override]
    results = {
        name: run_problem(PROBLEMS[name], args.seeds, args.trials, overrides, print)
        for name in args.problems.split(",")
        if name
    }
    text = table(results)
    if args.timing:
        timings = timing(1000)
        print("our s/suggestion " + ", ".join(f"{k}: {v:.4f}" for k, v in timings.items()))
        text += f"\nOur seconds per suggestion (5-D sphere): {timings}\n"
        results["timing"] = timings
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
