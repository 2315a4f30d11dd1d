"""Gradient-based HPO on an MLP (bundled 5,000-image MNIST), in one run.

Part A — cost (seed 0, per-layer log precisions, ``task.inner_steps`` steps): seconds of the
inner training alone and of each hypergradient (reverse with the recomputing and the graph tape,
drmad, rmad_exact with the maclaurin convention), as ratios to the training, and the bytes each
holds: reverse T × p, drmad flat, rmad_exact's information buffer in bits per parameter per step
(≈ log2(1/μ)).

Part B — quality against cost (``--seeds`` seeds): random search (``--random-trials`` trials)
against rmad, drmad and greedy over the per-layer precisions and the log learning rate
(space=mnist_per_layer_lr), each given ``--gradient-trials`` hyper-iterations (greedy twice as
many: each trains 10 of the T steps), and hoag over the precisions alone: median best validation
loss, wall seconds, inner steps and Hessian-vector products, and the median test accuracy and
test accuracy under parameter noise of each run's best trial. The claim: the best unrolled
method's median best validation loss is within 1 % of random search's, in at most a quarter of
its wall time. Hyperband is not in this table: its fidelity is the black-box trainer's epochs.

Part C — many hyperparameters: per-parameter precisions (space=mnist_per_param, ~2·10^5) tuned
by rmad against the best single shared precision that random search finds with the same number
of trials as part B (median over the seeds): the claim is a validation loss at most that.

Writes benchmarks/results/nn_gradient_hpo.{md,json}; exits 1 when a claim fails.

    python benchmarks/nn_gradient_hpo.py [--seeds 5] [--random-trials 64] [--gradient-trials 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import torch
from publish import publish

from hpo_cli.build import compose_study
from hpo_cli.hypergrad import compute
from hpo_cli.runner import run_in_memory
from hpo_cli.tasks.bilevel import BilevelTask

COMMON = ["task=mnist"]
# the outer Adam step in log space, 1.5 for the unrolled methods: chosen on a pilot (seeds 0, 1)
GRADIENT = {
    "rmad": ["strategy=rmad", "strategy.lr=1.5", "space=mnist_per_layer_lr"],
    "drmad": ["strategy=drmad", "strategy.lr=1.5", "space=mnist_per_layer_lr"],
    "greedy": ["strategy=greedy", "strategy.lr=1.5", "space=mnist_per_layer_lr"],
    "hoag": ["strategy=hoag", "space=mnist_per_layer"],  # lr does not move the optimum: precisions only
}
COMPARABLE = ("rmad", "drmad", "greedy")  # hoag's value is at its L-BFGS inner solution, not after T SGD steps


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
            options = {"tape": "graph"} if name == "reverse_graph" else {"tape": "recompute"}
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


def part_b(seeds: int, random_trials: int, gradient_trials: int) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in ("random", *GRADIENT)}
    for seed in range(seeds):
        base = [*COMMON, f"seed={seed}"]
        out["random"].append(run(["strategy=random", "space=mnist_per_layer_lr", *base, f"n_trials={random_trials}"]))
        for name, args in GRADIENT.items():
            trials = 2 * gradient_trials if name == "greedy" else gradient_trials  # greedy: 10 of T steps each
            out[name].append(run([*args, *base, f"n_trials={trials}"]))
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


def report(
    a: dict[str, Any], b: dict[str, list[dict[str, Any]]], c: dict[str, list[dict[str, Any]]]
) -> tuple[str, list[str]]:
    lines = [
        "## Cost of one hypergradient (seed 0, per-layer precisions)",
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
        "## Quality against cost (median over seeds)",
        "",
        "| strategy | best val loss | wall s | inner steps | HVPs | test acc. | test acc. (param noise σ=0.03) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rows in b.items():
        lines.append(
            f"| {name} | {median(rows, 'best'):.4f} | {median(rows, 'seconds'):.1f} | {median(rows, 'inner_steps'):.0f} | "
            f"{median(rows, 'hvp'):.0f} | {median(rows, 'test_accuracy'):.4f} | {median(rows, 'test_accuracy_noisy'):.4f} |"
        )
    failed = []
    default_tape = "reverse_graph" if a["reverse_graph"]["held_bytes"] <= 1024 * 2**20 else "reverse"
    if a[default_tape]["ratio_to_training"] > 3.0:
        failed.append(
            f"reverse ({default_tape}, the default here) costs {a[default_tape]['ratio_to_training']:.2f} × training > 3"
        )
    random_loss, random_s = median(b["random"], "best"), median(b["random"], "seconds")
    best_name = min(COMPARABLE, key=lambda n: median(b[n], "best"))
    loss, seconds = median(b[best_name], "best"), median(b[best_name], "seconds")
    if loss > 1.01 * random_loss or seconds > random_s / 4:
        failed.append(
            f"best gradient method {best_name}: loss {loss:.4f} vs random {random_loss:.4f}, {seconds:.1f} s vs {random_s:.1f} s"
        )
    shared, per_param = median(c["random_shared"], "best"), median(c["rmad_per_param"], "best")
    lines += [
        "",
        "## Per-parameter precisions (median over seeds)",
        "",
        f"rmad over per-parameter precisions: best val loss {per_param:.4f}, its test accuracy "
        f"{median(c['rmad_per_param'], 'test_accuracy'):.4f}; random search over one shared precision: "
        f"{shared:.4f}, test accuracy {median(c['random_shared'], 'test_accuracy'):.4f}.",
        "",
        "random and the unrolled methods search space=mnist_per_layer_lr; hoag searches mnist_per_layer and its "
        "value is Q at its L-BFGS inner solution, so it is reported, not compared.",
    ]
    if per_param > shared:
        failed.append(f"per-parameter rmad {per_param:.4f} > shared random {shared:.4f}")
    return "\n".join(lines), failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--random-trials", type=int, default=64)
    parser.add_argument("--gradient-trials", type=int, default=4)
    parser.add_argument("--cost-only", action="store_true", help="part A only (printed, nothing written)")
    args = parser.parse_args()
    a = part_a()
    if args.cost_only:
        print(json.dumps(a, indent=2))
        return 0
    b = part_b(args.seeds, args.random_trials, args.gradient_trials)
    c = part_c(args.seeds, args.random_trials, args.gradient_trials)
    text, failed = report(a, b, c)
    return publish("nn_gradient_hpo", text, {"cost": a, "quality": b, "per_param": c}, failed)


if __name__ == "__main__":
    sys.exit(main())
