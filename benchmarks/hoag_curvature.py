"""HOAG on a network: the Hessian against the generalized Gauss-Newton matrix (GGN) in the
implicit linear system, and one hypergradient's cost against its warm-started inner solve.

Problem: ``task=digits space=digits_gradient`` (one log prior precision per tensor), a small
smooth MLP (64-16-10 tanh, float64) where the reference can be trusted, and the task's default
MLP (64-256-10 relu, float32). Three measurements:

* accuracy: at a converged θ* (‖∇θL‖∞ ≤ 1e-10) and at a loose one (HOAG's early tolerance,
  1e-3 of the initial gradient), each curvature's hypergradient against central finite
  differences of Q at converged inner solves (1e-12, warm-started from θ*);
* cost: a HOAG-like sequence of hyper-iterations (h moves by 0.2 per step), each an inner solve
  warm-started from the previous θ and an implicit hypergradient warm-started from the previous
  q, both at ``--tol``: the ratio hypergradient seconds / inner-solve seconds, per curvature.

    python benchmarks/hoag_curvature.py [--tol 1e-4] [--steps 6]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from hpo_cli.build import compose_study
from hpo_cli.hypergrad.check import finite_difference, relative_error
from hpo_cli.hypergrad.implicit import implicit, solve_inner
from hpo_cli.hypergrad.problem import BilevelProblem
from hpo_cli.tasks.bilevel import BilevelTask

RESULTS = Path(__file__).parent / "results"
SMALL = ["task=digits", "space=digits_gradient", "task.activation=tanh", "task.hidden=16", "dtype=float64"]
DEFAULT = ["task=digits", "space=digits_gradient"]
CURVATURES = ("hessian", "ggn")


def load(overrides: list[str], at: float = 0.4) -> tuple[BilevelProblem, torch.Tensor]:
    study = compose_study(["strategy=hoag", *overrides])
    task = study.task
    assert isinstance(task, BilevelTask)
    params = study.space.decode(torch.full((study.space.dim,), at).numpy())
    layout = task.layout_of(params)
    return dataclasses.replace(task.problem(layout), solve_iterations=20_000), task.hyper_vector(layout, params)


def scale_of(problem: BilevelProblem, h: torch.Tensor) -> float:
    return float(torch.func.grad(problem.full_inner_loss)(problem.theta0, h).abs().max())


def accuracy(problem: BilevelProblem, h: torch.Tensor) -> dict[str, object]:
    theta = solve_inner(problem, h, problem.theta0, tol=1e-10).theta
    reference = finite_difference(
        lambda x: float(problem.outer(solve_inner(problem, x, theta, tol=1e-12).theta, x)), h, eps=1e-5
    )
    loose = solve_inner(problem, h, problem.theta0, tol=1e-3 * scale_of(problem, h)).theta
    rows: dict[str, object] = {}
    for curvature in CURVATURES:
        for where, point, rtol in (("converged", theta, 1e-10), ("loose", loose, 1e-3)):
            started = time.perf_counter()
            result = implicit(problem, h, point, cg_rtol=rtol, curvature=curvature)
            rows[f"{curvature} {where}"] = {
                "relative_error_vs_fd": relative_error(result.grad, reference),
                "cg_iterations": result.extras["cg_iterations"],
                "cg_damping": result.extras["cg_damping"],
                "seconds": time.perf_counter() - started,
            }
    return rows


def overhead(problem: BilevelProblem, h: torch.Tensor, tol: float, steps: int) -> dict[str, object]:
    """Median over a HOAG-like sequence of hypergradient seconds / warm inner-solve seconds."""
    inner_tol = tol * scale_of(problem, h)
    out: dict[str, object] = {}
    for curvature in CURVATURES:
        theta = solve_inner(problem, h, problem.theta0, tol=inner_tol).theta
        q, ratios, products = None, [], []
        for k in range(1, steps + 1):
            hk = h + 0.2 * k / steps
            started = time.perf_counter()
            solution = solve_inner(problem, hk, theta, tol=inner_tol)
            solve_s = time.perf_counter() - started
            result = implicit(problem, hk, solution.theta, cg_rtol=tol, q0=q, curvature=curvature)
            theta, q = solution.theta, result.extras["q"]
            assert isinstance(q, torch.Tensor)
            ratios.append(result.cost.seconds / solve_s)
            products.append(result.cost.hvp)
        out[curvature] = {"median_ratio": statistics.median(ratios), "ratios": ratios, "products": products}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    small, h = load(SMALL)
    report = {"accuracy (64-16-10 tanh, float64)": accuracy(small, h)}
    report["overhead (64-16-10 tanh, float64)"] = overhead(small, h, args.tol, args.steps)
    default, h = load(DEFAULT)
    report["overhead (64-256-10 relu, float32)"] = overhead(default, h, args.tol, args.steps)
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(report, indent=2, default=float)
    (RESULTS / "hoag_curvature.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
