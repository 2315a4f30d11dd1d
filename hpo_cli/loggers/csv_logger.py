"""``logger=csv``: every trial's learning curves and final scalars in one long-format table,
``<run dir>/metrics.csv`` (``trial, state, name, step, value``), for pandas or a spreadsheet.

Curves (``train_loss`` by epoch, from the trainers' hook) have their epoch as step; a trial's
final scalars (``value``, its metrics, ``seconds``, ``cost.*``) have the trial's budget as step
(empty without one). Rows are appended and flushed per trial; a resumed run appends the trials
the file does not hold yet.
"""

from __future__ import annotations

import csv
from pathlib import Path

from hpo_cli.loggers.base import RunContext, TrialLogger
from hpo_cli.loggers.values import trial_scalars
from hpo_cli.trial import TrialRecord

COLUMNS = ("trial", "state", "name", "step", "value")


class CsvLogger(TrialLogger):
    name = "csv"

    def __init__(self, filename: str = "metrics.csv") -> None:
        self.filename = filename
        self.path = Path(filename)

    def open(self, run: RunContext) -> None:
        self.path = run.dir / self.filename
        if not self.path.is_file() or self.path.stat().st_size == 0:
            with self.path.open("w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow(COLUMNS)

    def logged(self) -> set[int]:
        with self.path.open(newline="", encoding="utf-8") as f:
            return {int(row["trial"]) for row in csv.DictReader(f) if row.get("trial", "").isdigit()}

    def log_trial(self, record: TrialRecord) -> None:
        step = "" if record.budget is None else str(int(record.budget))
        rows: list[tuple[int, str, str, int | str, float]] = [
            (record.trial, record.state, name, int(epoch), value)
            for name, points in record.curves.items()
            for epoch, value in points
        ]
        rows += [(record.trial, record.state, name, step, value) for name, value in trial_scalars(record).items()]
        with self.path.open("a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(rows)
