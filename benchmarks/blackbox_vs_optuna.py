"""Our black-box strategies against Optuna's samplers on branin and hartmann6, in one run.

Ours: random, sobol, gp_bo (50 evaluations), tpe, evolution and cmaes (200), and random at 200 as
evolution's reference. Optuna: RandomSampler, QMCSampler, GPSampler (50), TPESampler and
CmaEsSampler (200). Both TPEs run over ``--tpe-seeds`` seeds (30): their regrets spread widely,
and ten seeds decide a comparison of medians by chance. Same objective code (our task's ``evaluate``), same seeds, same bounds.

Per (function, strategy): median and IQR of simple regret over the seeds, also at 50 evaluations
for the 200-evaluation runs, and the median seconds per suggestion — the time inside ask() and
tell() (ours) or study.ask(), the suggest_* calls and study.tell() (Optuna): the sampler's own
cost, not the objective's. Both sides are driven by the same plain ask/tell loop.

Claims under test (exit status 1 when one fails):
* gp_bo's median regret at 50 evaluations ≤ GPSampler's, on both functions;
* gp_bo's median seconds per suggestion ≤ GPSampler's, on both functions;
* evolution's median regret at 200 evaluations < random's at 200, on hartmann6;
* tpe's median regret ≤ TPESampler's at 50 and at 200 evaluations, and its median seconds per
  suggestion ≤ TPESampler's, on both functions (both with their defaults).

    python benchmarks/blackbox_vs_optuna.py [--seeds 10] [--tpe-seeds 30] [--out benchmarks/results/blackbox_vs_optuna.md]

Optuna is a benchmark-only extra (`pip install '.[bench]'`; `make bench-blackbox` installs it).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hpo_cli.build import compose_study
from hpo_cli.tasks.base import Task
from hpo_cli.trial import Observation, TrialState

FUNCTIONS = ("branin", "hartmann6")
OURS = {"random": 50, "sobol": 50, "gp_bo": 50, "tpe": 200, "evolution": 200, "cmaes": 200, "random@200": 200}
OPTUNA = {"RandomSampler": 50, "QMCSampler": 50, "TPESampler": 200, "GPSampler": 50, "CmaEsSampler": 200}
TPE_ROWS = ("ours:tpe", "optuna:TPESampler")  # run over --tpe-seeds: TPE's regret spreads widely
Run = tuple[list[float], list[float]]  # regret per evaluation, seconds per suggestion


def run_ours(function: str, strategy_name: str, n: int, seed: int) -> Run:
    name = strategy_name.split("@")[0]
    study = compose_study([f"strategy={name}", f"task={function}", f"seed={seed}", f"n_trials={n}"])
    task, strategy = study.task, study.strategy
    regrets, seconds = [], []
    while len(regrets) < n:
        t0 = time.perf_counter()
        (suggestion,) = strategy.ask(1)
        t1 = time.perf_counter()
        evaluation = task.evaluate(suggestion.params)
        t2 = time.perf_counter()
        strategy.tell([Observation(suggestion, TrialState.COMPLETE, evaluation.value, evaluation.metrics)])
        seconds.append(t1 - t0 + time.perf_counter() - t2)
        regrets.append(float(evaluation.metrics["regret"]))
    return regrets, seconds


def _optuna_sampler(name: str, seed: int) -> Any:
    import optuna

    if name == "QMCSampler":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True)
    return getattr(optuna.samplers, name)(seed=seed)


def _optuna_params(function: str, trial: Any) -> dict[str, Any]:
    if function == "branin":
        return {"x1": trial.suggest_float("x1", -5.0, 10.0), "x2": trial.suggest_float("x2", 0.0, 15.0)}
    return {"x": [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)]}


def run_optuna(function: str, sampler_name: str, n: int, seed: int, task: Task) -> Run:
    import optuna

    study = optuna.create_study(sampler=_optuna_sampler(sampler_name, seed), direction="minimize")
    regrets, seconds = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        trial = study.ask()
        params = _optuna_params(function, trial)
        t1 = time.perf_counter()
        evaluation = task.evaluate(params)
        t2 = time.perf_counter()
        study.tell(trial, evaluation.value)
        seconds.append(t1 - t0 + time.perf_counter() - t2)
        regrets.append(float(evaluation.metrics["regret"]))
    return regrets, seconds


def summarize(runs: list[Run], at: int) -> dict[str, float]:
    best = np.array([min(regrets[:at]) for regrets, _ in runs])
    q25, median, q75 = np.percentile(best, [25, 50, 75])
    return {
        "median": float(median),
        "q25": float(q25),
        "q75": float(q75),
        "seconds": float(np.median([np.mean(seconds) for _, seconds in runs])),
    }


def run_all(seeds: int, tpe_seeds: int, log: Callable[[str], None]) -> dict[str, dict[str, dict[str, Any]]]:
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for function in FUNCTIONS:
        task = compose_study([f"task={function}"]).task
        results[function] = {}
        entries = [(f"ours:{k}", v) for k, v in OURS.items()] + [(f"optuna:{k}", v) for k, v in OPTUNA.items()]
        for label, n in entries:
            t0 = time.perf_counter()
            runs = []
            for seed in range(tpe_seeds if label in TPE_ROWS else seeds):
                if label.startswith("ours:"):
                    runs.append(run_ours(function, label[5:], n, seed))
                else:
                    runs.append(run_optuna(function, label[7:], n, seed, task))
            entry: dict[str, Any] = {"evaluations": n, "seeds": len(runs), "at_n": summarize(runs, n)}
            if n > 50:
                entry["at_50"] = summarize(runs, 50)
            results[function][label] = entry
            log(
                f"{function:10s} {label:22s} n={n:3d} median regret {entry['at_n']['median']:.3g} "
                f"s/suggestion {entry['at_n']['seconds']:.2g}  ({time.perf_counter() - t0:.0f} s)"
            )
    return results


def table(results: dict[str, dict[str, dict[str, Any]]], seeds: int) -> str:
    lines = [
        f"Simple regret over {seeds} seeds (the TPE rows: over the seeds in their column; median [q25, q75]) and median seconds per suggestion.",
        "",
        "| function | strategy | seeds | evals | median regret | IQR | regret at 50 | s / suggestion |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for function, rows in results.items():
        for label, e in rows.items():
            s = e["at_n"]
            at50 = f"{e['at_50']['median']:.3g}" if "at_50" in e else ""
            lines.append(
                f"| {function} | {label} | {e['seeds']} | {e['evaluations']} | {s['median']:.3g} | "
                f"[{s['q25']:.3g}, {s['q75']:.3g}] | {at50} | {s['seconds']:.2g} |"
            )
    return "\n".join(lines)


def claims(results: dict[str, dict[str, dict[str, Any]]]) -> list[tuple[str, bool]]:
    out = []
    for function in FUNCTIONS:
        ours, theirs = results[function]["ours:gp_bo"]["at_n"], results[function]["optuna:GPSampler"]["at_n"]
        out.append(
            (
                f"{function}: gp_bo median regret {ours['median']:.3g} <= GPSampler {theirs['median']:.3g}",
                ours["median"] <= theirs["median"],
            )
        )
        out.append(
            (
                f"{function}: gp_bo s/suggestion {ours['seconds']:.4f} <= GPSampler {theirs['seconds']:.4f}",
                ours["seconds"] <= theirs["seconds"],
            )
        )
        out += tpe_claims(function, results[function]["ours:tpe"], results[function]["optuna:TPESampler"])
    evo, rnd = results["hartmann6"]["ours:evolution"]["at_n"], results["hartmann6"]["ours:random@200"]["at_n"]
    out.append(
        (
            f"hartmann6: evolution median regret at 200 {evo['median']:.3g} < random {rnd['median']:.3g}",
            evo["median"] < rnd["median"],
        )
    )
    return out


def tpe_claims(function: str, ours: dict[str, Any], theirs: dict[str, Any]) -> list[tuple[str, bool]]:
    out = []
    for at in ("at_50", "at_n"):
        evaluations = 50 if at == "at_50" else ours["evaluations"]
        a, b = ours[at]["median"], theirs[at]["median"]
        out.append((f"{function}: tpe median regret at {evaluations} {a:.3g} <= TPESampler {b:.3g}", a <= b))
    a, b = ours["at_n"]["seconds"], theirs["at_n"]["seconds"]
    out.append((f"{function}: tpe s/suggestion {a:.4f} <= TPESampler {b:.4f}", a <= b))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--tpe-seeds", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/blackbox_vs_optuna.md"))
    args = parser.parse_args()
    try:
        import optuna
    except ImportError:
        print("blackbox_vs_optuna: needs optuna (pip install '.[bench]', or run `make bench-blackbox`)")
        return 2
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.getLogger("hpo_cli").setLevel(logging.ERROR)  # e.g. sobol's power-of-2 note
    print(f"optuna {optuna.__version__}, {args.seeds} seeds ({args.tpe_seeds} for the TPEs)")
    t0 = time.perf_counter()
    results = run_all(args.seeds, args.tpe_seeds, lambda line: print(line, flush=True))
    report = table(results, args.seeds)
    verdicts = claims(results)
    report += "\n\n" + "\n".join(f"- {'PASS' if ok else 'FAIL'}: {text}" for text, ok in verdicts)
    report += f"\n\noptuna {optuna.__version__}; total {time.perf_counter() - t0:.0f} s\n"
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    return 0 if all(ok for _, ok in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
