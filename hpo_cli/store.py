"""The run directory is the database.

Files (their names are part of the interface):

* ``trials.jsonl``: one JSON object per finished trial, appended, flushed and fsynced, so a
  killed run loses at most the trial in flight;
* ``summary.json``: the run's status and best trial, rewritten atomically;
* ``best.yaml``: the best parameters;
* ``strategy_state.json``: the strategy's last checkpoint (see :mod:`hpo_cli.loop`);
* ``plots/history.png``: best value so far against trial number.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

TRIALS = "trials.jsonl"
SUMMARY = "summary.json"
BEST = "best.yaml"
STRATEGY_STATE = "strategy_state.json"


@dataclass(frozen=True)
class TrialRecord:
    """One line of ``trials.jsonl``."""

    trial: int
    state: str  # "complete" | "failed" | "pruned"
    params: dict[str, Any]
    value: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    budget: float | None = None
    seconds: float = 0.0
    error: str | None = None
    cost: dict[str, int] = field(default_factory=dict)
    gradient: list[float] | None = None  # only for evaluations that returned one

    def to_json(self) -> str:
        row = asdict(self)
        if row["gradient"] is None:
            del row["gradient"]
        return json.dumps(row, allow_nan=False, default=_json_default)

    @classmethod
    def from_json(cls, line: str) -> TrialRecord:
        d = json.loads(line)
        return cls(
            trial=int(d["trial"]),
            state=str(d["state"]),
            params=dict(d["params"]),
            value=d.get("value"),
            metrics=dict(d.get("metrics") or {}),
            budget=d.get("budget"),
            seconds=float(d.get("seconds") or 0.0),
            error=d.get("error"),
            cost=dict(d.get("cost") or {}),
            gradient=d.get("gradient"),
        )


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def finite_or_none(x: Any) -> Any:
    """JSON has no NaN/inf: such floats are stored as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Mapping):
        return {k: finite_or_none(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite_or_none(v) for v in x]
    return x


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def trials_path(self) -> Path:
        return self.dir / TRIALS

    def append_trial(self, record: TrialRecord) -> None:
        with self.trials_path.open("a", encoding="utf-8") as f:
            f.write(record.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_trials(self, repair: bool = False) -> list[TrialRecord]:
        """All complete lines. A torn last line (a kill mid-write) is dropped, and with
        ``repair`` also cut from the file so that appending can go on."""
        if not self.trials_path.exists():
            return []
        data = self.trials_path.read_bytes()
        records, good_end, offset = [], 0, 0
        for raw in data.splitlines(keepends=True):
            offset += len(raw)
            try:
                if not raw.endswith(b"\n"):
                    raise ValueError("unterminated line")
                records.append(TrialRecord.from_json(raw.decode("utf-8")))
                good_end = offset
            except (ValueError, TypeError, KeyError):
                break
        if repair and good_end < len(data):
            with self.trials_path.open("r+b") as f:
                f.truncate(good_end)
                os.fsync(f.fileno())
        return records

    def write_json(self, name: str, obj: Mapping[str, Any]) -> None:
        text = json.dumps(finite_or_none(obj), indent=2, default=_json_default)
        self._atomic_write(name, text + "\n")

    def read_json(self, name: str) -> dict[str, Any] | None:
        path = self.dir / name
        if not path.exists():
            return None
        result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return result

    def write_best(self, params: Mapping[str, Any], comment_lines: Iterable[str]) -> None:
        header = "".join(f"# {line}\n" for line in comment_lines)
        body = yaml.safe_dump(finite_or_none(dict(params)), sort_keys=False, default_flow_style=None)
        self._atomic_write(BEST, header + body)

    def _atomic_write(self, name: str, text: str) -> None:
        tmp = self.dir / f".{name}.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / name)


def best_trial(records: Sequence[TrialRecord], direction: str) -> TrialRecord | None:
    """The complete trial with the best value (the earliest one on ties)."""
    complete = [r for r in records if r.state == "complete" and r.value is not None]
    if not complete:
        return None
    sign = 1.0 if direction == "minimize" else -1.0
    return min(complete, key=lambda r: (sign * float(r.value), r.trial))  # type: ignore[arg-type]
