"""``executor=serial``: every trial in the driver process, one after another (the default)."""

from __future__ import annotations

import sys
from collections import deque
from typing import Any

from hpo_cli.executors.base import Executor, Job, Objective, Outcome, evaluate_trial


class SerialExecutor(Executor):
    name = "serial"

    def __init__(self) -> None:
        self.queue: deque[tuple[Job, Objective]] = deque()

    @property
    def slots(self) -> int:
        return 1

    def submit(self, job: Job, objective: Objective) -> None:
        self.queue.append((job, objective))

    def wait(self) -> list[tuple[Job, Outcome]]:
        job, objective = self.queue.popleft()
        return [(job, evaluate_trial(objective, job))]

    def close(self) -> None:
        self.queue.clear()

    def describe(self) -> dict[str, Any]:
        torch = sys.modules.get("torch")
        return {"name": self.name, "workers": 1, "threads": torch.get_num_threads() if torch is not None else None}
