"""Hypergradients: pure functions over a :class:`~hpo_cli.hypergrad.problem.BilevelProblem`.

:func:`compute` is the one entry point by method name; each method returns a
:class:`~hpo_cli.hypergrad.problem.Hypergradient` (value Q, dQ/dh, cost counters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo_cli.hypergrad.registry import method

if TYPE_CHECKING:  # torch is imported by the methods themselves: this package imports light
    from torch import Tensor

    from hpo_cli.hypergrad.problem import BilevelProblem, Hypergradient


def compute(name: str, problem: BilevelProblem, h: Tensor, **options: Any) -> Hypergradient:
    """The hypergradient of ``problem`` at ``h`` by method ``name`` (see :mod:`.registry`).

    Options: reverse ``truncate``, ``tape`` (recompute by default here; requests default to
    auto), ``memory_mb``; rmad_exact ``fraction_bits``; drmad ``skip``, ``stride``;
    implicit ``inner_tol``, ``cg_rtol``, ``theta_init``, ``q0`` (it first solves the inner
    problem to ``inner_tol`` (dense Newton for small models, else L-BFGS), warm-started from
    ``theta_init``).
    """
    if method(name).online:
        raise ValueError(f"{name} carries state between calls: use hpo_cli.hypergrad.carried.online_step")
    if name == "reverse":
        from hpo_cli.hypergrad.unrolled import reverse_auto

        return reverse_auto(
            problem,
            h,
            truncate=options.get("truncate"),
            tape=options.get("tape", "recompute"),
            memory_mb=options.get("memory_mb", 1024.0),
        )
    if name == "forward":
        from hpo_cli.hypergrad.unrolled import forward

        return forward(problem, h)
    if name == "drmad":
        from hpo_cli.hypergrad.unrolled import drmad

        return drmad(problem, h, skip=options.get("skip", 0.0), stride=options.get("stride", 1))
    if name == "rmad_exact":
        from hpo_cli.hypergrad.exact import rmad_exact

        return rmad_exact(problem, h, fraction_bits=options.get("fraction_bits", 44))
    if name == "implicit":
        return _implicit(problem, h, options)
    raise AssertionError(f"the registry lists {name!r} but compute() does not know it")


def _implicit(problem: BilevelProblem, h: Tensor, options: dict[str, Any]) -> Hypergradient:
    """Solve the inner problem to ``inner_tol`` (from ``theta_init``), then the implicit hypergradient."""
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
