"""``logger=mlflow``: one MLflow parent run per study, one nested run per trial.

The parent run (named after the run directory) holds the study's tags (strategy, task, space,
criterion, metric, direction, executor), ``value`` and ``best_value`` by trial number, and at the
end the run's files as artifacts: best.yaml, summary.json, trials.csv, the composed config, the
plots and the best model's weights (``best_model.npz``, or ``*.pt`` files, in the run directory).
Each trial is a nested run (``mlflow.parentRunId``) with its parameters (vector entries as
``name.i``), its final metrics (at the step of its budget), its learning curves by epoch and tags
(strategy, task, criterion, trial state, trial number).

The store is MLflow's embedded file store ``./mlruns`` (no server) unless
``logger.tracking_uri`` names another. The parent run's id is kept in ``<run dir>/mlflow_run.json``:
``hpo resume`` continues the same parent run, and logs only the trials it does not hold yet.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hpo_cli.loggers.base import RunContext, TrialLogger, require
from hpo_cli.loggers.values import flat_params, is_better, trial_scalars
from hpo_cli.trial import TrialRecord

STATE_FILE = "mlflow_run.json"
TAGGED = ("strategy", "task", "space", "criterion", "metric", "direction")
ARTIFACTS = ("best.yaml", "summary.json", "trials.csv", ".hydra/config.yaml")
WEIGHTS = ("best_model.npz", "*.pt", "*.pth", "*.safetensors")
STATUS = {"finished": "FINISHED", "failed": "FAILED", "interrupted": "KILLED", "running": "KILLED"}
TRIAL_STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}
MAX_PARAMS, MAX_METRICS = 100, 1000  # MLflow's log_batch limits (params, and all entries of one call)


class MlflowLogger(TrialLogger):
    name = "mlflow"

    def __init__(self, tracking_uri: str | None = None, experiment: str = "hpo") -> None:
        require("mlflow", "mlflow")
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.client: Any = None
        self.parent = ""
        self.experiment_id = ""
        self.header: Mapping[str, Any] = {}
        self.run_dir = Path()
        self.best: float | None = None

    def open(self, run: RunContext) -> None:
        import logging

        from mlflow.tracking import MlflowClient

        for noisy in ("mlflow", "alembic"):  # database set-up lines on every new store
            logging.getLogger(noisy).setLevel(logging.WARNING)

        state_path = run.dir / STATE_FILE
        state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {}
        uri = self.tracking_uri or state.get("tracking_uri") or default_tracking_uri()
        self.client, self.header, self.run_dir = MlflowClient(tracking_uri=uri), run.header, run.dir
        for record in run.previous:
            if (
                record.state == "complete"
                and record.value is not None
                and is_better(record.value, self.best, run.direction)
            ):
                self.best = record.value
        if state.get("run_id") and state.get("tracking_uri") == uri:
            self.parent, self.experiment_id = str(state["run_id"]), str(state["experiment_id"])
            self.client.update_run(self.parent, status="RUNNING")
            return
        found = self.client.get_experiment_by_name(self.experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(self.experiment)
        tags = {f"hpo.{k}": str(run.header.get(k)) for k in TAGGED} | {"hpo.run_dir": str(run.dir.resolve())}
        created = self.client.create_run(self.experiment_id, run_name=run.dir.name, tags=tags)
        self.parent = created.info.run_id
        self._log(self.parent, _parent_params(run.header), [])
        state = {"tracking_uri": uri, "experiment_id": self.experiment_id, "run_id": self.parent}
        state_path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")

    def logged(self) -> set[int]:
        found = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{self.parent}'", max_results=50_000
        )
        return {int(r.data.tags["hpo.trial"]) for r in found if "hpo.trial" in r.data.tags}

    def log_trial(self, record: TrialRecord) -> None:
        tags = {"mlflow.parentRunId": self.parent, "hpo.trial": str(record.trial), "hpo.state": str(record.state)}
        tags |= {f"hpo.{k}": str(self.header.get(k)) for k in TAGGED}
        if record.error:
            tags["hpo.error"] = record.error[:5000]
        child = self.client.create_run(self.experiment_id, run_name=f"trial {record.trial}", tags=tags)
        run_id = child.info.run_id
        step = int(record.budget) if record.budget is not None else 0
        now = int(time.time() * 1000)
        metrics = [(k, v, step) for k, v in trial_scalars(record).items()]
        metrics += [(name, value, int(epoch)) for name, points in record.curves.items() for epoch, value in points]
        params = flat_params(record.params)
        if record.budget is not None:
            params["budget"] = record.budget
        self._log(run_id, params, [(_key(k), v, s, now) for k, v, s in metrics])
        self.client.set_terminated(run_id, status=TRIAL_STATUS.get(str(record.state), "FINISHED"))
        parent_metrics = []
        if record.state == "complete" and record.value is not None:
            parent_metrics.append(("value", float(record.value), record.trial, now))
            if is_better(record.value, self.best, str(self.header.get("direction", "minimize"))):
                self.best = float(record.value)
        if self.best is not None:
            parent_metrics.append(("best_value", self.best, record.trial, now))
        self._log(self.parent, {}, parent_metrics)

    def _log(self, run_id: str, params: Mapping[str, Any], metrics: Sequence[tuple[str, float, int, int]]) -> None:
        from mlflow.entities import Metric, Param

        param_list = [Param(_key(k), str(v)[:6000]) for k, v in params.items()]
        metric_list = [Metric(key, float(value), ts, int(step)) for key, value, step, ts in metrics]
        while param_list or metric_list:  # as few calls as MLflow's limits allow: each is a transaction
            chunk, param_list = param_list[:MAX_PARAMS], param_list[MAX_PARAMS:]
            room = MAX_METRICS - len(chunk)
            self.client.log_batch(run_id, metrics=metric_list[:room], params=chunk)
            metric_list = metric_list[room:]

    def close(self, summary: Mapping[str, Any]) -> None:
        if self.client is None:
            return
        run_dir = self.run_dir
        for path in _artifacts(run_dir):
            folder = str(path.parent.relative_to(run_dir)) if path.parent != run_dir else None
            self.client.log_artifact(self.parent, str(path), artifact_path=folder)
        status = STATUS.get(str(summary.get("status", "finished")), "FINISHED")
        self.client.set_terminated(self.parent, status=status)
        self.client = None


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else MLflow's own default made absolute: the embedded
    SQLite store ``./mlflow.db`` (artifacts in ``./mlruns``), what ``mlflow ui`` opens there."""
    import os

    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path.cwd() / 'mlflow.db').resolve()}"


def _artifacts(run_dir: Path) -> Iterator[Path]:
    if not run_dir.is_dir():
        return
    for name in ARTIFACTS:
        if (run_dir / name).is_file():
            yield run_dir / name
    yield from sorted((run_dir / "plots").glob("*.png"))
    for pattern in WEIGHTS:
        yield from sorted(run_dir.glob(pattern))


def _parent_params(header: Mapping[str, Any]) -> dict[str, Any]:
    executor = header.get("executor") or {}
    params = {k: header.get(k) for k in ("strategy", "task", "space", "criterion", "seed", "n_trials", "direction")}
    params.update({f"executor.{k}": v for k, v in executor.items()} if isinstance(executor, Mapping) else {})
    return {k: v for k, v in params.items() if v is not None}


def _key(name: str) -> str:
    """An MLflow key (letters, digits, ``_ - . / space``): ``name[3]`` becomes ``name.3``."""
    return re.sub(r"[^\w\-./ ]", "_", re.sub(r"\[(\d+)\]", r".\1", name))
