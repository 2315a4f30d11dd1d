"""One strategy driven by hand, one trial at a time, for the benchmarks against peers: the
regret of every evaluation and the strategy's own seconds (ask + tell, not the objective)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from hpo_cli.strategies.base import Strategy
from hpo_cli.trial import Observation, Suggestion, TrialState


def ask_tell(
    strategy: Strategy, objective: Callable[[Mapping[str, Any]], float], optimum: float, n: int
) -> tuple[list[float], list[float], list[Suggestion]]:
    """(regrets, seconds per suggestion, suggestions) of ``n`` sequential trials."""
    regrets: list[float] = []
    seconds: list[float] = []
    asked: list[Suggestion] = []
    for _ in range(n):
        t0 = time.perf_counter()
        (suggestion,) = strategy.ask(1)
        t1 = time.perf_counter()
        value = objective(suggestion.params)
        t2 = time.perf_counter()
        strategy.tell([Observation(suggestion, TrialState.COMPLETE, value)])
        seconds.append(t1 - t0 + time.perf_counter() - t2)
        regrets.append(value - optimum)
        asked.append(suggestion)
    return regrets, seconds, asked
