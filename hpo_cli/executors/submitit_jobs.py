"""``executor=submitit``: one SLURM job per trial, through the submitit package.

``cluster: null`` picks SLURM where ``sbatch`` exists, else submitit's local executor (one
process per trial on this machine: for tests and for machines without SLURM); ``slurm`` or
``local`` force one. At most ``workers`` jobs are queued or running at a time. Each job builds
the task from the composed config, evaluates its trial and returns the record; the job folders
(logs, pickled results) are kept under ``<run dir>/submitit/``. The driver must outlive the
jobs it waits for (run it inside ``tmux``/``screen`` or as a small job of its own); a killed
driver resumes with ``hpo resume``, which submits the trials that were in flight again.

A job that dies (cancelled, out of memory, over SLURM's time limit, its node lost) turns its
trial into a failed row with submitit's reason; a trial over ``trial_timeout_s`` is cancelled
(``scancel``) and recorded as failed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hpo_cli.errors import ConfigError
from hpo_cli.executors.base import (
    Job,
    Outcome,
    QueuedExecutor,
    failed_outcome,
    one_line,
    timed_out,
)
from hpo_cli.validate import positive_float, positive_int

EXTRA = "pip install 'hpo_cli[slurm]'"
CLUSTERS = ("slurm", "local")
POLL_S = {"local": 0.05, "slurm": 2.0}  # how often job states are checked (submitit caches sacct)
LOCAL_RESULT_WAIT_S = 1.0  # how long a local job that died is given to write its result


class SubmititExecutor(QueuedExecutor):
    name = "submitit"

    def __init__(
        self,
        workers: int = 4,
        threads: int | None = None,
        cluster: str | None = None,
        partition: str | None = None,
        timeout_min: int = 60,
        gpus_per_node: int | None = None,
        mem_gb: float | None = None,
        additional_parameters: Mapping[str, Any] | None = None,
        trial_timeout_s: float | None = None,
        asynchronous: bool = True,
        folder: str | None = None,
    ) -> None:
        try:
            import submitit
        except ImportError:
            raise ConfigError("executor", "submitit", f"needs submitit, an optional extra: {EXTRA}") from None
        self.submitit = submitit
        if cluster is None:
            cluster = "slurm" if submitit.AutoExecutor.which() == "slurm" else "local"
        if cluster not in CLUSTERS:
            raise ConfigError("executor.cluster", cluster, f"must be one of {', '.join(CLUSTERS)} (or null: auto)")
        self.cluster = cluster
        super().__init__(workers, threads, trial_timeout_s, asynchronous, local=cluster == "local")
        self.parameters: dict[str, Any] = {
            "timeout_min": positive_int(timeout_min, "executor.timeout_min"),
            "cpus_per_task": self.threads,
            "name": "hpo_trial",
        }
        if gpus_per_node is not None:
            self.parameters["gpus_per_node"] = int(gpus_per_node)
        if mem_gb is not None:
            self.parameters["mem_gb"] = positive_float(mem_gb, "executor.mem_gb")
        if partition is not None:
            self.parameters["slurm_partition"] = str(partition)
        if additional_parameters:
            self.parameters["slurm_additional_parameters"] = dict(additional_parameters)
        self.folder = None if folder is None else Path(folder)
        self.executor: Any = None
        self.poll_s = POLL_S[cluster]
        self.running: list[tuple[Any, Job, float]] = []  # (submitit job, our job, submission time)

    def bind(self, recipe: Mapping[str, Any]) -> None:
        super().bind(recipe)
        if recipe.get("device") == "cuda":
            self.parameters.setdefault("gpus_per_node", 1)

    def attach(self, run_dir: Path) -> None:
        super().attach(run_dir)
        if self.folder is None:
            self.folder = Path(run_dir) / "submitit"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "workers": self.workers, "threads": self.threads, "cluster": self.cluster}

    def start(self) -> None:
        if self.executor is None:
            if self.folder is None:
                raise RuntimeError("executor=submitit needs a run directory (attach) before it runs")
            self.executor = self.submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster)
            self.executor.update_parameters(**self.parameters)

    def close(self) -> None:
        for handle, _, _ in self.running:  # nobody will read these results: free the cluster
            try:
                handle.cancel(check=False)
            except Exception:  # already finished or unknown to the scheduler
                continue
        self.running = []
        self.queue.clear()

    # -- trials ----------------------------------------------------------------------------

    def _busy(self) -> int:
        return len(self.running)

    def _dispatch(self) -> None:
        from hpo_cli.executors.worker import run_one_trial

        if self.recipe is None:
            raise RuntimeError("executor=submitit needs the composed config (bind) before it runs")
        paths = [p for p in sys.path if p]
        while self.queue and len(self.running) < self.workers:
            job = self.queue.popleft()
            run_dir = None if self.run_dir is None else str(self.run_dir)
            handle = self.executor.submit(run_one_trial, self.recipe, self.threads, paths, job, run_dir)
            if self.cluster == "local":  # a dead job's missing result: no network filesystem to wait 15 s for
                handle._results_timeout_s = LOCAL_RESULT_WAIT_S
            self.running.append((handle, job, time.monotonic()))

    def _collect(self) -> list[tuple[Job, Outcome]]:
        finished: list[tuple[Job, Outcome]] = []
        still: list[tuple[Any, Job, float]] = []
        for handle, job, start in self.running:
            elapsed = time.monotonic() - start
            if handle.done():
                try:
                    finished.append((job, handle.result()))
                except Exception as exc:  # the job died: killed, out of memory or time, node lost
                    reason = f"the job running it ({handle.job_id}) died: {one_line(exc)}"
                    finished.append((job, failed_outcome(job, elapsed, reason)))
            elif self.trial_timeout_s is not None and elapsed >= self.trial_timeout_s:
                handle.cancel(check=False)
                finished.append((job, timed_out(job, elapsed, self.trial_timeout_s)))
            else:
                still.append((handle, job, start))
        self.running = still
        return finished
