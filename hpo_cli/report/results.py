"""Reading run directories back: trial tables, DataFrames, best-so-far curves.

from hpo_cli.report.results import trials_dataframe
df = trials_dataframe("runs/2026-11-22/10-31-07-123_sobol_ridge")   # like optuna's trials_dataframe
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo_cli.store import SUMMARY, TRIALS, RunStore
from hpo_cli.trial import TrialRecord

if TYPE_CHECKING:
    import pandas as pd

TRIALS_CSV = "trials.csv"
BASE_COLUMNS = ("trial", "state", "value", "budget", "seconds", "error")


CSV_VECTOR_LIMIT = 64  # longer vectors (a per-weight space) are summarized: trials.jsonl has them whole


def flat_row(record: TrialRecord) -> dict[str, Any]:
    """One trial as a flat row: params.NAME (vectors as params.NAME[i], or, beyond
    CSV_VECTOR_LIMIT entries, params.NAME.min/.mean/.max), metrics.NAME, cost.NAME."""
    row: dict[str, Any] = {k: getattr(record, k) for k in BASE_COLUMNS}
    for prefix, values in (("params", record.params), ("metrics", record.metrics), ("cost", record.cost)):
        for name, value in values.items():
            if isinstance(value, list) and len(value) > CSV_VECTOR_LIMIT:
                array = np.asarray(value, dtype=float)
                row.update({f"{prefix}.{name}.min": array.min(), f"{prefix}.{name}.mean": array.mean()})
                row[f"{prefix}.{name}.max"] = array.max()
            elif isinstance(value, list):
                row.update({f"{prefix}.{name}[{i}]": v for i, v in enumerate(value)})
            else:
                row[f"{prefix}.{name}"] = value
    return row


def write_trials_csv(records: Sequence[TrialRecord], path: Path) -> None:
    rows = [flat_row(r) for r in sorted(records, key=lambda r: r.trial)]
    columns = list(BASE_COLUMNS) + sorted({k for row in rows for k in row} - set(BASE_COLUMNS))
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def trials_dataframe(run_dir: str | Path) -> pd.DataFrame:
    """The trials of a run as a pandas DataFrame, one row per trial (columns as in trials.csv)."""
    import pandas as pd

    records = RunStore(run_dir).read_trials()
    return pd.DataFrame([flat_row(r) for r in sorted(records, key=lambda r: r.trial)])


@dataclass(frozen=True)
class Run:
    """A run directory read back: its summary and its trials."""

    path: Path
    summary: dict[str, Any]
    records: list[TrialRecord]

    @property
    def direction(self) -> str:
        return str(self.summary.get("direction", "minimize"))

    @property
    def sign(self) -> float:
        return 1.0 if self.direction == "minimize" else -1.0

    @property
    def values(self) -> list[float | None]:
        """Each trial's value in trial order, None unless it completed."""
        return [r.value if r.state == "complete" else None for r in self.records]


def find_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Run directories given directly, or found below the given folders (a multirun)."""
    found: dict[Path, None] = {}
    for p in map(Path, paths):
        if (p / SUMMARY).is_file():
            found[p.resolve()] = None
        else:
            for summary_file in sorted(p.rglob(SUMMARY)):
                if (summary_file.parent / TRIALS).exists():
                    found[summary_file.parent.resolve()] = None

    runs = []
    for path in found:
        store = RunStore(path)
        summary = store.read_json(SUMMARY)
        if summary is not None:
            runs.append(Run(path, summary, sorted(store.read_trials(), key=lambda r: r.trial)))
    return runs


def best_so_far(values: Sequence[float | None], direction: str) -> np.ndarray:
    """Running best of the values (None = failed), shape (len(values),); NaN before the first."""
    out, best = np.full(len(values), np.nan), np.nan
    better = np.less if direction == "minimize" else np.greater
    for i, v in enumerate(values):
        if v is not None and (np.isnan(best) or better(v, best)):
            best = v
        out[i] = best
    return out


def convergence_point(curve: Sequence[float] | np.ndarray, sign: float, share: float = 0.99) -> int | None:
    """Trials (1-based) needed to reach ``share`` of the run's total improvement over its first
    value (Bakhteev & Strijov's "Conv."); None without a complete trial."""
    values = [sign * v for v in curve if not math.isnan(v)]
    if not values:
        return None
    offset = len(curve) - len(values)
    first, final = values[0], values[-1]
    target = first - share * (first - final)
    for i, v in enumerate(values):
        if v <= target + 1e-15 * max(1.0, abs(target)):
            return offset + i + 1
    return len(curve)


def primary_test_metric(metrics: Mapping[str, Any]) -> str | None:
    """The test metric a table reports: test_accuracy, test_rmse, … (the first test_* one)."""
    for name in ("test_accuracy", "test_rmse", "test_mse", "test_loss"):
        if name in metrics:
            return name
    return next((k for k in sorted(metrics) if k.startswith("test_")), None)
