"""The one list of hypergradient methods: what each computes and what it supports.

Strategies, tasks and ``hpo gradcheck`` ask this registry; nobody else keeps a list of names.
Import-light (no torch): the functions themselves are imported when called
(:func:`hpo_cli.hypergrad.compute`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from hpo_cli.errors import ConfigError

KINDS = ("log_precision", "log_lr", "momentum", "example_weights")
AT_THE_OPTIMUM = ("log_precision", "example_weights")  # the kinds that move the inner optimum
CONVENTIONS = ("torch", "maclaurin")
FORWARD_LIMIT = 1000  # tangents (one per hyperparameter, each the size of θ): beyond, refuse


@dataclass(frozen=True)
class MethodSpec:
    """``exact``: the true hypergradient of what it differentiates (drmad is an approximation);
    ``online``: continues one training run across hyper-iterations (greedy, rtho), so it carries
    the inner state; ``warm``: reuses the previous solution when asked to (implicit);
    ``checkable``: gradcheck compares it with finite differences of the same criterion."""

    name: str
    summary: str
    exact: bool
    online: bool = False
    warm: bool = False
    kinds: tuple[str, ...] = KINDS
    conventions: tuple[str, ...] = CONVENTIONS
    checkable: bool = True
    why_convention: str = ""  # said when a task's momentum convention is refused
    max_hyperparameters: int | None = None  # forward modes carry one tangent per hyperparameter


METHODS = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            MethodSpec("reverse", "reverse mode through the stored trajectory (truncate: last K steps)", True),
            MethodSpec(
                "forward",
                "forward mode: tangents dθ/dh carried through training",
                True,
                max_hyperparameters=FORWARD_LIMIT,
            ),
            MethodSpec("drmad", "reverse pass along the line θ0 → θT (skip, stride)", False),
            MethodSpec(
                "rmad_exact",
                "exactly reversible SGD with momentum (Maclaurin 2015)",
                True,
                conventions=("maclaurin",),
                why_convention="exact reversal divides by μ in v ← μv − (1−μ)g",
            ),
            MethodSpec(
                "implicit",
                "implicit function theorem at the inner optimum, CG on Hessian-vector products",
                True,
                warm=True,
                kinds=AT_THE_OPTIMUM,
            ),
            MethodSpec(
                "greedy",
                "one-step look-ahead during one training run (Luketina 2016)",
                False,
                online=True,
                checkable=False,
            ),
            MethodSpec(
                "rtho",
                "real-time forward mode during one training run (Franceschi 2017)",
                True,
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
