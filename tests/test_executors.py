"""Executors: where trials run. The process pool evaluates the same trials as the driver does,
turns a dead worker or an overrunning trial into a failed row and goes on; bad settings are one
line."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Hpo, read_summary, read_trials

from hpo_cli.runner import run_in_memory

FUNCTION = ["task=function", "space=branin", "strategy=random", "seed=3"]
POOL = ["executor=process", "batch_size=4"]


def values(records):
    """What a trial is, whoever ran it and whenever it finished: in trial order."""
    return sorted((r.trial, r.state, json.dumps(r.params, sort_keys=True), r.value) for r in records)


IN_BATCHES = {
    "process": ["executor=process", "executor.workers=2", "executor.asynchronous=false"],
    "ray": ["executor=ray", "executor.workers=2", "executor.asynchronous=false"],
    "submitit": ["executor=submitit", "executor.workers=2", "executor.asynchronous=false"],
}
ASYNCHRONOUS = {name: [*overrides[:-1], "executor.asynchronous=true"] for name, overrides in IN_BATCHES.items()}


BATCH_CASES = {
    "function-global-rng": [*FUNCTION, "task.fn=executor_objectives.noisy", "n_trials=12", "batch_size=4"],
    "digits": ["task=digits", "task.hidden=8", "task.epochs=1", "strategy=sobol", "n_trials=4", "batch_size=4"],
    "polynomial-tpe": ["task=polynomial", "space=polynomial_per_coef", "strategy=tpe", "n_trials=8", "batch_size=2"],
}
# make test: every case on a process pool, one on Ray; the rest (a cluster's or a Python process's
# start-up per case, an MLP) in make test-slow.
IN_MAKE_TEST = {("function-global-rng", "process"), ("polynomial-tpe", "process"), ("function-global-rng", "ray")}


def batch_case(case: str, executor: str) -> Any:
    slow = () if (case, executor) in IN_MAKE_TEST else pytest.mark.slow
    return pytest.param(BATCH_CASES[case], executor, id=f"{case}-{executor}", marks=slow)


@pytest.mark.parametrize(("overrides", "executor"), [batch_case(c, e) for c in BATCH_CASES for e in IN_BATCHES])
def test_batches_on_any_executor_give_the_trials_of_the_serial_executor(overrides: list[str], executor: str) -> None:
    serial = run_in_memory([*overrides, "executor=serial"])
    elsewhere = run_in_memory([*overrides, *IN_BATCHES[executor]])
    assert values(elsewhere) == values(serial)
    assert all(r.state == "complete" for r in serial)


SUBMITIT_SLOW = pytest.param("submitit", marks=pytest.mark.slow)  # a Python process per trial: seconds each
RAY_SLOW = pytest.param("ray", marks=pytest.mark.slow)  # a local cluster's start: make test has one Ray case


@pytest.mark.parametrize("executor", ["process", RAY_SLOW, SUBMITIT_SLOW])
def test_asynchronous_executors_give_a_non_adaptive_strategy_the_serial_trials(executor: str) -> None:
    """Whatever order trials finish in, a random search suggests the same points (each trial's
    seed is its number's): the same trials as serial, recorded in the order they finished."""
    overrides = [*FUNCTION, "task.fn=executor_objectives.noisy", "n_trials=10"]
    serial = run_in_memory([*overrides, "executor=serial"])
    elsewhere = run_in_memory([*overrides, *ASYNCHRONOUS[executor]])
    assert values(elsewhere) == values(serial)


def test_asynchronous_tpe_and_gp_bo_keep_both_workers_on_distinct_points() -> None:
    for strategy in (["strategy=tpe", "strategy.n_startup_trials=3"], ["strategy=gp_bo", "strategy.n_initial=3"]):
        records = run_in_memory([*FUNCTION, *strategy, "task.fn=executor_objectives.slow_square", "n_trials=10",
                                 *ASYNCHRONOUS["process"]])  # fmt: skip
        points = {json.dumps(r.params, sort_keys=True) for r in records}
        assert len(points) == len(records) == 10 and all(r.state == "complete" for r in records)
        assert sorted(r.finished_s for r in records) == [r.finished_s for r in records]  # completion order


@pytest.mark.parametrize("executor", ["process", RAY_SLOW, SUBMITIT_SLOW])
def test_a_worker_killed_mid_trial_is_a_failed_row_and_the_run_goes_on(executor: str) -> None:
    records = run_in_memory(
        [*FUNCTION, "task.fn=executor_objectives.dies_above_5", *ASYNCHRONOUS[executor], "n_trials=8",
         "max_failure_rate=1.0"]
    )  # fmt: skip
    died = [r for r in records if r.state == "failed"]
    retried = [r for r in died if r.retried_as is not None]  # max_retries=1: each one runs again, and dies again
    n_retried = 0 if executor == "submitit" else 3  # submitit does not retry
    assert len(records) == 8 + n_retried and len(died) == 3 + n_retried and len(retried) == n_retried
    assert all(float(r.params["x1"]) > 5.0 for r in died)
    assert {r.retried_as for r in retried} == {r.trial for r in died if r.retry_of is not None}
    reason = {"process": "the worker running it died (exit code -9)", "ray": "the worker running it died",
              "submitit": "died"}[executor]  # fmt: skip
    assert all(reason in (r.error or "") for r in died), [r.error for r in died]
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


@pytest.mark.slow
@pytest.mark.parametrize(
    ("executor", "override", "named"),
    [
        ("submitit", "executor.cluster=pbs", "executor.cluster='pbs'"),
        ("ray", "executor.gpus_per_worker=-1", "executor.gpus_per_worker=-1"),
    ],
)
def test_bad_ray_and_submitit_settings_are_one_line(hpo: Hpo, executor: str, override: str, named: str) -> None:
    res = hpo("run", f"executor={executor}", override, "n_trials=2")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and named in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("module", ["ray", "submitit"])
def test_a_missing_extra_is_one_clear_line(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo_cli.build import compose_study
    from hpo_cli.errors import ConfigError

    monkeypatch.setitem(sys.modules, module, None)  # import fails as if it were not installed
    extra = {"ray": "hpo_cli[ray]", "submitit": "hpo_cli[slurm]"}[module]
    with pytest.raises(ConfigError, match=re.escape(extra)):
        compose_study(["task=branin", f"executor={module}"])


EXECUTOR_CONFIGS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "executor").glob("*.yaml"))


@pytest.mark.parametrize("name", EXECUTOR_CONFIGS)
def test_every_executor_config_builds_and_describes_itself(name: str) -> None:
    from hpo_cli.build import compose_study

    study = compose_study(["task=branin", f"executor={name}"])
    try:
        described = study.executor.describe()
        assert described["name"] == name and described["workers"] >= 1
        assert study.executor.slots == described["workers"]
        assert study.executor.asynchronous == (name != "serial")
    finally:
        study.executor.close()


def test_a_function_task_worker_imports_neither_torch_nor_matplotlib() -> None:
    records = run_in_memory([*FUNCTION, "task.fn=executor_objectives.heavy_modules", "n_trials=3",
                             *ASYNCHRONOUS["process"]])  # fmt: skip
    assert len(records) == 3 and all(r.state == "complete" for r in records)
    assert all(r.metrics["torch_loaded"] == 0.0 and r.metrics["matplotlib_loaded"] == 0.0 for r in records)


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_sigkilled_driver_leaves_no_worker_behind(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import time

    env = {**os.environ, "HPO_RUNS_DIR": str(tmp_path / "runs")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    driver = subprocess.Popen(
        [sys.executable, "-m", "hpo_cli", "run", *FUNCTION, "task.fn=executor_objectives.sleeps_long", "n_trials=4",
         "executor=process", "executor.workers=2"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300  # a generous limit on start-up under load, not a timing check
    while len(list(tmp_path.glob("running-*"))) < 2 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("running-*")]
    assert len(workers) == 2, "the workers did not start their trials"
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    deadline = time.monotonic() + 60
    while any(running(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [w for w in workers if running(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, f"workers {left} outlived their driver"


def test_device_auto_reaches_the_workers_as_the_device_it_resolved_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a machine with two GPUs (CUDA patched in), device=auto is cuda for the driver, in the
    config every worker builds its task from, and each process worker gets its own GPU."""
    import torch

    from hpo_cli.build import compose_study

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    study = compose_study([*FUNCTION, "task.fn=executor_objectives.noisy", "device=auto", "executor=process"])
    executor = study.executor
    assert study.settings.device == "cuda" and executor.recipe["device"] == "cuda"  # type: ignore[attr-defined]
    assert [executor._environment(i)["CUDA_VISIBLE_DEVICES"] for i in range(3)] == ["0", "1", "0"]  # type: ignore[attr-defined]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    on_cpu = compose_study([*FUNCTION, "task.fn=executor_objectives.noisy", "device=auto", "executor=process"])
    assert on_cpu.executor.recipe["device"] == "cpu"  # type: ignore[attr-defined]
    assert "CUDA_VISIBLE_DEVICES" not in on_cpu.executor._environment(0)  # type: ignore[attr-defined]
