"""Hypergradients: pure functions over a :class:`~hpo_cli.hypergrad.problem.BilevelProblem`.

:func:`compute` is the one entry point by method name; each method returns a
:class:`~hpo_cli.hypergrad.problem.Hypergradient` (value Q, dQ/dh, cost counters).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from hpo_cli.hypergrad.problem import BilevelProblem, Hypergradient

EXACT_METHODS = ("reverse", "rmad_exact", "forward", "implicit")
METHODS = (*EXACT_METHODS, "drmad")


def compute(method: str, problem: BilevelProblem, h: Tensor, **options: Any) -> Hypergradient:
    """The hypergradient of ``problem`` at ``h`` by ``method``.

    Options: reverse ``truncate``; rmad_exact ``fraction_bits``; drmad ``skip``, ``stride``;
    implicit ``inner_tol``, ``cg_rtol``, ``theta_init``, ``q0`` (it first solves the inner
    problem to ``inner_tol`` with L-BFGS, warm-started from ``theta_init``).
    """
    if method == "reverse":
        from hpo_cli.hypergrad.unrolled import reverse

        return reverse(problem, h, truncate=options.get("truncate"))
    if method == "forward":
        from hpo_cli.hypergrad.unrolled import forward

        return forward(problem, h)
    if method == "drmad":
        from hpo_cli.hypergrad.unrolled import drmad

        return drmad(problem, h, skip=options.get("skip", 0.0), stride=options.get("stride", 1))
    if method == "rmad_exact":
        from hpo_cli.hypergrad.exact import rmad_exact

        return rmad_exact(problem, h, fraction_bits=options.get("fraction_bits", 44))
    if method == "implicit":
        from hpo_cli.hypergrad.implicit import implicit, solve_inner

        start = options.get("theta_init")
        solution = solve_inner(problem, h, problem.theta0 if start is None else start, options.get("inner_tol", 1e-10))
        result = implicit(
            problem,
            h,
            solution.theta,
            cg_rtol=options.get("cg_rtol", 1e-10),
            q0=options.get("q0"),
            inner_steps=solution.iterations,
        )
        result.extras["theta"] = solution.theta
        result.extras["inner_grad_norm"] = solution.grad_norm
        return result
    raise ValueError(f"unknown hypergradient method {method!r}; choose from {', '.join(METHODS)}")
