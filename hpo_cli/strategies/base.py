"""The ask/tell contract every strategy implements.

A strategy proposes :class:`Suggestion` objects and learns from :class:`Observation` objects.
It never calls the objective; the loop (:mod:`hpo_cli.loop`) does. Strategies always
*minimize* ``Observation.loss``: the loop flips the sign for ``direction=maximize``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hpo_cli.request import HypergradRequest
from hpo_cli.space import ParamValue, SearchSpace
from hpo_cli.trial import Observation, Suggestion, TrialRecord, TrialState

if TYPE_CHECKING:
    from hpo_cli.tasks.base import Task

_UNBOUNDED = 2**62


class Strategy(ABC):
    """Base class: owns the seeded RNG, the pending suggestions and the observed history.

    Subclasses implement :meth:`_propose` and, when they have state beyond the RNG, history
    and pending suggestions, :meth:`_extra_state` / :meth:`_load_extra_state`.

    ``given_point``: the strategy evaluates a point named in its config (``params_file``, e.g.
    an earlier run's ``best.yaml``), so the wiring may take that run's space for the study.
    """

    given_point: ClassVar[bool] = False

    def __init__(self, space: SearchSpace, seed: int, n_trials: int) -> None:
        self.space = space
        self.seed = int(seed)
        self.n_trials = int(n_trials)
        self.rng = np.random.default_rng(self.seed)
        self.history: list[Observation] = []
        self.pending: dict[int, Suggestion] = {}
        self._told_states: dict[int, TrialState] = {}
        self._next_key = 0
        self._retries: dict[int, int] = {}  # pending key of a retry -> the key it was first asked under

    def ask(self, n: int = 1) -> list[Suggestion]:
        """Up to ``n`` new suggestions (fewer, possibly none, once the strategy is finished)."""
        if n < 1:
            raise ValueError(f"ask(n) needs n >= 1, got {n}")
        suggestions = self._propose(n)
        for s in suggestions:
            self.pending[s.key] = s
        return suggestions

    def tell(self, observations: Sequence[Observation]) -> None:
        """Report outcomes of earlier suggestions, in any order and any grouping."""
        for obs in observations:
            key = obs.suggestion.key
            if key not in self.pending:
                raise ValueError(f"tell() got suggestion key {key}, which is not pending")
            del self.pending[key]
            self.history.append(obs)
            self._told_states[key] = obs.state
            first = self._retries.pop(key, None)
            if first is not None:  # a retry: the strategy's own bookkeeping knows its first key
                obs = dataclasses.replace(obs, suggestion=dataclasses.replace(obs.suggestion, key=first))
                self._told_states[first] = obs.state
            self._observe(obs)

    def retry(self, key: int) -> Suggestion:
        """Pending suggestion ``key`` again, under the next key: its trial was lost with its
        worker or node, which says nothing about the configuration, so the loss is never told.
        The retry's outcome is told under the new key (the history holds it there) and reaches
        the strategy's own bookkeeping (:meth:`_observe`, :meth:`trial_state`) under the key
        first asked, so a strategy needs no code of its own for retries."""
        if key not in self.pending:
            raise ValueError(f"retry() got suggestion key {key}, which is not pending")
        again = dataclasses.replace(self.pending.pop(key), key=self._next_key)
        self._next_key += 1
        self.pending[again.key] = again
        self._retries[again.key] = self._retries.pop(key, key)
        return again

    def trial_state(self, key: int) -> TrialState | None:
        """The state to record for suggestion ``key``'s trial, None while it is undecided. A pure
        query. By default the state it was told with; strategies that decide later (successive
        halving prunes a rung's losers once the rung is complete) override it."""
        return self._told_states.get(key)

    def stops(self, key: int) -> bool:
        """True once the configuration of told suggestion ``key`` is stopped for good: the
        strategy will not suggest it again at any budget, so what the task keeps to continue
        its training (a promotion checkpoint) may go. A pure query; by default False (the
        run's end releases everything)."""
        return False

    def is_finished(self) -> bool:
        """True when the strategy has nothing more to suggest (e.g. an exhausted grid)."""
        return False

    @property
    def finish_message(self) -> str:
        """Why the strategy finished, for the run's summary."""
        return "the strategy finished"

    def check_task(self, task: Task) -> None:  # noqa: B027 - optional hook
        """Raise a ConfigError when this strategy cannot work with ``task`` (checked at start)."""

    def state_dict(self) -> dict[str, Any]:
        """A JSON-serializable snapshot; :meth:`load_state_dict` restores it exactly."""
        return {
            "class": type(self).__name__,
            "seed": self.seed,
            "rng": self.rng.bit_generator.state,
            "next_key": self._next_key,
            "pending": [s.to_dict() for s in self.pending.values()],
            **({"retries": [[k, v] for k, v in self._retries.items()]} if self._retries else {}),
            "history": [self._history_entry(o) for o in self.history],
            "extra": self._extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("class") != type(self).__name__:
            raise ValueError(f"state is for {state.get('class')}, not {type(self).__name__}")
        self.rng.bit_generator.state = state["rng"]
        self._next_key = int(state["next_key"])
        self.pending = {int(d["key"]): Suggestion.from_dict(d) for d in state["pending"]}
        self._retries = {int(k): int(v) for k, v in state.get("retries") or []}
        self.history = [Observation.from_dict(d) for d in state["history"]]
        self._told_states = {o.suggestion.key: o.state for o in self.history}
        self._load_extra_state(state.get("extra") or {})

    def _history_entry(self, observation: Observation) -> dict[str, Any]:
        """A history entry for the checkpoint. A big one (a vector space's point and gradient
        over HISTORY_INLINE_LIMIT numbers) is left to trials.jsonl, which holds it already:
        ``in_trials_file`` entries are filled in from the records on restore
        (:func:`fill_history`), so the checkpoint grows by a few numbers per trial, not by h."""
        entry = _without_inner_state(observation).to_dict()
        s = observation.suggestion
        big = len(s.unit or ()) + len(observation.gradient or ()) > HISTORY_INLINE_LIMIT
        if big and s.unit is not None and tuple(self.space.encode(s.params)) == s.unit:
            entry["suggestion"] = {**entry["suggestion"], "params": None, "unit": None}
            entry["gradient"], entry["in_trials_file"] = None, True
        return entry

    # -- for subclasses ---------------------------------------------------------------

    @abstractmethod
    def _propose(self, n: int) -> list[Suggestion]:
        """Up to ``n`` suggestions, each made with :meth:`_suggest`."""

    def _observe(self, observation: Observation) -> None:  # noqa: B027 - optional hook
        """Hook called once per told observation (after it joined ``history``)."""

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:  # noqa: B027
        """Restore what :meth:`_extra_state` saved."""

    def _suggest(
        self,
        params: dict[str, ParamValue],
        unit: np.ndarray | None = None,
        budget: float | None = None,
        request: HypergradRequest | None = None,
    ) -> Suggestion:
        key = self._next_key
        self._next_key += 1
        point = None if unit is None else tuple(float(x) for x in unit)
        return Suggestion(key, params, point, budget, request)

    def _suggest_unit(self, unit: np.ndarray) -> Suggestion:
        """A suggestion for a unit-cube point, shape (space.dim,)."""
        return self._suggest(self.space.decode(unit), unit)


class UnitCubeStrategy(Strategy):
    """A strategy that draws batches of unit-cube points, shape (n, space.dim)."""

    def _propose(self, n: int) -> list[Suggestion]:
        n = min(n, self._remaining())
        if n <= 0:
            return []
        return [self._suggest_unit(u) for u in self._draw(n)]

    def _remaining(self) -> int:
        return _UNBOUNDED

    @abstractmethod
    def _draw(self, n: int) -> np.ndarray:
        """``n`` points in [0, 1)^dim, shape (n, space.dim)."""


HISTORY_INLINE_LIMIT = 1000


def fill_history(
    state: Mapping[str, Any], records: Mapping[int, TrialRecord], space: SearchSpace, sign: float
) -> dict[str, Any]:
    """The checkpoint ``state`` with its ``in_trials_file`` history entries completed from the
    trial records (params, unit point, gradient × ``sign``, the loop's loss convention)."""
    history = []
    for entry in state.get("history") or []:
        if entry.get("in_trials_file"):
            record = records[int(entry["suggestion"]["key"])]  # a suggestion's key is its trial number
            suggestion = {**entry["suggestion"], "params": record.params, "unit": list(space.encode(record.params))}
            gradient = None if record.gradient is None else [sign * g for g in record.gradient]
            entry = {k: v for k, v in entry.items() if k != "in_trials_file"}
            entry = {**entry, "suggestion": suggestion, "gradient": gradient}
        history.append(entry)
    return {**state, "history": history}


def _without_inner_state(observation: Observation) -> Observation:
    """The observation as history keeps it: the inner state it carried (θ, tangents, ...) lives
    once, in the strategy's own state; kept per trial it would grow the checkpoint by a model's
    size at every hyper-iteration."""
    request = observation.suggestion.request
    if observation.carry is None and (request is None or request.state is None):
        return observation
    suggestion = dataclasses.replace(
        observation.suggestion, request=None if request is None else request.with_state(None)
    )
    return dataclasses.replace(observation, suggestion=suggestion, carry=None)
