"""The strategy of an experiment preset built on a gradient strategy (e.g.
``conf/experiment/hypercleaning_franceschi2017.yaml``, whose ``strategy._target_`` this is).

A preset sets the gradient strategy's options (outer optimizer, rate, L1 budget) in its
``strategy`` block; Hydra merges that block over whatever strategy the command line picks. With
``strategy=fixed strategy.params_file=…/best.yaml`` over the preset — re-evaluating a result
under the preset's task — the merged block holds both the fixed strategy's keys and the
gradient options: this builds the fixed strategy then, and the gradient strategy otherwise.
"""

from __future__ import annotations

from typing import Any

from hpo_cli.space import SearchSpace
from hpo_cli.strategies.base import Strategy
from hpo_cli.strategies.fixed import FixedStrategy
from hpo_cli.strategies.gradient import GradientStrategy

FIXED_KEYS = ("params", "params_file")


def gradient_or_fixed(
    space: SearchSpace,
    seed: int,
    n_trials: int,
    fidelity: tuple[float, float] | None = None,
    **options: Any,
) -> Strategy:
    """:class:`FixedStrategy` when ``params`` or ``params_file`` is given, else
    :class:`GradientStrategy` with ``options``. ``fidelity``: the builder's run-time keyword
    for strategies that take one; neither does."""
    if any(key in options for key in FIXED_KEYS):
        return FixedStrategy(space, seed, n_trials, options.get("params"), options.get("params_file"))
    return GradientStrategy(space, seed, n_trials, **options)
