"""The classic trade-offs of the hypergradient methods, measured side by side in one run.

1. Time against the number of hyperparameters m (softmax regression on digits, p = 650
   parameters, T = 40 steps; m = 1 shared precision, 650 per-weight precisions, and 650 + 899
   with per-example weights added): forward mode grows with m, reverse mode stays flat.

2. Memory against the number of inner steps T (held tensor bytes, polynomial task, p = 12):
   reverse grows with T·p, DrMAD and forward stay flat, rmad_exact holds only its information
   buffer, whose size in bits per parameter per step is compared with log2(1/μ).
3. Approximations: cosine similarity of DrMAD's and greedy's hypergradients to the exact one,
   and whether they lower Q on the polynomial task.

    python benchmarks/tradeoffs.py [--out benchmarks/results/tradeoffs.md]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from hpo_cli.hypergrad import compute
from hpo_cli.hypergrad.unrolled import one_step
from hpo_cli.runner import run_in_memory
from hpo_cli.tasks.polynomial import PolynomialTask
from hpo_cli.tasks.softmax import SoftmaxTask


def timed(method: str, problem: object, h: torch.Tensor, repeats: int = 3) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        compute(method, problem, h)  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - t0)
    return best


def time_vs_hyperparameters() -> str:
    task = SoftmaxTask(seed=0, inner_steps=40)
    n = task.model().n
    spaces = {
        1: {"log_precision": -2.0},
        650: {"log_precision": [-2.0] * 650},
        650 + n: {"log_precision": [-2.0] * 650, "example_weights": [1.0] * n},
    }
    lines = [
        "| m (hyperparameters) | reverse s | forward s | forward / reverse |",
        "|---:|---:|---:|---:|",
    ]
    for m, params in spaces.items():
        layout = task.layout_of(params)
        problem, h = task.problem(layout), task.hyper_vector(layout, params)
        rev, fwd = timed("reverse", problem, h), timed("forward", problem, h, repeats=1)
        lines.append(f"| {m} | {rev:.3f} | {fwd:.3f} | {fwd / rev:.1f} |")
    return "\n".join(lines)


def memory_vs_steps() -> str:
    lines = [
        "| T (inner steps) | reverse bytes | forward bytes | drmad bytes | rmad_exact bytes | rmad_exact bits/param/step | log2(1/μ) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for steps in (50, 200, 800):
        task = PolynomialTask(seed=0, inner_steps=steps, convention="maclaurin", inner_lr=0.1)
        params = {"log_precision": [4.0] * 12}
        layout = task.layout_of(params)
        problem, h = task.problem(layout), task.hyper_vector(layout, params)
        held = {m: compute(m, problem, h) for m in ("reverse", "forward", "drmad", "rmad_exact")}
        exact = held["rmad_exact"].extras
        lines.append(
            f"| {steps} | {held['reverse'].cost.peak_bytes} | {held['forward'].cost.peak_bytes} | {held['drmad'].cost.peak_bytes} "
            f"| {held['rmad_exact'].cost.peak_bytes} | {exact['buffer_bits_per_param_step']:.4f} | {exact['expected_bits_per_param_step']:.4f} |"
        )
    lines.append("")
    lines.append("rmad_exact at other momenta (T = 400):")
    lines.append("")
    lines.append("| μ | bits/param/step | log2(1/μ) |")
    lines.append("|---:|---:|---:|")
    for mu in (0.5, 0.9, 0.99):
        task = PolynomialTask(seed=0, inner_steps=400, convention="maclaurin", inner_lr=0.1, inner_momentum=mu)
        params = {"log_precision": [4.0] * 12}
        layout = task.layout_of(params)
        extras = compute("rmad_exact", task.problem(layout), task.hyper_vector(layout, params)).extras
        lines.append(f"| {mu} | {extras['buffer_bits_per_param_step']:.4f} | {math.log2(1 / mu):.4f} |")
    return "\n".join(lines)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def approximations() -> str:
    task = PolynomialTask(seed=0)
    lines = [
        "| approximation | cosine to exact (median over 5 points) | lowers Q on polynomial |",
        "|---|---:|---|",
    ]
    rng = np.random.default_rng(0)
    points = [{"log_precision": list(rng.uniform(0, 8, 12))} for _ in range(5)]
    drmad_cos, greedy_cos = [], []
    for params in points:
        layout = task.layout_of(params)
        problem, h = task.problem(layout), task.hyper_vector(layout, params)
        exact = compute("reverse", problem, h).grad
        drmad_cos.append(cosine(compute("drmad", problem, h).grad, exact))
        theta, velocity = problem.train(h, steps=problem.n_steps - 1)
        _, _, greedy, _ = one_step(problem, theta, velocity, h, problem.n_steps - 1)
        greedy_cos.append(cosine(greedy, exact))
    drmad_run = run_in_memory(["task=polynomial", "space=polynomial_per_coef", "strategy=drmad", "n_trials=30"])
    first, best = drmad_run[0].value, min(r.value for r in drmad_run if r.value is not None)
    common = [
        "task=polynomial",
        "space=polynomial_per_coef",
        "strategy=greedy",
        "n_trials=40",
        "strategy.init=high",
        "task.inner_lr=0.002",
    ]
    adapted, fixed = (
        run_in_memory(common)[-1].value,
        run_in_memory([*common, "strategy.lr=1e-12"])[-1].value,
    )
    lines.append(
        f"| drmad (skip 5 %) | {np.median(drmad_cos):.3f} | yes: Q {first:.4f} → {best:.4f} in 30 hyper-iterations |"
        if best < first
        else f"| drmad | {np.median(drmad_cos):.3f} | NO |"
    )
    lines.append(
        f"| greedy (one step) | {np.median(greedy_cos):.3f} | {'yes' if adapted < fixed else 'NO'}: Q after 400 steps {fixed:.4f} with h fixed → {adapted:.4f} with greedy updates |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/tradeoffs.md"))
    args = parser.parse_args()
    sections = [
        (
            "Time against the number of hyperparameters (softmax on digits, p = 650, T = 40, CPU)",
            time_vs_hyperparameters,
        ),
        (
            "Held memory against the number of inner steps (polynomial, p = 12, μ = 0.9)",
            memory_vs_steps,
        ),
        ("Approximate methods", approximations),
    ]
    text = "## Hypergradient trade-offs\n"
    for title, fn in sections:
        body = fn()
        print(f"### {title}\n\n{body}\n", flush=True)
        text += f"\n### {title}\n\n{body}\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
