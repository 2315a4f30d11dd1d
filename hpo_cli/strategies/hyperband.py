"""Successive halving and Hyperband (Li et al. 2017) over a task's fidelity (e.g. epochs).

With R = max_budget / min_budget and η: s_max = ⌊log_η R⌋ and B = (s_max + 1)·R. Bracket s
(s = s_max … 0) starts n = ⌈(B/R)·η^s/(s + 1)⌉ random configurations at r = R·η^(−s) (in units
of min_budget); rung i evaluates ⌊n·η^(−i)⌋ of them at r·η^i and keeps the best 1/η for the
next rung. Successive halving is the single bracket s = s_max (or ``n_configs`` configurations).

Each rung evaluation is a trial with its budget. A configuration that is stopped is recorded
as ``pruned`` at the budget it reached (the loop writes a rung's trials once the rung is
decided); those that go on, and those of the last rung, as ``complete``. Set ``batch_size``
to the rung size to evaluate each rung as one batch (for parallel workers). Once a rung is
decided, the configurations that go no further are stopped for good (:meth:`stops`): the task
may drop their promotion checkpoints.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from hpo_cli.errors import ConfigError
from hpo_cli.space import SearchSpace
from hpo_cli.strategies.base import Strategy
from hpo_cli.trial import Observation, Suggestion, TrialState
from hpo_cli.validate import positive_float

log = logging.getLogger(__name__)
Rung = tuple[int, float]  # (configurations, budget in units of min_budget)


def budget_range(
    min_budget: float | None, max_budget: float | None, fidelity: tuple[float, float] | None, eta: int
) -> tuple[float, float]:
    """(min_budget, max_budget): the configured ones, else the task's fidelity range."""
    low = positive_float(min_budget if min_budget is not None else (fidelity or (1, 1))[0], "strategy.min_budget")
    high = max_budget if max_budget is not None else (fidelity or (None, None))[1]
    if high is None:
        raise ConfigError(
            "strategy.max_budget",
            high,
            "set it, or pick a task with a fidelity (e.g. task=digits: epochs); this task declares none",
        )
    top = positive_float(high, "strategy.max_budget")
    if top < low * eta:
        raise ConfigError("strategy.max_budget", high, f"must be at least eta × min_budget = {eta * low:g}")
    return low, top


def hyperband_brackets(ratio: float, eta: int) -> list[list[Rung]]:
    """The rungs of every bracket, s = s_max first; ``ratio`` = max_budget / min_budget."""
    s_max = math.floor(math.log(ratio) / math.log(eta) + 1e-9)
    total = (s_max + 1) * ratio
    brackets = []
    for s in range(s_max, -1, -1):
        n = math.ceil(total / ratio * eta**s / (s + 1) - 1e-9)
        r = ratio * eta ** (-s)
        brackets.append([(math.floor(n * eta ** (-i) + 1e-9), r * eta**i) for i in range(s + 1)])
    return brackets


def halving_bracket(ratio: float, eta: int, n_configs: int | None) -> list[Rung]:
    """Successive halving: the most exploratory bracket, or one that starts ``n_configs``."""
    rungs = hyperband_brackets(ratio, eta)[0]
    if n_configs is None:
        return rungs
    return [(max(1, math.floor(n_configs * eta ** (-i) + 1e-9)), r) for i, (_, r) in enumerate(rungs)]


class HyperbandStrategy(Strategy):
    """Hyperband: all brackets in turn, random configurations, top 1/η promoted per rung."""

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        n_trials: int,
        eta: int = 3,
        min_budget: float | None = None,
        max_budget: float | None = None,
        fidelity: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(space, seed, n_trials)
        if not isinstance(eta, int) or eta < 2:
            raise ConfigError("strategy.eta", eta, "must be an integer >= 2")
        self.eta = eta
        self.min_budget, self.max_budget = budget_range(min_budget, max_budget, fidelity, eta)
        self.plan = self._plan()
        self.bracket, self.rung = 0, 0
        self.configs: list[dict[str, Any]] = self._sample(self.plan[0][0][0])
        self.asked = 0
        self.losses: dict[int, float] = {}  # suggestion key -> loss at the current rung
        self.keys: list[int] = []  # the current rung's suggestion keys, in config order
        self.states: dict[int, str] = {}  # decided trial states by suggestion key
        self.ended: set[int] = set()  # decided keys whose configuration goes no further
        evaluations = sum(n for bracket in self.plan for n, _ in bracket)
        if n_trials < evaluations:
            log.warning(
                "%s: one pass takes %d evaluations; n_trials=%d ends it early",
                type(self).__name__,
                evaluations,
                n_trials,
            )

    def _plan(self) -> list[list[Rung]]:
        return hyperband_brackets(self.max_budget / self.min_budget, self.eta)

    def _sample(self, n: int) -> list[dict[str, Any]]:
        units = self.rng.random((n, self.space.dim))
        return [{"params": self.space.decode(u), "unit": [float(x) for x in u]} for u in units]

    def _propose(self, n: int) -> list[Suggestion]:
        if self.is_finished():
            return []
        budget = self.min_budget * self.plan[self.bracket][self.rung][1]
        batch = self.configs[self.asked : self.asked + n]
        self.asked += len(batch)
        out = [self._suggest(dict(c["params"]), np.asarray(c["unit"]), budget=budget) for c in batch]
        self.keys += [s.key for s in out]
        return out

    def _observe(self, observation: Observation) -> None:
        key = observation.suggestion.key
        self.losses[key] = observation.loss if observation.loss is not None else math.inf
        if len(self.losses) == len(self.configs) and self.asked == len(self.configs):
            self._promote()

    def _promote(self) -> None:
        rungs = self.plan[self.bracket]
        order = sorted(range(len(self.configs)), key=lambda i: (self.losses[self.keys[i]], i))
        last = self.rung + 1 >= len(rungs)
        keep = [] if last else order[: rungs[self.rung + 1][0]]
        for i, key in enumerate(self.keys):
            self.states[key] = "complete" if last or i in keep else "pruned"
            if last or i not in keep:
                self.ended.add(key)
        if last:
            self.bracket, self.rung = self.bracket + 1, 0
            self.configs = self._sample(self.plan[self.bracket][0][0]) if self.bracket < len(self.plan) else []
        else:
            self.rung += 1
            self.configs = [self.configs[i] for i in keep]
        self.asked, self.losses, self.keys = 0, {}, []

    def trial_state(self, key: int) -> TrialState | None:
        """Complete or pruned once the rung of suggestion ``key`` is decided, else None."""
        decided = self.states.get(key)
        return None if decided is None else TrialState(decided)

    def stops(self, key: int) -> bool:
        """True once the rung of ``key`` is decided and its configuration was not promoted (or
        the rung was its bracket's last)."""
        return key in self.ended

    def is_finished(self) -> bool:
        return self.bracket >= len(self.plan)

    @property
    def finish_message(self) -> str:
        return f"all {len(self.plan)} bracket(s) finished"

    def _extra_state(self) -> dict[str, Any]:
        return {
            "bracket": self.bracket,
            "rung": self.rung,
            "configs": self.configs,
            "asked": self.asked,
            "losses": {str(k): v for k, v in self.losses.items()},
            "keys": self.keys,
            "states": {str(k): v for k, v in self.states.items()},
            "ended": sorted(self.ended),
        }

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self.bracket, self.rung, self.asked = int(extra["bracket"]), int(extra["rung"]), int(extra["asked"])
        self.configs = [dict(c) for c in extra["configs"]]
        self.losses = {int(k): float(v) for k, v in extra["losses"].items()}
        self.keys = [int(k) for k in extra["keys"]]
        self.states = {int(k): str(v) for k, v in extra["states"].items()}
        self.ended = {int(k) for k in extra.get("ended", ())}


class SuccessiveHalvingStrategy(HyperbandStrategy):
    """One successive-halving bracket: ``n_configs`` (default η^s_max) at the smallest budget."""

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        n_trials: int,
        eta: int = 3,
        min_budget: float | None = None,
        max_budget: float | None = None,
        n_configs: int | None = None,
        fidelity: tuple[float, float] | None = None,
    ) -> None:
        self.n_configs = n_configs
        super().__init__(space, seed, n_trials, eta, min_budget, max_budget, fidelity)

    def _plan(self) -> list[list[Rung]]:
        return [halving_bracket(self.max_budget / self.min_budget, self.eta, self.n_configs)]
