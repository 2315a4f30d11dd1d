"""Our cmaes and gp_bo against Optuna's CmaEsSampler and GPSampler on a suite of held-out-style functions.

The suite (``PROBLEMS``): multimodal (ackley, rastrigin, levy, styblinski-tang, hartmann6, branin),
ill-conditioned (an ellipsoid of condition 1e6, rosenbrock), 12-D variants, and a mixed space
(floats, ints and a categorical). Every function but branin and hartmann6 is shifted so that its
optimum is off the box's centre (both CMA-ES start there). Optionally (``--bbob``), COCO's BBOB
f10 (ellipsoid) and f15 (Rastrigin) in 5-D through ``cocoex`` (``pip install coco-experiment``).

Per (function, pair) — ours against Optuna's namesake, same objective code, same seeds, the same
plain ask/tell loop: the median simple regret over ``--seeds`` seeds at the budget (cmaes: 50, 100
and 200 evaluations; gp_bo: 50), a two-sided Mann–Whitney U p-value (the seeds are not paired:
each side draws its own numbers), and the median seconds per suggestion (the sampler's own time in
ask and tell, not the objective's). A row is a win when our median is lower.

    python benchmarks/cmaes_gp_vs_optuna.py [--seeds 7] [--pairs cmaes gp_bo] [--functions ackley5 ...]
        [--bbob] [--out benchmarks/results/cmaes_gp_vs_optuna.md]
    python benchmarks/cmaes_gp_vs_optuna.py --pairs cmaes --ours 'cmaes strategy.sigma0=0.3'   # a variant

Optuna is a benchmark-only extra (``pip install '.[bench]'``; ``make bench-cmaes-gp`` installs it).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ask_tell import ask_tell

from hpo_cli.build import build_strategy, compose_config
from hpo_cli.settings import read_settings
from hpo_cli.space.parse import parse_space
from hpo_cli.tasks.synthetic import branin, hartmann6

Objective = Callable[[Mapping[str, Any]], float]
Run = tuple[list[float], list[float]]  # regret per evaluation, seconds per suggestion
BUDGETS = {"cmaes": (50, 100, 200), "gp_bo": (50,)}
NAMESAKE = {"cmaes": "CmaEsSampler", "gp_bo": "GPSampler"}


@dataclass(frozen=True)
class Problem:
    """A function on a space (our space's raw mapping), with its known optimum."""

    name: str
    space: dict[str, dict[str, Any]]
    objective: Objective
    optimum: float = 0.0
    pairs: tuple[str, ...] = ("cmaes", "gp_bo")
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def box(d: int, low: float, high: float) -> dict[str, dict[str, Any]]:
    return {f"x{i}": {"type": "float", "low": low, "high": high} for i in range(d)}


def vector(params: Mapping[str, Any], d: int) -> np.ndarray:
    return np.array([float(params[f"x{i}"]) for i in range(d)])


def shift_for(name: str, d: int, half_width: float) -> np.ndarray:
    """A fixed shift of the optimum away from the centre: up to 60 % of the half width."""
    rng = np.random.default_rng(sum(map(ord, name)))
    return rng.uniform(-0.6, 0.6, d) * half_width


def ackley(z: np.ndarray) -> float:
    d = len(z)
    return float(
        -20 * math.exp(-0.2 * math.sqrt(float(z @ z) / d))
        - math.exp(float(np.sum(np.cos(2 * math.pi * z))) / d)
        + 20
        + math.e
    )


def rastrigin(z: np.ndarray) -> float:
    return float(10 * len(z) + np.sum(z**2 - 10 * np.cos(2 * math.pi * z)))


def styblinski_tang(z: np.ndarray) -> float:
    return float(0.5 * np.sum(z**4 - 16 * z**2 + 5 * z))


STYBLINSKI_MIN_PER_DIM = -39.16616570377142  # at z = -2.903534


def ellipsoid(z: np.ndarray, condition: float = 1e6) -> float:
    d = len(z)
    weights = condition ** (np.arange(d) / max(d - 1, 1))
    return float(np.sum(weights * z**2))


def rosenbrock(z: np.ndarray) -> float:
    return float(np.sum(100.0 * (z[1:] - z[:-1] ** 2) ** 2 + (1.0 - z[:-1]) ** 2))


def levy(z: np.ndarray) -> float:
    w = 1.0 + (z - 1.0) / 4.0
    middle = np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2))
    tail = (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
    return float(math.sin(math.pi * w[0]) ** 2 + middle + tail)


def shifted(name: str, f: Callable[[np.ndarray], float], d: int, low: float, high: float, **kw: Any) -> Problem:
    shift = shift_for(name, d, (high - low) / 2)
    return Problem(name, box(d, low, high), lambda p: f(vector(p, d) - shift), **kw)


def mixed_objective(params: Mapping[str, Any]) -> float:
    """Floats, ints and a categorical: a shifted sphere whose offset and scale the discrete choices set."""
    x = np.array([params["a"], params["b"], params["c"]])
    offset = {"relu": 0.0, "tanh": 0.8, "gelu": 0.3, "sigmoid": 1.5}[params["act"]]
    return float(np.sum((x - 0.7) ** 2) + 0.1 * (params["layers"] - 3) ** 2 + 0.05 * abs(params["units"] - 37) + offset)


MIXED_SPACE = {
    "a": {"type": "float", "low": -2.0, "high": 2.0},
    "b": {"type": "float", "low": -2.0, "high": 2.0},
    "c": {"type": "float", "low": -2.0, "high": 2.0},
    "layers": {"type": "int", "low": 1, "high": 8},
    "units": {"type": "int", "low": 1, "high": 64},
    "act": {"type": "categorical", "choices": ["relu", "tanh", "gelu", "sigmoid"]},
}


def problems() -> dict[str, Problem]:
    out = [
        Problem(
            "branin",
            {"x1": {"type": "float", "low": -5.0, "high": 10.0}, "x2": {"type": "float", "low": 0.0, "high": 15.0}},
            lambda p: branin(float(p["x1"]), float(p["x2"])),
            optimum=0.397887,
        ),
        Problem("hartmann6", box(6, 0.0, 1.0), lambda p: hartmann6(vector(p, 6)), optimum=-3.32237),
        shifted("ackley5", ackley, 5, -32.768, 32.768),
        shifted("rastrigin5", rastrigin, 5, -5.12, 5.12),
        shifted("ellipsoid5", ellipsoid, 5, -5.0, 5.0),
        shifted("rosenbrock4", lambda z: rosenbrock(z + 1.0), 4, -5.0, 10.0),
        shifted("levy6", levy, 6, -10.0, 10.0),
        Problem(
            "styblinski4",
            box(4, -5.0, 5.0),
            lambda p: styblinski_tang(vector(p, 4)),
            optimum=4 * STYBLINSKI_MIN_PER_DIM,
        ),
        shifted("ackley12", ackley, 12, -32.768, 32.768),
        shifted("rastrigin12", rastrigin, 12, -5.12, 5.12),
        shifted("ellipsoid12", ellipsoid, 12, -5.0, 5.0),
        Problem("mixed6", MIXED_SPACE, mixed_objective),
    ]
    return {p.name: p for p in out}


def bbob_problems(dimension: int = 5, functions: tuple[int, ...] = (10, 15), instance: int = 1) -> dict[str, Problem]:
    """COCO's BBOB functions through cocoex, on its box [-5, 5]^d; regret f − f_opt."""
    import os
    import tempfile

    import cocoex

    options = f"dimensions:{dimension} function_indices:{','.join(map(str, functions))} instance_indices:{instance}"
    out = {}
    suite = cocoex.Suite("bbob", "", options)
    for function in functions:  # get_problem: the problem outlives the next one (iterating frees it)
        problem = suite.get_problem_by_function_dimension_instance(function, dimension, instance)
        name = f"bbob_f{problem.id_function}_{dimension}d"
        with tempfile.TemporaryDirectory() as folder:  # cocoex writes the optimum's location to a file
            here = os.getcwd()
            os.chdir(folder)
            try:
                problem._best_parameter("print")
                optimum = float(problem(np.loadtxt("._bbob_problem_best_parameter.txt")))
            finally:
                os.chdir(here)
        out[name] = Problem(
            name,
            box(dimension, -5.0, 5.0),
            lambda p, f=problem, _=suite: float(f(vector(p, dimension))),
            optimum=optimum,
        )
    return out


# -- ours -------------------------------------------------------------------------------------------


def run_ours(problem: Problem, spec: str, n: int, seed: int) -> Run:
    name, *overrides = spec.split()
    cfg = compose_config([f"strategy={name}", f"seed={seed}", f"n_trials={n}", *overrides])
    strategy = build_strategy(cfg.strategy, parse_space(problem.space, {}), read_settings(cfg))
    regrets, seconds, _ = ask_tell(strategy, problem.objective, problem.optimum, n)
    return regrets, seconds


# -- optuna -----------------------------------------------------------------------------------------


def optuna_params(space: Mapping[str, Mapping[str, Any]], trial: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, p in space.items():
        if p["type"] == "float":
            params[name] = trial.suggest_float(name, p["low"], p["high"], log=p.get("log", False))
        elif p["type"] == "int":
            params[name] = trial.suggest_int(name, p["low"], p["high"], log=p.get("log", False))
        else:
            params[name] = trial.suggest_categorical(name, p["choices"])
    return params


def run_optuna(problem: Problem, sampler_name: str, n: int, seed: int) -> Run:
    import optuna

    sampler = getattr(optuna.samplers, sampler_name)(seed=seed)
    study = optuna.create_study(sampler=sampler, direction="minimize")
    regrets, seconds = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        trial = study.ask()
        params = optuna_params(problem.space, trial)
        t1 = time.perf_counter()
        value = problem.objective(params)
        t2 = time.perf_counter()
        study.tell(trial, value)
        seconds.append(t1 - t0 + time.perf_counter() - t2)
        regrets.append(value - problem.optimum)
    return regrets, seconds


# -- the comparison ---------------------------------------------------------------------------------


def best_at(runs: list[Run], at: int) -> list[float]:
    return [float(min(regrets[:at])) for regrets, _ in runs]


def compare(ours: list[float], theirs: list[float]) -> dict[str, float]:
    from scipy.stats import mannwhitneyu

    same = np.allclose(ours, theirs, rtol=0, atol=0)
    p = 1.0 if same else float(mannwhitneyu(ours, theirs, alternative="two-sided").pvalue)
    return {"ours": float(np.median(ours)), "theirs": float(np.median(theirs)), "p": p}


class OptunaCache:
    """Optuna's runs by (function, sampler, evaluations, seed), kept between invocations in
    ``folder``/optuna_runs_SAMPLER.json (``--reuse-optuna``): they do not change while ours are tuned."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.runs: dict[str, dict[str, Any]] = {}

    def _file(self, sampler: str) -> Path | None:
        return None if self.folder is None else self.folder / f"optuna_runs_{sampler}.json"

    def run(self, problem: Problem, sampler: str, n: int, seed: int) -> Run:
        path = self._file(sampler)
        if sampler not in self.runs:
            self.runs[sampler] = json.loads(path.read_text()) if path is not None and path.exists() else {}
        runs, key = self.runs[sampler], f"{problem.name}/{n}/{seed}"
        if key not in runs:
            runs[key] = run_optuna(problem, sampler, n, seed)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(runs))
        regrets, seconds = runs[key]
        return list(regrets), list(seconds)


def run_pair(
    problem: Problem, pair: str, spec: str, seeds: int, cache: OptunaCache, log: Callable[[str], None]
) -> dict[str, Any]:
    budget = max(BUDGETS[pair])
    t0 = time.perf_counter()
    ours = [run_ours(problem, spec, budget, seed) for seed in range(seeds)]
    t1 = time.perf_counter()
    theirs = [cache.run(problem, NAMESAKE[pair], budget, seed) for seed in range(seeds)]
    entry: dict[str, Any] = {
        "spec": spec,
        "seconds_ours": float(np.median([np.mean(s) for _, s in ours])),
        "seconds_theirs": float(np.median([np.mean(s) for _, s in theirs])),
        "at": {},
    }
    for at in BUDGETS[pair]:
        entry["at"][at] = {**compare(best_at(ours, at), best_at(theirs, at)), "ours_all": best_at(ours, at)}
    last = entry["at"][budget]
    log(
        f"{problem.name:14s} {spec:40s} vs {NAMESAKE[pair]:13s} n={budget}: {last['ours']:.4g} vs {last['theirs']:.4g} "
        f"p={last['p']:.3f}  s/sugg {entry['seconds_ours']:.3g} vs {entry['seconds_theirs']:.3g} "
        f"({t1 - t0:.0f} s + {time.perf_counter() - t1:.0f} s)"
    )
    return entry


def table(results: dict[str, dict[str, dict[str, Any]]], seeds: int) -> str:
    lines = [
        f"Median simple regret over {seeds} seeds; p: two-sided Mann–Whitney U; s/sugg: median seconds per suggestion.",
        "",
        "| function | ours | Optuna | evals | ours median | Optuna median | result | p | s/sugg ours | s/sugg Optuna |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for function, pairs in results.items():
        for pair, e in pairs.items():
            for at, s in e["at"].items():
                verdict = "win" if s["ours"] < s["theirs"] else "tie" if s["ours"] == s["theirs"] else "loss"
                lines.append(
                    f"| {function} | {e['spec']} | {NAMESAKE[pair]} | {at} | {s['ours']:.3g} | {s['theirs']:.3g} | "
                    f"{verdict} | {s['p']:.3f} | {e['seconds_ours']:.2g} | {e['seconds_theirs']:.2g} |"
                )
    return "\n".join(lines)


def tally(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = []
    for pair in BUDGETS:
        for at in BUDGETS[pair]:
            rows = [e["at"][at] for pairs in results.values() for p, e in pairs.items() if p == pair and at in e["at"]]
            if not rows:
                continue
            wins = sum(r["ours"] < r["theirs"] for r in rows)
            losses = sum(r["ours"] > r["theirs"] for r in rows)
            sig_w = sum(r["ours"] < r["theirs"] and r["p"] < 0.05 for r in rows)
            sig_l = sum(r["ours"] > r["theirs"] and r["p"] < 0.05 for r in rows)
            lines.append(
                f"- {pair} vs {NAMESAKE[pair]} at {at} evaluations: won {wins}, lost {losses} "
                f"(at p < 0.05: won {sig_w}, lost {sig_l}) of {len(rows)} functions"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=7)
    parser.add_argument("--pairs", nargs="+", default=list(BUDGETS), choices=list(BUDGETS))
    parser.add_argument("--functions", nargs="+", default=None, help="default: the whole suite")
    parser.add_argument("--ours", nargs="+", default=None, help="strategy specs ('NAME override ...'), one per pair")
    parser.add_argument("--bbob", action="store_true", help="add COCO's BBOB f10 and f15 in 5-D (needs cocoex)")
    parser.add_argument(
        "--reuse-optuna",
        action="store_true",
        help="keep Optuna's runs in benchmarks/results/optuna_runs_*.json and reuse them",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cmaes_gp_vs_optuna.md"))
    args = parser.parse_args()
    try:
        import optuna
    except ImportError:
        print("cmaes_gp_vs_optuna: needs optuna (pip install '.[bench]', or run `make bench-cmaes-gp`)")
        return 2
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.getLogger("hpo_cli").setLevel(logging.ERROR)
    suite = problems()
    if args.bbob:
        try:
            suite.update(bbob_problems())
        except ImportError:
            print("cmaes_gp_vs_optuna: --bbob needs cocoex (pip install coco-experiment); running without it")
    names = args.functions or list(suite)
    unknown = [n for n in names if n not in suite]
    if unknown:
        print(f"--functions: unknown {', '.join(unknown)} (known: {', '.join(suite)})")
        return 2
    specs = dict(zip(args.pairs, args.ours or args.pairs, strict=True))
    print(f"optuna {optuna.__version__}, {args.seeds} seeds, functions: {', '.join(names)}", flush=True)
    t0 = time.perf_counter()
    cache = OptunaCache(Path("benchmarks/results") if args.reuse_optuna else None)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name in names:
        problem = suite[name]
        results[name] = {
            pair: run_pair(problem, pair, specs[pair], args.seeds, cache, lambda line: print(line, flush=True))
            for pair in args.pairs
            if pair in problem.pairs
        }
    report = table(results, args.seeds) + "\n\n" + tally(results)
    report += f"\n\noptuna {optuna.__version__}; total {time.perf_counter() - t0:.0f} s\n"
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
