"""The records every layer shares: what a strategy suggests (:class:`Suggestion`), what a task
returns (:class:`Evaluation`), what a strategy is told (:class:`Observation`), and what the run
directory stores (:class:`TrialRecord`), with one :class:`TrialState`.

Strategies always *minimize* ``Observation.loss``: the loop flips the sign for
``direction=maximize``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hpo_cli.request import HypergradRequest, InnerState
from hpo_cli.space import ParamValue


class TrialState(enum.StrEnum):
    COMPLETE = "complete"
    FAILED = "failed"
    PRUNED = "pruned"


@dataclass(frozen=True)
class Suggestion:
    """One configuration to evaluate.

    ``key`` is unique within a strategy's lifetime and ties the observation back to it.
    ``unit`` is the point in the space's unit cube, shape (space.dim,), when the strategy
    works there. ``budget`` is a fidelity (e.g. epochs) for multi-fidelity strategies;
    ``request`` asks the task for a hypergradient (gradient-based strategies), None otherwise.
    ``model_file``: evaluate the trained weights saved in this file (a run's
    ``best_model.npz``) instead of training (``strategy=fixed`` on a run whose best model
    cannot be retrained from θ0: HOAG's warm starts, online methods).
    """

    key: int
    params: dict[str, ParamValue]
    unit: tuple[float, ...] | None = None
    budget: float | None = None
    request: HypergradRequest | None = None
    model_file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "key": self.key,
            "params": self.params,
            "unit": None if self.unit is None else list(self.unit),
            "budget": self.budget,
            "request": None if self.request is None else self.request.to_dict(),
        }
        if self.model_file is not None:
            out["model_file"] = self.model_file
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Suggestion:
        unit, request = d.get("unit"), d.get("request")
        return cls(
            key=int(d["key"]),
            params=dict(d["params"]),
            unit=None if unit is None else tuple(float(x) for x in unit),
            budget=d.get("budget"),
            request=HypergradRequest.from_dict(request) if request else None,
            model_file=d.get("model_file"),
        )


@dataclass(frozen=True)
class Observation:
    """The outcome of evaluating a suggestion. ``loss`` is None unless the trial completed;
    ``carry`` is the inner state a hypergradient evaluation left for the next one."""

    suggestion: Suggestion
    state: TrialState
    loss: float | None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    gradient: tuple[float, ...] | None = None  # d loss / d params (flattened), when asked for
    error: str | None = None  # why the trial failed
    carry: InnerState | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "suggestion": self.suggestion.to_dict(),
            "state": self.state.value,
            "loss": self.loss,
            "metrics": dict(self.metrics),
            "gradient": None if self.gradient is None else list(self.gradient),
            "error": self.error,
            "carry": None if self.carry is None else self.carry.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Observation:
        gradient, carry = d.get("gradient"), d.get("carry")
        return cls(
            Suggestion.from_dict(d["suggestion"]),
            TrialState(d["state"]),
            d.get("loss"),
            dict(d.get("metrics") or {}),
            None if gradient is None else tuple(gradient),
            d.get("error"),
            None if carry is None else InnerState.from_dict(carry),
        )


@dataclass(frozen=True)
class TrainedModel:
    """The weights a trial trained: named numpy arrays (``theta``: the flat parameter vector,
    or scikit-learn's ``coef``/``intercept``) and JSON-able facts about them (``meta``: the
    model's kind and shape, e.g. an MLP's ``layer_sizes`` and ``activation``).

    ``from_scratch``: True when training the same parameters again from θ0 (same seed, same
    task config) gives these weights; False when they come from state carried across trials
    (HOAG's warm starts, greedy and rtho's one training run), so only the saved weights
    reproduce the trial's value."""

    arrays: Mapping[str, np.ndarray]
    meta: Mapping[str, Any] = field(default_factory=dict)
    from_scratch: bool = True

    def __eq__(self, other: object) -> bool:
        """Equal weights (bit for bit, the same dtypes), meta and origin."""
        if not isinstance(other, TrainedModel) or set(self.arrays) != set(other.arrays):
            return False
        same = all(
            np.asarray(a).dtype == np.asarray(other.arrays[k]).dtype and np.array_equal(a, other.arrays[k])
            for k, a in self.arrays.items()
        )
        return same and dict(self.meta) == dict(other.meta) and self.from_scratch == other.from_scratch

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class SavedModel:
    """A request to score saved weights (the arrays of a :class:`TrainedModel`) instead of
    training: what :class:`Suggestion.model_file` turns into for the task."""

    arrays: Mapping[str, np.ndarray]
    meta: Mapping[str, Any] = field(default_factory=dict)


Request = HypergradRequest | SavedModel  # what a strategy may ask of a task beyond a plain evaluation


@dataclass(frozen=True)
class Evaluation:
    """``value``: the objective; ``metrics``: everything worth recording (test scores too);
    ``cost``: counters such as ``{"inner_steps": 200}``; ``gradient``: d value / d params,
    flattened in the order of the params (vectors in full), when the evaluation was asked
    for it (gradient-based strategies); ``carry``: the inner state to hand to the next
    hypergradient evaluation (online training, warm starts), kept by the strategy;
    ``model``: the weights the evaluation trained (the run keeps its best trial's)."""

    value: float
    metrics: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, int] = field(default_factory=dict)
    gradient: list[float] | None = None
    carry: InnerState | None = None
    model: TrainedModel | None = None


@dataclass(frozen=True)
class TrialRecord:
    """One line of ``trials.jsonl``."""

    trial: int
    state: TrialState
    params: dict[str, Any]
    value: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    budget: float | None = None
    seconds: float = 0.0
    error: str | None = None
    cost: dict[str, int] = field(default_factory=dict)
    gradient: list[float] | None = None  # only for evaluations that returned one
    finished_s: float | None = None  # when its result reached the driver: seconds since the run started
    # learning curves the trainer reported (hpo_cli.curves): name -> [[step, value], ...]
    curves: dict[str, list[list[float]]] = field(default_factory=dict)
    # where it ran: {"host", "pid"} of the process, plus Ray's {"node_id", "node_ip"} on Ray
    worker: dict[str, Any] | None = None
    retry_of: int | None = None  # the trial it runs again (that one was lost with its worker or node)
    retried_as: int | None = None  # lost with its worker or node: the trial that runs it again

    def to_json(self) -> str:
        row = asdict(self)
        for optional in ("gradient", "finished_s", "worker", "retry_of", "retried_as"):
            if row[optional] is None:
                del row[optional]
        if not row["curves"]:
            del row["curves"]
        return json.dumps(row, allow_nan=False, default=json_default)

    @classmethod
    def from_json(cls, line: str) -> TrialRecord:
        d = json.loads(line)
        return cls(
            trial=int(d["trial"]),
            state=TrialState(d["state"]),
            params=dict(d["params"]),
            value=d.get("value"),
            metrics=dict(d.get("metrics") or {}),
            budget=d.get("budget"),
            seconds=float(d.get("seconds") or 0.0),
            error=d.get("error"),
            cost=dict(d.get("cost") or {}),
            gradient=d.get("gradient"),
            finished_s=d.get("finished_s"),
            curves=dict(d.get("curves") or {}),
            worker=d.get("worker"),
            retry_of=d.get("retry_of"),
            retried_as=d.get("retried_as"),
        )


def json_default(obj: Any) -> Any:
    """``json.dumps``'s fallback: numpy arrays and scalars as plain lists and numbers."""
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")
