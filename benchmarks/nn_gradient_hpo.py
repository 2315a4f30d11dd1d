"""Gradient-based HPO on an MLP (bundled 5,000-image MNIST), in one run.

Part A — cost (seed 0, the unrolled methods' default space, ``task.inner_steps`` steps): seconds
of the inner training alone and of each hypergradient (reverse with the recomputing and the
graph tape, drmad, rmad_exact with the maclaurin convention), as ratios to the training, and the
bytes each holds: reverse T × p, drmad flat, rmad_exact's information buffer in bits per
parameter per step (≈ log2(1/μ)).

Part B — the headline commands against random search, TPE and the untuned network (``--seeds``
seeds): ``hpo run strategy=S task=mnist`` with no other flag for S in hoag, rmad, drmad, greedy;
random search and TPE over the same space at the same total inner-training steps (the best of
the first k trials of one 30-trial run, k = the gradient run's inner steps / the steps of one
trial); and the untuned default (the task's torch.optim training, no prior). Every arm's best is
*refit* by the task's standard training (``Task.refit``: one yardstick): median [IQR] refit test
accuracy, CPU seconds of the gradient run (one torch thread). The claims (issue 23): each
gradient strategy's median refit test accuracy ≥ random search's at equal steps and ≥ the
untuned default, in ≤ 300 CPU seconds.

Part C — many hyperparameters: per-parameter precisions (space=mnist_per_param, ~2·10^5) tuned
by rmad against the best single shared precision that random search finds with ``--random-trials``
trials (median over the seeds): the claim is a validation loss at most that.

Writes benchmarks/results/nn_gradient_hpo.{md,json}; exits 1 when a claim fails.

    python benchmarks/nn_gradient_hpo.py [--seeds 5] [--random-trials 64] [--gradient-trials 4]
                                         [--strategies hoag,rmad,drmad,greedy]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch
from publish import RESULTS, publish

from hpo_cli.build import compose_study
from hpo_cli.hypergrad import compute
from hpo_cli.runner import run_in_memory, run_with_direction
from hpo_cli.store import best_trial
from hpo_cli.tasks.bilevel import BilevelTask
from hpo_cli.trial import TrialRecord

COMMON = ["task=mnist"]
HEADLINE = ("hoag", "rmad", "drmad", "greedy")  # `hpo run strategy=S task=mnist`, no other flag
SPACE_OF = {"hoag": "mnist_implicit"}  # the others: mnist_gradient (what each strategy picks by default)
BASELINE_TRIALS = 30
EQUAL_TIME_TRIALS = 12  # at least this many baseline trials, for the equal-wall-clock rows
MAX_CPU_S = 300.0


def part_a() -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for convention in ("torch", "maclaurin"):
        study = compose_study(["strategy=rmad", *COMMON, f"task.convention={convention}"])
        task = study.task
        assert isinstance(task, BilevelTask)
        params = study.space.decode(torch.full((study.space.dim,), 0.5).numpy())
        layout = task.layout_of(params)
        problem, h = task.problem(layout), task.hyper_vector(layout, params)
        train_s = float("inf")
        for _ in range(4):  # the first call warms up; the fastest counts
            started = time.perf_counter()
            problem.train(h)
            train_s = min(train_s, time.perf_counter() - started)
        methods = ("rmad_exact",) if convention == "maclaurin" else ("reverse", "reverse_graph", "drmad")
        for name in methods:
            options = (
                {"tape": "graph" if name == "reverse_graph" else "recompute"} if name.startswith("reverse") else {}
            )
            method = "reverse" if name == "reverse_graph" else name
            compute(method, problem, h, **options)  # warm-up; then the fastest of three counts
            result = min((compute(method, problem, h, **options) for _ in range(3)), key=lambda r: r.cost.seconds)
            rows[name] = {
                "seconds": result.cost.seconds,
                "train_seconds": train_s,
                "ratio_to_training": result.cost.seconds / train_s,
                "held_bytes": result.cost.peak_bytes,
                "bits_per_param_step": result.extras.get("buffer_bits_per_param_step"),
                "expected_bits": result.extras.get("expected_bits_per_param_step"),
            }
        rows["parameters"] = problem.theta0.numel()
        rows["inner_steps"] = problem.n_steps
    return rows


def run(overrides: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    records = run_in_memory(overrides)
    seconds = time.perf_counter() - started
    done = [r for r in records if r.state == "complete" and r.value is not None]
    best = min(done, key=lambda r: r.value)  # type: ignore[arg-type,return-value]
    metrics = best.metrics or {}
    return {
        "best": best.value,
        "seconds": seconds,
        "inner_steps": sum((r.cost or {}).get("inner_steps", 0) for r in records),
        "hvp": sum((r.cost or {}).get("hvp", 0) for r in records),
        "test_accuracy": metrics.get("test_accuracy"),
        "test_accuracy_noisy": metrics.get("test_accuracy_pnoise_0.03"),
    }


def refit_of(overrides: list[str], records: list[TrialRecord], direction: str) -> dict[str, Any]:
    """The best of ``records`` trained again by the task's standard training. An arm whose trials
    all failed (e.g. a random learning rate that diverged) leaves its user no model: it scores 0."""
    best = best_trial(records, direction)
    if best is None:
        return {"best": None, "refit_test": 0.0, "refit_val": 0.0, "failed": len(records)}
    refit = compose_study(overrides).task.refit(best.params, best.budget) or {}
    return {"best": best.value, "refit_test": refit.get("test_accuracy"), "refit_val": refit.get("val_accuracy")}


def headline(name: str, seed: int) -> dict[str, Any]:
    overrides = [f"strategy={name}", *COMMON, f"seed={seed}"]
    cpu, wall = time.process_time(), time.perf_counter()
    records, direction = run_with_direction(overrides)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    steps = sum((r.cost or {}).get("inner_steps", 0) for r in records)
    return {**refit_of(overrides, records, direction), "cpu_s": cpu, "wall_s": wall, "inner_steps": steps}


def baseline(
    name: str, space: str, seed: int, budgets: dict[str, int], seconds: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """One run of ``name`` over ``space`` (at most ``BASELINE_TRIALS`` trials, as many as the
    largest budget can need); for each gradient arm the refit of the best of its first k trials,
    k = as many as fit in that arm's inner steps (at least one)."""
    base = [f"strategy={name}", *COMMON, f"space={space}", f"seed={seed}"]
    per_trial_at_least = compose_study(base).task.inner_steps  # an inner optimum takes more iterations
    by_steps = math.ceil(max(budgets.values()) / per_trial_at_least)
    trials = min(BASELINE_TRIALS, max(1, by_steps, EQUAL_TIME_TRIALS))
    overrides = [*base, f"n_trials={trials}"]
    records, direction = run_with_direction(overrides)
    spent = np.cumsum([(r.cost or {}).get("inner_steps", 0) for r in records])
    took = np.cumsum([r.seconds for r in records])
    out = {}
    for arm, steps in budgets.items():
        k = max(1, int(np.searchsorted(spent, steps, side="right")))  # the trials that fit in its steps
        out[arm] = {**refit_of(overrides, records[:k], direction), "trials": k}
        k = max(1, int(np.searchsorted(took, seconds[arm], side="right")))  # ... in its wall-clock time
        out[f"{arm} (equal time)"] = {**refit_of(overrides, records[:k], direction), "trials": k}
    return out


def seed_rows(seed: int, strategies: tuple[str, ...], baselines: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Part B for one seed: each arm's row (one torch thread: the arms of one seed run in turn)."""
    torch.set_num_threads(1)
    task = compose_study([*COMMON, f"seed={seed}"]).task
    untuned = task.refit({}) or {}
    rows: dict[str, dict[str, Any]] = {
        "untuned": {"refit_test": untuned.get("test_accuracy"), "refit_val": untuned.get("val_accuracy")}
    }
    runs = {name: headline(name, seed) for name in strategies}
    rows.update(runs)
    for space in sorted({SPACE_OF.get(n, "mnist_gradient") for n in strategies}):
        arms = [n for n in strategies if SPACE_OF.get(n, "mnist_gradient") == space]
        budgets = {n: runs[n]["inner_steps"] for n in arms}
        seconds = {n: runs[n]["wall_s"] for n in arms}
        for base in baselines:
            for arm, row in baseline(base, space, seed, budgets, seconds).items():
                rows[f"{base}@{arm}"] = row
    return rows


def part_b(
    seeds: int,
    strategies: tuple[str, ...],
    baselines: tuple[str, ...] = ("random", "tpe"),
    jobs: int = 1,
    done_file: Path | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Part B over ``seeds`` seeds, ``jobs`` seeds at a time (separate processes); rows in seed
    order. Each finished seed is written to ``done_file`` at once, and a seed already there (from
    the same strategies and baselines) is not run again: a failure or a kill loses one seed's work."""
    key = {"strategies": list(strategies), "baselines": list(baselines)}
    done: dict[str, Any] = {}
    if done_file is not None and done_file.exists():
        saved = json.loads(done_file.read_text())
        done = saved["seeds"] if saved.get("key") == key else {}

    def keep(seed: int, rows: dict[str, dict[str, Any]]) -> None:
        done[str(seed)] = rows
        if done_file is not None:
            done_file.parent.mkdir(parents=True, exist_ok=True)
            temporary = done_file.with_suffix(".tmp")
            temporary.write_text(json.dumps({"key": key, "seeds": done}, indent=1))
            temporary.replace(done_file)

    todo = [seed for seed in range(seeds) if str(seed) not in done]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(seed_rows, seed, strategies, baselines): seed for seed in todo}
            for future in as_completed(futures):
                keep(futures[future], future.result())
    else:
        for seed in todo:
            keep(seed, seed_rows(seed, strategies, baselines))
    per_seed = [done[str(seed)] for seed in range(seeds)]
    out: dict[str, list[dict[str, Any]]] = {}
    for rows in per_seed:
        for arm, row in rows.items():
            out.setdefault(arm, []).append(row)
    return out


def part_c(seeds: int, random_trials: int, gradient_trials: int) -> dict[str, list[dict[str, Any]]]:
    shared, per_param = [], []
    for seed in range(seeds):
        shared.append(
            run(["strategy=random", *COMMON, "space=mnist_shared", f"seed={seed}", f"n_trials={random_trials}"])
        )
        rmad = ["strategy=rmad", "strategy.lr=0.5", *COMMON, "space=mnist_per_param"]
        per_param.append(run([*rmad, f"seed={seed}", f"n_trials={gradient_trials}"]))
    return {"random_shared": shared, "rmad_per_param": per_param}


def median(rows: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in rows if r[key] is not None]
    return statistics.median(values) if values else float("nan")


def quartiles(rows: list[dict[str, Any]], key: str) -> str:
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return "-"
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return f"{q50:.4g} [{q25:.4g}, {q75:.4g}]"


def quality_table(b: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [
        "## The headline commands at equal inner-training steps (refit test accuracy, median [IQR] over seeds)",
        "",
        "| arm | refit test acc. | per seed | refit val acc. | best criterion | CPU s | inner steps | baseline trials |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in b.items():
        per_seed = ", ".join("no model" if r.get("failed") else f"{r['refit_test']:.3f}" for r in rows)
        lines.append(
            f"| {name} | {quartiles(rows, 'refit_test')} | {per_seed} | {quartiles(rows, 'refit_val')} | "
            f"{quartiles(rows, 'best')} | {quartiles(rows, 'cpu_s')} | {quartiles(rows, 'inner_steps')} | "
            f"{quartiles(rows, 'trials')} |"
        )
    lines += [
        "",
        "untuned: the task's default torch.optim training (adam, no prior). random@S, tpe@S: the best of the "
        "first k trials of one run over strategy S's space, k = as many as fit in S's inner steps (at least "
        "one); '(equal time)': as many as fit in S's wall-clock seconds (one process, one torch thread). "
        "'no model': every trial of the arm failed (a diverging learning rate); it counts as accuracy 0.",
    ]
    return lines


def quality_claims(b: dict[str, list[dict[str, Any]]]) -> list[str]:
    failed = []
    untuned = median(b["untuned"], "refit_test")
    for name in HEADLINE:
        if name not in b:
            continue
        ours = median(b[name], "refit_test")
        for other in (f"random@{name}", "untuned"):
            if other not in b:
                failed.append(f"{name}: {other} was not measured (the claim needs --baselines random)")
                continue
            theirs = untuned if other == "untuned" else median(b[other], "refit_test")
            if not ours >= theirs:
                failed.append(f"{name}: median refit test accuracy {ours:.4f} < {other}'s {theirs:.4f}")
        cpu = median(b[name], "cpu_s")
        if cpu > MAX_CPU_S:
            failed.append(f"{name}: {cpu:.0f} CPU s > {MAX_CPU_S:.0f}")
    return failed


def report(
    a: dict[str, Any], b: dict[str, list[dict[str, Any]]], c: dict[str, list[dict[str, Any]]]
) -> tuple[str, list[str]]:
    lines = [
        "## Cost of one hypergradient (seed 0, the unrolled methods' default space)",
        "",
        "| method | seconds | × training | held MB | bits / param / step |",
        "|---|---|---|---|---|",
    ]
    for name in ("reverse", "reverse_graph", "drmad", "rmad_exact"):
        r = a[name]
        bits = (
            ""
            if r["bits_per_param_step"] is None
            else f"{r['bits_per_param_step']:.3f} (log2(1/μ) = {r['expected_bits']:.3f})"
        )
        lines.append(
            f"| {name} | {r['seconds']:.2f} | {r['ratio_to_training']:.2f} | {r['held_bytes'] / 2**20:.1f} | {bits} |"
        )
    lines += [
        "",
        f"p = {a['parameters']:,} parameters, T = {a['inner_steps']} inner steps.",
        "",
        *quality_table(b),
    ]
    failed = []
    default_tape = "reverse_graph" if a["reverse_graph"]["held_bytes"] <= 1024 * 2**20 else "reverse"
    if a[default_tape]["ratio_to_training"] > 3.0:
        failed.append(
            f"reverse ({default_tape}, the default here) costs {a[default_tape]['ratio_to_training']:.2f} × training > 3"
        )
    failed += quality_claims(b)
    shared, per_param = median(c["random_shared"], "best"), median(c["rmad_per_param"], "best")
    lines += [
        "",
        "## Per-parameter precisions (median over seeds)",
        "",
        f"rmad over per-parameter precisions: best val loss {per_param:.4f}, its test accuracy "
        f"{median(c['rmad_per_param'], 'test_accuracy'):.4f}; random search over one shared precision: "
        f"{shared:.4f}, test accuracy {median(c['random_shared'], 'test_accuracy'):.4f}.",
    ]
    if per_param > shared:
        failed.append(f"per-parameter rmad {per_param:.4f} > shared random {shared:.4f}")
    return "\n".join(lines), failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--random-trials", type=int, default=64)
    parser.add_argument("--gradient-trials", type=int, default=4)
    parser.add_argument("--strategies", default=",".join(HEADLINE), help="the headline strategies of part B")
    parser.add_argument("--baselines", default="random,tpe", help="the black-box arms of part B")
    parser.add_argument(
        "--jobs", type=int, default=1, help="seeds run at a time, each in its own process with one torch thread"
    )
    parser.add_argument("--cost-only", action="store_true", help="part A only (printed, nothing written)")
    parser.add_argument(
        "--quality-only",
        action="store_true",
        help="part B only (--strategies over --seeds), written to nn_gradient_hpo_quality.{md,json}",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    a = {} if args.quality_only else part_a()
    if args.cost_only:
        print(json.dumps(a, indent=2))
        return 0
    b = part_b(
        args.seeds,
        tuple(args.strategies.split(",")),
        tuple(args.baselines.split(",")),
        args.jobs,
        RESULTS / "nn_gradient_hpo_seeds.json",  # finished seeds, kept across a failure or a kill
    )
    if args.quality_only:
        return publish("nn_gradient_hpo_quality", "\n".join(quality_table(b)), {"quality": b}, quality_claims(b))
    c = part_c(args.seeds, args.random_trials, args.gradient_trials)
    text, failed = report(a, b, c)
    return publish("nn_gradient_hpo", text, {"cost": a, "quality": b, "per_param": c}, failed)


if __name__ == "__main__":
    sys.exit(main())
