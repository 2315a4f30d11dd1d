"""Hypergradients: pure functions over a :class:`~hpo_cli.hypergrad.problem.BilevelProblem`.

:func:`compute` is the one entry point by method name, :func:`answer` the one for a
:class:`~hpo_cli.request.HypergradRequest` (it carries the inner state); both read the
method's function and options from :mod:`.registry`. Each method returns a
:class:`~hpo_cli.hypergrad.problem.Hypergradient` (value Q, dQ/dh, cost counters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo_cli.hypergrad.registry import method

if TYPE_CHECKING:  # torch is imported by the methods themselves: this package imports light
    from torch import Tensor

    from hpo_cli.hypergrad.problem import BilevelProblem, Hypergradient
    from hpo_cli.request import HypergradRequest, InnerState


def compute(name: str, problem: BilevelProblem, h: Tensor, **options: Any) -> Hypergradient:
    """The hypergradient of ``problem`` at ``h`` by method ``name``, from scratch (no carried
    state); ``options`` are the method's own (see :data:`.registry.METHODS`), the others at the
    registry's defaults: reverse ``truncate``, ``tape`` (auto, as strategies), ``memory_mb``;
    drmad ``skip``, ``stride``, ``anchors``, ``clip``; rmad_exact ``fraction_bits``; implicit ``tol`` (inner gradient
    relative to its size at θ0, and CG), ``curvature``. An option of another method is a
    ConfigError naming it."""
    spec = method(name, "method")
    if spec.online:
        raise ValueError(f"{name} carries state between calls: use hpo_cli.hypergrad.answer with a request")
    options = spec.validated(options, name)
    if spec.stateful:
        result, _ = spec.load()(problem, h, None, **options)
        return result
    return spec.load()(problem, h, **options)


def answer(problem: BilevelProblem, h: Tensor, request: HypergradRequest) -> tuple[Hypergradient, InnerState | None]:
    """The hypergradient ``request`` asks for and the state to carry to the next request (None
    for methods that start from θ0 each time)."""
    spec = request.spec
    if spec.stateful:
        return spec.load()(problem, h, request.state, **request.options)
    return spec.load()(problem, h, **request.options), None
