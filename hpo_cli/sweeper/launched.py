"""Trials as Hydra jobs: the executor of ``hydra/sweeper=hpo``, one ``launch()`` per batch.

Each trial is one job of the user's Hydra app, through the launcher the app is configured with
(basic, joblib, submitit, ...). Its overrides are the sweep's fixed arguments, the trial's
parameters (ints as int literals, floats at full precision, categoricals as their values) and,
with ``seed_key``, a per-trial seed. The job's return value is the objective: a number, or a
mapping holding ``metric``. A job that raises or returns NaN is a failed trial.

Hydra's ``launch()`` is batch-synchronous, so this executor is too: the slowest job of a batch
idles the others (``hpo run``'s executors are asynchronous).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from hpo_cli.executors.base import Executor, Job, Objective, Outcome, evaluate_trial
from hpo_cli.sweeper.grammar import as_override
from hpo_cli.sweeper.timing import job_seconds, unwrapped
from hpo_cli.trial import Evaluation


class LauncherExecutor(Executor):
    name = "hydra-launcher"
    asynchronous = False

    def __init__(
        self,
        launch: Callable[[Sequence[Sequence[str]], int], Sequence[Any]],
        fixed: Sequence[str],
        metric: str | None,
        seed_key: str | None,
        budget_key: str | None,
        batch_size: int,
        launcher_name: str,
    ) -> None:
        self.launch = launch
        self.fixed = list(fixed)
        self.metric = metric
        self.seed_key = seed_key
        self.budget_key = budget_key
        self.batch_size = batch_size
        self.launcher_name = launcher_name
        self.queue: deque[Job] = deque()

    @property
    def slots(self) -> int:
        return self.batch_size

    def overrides(self, job: Job) -> list[str]:
        """The command-line overrides of ``job``'s Hydra job."""
        return self.overrides_of(job.suggestion.params, job.seed, job.suggestion.budget)

    def overrides_of(self, params: Mapping[str, Any], seed: int, budget: float | None) -> list[str]:
        lines = [*self.fixed, *(as_override(key, value) for key, value in params.items())]
        if self.seed_key:
            lines.append(f"++{self.seed_key}={seed}")
        if self.budget_key and budget is not None:
            lines.append(f"++{self.budget_key}={int(budget) if float(budget).is_integer() else budget!r}")
        return lines

    def submit(self, job: Job, objective: Objective) -> None:
        self.queue.append(job)

    def wait(self) -> list[tuple[Job, Outcome]]:
        """Launch every queued job as one batch; their outcomes."""
        jobs = list(self.queue)
        self.queue.clear()
        started = time.perf_counter()
        returns = self.launch([self.overrides(job) for job in jobs], jobs[0].number)
        batch_seconds = time.perf_counter() - started
        outcomes: list[tuple[Job, Outcome]] = []
        for job, returned in zip(jobs, returns, strict=True):
            record = evaluate_trial(partial(self.from_return, returned), job).record
            seconds = job_seconds(returned, batch_seconds)  # the job's own (batch: the app was not wrapped)
            outcomes.append((job, Outcome(replace(record, seconds=seconds))))
        return outcomes

    def from_return(self, returned: Any, *_: Any) -> Evaluation:
        """The job's return value as an evaluation; raises the job's own error when it failed."""
        value = unwrapped(returned.return_value)  # Hydra re-raises a failed job's exception here
        if isinstance(value, Mapping):
            numbers = {str(k): float(v) for k, v in value.items() if _is_number(v)}
            if self.metric is None:
                raise ValueError(
                    f"the job returned a mapping {sorted(map(str, value))}: name the objective with "
                    "hydra.sweeper.metric=KEY"
                )
            if self.metric not in value:
                raise ValueError(f"the job's return value has no {self.metric!r} (it has {sorted(map(str, value))})")
            return Evaluation(float(value[self.metric]), numbers)
        if not _is_number(value):
            raise ValueError(f"the job returned {type(value).__name__} {value!r}, not a number or a mapping")
        return Evaluation(float(value), {"value": float(value)})

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "workers": self.batch_size, "threads": None, "launcher": self.launcher_name}


def _is_number(value: Any) -> bool:
    """A number (numpy and torch scalars too; NaN included: it becomes a failed trial), not a bool or text."""
    if isinstance(value, bool | str | bytes):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
