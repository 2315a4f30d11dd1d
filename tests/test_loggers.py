"""Loggers (``logger=``): what each one wrote, read back with the library itself — TensorBoard's
event accumulator, MLflow's client, the CSV file — and compared with trials.jsonl; a resumed run
logs each trial once; learning curves travel back from worker processes and Hydra sweeps."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import Hpo, read_trials, run_dirs

from hpo_cli import curves
from hpo_cli.errors import ConfigError
from hpo_cli.loggers.base import Loggers, RunContext, TrialLogger, loggers_named
from hpo_cli.loggers.csv_logger import CsvLogger
from hpo_cli.trial import TrialRecord, TrialState

DIGITS = ["task=digits", "strategy=random", "task.epochs=3", "task.hidden=16", "seed=1"]
ALL_LOGGERS = "logger=[csv,tensorboard,mlflow]"


def records_of(run: Path) -> dict[int, dict[str, Any]]:
    return {r["trial"]: r for r in read_trials(run)}


def scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def hparams_session(folder: Path) -> dict[str, Any]:
    """The HParams plugin's session-start record of a trial's folder: parameter -> value."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(folder))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}


def mlflow_client(cwd: Path) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An MLP run with every logger: 2 trials, then resumed to 3 (cwd, run dir)."""
    import os
    import subprocess

    cwd = tmp_path_factory.mktemp("loggers")
    env = {**os.environ, "HPO_RUNS_DIR": str(cwd / "runs")}
    env.pop("MLFLOW_TRACKING_URI", None)

    def hpo(*args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "hpo_cli", *args], cwd=cwd, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "warning: logger" not in proc.stderr, proc.stderr

    hpo("run", *DIGITS, "n_trials=2", ALL_LOGGERS)
    (run,) = run_dirs(cwd)
    hpo("resume", str(run), "n_trials=3")
    return cwd, run


@pytest.mark.slow
def test_mlp_trials_carry_their_learning_curve_by_epoch(resumed: tuple[Path, Path]) -> None:
    _, run = resumed
    for record in records_of(run).values():
        steps = [step for step, _ in record["curves"]["train_loss"]]
        assert steps == [1, 2, 3] and all(loss > 0 for _, loss in record["curves"]["train_loss"])


def test_tensorboard_holds_each_trial_once_with_its_curve_hparams_and_metrics(resumed: tuple[Path, Path]) -> None:
    _, run = resumed
    records = records_of(run)
    assert sorted(p.name for p in (run / "tb").iterdir()) == ["study", "trial_0000", "trial_0001", "trial_0002"]
    for n, record in records.items():
        folder = run / "tb" / f"trial_{n:04d}"
        curve = scalars(folder, "curve/train_loss")
        assert [s for s, _ in curve] == [1, 2, 3]
        assert [v for _, v in curve] == pytest.approx([v for _, v in record["curves"]["train_loss"]], rel=1e-6)
        assert scalars(folder, "metric/value") == [(0, pytest.approx(record["value"], rel=1e-6))]
        session = hparams_session(folder)
        assert session["trial"] == n and session["state"] == "complete"
        for name, value in record["params"].items():
            assert session[name] == (pytest.approx(value) if not isinstance(value, str) else value)
    values = scalars(run / "tb" / "study", "trial/value")
    assert [s for s, _ in values] == [0, 1, 2]  # the resumed session added trial 2 only
    best = max(r["value"] for r in records.values())  # digits maximizes validation accuracy
    assert scalars(run / "tb" / "study", "trial/best")[-1][1] == pytest.approx(best, rel=1e-6)


def test_mlflow_holds_one_parent_run_and_a_nested_run_per_trial(resumed: tuple[Path, Path]) -> None:
    cwd, run = resumed
    client = mlflow_client(cwd)
    state = json.loads((run / "mlflow_run.json").read_text())
    parent = client.get_run(state["run_id"])
    assert parent.info.status == "FINISHED" and parent.info.run_name == run.name
    assert parent.data.tags["hpo.strategy"] == "random" and parent.data.tags["hpo.task"] == "digits"
    children = client.search_runs([state["experiment_id"]], f"tags.mlflow.parentRunId = '{state['run_id']}'")
    by_trial = Counter(int(c.data.tags["hpo.trial"]) for c in children)
    assert by_trial == {0: 1, 1: 1, 2: 1}  # the resume continued the same parent run, no trial twice
    records = records_of(run)
    for child in children:
        record = records[int(child.data.tags["hpo.trial"])]
        assert child.data.tags["hpo.state"] == "complete" and child.data.tags["hpo.criterion"] == "holdout"
        assert child.data.metrics["value"] == pytest.approx(record["value"])
        assert child.data.metrics["test_accuracy"] == pytest.approx(record["metrics"]["test_accuracy"])
        for name, value in record["params"].items():
            assert child.data.params[name] == str(value)
        history = client.get_metric_history(child.info.run_id, "train_loss")
        assert [(m.step, m.value) for m in history] == [tuple(p) for p in record["curves"]["train_loss"]]
    best_history = client.get_metric_history(parent.info.run_id, "best_value")
    assert [m.step for m in best_history] == [0, 1, 2]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"best.yaml", "summary.json", "trials.csv", "plots"} <= artifacts
    assert "plots/history.png" in {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}


def test_the_csv_logger_holds_curves_and_final_scalars_of_each_trial_once(resumed: tuple[Path, Path]) -> None:
    _, run = resumed
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    records = records_of(run)
    values = {int(r["trial"]): float(r["value"]) for r in rows if r["name"] == "value"}
    assert values == {n: pytest.approx(r["value"]) for n, r in records.items()}
    curve = [(int(r["step"]), float(r["value"])) for r in rows if r["trial"] == "1" and r["name"] == "train_loss"]
    assert curve == [tuple(p) for p in records[1]["curves"]["train_loss"]]


@pytest.mark.slow
def test_curves_come_back_from_worker_processes(hpo: Hpo, tmp_path: Path) -> None:
    res = hpo("run", *DIGITS, "n_trials=2", "executor=process", "executor.workers=2", "logger=csv")
    assert res.returncode == 0, res.output
    (run,) = run_dirs(tmp_path)
    with (run / "metrics.csv").open() as f:
        steps = Counter(r["trial"] for r in csv.DictReader(f) if r["name"] == "train_loss")
    assert steps == {"0": 3, "1": 3}


@pytest.mark.slow
def test_a_hydra_sweep_logs_its_trials(tmp_path: Path) -> None:
    from test_hydra_sweeper import run_app

    sweep = tmp_path / "sweep"
    res = run_app(
        "-m", "hydra/sweeper=hpo", "hydra.sweeper.strategy=random", "hydra.sweeper.n_trials=3",
        "hydra.sweeper.logger=[csv,tensorboard]", "x1=interval(-5, 10)", f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.output
    values = {r["trial"]: r["value"] for r in read_trials(sweep)}
    for n, value in values.items():
        assert scalars(sweep / "tb" / f"trial_{n:04d}", "metric/value") == [(0, pytest.approx(value, rel=1e-6))]
    with (sweep / "metrics.csv").open() as f:
        assert sorted(int(r["trial"]) for r in csv.DictReader(f) if r["name"] == "value") == [0, 1, 2]


def test_an_unknown_logger_is_one_line(hpo: Hpo) -> None:
    res = hpo("run", "task=ridge", "n_trials=1", "logger=nope")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("hpo: error: "), res.output
    assert "logger" in lines[0] and "Traceback" not in res.output
    with pytest.raises(ConfigError, match="not a logger"):
        loggers_named(["nope"])


# -- in-process: the group, the hook ---------------------------------------------------------


def record(n: int, value: float = 1.0) -> TrialRecord:
    return TrialRecord(n, TrialState.COMPLETE, {"x": 0.5, "v": [1.0, 2.0]}, value, {"acc": 0.9}, curves={})


class Broken(TrialLogger):
    name = "broken"

    def open(self, run: RunContext) -> None:
        pass

    def logged(self) -> set[int]:
        return set()

    def log_trial(self, record: TrialRecord) -> None:
        raise OSError("the server went away")


def test_a_reopened_group_logs_the_stored_trials_a_logger_missed(tmp_path: Path) -> None:
    first = Loggers([CsvLogger()])
    first.open(RunContext(tmp_path, {"direction": "minimize"}))
    first.trial_stored(record(0))
    again = Loggers([CsvLogger()])  # a resume after a kill between storing trial 1 and logging it
    again.open(RunContext(tmp_path, {"direction": "minimize"}, [record(0), record(1, 2.0)]))
    with (tmp_path / "metrics.csv").open() as f:
        logged = Counter(r["trial"] for r in csv.DictReader(f) if r["name"] == "value")
    assert logged == {"0": 1, "1": 1}


def test_a_failing_logger_is_switched_off_and_the_others_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    group = Loggers([Broken(), CsvLogger()])
    group.open(RunContext(tmp_path, {}))
    for n in range(3):
        group.trial_stored(record(n))
    assert [m.name for m in group.members] == ["csv"]
    assert sum("logger broken failed" in r.getMessage() for r in caplog.records) == 1
    assert (tmp_path / "metrics.csv").read_text().count(",value,") == 3


def test_the_hook_records_only_inside_an_evaluation() -> None:
    curves.report(1, train_loss=0.5)  # nobody listens: nothing happens
    with curves.recording() as got:
        curves.report(1, train_loss=0.5, acc=math.nan)
        curves.report(2, train_loss=0.25)
    assert got == {"train_loss": [[1, 0.5], [2, 0.25]]} and not curves.is_recording()


def test_a_logger_whose_library_is_missing_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import hpo_cli.loggers.base as base
    from hpo_cli.loggers.tensorboard_logger import TensorBoardLogger

    monkeypatch.setattr(base, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install 'hpo_cli\[tracking\]'"):
        TensorBoardLogger()


def test_records_without_curves_keep_their_json_line() -> None:
    line = record(3).to_json()
    assert "curves" not in json.loads(line) and TrialRecord.from_json(line) == record(3)


def test_tensorboard_shows_h_and_the_hypergradient_norm_of_each_hyper_iteration(tmp_path: Path) -> None:
    from hpo_cli.loggers.tensorboard_logger import TensorBoardLogger

    steps = [
        TrialRecord(n, TrialState.COMPLETE, {"log_precision": [n, 2.0 * n, -1.0], "lr": 0.1}, 1.0 / (n + 1),
                    gradient=[3.0 * n, 4.0 * n, 0.0, 1.0])
        for n in range(3)
    ]  # fmt: skip
    group = Loggers([TensorBoardLogger()])
    group.open(RunContext(tmp_path, {"direction": "minimize"}))
    for step in steps:
        group.trial_stored(step)
    group.close()
    study = tmp_path / "tb" / "study"
    norms = [math.sqrt(25.0 * n * n + 1.0) for n in range(3)]
    assert scalars(study, "hypergradient/norm") == [(n, pytest.approx(v)) for n, v in enumerate(norms)]
    assert scalars(study, "h/log_precision/max") == [(n, pytest.approx(2.0 * n)) for n in range(3)]
    assert scalars(study, "h/lr") == [(n, pytest.approx(0.1)) for n in range(3)]
    assert scalars(study, "trial/best")[-1] == (2, pytest.approx(1.0 / 3))


def test_mlflow_takes_more_parameters_than_one_batch_holds(resumed: tuple[Path, Path], tmp_path: Path) -> None:
    from hpo_cli.loggers.mlflow_logger import MlflowLogger

    cwd, _ = resumed  # its database is set up already
    params: dict[str, Any] = {f"p{i}": float(i) for i in range(50)} | {"v": [0.5 * i for i in range(60)]}
    trial = TrialRecord(0, TrialState.PRUNED, params, 0.25, {"acc": 0.5}, budget=3.0, curves={"loss": [[1, 2.0]]})
    group = Loggers([MlflowLogger(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}", experiment="many")])
    group.open(RunContext(tmp_path, {"direction": "minimize", "task": "t"}))
    group.trial_stored(trial)
    group.close()
    assert [m.name for m in group.members] == ["mlflow"]  # nothing failed
    client = mlflow_client(cwd)
    (child,) = client.search_runs([client.get_experiment_by_name("many").experiment_id], "tags.`hpo.trial` = '0'")
    assert (
        len(child.data.params) == 111 and child.data.params["v.59"] == "29.5" and child.data.params["budget"] == "3.0"
    )
    assert child.info.status == "KILLED" and child.data.tags["hpo.state"] == "pruned"
    assert [(m.step, m.value) for m in client.get_metric_history(child.info.run_id, "value")] == [(3, 0.25)]
