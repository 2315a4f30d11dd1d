"""The one list of hypergradient methods: what each computes and what it supports.

Strategies, tasks and ``hpo gradcheck`` ask this registry; nobody else keeps a list of names.
Import-light (no torch): the functions themselves are imported when called
(:func:`hpo_cli.hypergrad.compute`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from hpo_cli.errors import ConfigError
from hpo_cli.validate import flag, is_int, is_number, one_of

KINDS = ("log_precision", "log_lr", "momentum", "example_weights")
AT_THE_OPTIMUM = ("log_precision", "example_weights")  # the kinds that move the inner optimum
CONVENTIONS = ("torch", "maclaurin")
FORWARD_LIMIT = 1000  # tangents (one per hyperparameter, each the size of θ): beyond, refuse
TAPES = ("auto", "recompute", "graph")
CURVATURES = ("auto", "hessian", "ggn")


# -- option checks: each returns the value or raises a ConfigError naming ``key`` ---------------


def _positive_int(value: Any, key: str) -> Any:
    if not is_int(value) or value < 1:
        raise ConfigError(key, value, "must be a positive integer")
    return value


def _truncate(value: Any, key: str) -> Any:
    if value is not None and (not is_int(value) or value < 1):
        raise ConfigError(key, value, "must be a positive integer or null")
    return value


def _positive(what: str) -> Callable[[Any, str], Any]:
    def check(value: Any, key: str) -> Any:
        if not is_number(value) or not value > 0:
            raise ConfigError(key, value, f"must be a positive {what}")
        return value

    return check


def _positive_or_none(value: Any, key: str) -> Any:
    if value is not None and (not is_number(value) or not value > 0):
        raise ConfigError(key, value, "must be a positive number or null")
    return value


def _fraction(value: Any, key: str) -> Any:
    if not is_number(value) or not 0.0 <= value < 1.0:
        raise ConfigError(key, value, "must be a fraction in [0, 1)")
    return value


def _choice(allowed: tuple[str, ...]) -> Callable[[Any, str], Any]:
    return lambda value, key: one_of(value, key, allowed)


@dataclass(frozen=True)
class Option:
    """One option of a method: its default (the only one) and its check."""

    name: str
    default: Any
    check: Callable[[Any, str], Any]
    help: str


@dataclass(frozen=True)
class MethodSpec:
    """``function``: ``module:name`` of the function that computes it, imported when called (so
    this registry imports no torch); it takes (problem, h, **options) and, for stateful methods,
    (problem, h, state, **options), returning (Hypergradient, next state).

    ``exact``: the true hypergradient of what it differentiates (drmad is an approximation);
    ``online``: continues one training run across hyper-iterations (greedy, rtho), so it carries
    the inner state; ``warm``: reuses the previous solution when asked to (implicit);
    ``checkable``: gradcheck compares it with finite differences of the same criterion;
    ``options``: its own options, one default each (:meth:`validated`)."""

    name: str
    summary: str
    exact: bool
    function: str
    options: tuple[Option, ...] = ()
    online: bool = False
    warm: bool = False
    kinds: tuple[str, ...] = KINDS
    conventions: tuple[str, ...] = CONVENTIONS
    checkable: bool = True
    why_convention: str = ""  # said when a task's momentum convention is refused
    max_hyperparameters: int | None = None  # forward modes carry one tangent per hyperparameter

    @property
    def stateful(self) -> bool:
        """Its function takes and returns the inner state (online training, warm starts)."""
        return self.online or self.warm

    @property
    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options}

    def load(self) -> Callable[..., Any]:
        module, _, attr = self.function.partition(":")
        fn: Callable[..., Any] = getattr(importlib.import_module(module), attr)
        return fn

    def validated(self, options: Mapping[str, Any], key: str = "strategy.options") -> dict[str, Any]:
        """Every option of this method: the given ones checked, the others at their defaults; an
        option of another method (or of none) is a ConfigError naming ``key.name`` and its value."""
        own = {o.name: o for o in self.options}
        for name, value in options.items():
            if name not in own:
                theirs = ", ".join(own) or "none"
                why = f"not an option of method {self.name} (its options: {theirs})"
                raise ConfigError(f"{key}.{name}", value, why)
        return {name: o.check(options.get(name, o.default), f"{key}.{name}") for name, o in own.items()}


STEPS = Option("steps", 10, _positive_int, "inner steps per hyper-iteration")
METHODS = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            MethodSpec(
                "reverse",
                "reverse mode through the stored trajectory (truncate: last K steps)",
                True,
                "hpo_cli.hypergrad.unrolled:reverse_auto",
                (
                    Option("truncate", None, _truncate, "backpropagate through the last K steps only"),
                    Option("tape", "auto", _choice(TAPES), "recompute | graph | auto (graph when it fits memory_mb)"),
                    Option("memory_mb", 1024.0, _positive("number of megabytes"), "tape=auto: the graph's budget"),
                ),
            ),
            MethodSpec(
                "forward",
                "forward mode: tangents dθ/dh carried through training",
                True,
                "hpo_cli.hypergrad.unrolled:forward",
                max_hyperparameters=FORWARD_LIMIT,
            ),
            MethodSpec(
                "drmad",
                "reverse pass along lines between kept points of the training (skip, stride, anchors, clip)",
                False,
                "hpo_cli.hypergrad.unrolled:drmad",
                (
                    Option("skip", 0.05, _fraction, "the share of first steps left out of the reverse pass (Bakhteev)"),
                    Option("stride", 1, _positive_int, "use every stride-th step"),
                    Option("anchors", 48, _positive_int, "segments of the training, each a line (1: Fu's θ0 → θT)"),
                    Option("clip", 1.0, _positive_or_none, "adjoint norm ≤ clip × its norm at θT (null: unclipped)"),
                ),
            ),
            MethodSpec(
                "rmad_exact",
                "exactly reversible SGD with momentum (Maclaurin 2015)",
                True,
                "hpo_cli.hypergrad.exact:rmad_exact",
                (Option("fraction_bits", 44, _positive_int, "fixed-point fraction bits"),),
                conventions=("maclaurin",),
                why_convention="exact reversal divides by μ in v ← μv − (1−μ)g",
            ),
            MethodSpec(
                "implicit",
                "implicit function theorem at the inner optimum, CG on curvature-vector products",
                True,
                "hpo_cli.hypergrad.carried:implicit_step",
                (
                    Option("tol", 1e-10, _positive("number"), "inner and CG tolerance (relative)"),
                    Option("warm_start", True, flag, "start from the previous θ and q"),
                    Option("curvature", "auto", _choice(CURVATURES), "hessian | ggn | auto (GGN if not PD)"),
                ),
                warm=True,
                kinds=AT_THE_OPTIMUM,
            ),
            MethodSpec(
                "greedy",
                "one-step look-ahead during one training run (Luketina 2016)",
                False,
                "hpo_cli.hypergrad.carried:greedy_step",
                (STEPS,),
                online=True,
                checkable=False,
            ),
            MethodSpec(
                "rtho",
                "real-time forward mode during one training run (Franceschi 2017)",
                True,
                "hpo_cli.hypergrad.carried:rtho_step",
                (STEPS,),
                online=True,
                checkable=False,
                max_hyperparameters=FORWARD_LIMIT,
            ),
        )
    }
)


def names(*, checkable: bool | None = None, online: bool | None = None) -> tuple[str, ...]:
    """Method names, optionally only those with the given properties."""
    return tuple(
        name
        for name, spec in METHODS.items()
        if (checkable is None or spec.checkable == checkable) and (online is None or spec.online == online)
    )


def method(name: object, key: str = "strategy.method") -> MethodSpec:
    """The spec of ``name``; a ConfigError naming ``key`` when there is none."""
    if not isinstance(name, str) or name not in METHODS:
        raise ConfigError(key, name, f"must be one of {', '.join(METHODS)}")
    return METHODS[name]


def check_support(spec: MethodSpec, kinds: list[str], convention: str | None) -> None:
    """Refuse hyperparameter kinds or a momentum convention the method cannot handle (names that
    are no built-in kind, a user's own bilevel problem's, are the user's business; ``convention``
    None: not known yet, checked once the problem is built)."""
    unsupported = [k for k in kinds if k in KINDS and k not in spec.kinds]
    if unsupported:
        raise ConfigError(
            f"space.params.{unsupported[0]}",
            unsupported[0],
            f"{spec.name} differentiates only {', '.join(spec.kinds)} (at the inner optimum, the learning rate "
            "and momentum do not matter): use reverse, forward or rtho for them",
        )
    if convention is not None and convention not in spec.conventions:
        raise ConfigError(
            "task.convention",
            convention,
            f"{spec.name} needs task.convention={'|'.join(spec.conventions)}"
            + (f" ({spec.why_convention})" if spec.why_convention else ""),
        )


def check_count(spec: MethodSpec, count: int) -> None:
    """Refuse a forward-mode method over more hyperparameters than it can carry tangents for."""
    limit = spec.max_hyperparameters
    if limit is not None and count > limit:
        raise ConfigError(
            "strategy.method",
            spec.name,
            f"carries one tangent (the size of θ) per hyperparameter and the space has {count:,} (> {limit:,}): "
            "use reverse, rmad_exact, drmad or hoag, or a per-layer space (size: n_tensors)",
        )
