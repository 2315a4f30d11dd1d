"""``hpo gradcheck [method=M] [point=center|random] [eps=E] [tol=T] OVERRIDES``.

``eps`` defaults to 1e-5, and to 1e-7 for a task whose criterion has kinks (an MLP with relu).

Compares a hypergradient method with central finite differences on the user's own config
(task, space, and any Hydra overrides), in float64 unless ``dtype=`` says otherwise, and prints
the per-component relative error and one PASS/FAIL line (exit code 0/1).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable

import numpy as np
import torch

from hpo_cli.build import compose_study
from hpo_cli.errors import ConfigError, fail
from hpo_cli.hypergrad.check import componentwise_error, finite_difference, relative_error
from hpo_cli.hypergrad.implicit import solve_inner
from hpo_cli.hypergrad.problem import BilevelProblem
from hpo_cli.hypergrad.registry import names
from hpo_cli.options import a_differentiable_task
from hpo_cli.request import HypergradRequest
from hpo_cli.space import FloatParam, SearchSpace
from hpo_cli.tasks.bilevel import BilevelTask

OPTIONS = {"method": "reverse", "point": "center", "eps": None, "tol": None, "seed_point": "0"}
CONVERGED_ITERATIONS = 20_000  # L-BFGS iterations an implicit check's inner solves may take
EPS, EPS_AT_KINKS = 1e-5, 1e-7  # a criterion with kinks (relu) needs steps too short to cross one


def gradcheck(args: list[str]) -> int:
    options = dict(OPTIONS)
    overrides = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in options:
            options[key] = value
        else:
            overrides.append(arg)
    if not any(a.startswith("dtype=") for a in overrides):
        overrides.append("dtype=float64")
    try:
        return _check(options, overrides)
    except ConfigError as exc:
        fail(str(exc))
    return 2


def _check(options: dict[str, str | None], overrides: list[str]) -> int:
    method = str(options["method"])
    if method not in names(checkable=True):
        raise ConfigError("method", method, f"must be one of {', '.join(names(checkable=True))}")
    request = (
        HypergradRequest(method, tol=1e-13, warm_start=False, curvature="hessian")
        if method == "implicit"
        else HypergradRequest(method)
    )
    study = compose_study(overrides)
    task, space, settings = study.task, study.space, study.settings
    if not isinstance(task, BilevelTask):
        raise ConfigError("task", task.name, f"gradcheck needs {a_differentiable_task()}")
    params = _point(space, str(options["point"]), int(_positive(options, "seed_point", int, zero=True) or 0))
    task.check_hypergradient(request, space.names)
    layout = task.layout_of(params)
    problem, h = task.problem(layout), task.hyper_vector(layout, params)
    if method == "implicit":  # converged inner solves, whatever the task allows a HOAG iteration
        problem = dataclasses.replace(problem, solve_iterations=max(problem.solve_iterations, CONVERGED_ITERATIONS))
    result, _ = task.hypergradient(problem, layout, h, request)
    kinks = task.kinks()
    eps = _positive(options, "eps", float) or (EPS if kinks is None else EPS_AT_KINKS)
    theta = result.extras.get("theta")
    reference = finite_difference(_criterion(problem, method, theta), h, eps=eps)
    tolerance = _positive(options, "tol", float) or _tolerance(task, method, layout.names)
    _print_table(layout.names, [s for _, s in layout.shapes], result.grad, reference)
    error = relative_error(result.grad, reference)
    passed = error <= tolerance
    verdict = "PASS" if passed else "FAIL"
    note = " (drmad is an approximation: expect it to fail)" if method == "drmad" else ""
    if kinks is not None:
        note += f" (finite differences with eps={eps:g}: {kinks})"
    print(
        f"{verdict}: relative error {error:.3e} {'<=' if passed else '>'} {tolerance:g} "
        f"(method={method}, task={task.name}, criterion={study.criterion}, {len(h)} hyperparameters, "
        f"{settings.dtype}){note}"
    )
    return 0 if passed else 1


def _tolerance(task: BilevelTask, method: str, names: list[str]) -> float:
    """1e-6; 1e-4 for optimizer hyperparameters (long products of steps) and for the implicit
    method on a network (its reference: solves that round-off limits to ‖∇θL‖∞ ≈ 1e-14)."""
    network = method == "implicit" and not getattr(task, "at_optimum", True)
    return 1e-4 if network or {"log_lr", "momentum"} & set(names) else 1e-6


def _positive(
    options: dict[str, str | None], key: str, kind: type[float] | type[int], zero: bool = False
) -> float | None:
    """The option as a positive number (or zero, when allowed), None when not given."""
    text = options[key]
    if text is None or text == "":
        return None
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(key, text, f"must be a {'non-negative' if zero else 'positive'} {kind.__name__}") from None
    if value < 0 or (value == 0 and not zero):
        raise ConfigError(key, text, f"must be a {'non-negative' if zero else 'positive'} {kind.__name__}")
    return value


def _point(space: SearchSpace, point: str, seed: int) -> dict[str, object]:
    if point not in ("center", "random"):
        raise ConfigError("point", point, "must be center or random")
    if any(not isinstance(p, FloatParam) for p in space.params):
        raise ConfigError("space", space.names, "gradcheck needs float parameters only")
    u = np.full(space.dim, 0.5) if point == "center" else np.random.default_rng(seed).uniform(0.1, 0.9, space.dim)
    return space.decode(u)


def _criterion(problem: BilevelProblem, method: str, theta: object) -> Callable[[torch.Tensor], float]:
    """Q(h) as the method differentiates it: after unrolled training, or at the optimum (solved
    to ‖∇θL‖∞ ≤ 1e-13 from the method's own θ*(h), so that a non-convex model stays in the same
    basin)."""
    if method != "implicit":
        return lambda h: float(problem.objective(h))
    start = theta if isinstance(theta, torch.Tensor) else problem.theta0

    def at_optimum(h: torch.Tensor) -> float:
        solution = solve_inner(problem, h, start, tol=1e-13)
        return float(problem.outer(solution.theta, h))

    return at_optimum


def _print_table(names: list[str], shapes: list[tuple[int, ...]], grad: torch.Tensor, reference: torch.Tensor) -> None:
    labels = [
        name if not shape else f"{name}[{i}]"
        for name, shape in zip(names, shapes, strict=True)
        for i in range(max(1, shape[0] if shape else 1))
    ]
    errors = componentwise_error(grad, reference)
    shown = (
        range(len(labels)) if len(labels) <= 40 else sorted(range(len(labels)), key=lambda i: -float(errors[i]))[:40]
    )
    width = max(len(label) for label in labels)
    print(f"{'hyperparameter':<{width}}  {'method':>14}  {'finite diff.':>14}  {'rel. error':>10}")
    for i in shown:
        print(f"{labels[i]:<{width}}  {float(grad[i]):>14.6e}  {float(reference[i]):>14.6e}  {float(errors[i]):>10.2e}")
    if len(labels) > 40:
        print(f"... {len(labels) - 40} more (the 40 largest errors are shown)", file=sys.stdout)
