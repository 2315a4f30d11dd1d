"""Shared fixtures: example spaces, a runner for the real `hpo` command, config loading."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_cli.space import SearchSpace, parse_space

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"

MIXED_SPACE = {
    "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
    "units": {"type": "int", "low": 16, "high": 256, "log": True},
    "layers": {"type": "int", "low": 1, "high": 4},
    "batch": {"type": "int", "low": 32, "high": 128, "step": 32},
    "optimizer": {"type": "categorical", "choices": ["sgd", "adam", "rmsprop"]},
    "momentum": {"type": "float", "low": 0.0, "high": 0.99, "when": {"optimizer": "sgd"}},
    "flag": {"type": "categorical", "choices": [True, False, None, 3]},
}
VECTOR_SPACE = {
    "h": {"type": "float", "low": -2.0, "high": 10.0, "size": "n"},
    "k": {"type": "int", "low": 0, "high": 3},
}


def make_space(raw: dict[str, Any], **dims: int) -> SearchSpace:
    return parse_space(raw, dims)


@pytest.fixture
def mixed_space() -> SearchSpace:
    return make_space(MIXED_SPACE)


@pytest.fixture
def vector_space() -> SearchSpace:
    return make_space(VECTOR_SPACE, n=5)


def strategy_config(name: str) -> dict[str, Any]:
    """The shipped conf/strategy/NAME.yaml as a dict."""
    return yaml.safe_load((CONF / "strategy" / f"{name}.yaml").read_text())


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


Hpo = Callable[..., Result]


@pytest.fixture
def hpo_process(tmp_path: Path) -> Hpo:
    """Runs the real `hpo` command in a child process, in tmp_path with runs going to
    tmp_path/runs: for what only a process shows (signals, its exit, the installed entry point)."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 120) -> Result:
        env = {**os.environ, "HPO_RUNS_DIR": str(tmp_path / "runs"), "PYTHONUNBUFFERED": "1"}
        env.pop("HYDRA_FULL_ERROR", None)
        proc = subprocess.run(
            [sys.executable, "-m", "hpo_cli", *args],
            cwd=cwd or tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def hpo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Hpo:
    """`hpo ARGS` in this process, in tmp_path with runs going to tmp_path/runs, as the command
    line would run it (``hpo_cli.cli.main``): a child process costs seconds of imports per call,
    this costs none after the first. What a call may change in the process is put back after it:
    the working directory, HPO_RUNS_DIR and HYDRA_FULL_ERROR, sys.path (a user's module folder
    joins it), and the handlers and level of the root logger (Hydra configures logging)."""
    from hpo_cli.cli import main

    def run(*args: str, cwd: Path | None = None, timeout: float = 120) -> Result:
        del timeout  # a child process's limit; pytest-timeout bounds this one
        monkeypatch.setenv("HPO_RUNS_DIR", str(tmp_path / "runs"))
        monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
        monkeypatch.chdir(cwd or tmp_path)
        monkeypatch.setattr(sys, "path", sys.path[:])
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            for handler in root.handlers[:]:
                if handler not in handlers:
                    root.removeHandler(handler)
                    handler.close()
            root.setLevel(level)
        out = capsys.readouterr()
        return Result(code or 0, out.out, out.err)

    return run


@pytest.fixture
def hpo_refusal(hpo: Hpo) -> Hpo:
    """`hpo ARGS` for commands refused before any trial (in this process, as :func:`hpo`)."""
    return hpo


def run_dirs(root: Path) -> list[Path]:
    """Single-run directories under root/runs (those holding summary.json), oldest first."""
    return sorted(p.parent for p in (root / "runs").glob("20*/*/summary.json"))


def read_trials(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]


def read_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


def regret_at(strategy_name: str, task_name: str, seed: int, n: int, overrides: list[str] | None = None) -> float:
    """Best simple regret after ``n`` sequential evaluations of a synthetic task (plain ask/tell)."""
    from hpo_cli.build import compose_study
    from hpo_cli.trial import Observation, TrialState

    study = compose_study(
        [f"strategy={strategy_name}", f"task={task_name}", f"seed={seed}", f"n_trials={n}", *(overrides or [])]
    )
    task, strategy = study.task, study.strategy
    best = float("inf")
    for _ in range(n):
        (s,) = strategy.ask(1)
        evaluation = task.evaluate(s.params)
        strategy.tell([Observation(s, TrialState.COMPLETE, evaluation.value)])
        best = min(best, float(evaluation.metrics["regret"]))
    return best


def count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def kill_when(argv: list[str], trials: Path, after: int, delay: float, cwd: Path, env: dict[str, str]) -> bool:
    """Run ``argv``; SIGKILL it ``delay`` s after ``trials`` holds ``after`` lines. False when it
    finished first."""
    import signal
    import time

    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if count_lines(trials) >= after:
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=120)
            return proc.returncode == -signal.SIGKILL
        time.sleep(0.005)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=120)
        pytest.fail(f"{' '.join(argv)} did not reach {after} trials")
    return False
