"""HOAG's own overhead on ``task=polynomial space=polynomial_per_coef`` (12 log precisions).

Three numbers, measured in one process: a HOAG hyper-iteration through the whole loop (inner
solve, implicit hypergradient, outer step, trial row and checkpoint on disk) as the marginal cost
of 100 more hyper-iterations; the implicit hypergradient alone at the inner optimum
(``hpo_cli.hypergrad.implicit``); and the same hypergradient in closed form with numpy (θ* and
(βΦᵀΦ + Λ)⁻¹∇θQ by dense solves), the floor a 12-parameter model allows. On the MLP
(``task=digits``: a 64-16-10 tanh MLP in float64 and the default 64-256-10 relu one), the ratio
of one HOAG hypergradient (CG warm-started from the previous q) to its warm-started inner solve,
with the Hessian and with the Gauss-Newton matrix (:mod:`hoag_curvature`). Writes
benchmarks/results/hoag_overhead.{md,json}.

    python benchmarks/hoag_overhead.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from hoag_curvature import DEFAULT, SMALL, load, overhead

from hpo_cli.build import compose_study
from hpo_cli.hypergrad.check import relative_error
from hpo_cli.hypergrad.implicit import implicit, solve_inner
from hpo_cli.runner import run_in_memory
from hpo_cli.tasks.polynomial import PolynomialTask

RESULTS = Path(__file__).parent / "results"
HOAG = ["strategy=hoag", "task=polynomial", "space=polynomial_per_coef", "strategy.tol0=1e-3"]


def per_hyper_iteration() -> float:
    run_in_memory([*HOAG, "n_trials=5"])  # warm-up: imports, first calls
    seconds = {}
    for n in (20, 120):
        started = time.perf_counter()
        run_in_memory([*HOAG, f"n_trials={n}"])
        seconds[n] = time.perf_counter() - started
    return (seconds[120] - seconds[20]) / 100


def closed_form(task: PolynomialTask, h: np.ndarray) -> np.ndarray:
    """dQ/dh of the validation MSE at θ*(h) = (βΦᵀΦ + Λ)⁻¹βΦᵀy, Λ = diag(e^h)."""
    beta, lam = 1.0 / task.noise**2, np.exp(h)
    A = beta * task.X_train.T @ task.X_train + np.diag(lam)
    theta = np.linalg.solve(A, beta * task.X_train.T @ task.y_train)
    residual = task.X_val @ theta - task.y_val
    d_theta = 2 * task.X_val.T @ residual / len(residual)
    return -lam * theta * np.linalg.solve(A, d_theta)


def fastest(fn: object, repeat: int = 50) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    torch.set_num_threads(1)
    study = compose_study([*HOAG, "n_trials=1"])
    task = study.task
    assert isinstance(task, PolynomialTask)
    h_np = np.linspace(-1.0, 4.0, task.n_coefficients)
    params = {"log_precision": list(h_np)}
    layout = task.layout_of(params)
    problem, h = task.problem(layout), task.hyper_vector(layout, params)
    theta_star = solve_inner(problem, h, problem.theta0, tol=1e-12).theta
    ours = implicit(problem, h, theta_star, cg_rtol=1e-12).grad.numpy()
    exact = closed_form(task, h_np)
    row = {
        "hoag_hyper_iteration_s": per_hyper_iteration(),
        "implicit_hypergradient_s": fastest(lambda: implicit(problem, h, theta_star, cg_rtol=1e-10)),
        "inner_solve_s": fastest(lambda: solve_inner(problem, h, problem.theta0, tol=1e-10), 10),
        "closed_form_s": fastest(lambda: closed_form(task, h_np)),
        "relative_error_vs_closed_form": relative_error(torch.as_tensor(ours), torch.as_tensor(exact)),
    }
    for name, overrides in (("mlp_tanh16", SMALL), ("mlp_relu256", DEFAULT)):
        for curvature, measured in overhead(*load(overrides), tol=1e-4, steps=6).items():
            assert isinstance(measured, dict)
            row[f"{name}_{curvature}_hypergradient_over_inner_solve"] = measured["median_ratio"]
    lines = ["| quantity | value |", "|---|---|"] + [f"| {k} | {v:.3g} |" for k, v in row.items()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "hoag_overhead.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "hoag_overhead.json").write_text(json.dumps(row, indent=2) + "\n")
    print("\n".join(lines))
    return 0 if row["relative_error_vs_closed_form"] <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
