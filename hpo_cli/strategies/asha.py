"""ASHA: asynchronous successive halving (Li et al. 2020, Algorithm 2), optionally with
Hyperband's brackets over it (§3).

Rungs k = 0 … K over a task's fidelity (e.g. epochs), K = ⌊log_η(max_budget / min_budget)⌋, with
the budgets successive halving uses (:func:`hpo_cli.strategies.hyperband.halving_bracket`): the
top rung is max_budget and each rung below has 1/η of the next one's budget, so rung k is
min_budget·η^k whenever max_budget / min_budget is a power of η.

Every ``ask(n)`` answers at once with n suggestions; it never waits for a rung to fill. For each
slot it looks for a promotable configuration from the highest rung down: one in the top
⌊|rung k|/η⌋ of rung k's completed results (|rung k| counts completed results only) that has not
been promoted yet. It is suggested again with the same parameters at rung k + 1's budget;
otherwise a new random configuration starts at the bottom rung. A configuration is marked
promoted when its promotion is *asked*, so a pending promotion is never made twice, and a failed
trial never enters a rung, so it is never promoted. Ties go to the result told first.

``brackets`` > 1 (or ``hyperband``: K + 1 of them) runs Hyperband's brackets over ASHA: new
configurations go to brackets s = 0, 1, … in turn, and bracket s starts its configurations at
rung s. Each bracket ranks its own rungs; promotions are looked for in every bracket, highest
rung first.

Trial states: every trial is recorded ``complete`` (or ``failed``), including those whose
configuration is never promoted. In ASHA no configuration is ever finally stopped: any result
in rung k may enter rung k's top 1/η later, as the rung grows; and the loop keeps a trial whose
state is undecided (:meth:`Strategy.trial_state` is None) in memory, out of ``trials.jsonl``,
so deferring the decision would hold back every record. (Hyperband's ``pruned`` is decided
when its synchronous rung is complete, which never happens here.) Only a trial at the top rung
and a failed one end their configuration for good (:meth:`stops`); the others' promotion
checkpoints stay until the run ends.

ASHA never finishes by itself: the run's ``n_trials`` (or ``timeout_s``) is its budget.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from hpo_cli.errors import ConfigError
from hpo_cli.space import SearchSpace
from hpo_cli.strategies.base import Strategy
from hpo_cli.strategies.hyperband import budget_range, halving_bracket
from hpo_cli.trial import Observation, Suggestion, TrialState
from hpo_cli.validate import is_int

Entry = tuple[float, int, int]  # (loss, order told, configuration): a rung's completed result


class ASHAStrategy(Strategy):
    """Asynchronous successive halving: promote the top 1/η of a rung as soon as they are known."""

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        n_trials: int,
        eta: int = 3,
        min_budget: float | None = None,
        max_budget: float | None = None,
        brackets: int | str = 1,
        fidelity: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(space, seed, n_trials)
        if not is_int(eta) or eta < 2:
            raise ConfigError("strategy.eta", eta, "must be an integer >= 2")
        self.eta = int(eta)
        self.min_budget, self.max_budget = budget_range(min_budget, max_budget, fidelity, self.eta)
        ratio = self.max_budget / self.min_budget
        self.budgets = [self.min_budget * r for _, r in halving_bracket(ratio, self.eta, None)]
        top = len(self.budgets)  # K + 1
        if brackets == "hyperband":
            brackets = top
        if not is_int(brackets) or not 1 <= int(brackets) <= top:
            raise ConfigError(
                "strategy.brackets", brackets, f"must be hyperband or an integer from 1 to {top} (K + 1 rungs)"
            )
        self.n_brackets = int(brackets)
        self.units: list[list[float]] = []  # configuration -> its unit-cube point
        self.level: list[int] = []  # configuration -> the highest rung it was suggested at
        self.results: list[tuple[int, int, float]] = []  # (configuration, rung, loss), in told order
        self.at: dict[int, tuple[int, int]] = {}  # pending suggestion key -> (configuration, rung)
        self.ended: set[int] = set()  # told keys whose configuration goes no further (top rung, failed)
        self._rungs: dict[tuple[int, int], list[Entry]] = {}  # (bracket, rung) -> sorted results

    def bracket_of(self, config: int) -> int:
        """The bracket (= starting rung) of configuration ``config``: round robin."""
        return config % self.n_brackets

    def _propose(self, n: int) -> list[Suggestion]:
        out = []
        for _ in range(n):
            found = self._promotable()
            if found is None:
                config, rung = len(self.units), self.bracket_of(len(self.units))
                self.units.append([float(x) for x in self.rng.random(self.space.dim)])
                self.level.append(rung)
            else:
                config, rung = found[0], found[1] + 1
                self.level[config] = rung
            unit = np.asarray(self.units[config])
            suggestion = self._suggest(self.space.decode(unit), unit, budget=self.budgets[rung])
            self.at[suggestion.key] = (config, rung)
            out.append(suggestion)
        return out

    def _promotable(self) -> tuple[int, int] | None:
        """(configuration, rung) of the next promotion, highest rung first, else None."""
        for rung in range(len(self.budgets) - 2, -1, -1):
            for bracket in range(min(rung, self.n_brackets - 1) + 1):
                entries = self._rungs.get((bracket, rung), [])
                for _, _, config in entries[: len(entries) // self.eta]:
                    if self.level[config] == rung:
                        return config, rung
        return None

    def _observe(self, observation: Observation) -> None:
        config, rung = self.at.pop(observation.suggestion.key)
        loss = observation.loss
        if observation.state == TrialState.COMPLETE and loss is not None and math.isfinite(loss):
            self._add(config, rung, float(loss))
            if rung < len(self.budgets) - 1:
                return
        self.ended.add(observation.suggestion.key)  # at the top rung, or never to enter a rung

    def stops(self, key: int) -> bool:
        """True for a trial at the top rung and a failed one: no promotion follows them."""
        return key in self.ended

    def _add(self, config: int, rung: int, loss: float) -> None:
        bisect.insort(self._rungs.setdefault((self.bracket_of(config), rung), []), (loss, len(self.results), config))
        self.results.append((config, rung, loss))

    def _extra_state(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "level": self.level,
            "results": [list(r) for r in self.results],
            "at": {str(k): list(v) for k, v in self.at.items()},
            "ended": sorted(self.ended),
        }

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self.units = [[float(x) for x in u] for u in extra["units"]]
        self.level = [int(k) for k in extra["level"]]
        self.at = {int(k): (int(v[0]), int(v[1])) for k, v in extra["at"].items()}
        self.ended = {int(k) for k in extra.get("ended", ())}
        self.results, self._rungs = [], {}
        for config, rung, loss in extra["results"]:
            self._add(int(config), int(rung), float(loss))
