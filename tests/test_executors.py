"""Executors: where trials run. The process pool evaluates the same trials as the driver does,
turns a dead worker or an overrunning trial into a failed row and goes on; bad settings are one
line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Hpo, read_summary, read_trials

from hpo_cli.runner import run_in_memory

FUNCTION = ["task=function", "space=branin", "strategy=random", "seed=3"]
POOL = ["executor=process", "batch_size=4"]


def values(records):
    return [(r.trial, r.state, json.dumps(r.params, sort_keys=True), r.value) for r in records]


@pytest.mark.parametrize(
    "overrides",
    [
        [*FUNCTION, "task.fn=executor_objectives.noisy", "n_trials=12", "batch_size=4"],
        pytest.param(
            ["task=digits", "task.hidden=8", "task.epochs=1", "strategy=sobol", "n_trials=4", "batch_size=4"],
            marks=pytest.mark.slow,
        ),
        ["task=polynomial", "space=polynomial_per_coef", "strategy=tpe", "n_trials=8", "batch_size=2"],
    ],
    ids=["function-global-rng", "digits", "polynomial-tpe"],
)
def test_a_process_pool_gives_the_trials_of_the_serial_executor(overrides: list[str]) -> None:
    serial = run_in_memory([*overrides, "executor=serial"])
    pooled = run_in_memory([*overrides, "executor=process", "executor.workers=2"])
    assert values(pooled) == values(serial)
    assert all(r.state == "complete" for r in serial)


def test_a_worker_killed_mid_trial_is_a_failed_row_and_the_run_goes_on() -> None:
    records = run_in_memory(
        [*FUNCTION, "task.fn=executor_objectives.dies_above_8", *POOL, "n_trials=16", "max_failure_rate=1.0"]
    )
    died = [r for r in records if r.state == "failed"]
    assert len(records) == 16 and died and all(float(r.params["x1"]) > 8.0 for r in died)
    assert all("the worker running it died (exit code -9)" in (r.error or "") for r in died)
    assert all(r.value == float(r.params["x1"]) ** 2 for r in records if r.state == "complete")


@pytest.mark.slow
def test_a_trial_over_its_time_is_cancelled_and_recorded_as_failed() -> None:
    records = run_in_memory(
        [
            *FUNCTION,
            "task.fn=executor_objectives.hangs_above_8",
            *POOL,
            "n_trials=16",
            "max_failure_rate=1.0",
            "executor.trial_timeout_s=2",
        ]
    )
    cancelled = [r for r in records if r.state == "failed"]
    assert cancelled and all(float(r.params["x1"]) > 8.0 for r in cancelled)
    assert all("executor.trial_timeout_s=2" in (r.error or "") for r in cancelled)
    assert sum(r.state == "complete" for r in records) == len(records) - len(cancelled)


@pytest.mark.slow
def test_summary_records_the_executor_workers_and_threads(hpo: Hpo, tmp_path: Path) -> None:
    from test_cli import write_user_project

    write_user_project(tmp_path)
    res = hpo(
        "run", "task=function", "task.fn=my_objective.f", "space=my_space", "n_trials=4", "batch_size=2",
        "executor=process", "executor.threads=1", f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert res.returncode == 0, res.output
    assert read_summary(tmp_path / "run")["executor"] == {"name": "process", "workers": 2, "threads": 1}
    assert len(read_trials(tmp_path / "run")) == 4


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("executor.workers=0", "executor.workers=0"),
        pytest.param("executor.trial_timeout_s=-1", "executor.trial_timeout_s=-1", marks=pytest.mark.slow),
        pytest.param("executor.start_method=fork", "executor.start_method='fork'", marks=pytest.mark.slow),
    ],
)
def test_bad_executor_settings_are_one_line(hpo: Hpo, override: str, named: str) -> None:
    res = hpo("run", "executor=process", override, "n_trials=2")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and named in res.stderr and "Traceback" not in res.stderr
