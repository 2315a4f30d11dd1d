"""``logger=tensorboard``: the run as TensorBoard event files under ``<run dir>/tb/``.

* ``tb/trial_NNNN/``: one TensorBoard run per trial: its learning curves by epoch
  (``curve/train_loss``, …, from the trainers' hook), its final scalars (``metric/value``,
  ``metric/<name>``, ``metric/seconds``) and an HParams-plugin session with its parameters
  (vector entries as ``name[i]``), so the HParams dashboard tables and plots every trial.
* ``tb/study/``: by trial number, ``trial/value`` and ``trial/best``; for the hyper-iterations of
  gradient strategies also ``hypergradient/norm`` and ``h/<name>`` (vectors: ``h/<name>/mean``,
  ``/min``, ``/max`` and a histogram).

``tensorboard --logdir RUN/tb`` shows them. A resumed run writes new event files into the same
folders; trials whose folder exists are not written again.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hpo_cli.loggers.base import RunContext, TrialLogger, require
from hpo_cli.loggers.values import flat_params, gradient_norm, is_better, numbers, trial_scalars
from hpo_cli.trial import TrialRecord

TRIAL_DIR = "trial_{:04d}"


class TensorBoardLogger(TrialLogger):
    name = "tensorboard"

    def __init__(self, subdir: str = "tb", flush_every_trial: bool = True) -> None:
        require("tensorboard", "tensorboard")
        self.subdir = subdir
        self.flush_every_trial = flush_every_trial
        self.root = Path(subdir)
        self.direction = "minimize"
        self.best: float | None = None
        self.study: Any = None

    def open(self, run: RunContext) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.root = run.dir / self.subdir
        self.direction = run.direction
        for record in run.previous:
            if (
                record.value is not None
                and record.state == "complete"
                and is_better(record.value, self.best, self.direction)
            ):
                self.best = record.value
        self.study = SummaryWriter(str(self.root / "study"))

    def logged(self) -> set[int]:
        if not self.root.is_dir():
            return set()
        found = set()
        for folder in self.root.glob("trial_*"):
            if folder.name.removeprefix("trial_").isdigit() and any(folder.glob("events.out.tfevents.*")):
                found.add(int(folder.name.removeprefix("trial_")))
        return found

    def log_trial(self, record: TrialRecord) -> None:
        self._log_session(record)
        self._log_study(record)

    def _log_session(self, record: TrialRecord) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        step = int(record.budget) if record.budget is not None else 0
        final = {f"metric/{k}": v for k, v in trial_scalars(record).items()}
        hp = {k: _hparam(v) for k, v in flat_params(record.params).items()}
        hp.update(trial=record.trial, state=str(record.state))
        if record.budget is not None:
            hp["budget"] = float(record.budget)
        with SummaryWriter(str(self.root / TRIAL_DIR.format(record.trial))) as writer:
            for name, points in record.curves.items():
                for epoch, value in points:
                    writer.add_scalar(f"curve/{name}", value, int(epoch))
            for summary in hparams(hp, final):
                writer.file_writer.add_summary(summary)
            for tag, value in final.items():
                writer.add_scalar(tag, value, step)

    def _log_study(self, record: TrialRecord) -> None:
        n = record.trial
        if record.value is not None and record.state == "complete":
            self.study.add_scalar("trial/value", record.value, n)
            if is_better(record.value, self.best, self.direction):
                self.best = record.value
        if self.best is not None:
            self.study.add_scalar("trial/best", self.best, n)
        norm = gradient_norm(record)
        if norm is not None:  # a hyper-iteration: how h moves
            self.study.add_scalar("hypergradient/norm", norm, n)
            self._log_h(record.params, n)
        if self.flush_every_trial:
            self.study.flush()

    def _log_h(self, params: Mapping[str, Any], step: int) -> None:
        for name, value in params.items():
            if isinstance(value, list) and value:
                array = np.asarray(value, dtype=float)
                for stat in ("mean", "min", "max"):
                    self.study.add_scalar(f"h/{name}/{stat}", float(getattr(array, stat)()), step)
                self.study.add_histogram(f"h/{name}", array, step)
            else:
                for key, number in numbers({name: value}).items():
                    self.study.add_scalar(f"h/{key}", number, step)

    def close(self, summary: Mapping[str, Any]) -> None:
        if self.study is not None:
            self.study.close()
            self.study = None


def _hparam(value: Any) -> Any:
    """HParams take numbers, strings and booleans: anything else as its text."""
    return value if isinstance(value, bool | int | float | str) else str(value)
