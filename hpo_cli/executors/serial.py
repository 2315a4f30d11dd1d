"""``executor=serial``: every trial in the driver process, one after another (the default)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from hpo_cli.executors.base import Executor, Job, Objective, Outcome, evaluate_trial


class SerialExecutor(Executor):
    name = "serial"

    def run(self, jobs: Sequence[Job], objective: Objective) -> list[Outcome]:
        return [evaluate_trial(objective, job) for job in jobs]

    def describe(self) -> dict[str, Any]:
        torch = sys.modules.get("torch")
        return {"name": self.name, "workers": 1, "threads": torch.get_num_threads() if torch is not None else None}
