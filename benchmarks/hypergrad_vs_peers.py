"""hpo's hypergradients against the libraries a user would otherwise pick, in one process.

Unrolled (iterative) differentiation: ``reverse`` with the recomputing tape and with the graph
tape, against higher 0.2.1 (``innerloop_ctx`` + its differentiable SGD) and torchopt 0.7.3
(functional ``torchopt.sgd`` in differentiable mode) — the same inner SGD with momentum (torch
convention), the same minibatch losses, the same θ_0. Implicit differentiation at a shared inner
optimum θ*: ``implicit`` (one linearization of ∇θL, CG) against torchopt's
``diff.implicit.custom_root`` with its CG solver. Problems: polynomial (12 per-coefficient
precisions), the differentiable ridge (per-feature precisions), softmax regression on digits
(650 per-parameter precisions), a 64-16-10 tanh MLP on digits (4 per-layer precisions; θ* a
converged minimum, where the Hessian is positive definite; both CGs run to convergence, hpo's
up to ``CONVERGED_ITERATIONS`` products, torchopt's up to its default 10·p); float64, CPU.

Every peer must agree with hpo to 1e-10 relative (else exit 1). Times: the minimum over
interleaved rounds (``--rounds``), reported as ratios hpo/peer; the claim checked is that each
of hpo's defaults (reverse with ``tape=auto``, implicit) takes at most the fastest peer's time
× ``--slack`` (default 1.25, timing noise on a shared machine). Writes
benchmarks/results/hypergrad_vs_peers.{md,json}.

    python benchmarks/hypergrad_vs_peers.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from collections.abc import Callable

import torch
from publish import publish

from hpo_cli.build import compose_study
from hpo_cli.hypergrad.check import relative_error
from hpo_cli.hypergrad.implicit import implicit, solve_inner
from hpo_cli.hypergrad.problem import BilevelProblem
from hpo_cli.hypergrad.unrolled import reverse, reverse_auto, reverse_graph
from hpo_cli.tasks.bilevel import BilevelTask

PROBLEMS = {
    "polynomial": ["task=polynomial", "space=polynomial_per_coef"],
    "ridge": ["task=ridge", "space=ridge_per_feature"],
    "softmax": ["task=softmax", "space=softmax_per_param"],
    # a network: per-layer precisions of a 64-16-10 tanh MLP on digits, minibatch SGD with momentum
    "mlp": ["task=digits", "space=digits_gradient", "task.activation=tanh", "task.hidden=16", "task.inner_steps=50"],
}
CONVERGED_ITERATIONS = 20_000  # the shared θ* is a converged optimum, also on the MLP


def load(overrides: list[str]) -> tuple[BilevelProblem, torch.Tensor]:
    study = compose_study(["strategy=rmad", "dtype=float64", *overrides])
    task = study.task
    assert isinstance(task, BilevelTask)
    params = study.space.decode(torch.full((study.space.dim,), 0.4).numpy())
    layout = task.layout_of(params)
    return task.problem(layout), task.hyper_vector(layout, params)


class Theta(torch.nn.Module):
    """θ as a module, which higher needs (it patches modules)."""

    def __init__(self, theta0: torch.Tensor) -> None:
        super().__init__()
        self.theta = torch.nn.Parameter(theta0.clone())


def higher_unrolled(problem: BilevelProblem, h: torch.Tensor) -> torch.Tensor:
    import higher

    module = Theta(problem.theta0)
    opt = torch.optim.SGD(module.parameters(), lr=problem.optimizer.lr, momentum=problem.optimizer.momentum)
    h_var = h.detach().requires_grad_(True)
    hp = problem.layout.unflatten(h_var)
    with higher.innerloop_ctx(module, opt, copy_initial_weights=True) as (fmodel, diffopt):
        for t in range(problem.n_steps):
            diffopt.step(problem.inner_loss(fmodel.theta, hp, t))
        value = problem.outer_loss(fmodel.theta, hp)
        (grad,) = torch.autograd.grad(value, h_var)
    return grad


def torchopt_unrolled(problem: BilevelProblem, h: torch.Tensor) -> torch.Tensor:
    import torchopt

    h_var = h.detach().requires_grad_(True)
    hp = problem.layout.unflatten(h_var)
    opt = torchopt.sgd(lr=problem.optimizer.lr, momentum=problem.optimizer.momentum, moment_requires_grad=True)
    theta = problem.theta0.clone().requires_grad_(True)
    state = opt.init((theta,))
    for t in range(problem.n_steps):
        (g,) = torch.autograd.grad(problem.inner_loss(theta, hp, t), theta, create_graph=True)
        updates, state = opt.update((g,), state, inplace=False)
        (theta,) = torchopt.apply_updates((theta,), updates, inplace=False)
    (grad,) = torch.autograd.grad(problem.outer_loss(theta, hp), h_var)
    return grad


def torchopt_implicit(problem: BilevelProblem, h: torch.Tensor, theta_star: torch.Tensor) -> torch.Tensor:
    import torchopt

    def optimality(theta: torch.Tensor, hh: torch.Tensor) -> torch.Tensor:
        return torch.func.grad(problem.full_inner_loss)(theta, hh)  # torchopt differentiates it with functorch

    @torchopt.diff.implicit.custom_root(optimality, argnums=1, solve=torchopt.linear_solve.solve_cg(rtol=1e-10))
    def solve(theta: torch.Tensor, hh: torch.Tensor) -> torch.Tensor:
        return theta_star.clone()

    h_var = h.detach().requires_grad_(True)
    theta = solve(theta_star.clone().requires_grad_(True), h_var)
    (grad,) = torch.autograd.grad(problem.outer(theta, h_var), h_var)
    return grad


def fastest(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def bench(name: str, rounds: int) -> dict[str, object]:
    problem, h = load(PROBLEMS[name])
    # the inner solve and implicit's CG both run to convergence (as hpo gradcheck's do): the
    # MLP task caps them at inner_steps (50 here), where CG on its Hessian (condition number
    # ~1e4) stops at relative residual ~1e-2, 5.8e-3 off torchopt's converged CG
    problem = dataclasses.replace(problem, solve_iterations=CONVERGED_ITERATIONS)
    theta_star = solve_inner(problem, h, problem.theta0, tol=1e-12).theta
    candidates: dict[str, Callable[[], torch.Tensor]] = {
        "hpo reverse (recompute)": lambda: reverse(problem, h).grad,
        "hpo reverse (graph)": lambda: reverse_graph(problem, h).grad,
        "hpo reverse (auto)": lambda: reverse_auto(problem, h).grad,
        "higher unrolled": lambda: higher_unrolled(problem, h),
        "torchopt unrolled": lambda: torchopt_unrolled(problem, h),
        "hpo implicit": lambda: implicit(problem, h, theta_star, cg_rtol=1e-10).grad,
        "torchopt implicit (CG)": lambda: torchopt_implicit(problem, h, theta_star),
    }
    grads = {k: fn() for k, fn in candidates.items()}
    errors = {
        k: relative_error(g, grads["hpo implicit" if "implicit" in k else "hpo reverse (recompute)"])
        for k, g in grads.items()
    }
    seconds = {k: float("inf") for k in candidates}
    for _ in range(rounds):  # interleaved: load drifts hit every method alike
        for k, fn in candidates.items():
            seconds[k] = min(seconds[k], fastest(fn, 1))
    return {
        "problem": name,
        "hyperparameters": h.numel(),
        "parameters": problem.theta0.numel(),
        "inner_steps": problem.n_steps,
        "seconds": seconds,
        "relative_error": errors,
    }


def claims(rows: list[dict[str, object]], slack: float) -> list[str]:
    failed = []
    for row in rows:
        s = row["seconds"]
        e = row["relative_error"]
        assert isinstance(s, dict) and isinstance(e, dict)
        for k, err in e.items():
            if err > 1e-10:
                failed.append(f"{row['problem']}: {k} differs from hpo by {err:.2e}")
        unrolled_peer = min(s["higher unrolled"], s["torchopt unrolled"])
        if s["hpo reverse (auto)"] > slack * unrolled_peer:
            failed.append(
                f"{row['problem']}: reverse {s['hpo reverse (auto)']:.4f} s > {slack} × peer {unrolled_peer:.4f} s"
            )
        if s["hpo implicit"] > slack * s["torchopt implicit (CG)"]:
            failed.append(
                f"{row['problem']}: implicit {s['hpo implicit']:.4f} s > {slack} × torchopt {s['torchopt implicit (CG)']:.4f} s"
            )
    return failed


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| problem | m | p | T | method | seconds | hpo / fastest peer | rel. error vs hpo |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        s, e = row["seconds"], row["relative_error"]
        assert isinstance(s, dict) and isinstance(e, dict)
        for k, sec in s.items():
            peers = ("torchopt implicit (CG)",) if "implicit" in k else ("higher unrolled", "torchopt unrolled")
            ratio = sec / min(s[p] for p in peers) if k.startswith("hpo") else float("nan")
            shown = f"{ratio:.2f}" if ratio == ratio else ""
            lines.append(
                f"| {row['problem']} | {row['hyperparameters']} | {row['parameters']} | {row['inner_steps']} | {k} | "
                f"{sec:.4f} | {shown} | {e[k]:.1e} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--slack", type=float, default=1.25)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=FutureWarning)  # torchopt 0.7.3 calls functorch.vjp
    rows = [bench(name, args.rounds) for name in PROBLEMS]
    failed = claims(rows, args.slack)
    return publish("hypergrad_vs_peers", table(rows), {"rows": rows}, failed)


if __name__ == "__main__":
    sys.exit(main())
