"""Kills at random moments: SIGKILL ``hpo run`` (and then ``hpo resume``) at seeded random points,
resume, and require the trials of an uninterrupted run, trial by trial (params, value, state).

Every strategy family takes part: sequential, batched (gp_bo asks 3 at a time), a generation
(evolution), rungs (hyperband), and the gradient strategies, whose inner state (online
training, HOAG's warm starts) must survive the kill too.
"""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import Hpo, count_lines, kill_when, read_summary, read_trials
from test_cli import write_user_project

FUNCTION = ["task=function", "task.fn=my_objective.f", "space=my_space"]
DIGITS = ["task=digits", "task.hidden=16", "task.min_epochs=1", "task.max_epochs=9", "strategy.eta=3"]
POLY = ["task=polynomial", "space=polynomial_per_coef"]

SLOW = pytest.mark.slow  # in make test-slow (CI runs it too); the rest in make test
CASES = [  # (overrides, n_trials): a few seconds each uninterrupted
    pytest.param([*FUNCTION, "strategy=random"], 30, id="random", marks=SLOW),
    pytest.param([*FUNCTION, "strategy=sobol", "batch_size=4"], 32, id="sobol-batched", marks=SLOW),
    pytest.param([*FUNCTION, "strategy=halton", "batch_size=2"], 24, id="halton-batched", marks=SLOW),
    pytest.param(  # trials in flight in worker processes when the driver is killed (asynchronous)
        [*FUNCTION, "strategy=sobol", "executor=process"], 24, id="sobol-process", marks=SLOW
    ),
    pytest.param(  # an adaptive strategy, batches over the process pool
        [*FUNCTION, "strategy=tpe", "batch_size=2", "executor=process", "executor.asynchronous=false"],
        20,
        id="tpe-process-batches",
        marks=SLOW,
    ),
    pytest.param([*FUNCTION, "strategy=lhs"], 24, id="lhs", marks=SLOW),
    pytest.param(
        [*FUNCTION, "strategy=grid", "strategy.resolution=5", "strategy.shuffle=true"], 25, id="grid", marks=SLOW
    ),
    pytest.param(
        [*FUNCTION, "strategy=gp_bo", "batch_size=3", "strategy.n_initial=6"], 18, id="gp_bo-batched", marks=SLOW
    ),
    pytest.param([*FUNCTION, "strategy=evolution", "strategy.population=6"], 30, id="evolution", marks=SLOW),
    pytest.param([*FUNCTION, "strategy=cmaes"], 30, id="cmaes", marks=SLOW),
    pytest.param([*DIGITS, "strategy=hyperband"], 22, id="hyperband", marks=SLOW),
    pytest.param([*DIGITS, "strategy=successive_halving"], 13, id="successive_halving", marks=SLOW),
    pytest.param([*POLY, "strategy=hoag"], 14, id="hoag", marks=SLOW),
    pytest.param([*POLY, "strategy=reverse", "task.inner_steps=60"], 14, id="reverse", marks=SLOW),
    pytest.param([*POLY, "strategy=greedy"], 20, id="greedy", marks=SLOW),
    pytest.param([*POLY, "strategy=forward", "task.inner_steps=60"], 14, id="forward", marks=SLOW),
    pytest.param([*POLY, "strategy=drmad", "task.inner_steps=60"], 14, id="drmad", marks=SLOW),
    pytest.param(
        [*POLY, "strategy=rmad", "strategy.method=rmad_exact", "task.convention=maclaurin", "task.inner_steps=60"],
        14,
        id="rmad_exact",
        marks=SLOW,
    ),
    pytest.param([*POLY, "strategy=rtho"], 20, id="rtho", marks=SLOW),
]


def outcome(run: Path) -> list[tuple[object, ...]]:
    return sorted((t["trial"], t["state"], t["params"], t["value"]) for t in read_trials(run))


def kill_after(args: list[str], trials: Path, after: int, delay: float, cwd: Path) -> bool:
    """Run ``hpo ARGS``; SIGKILL it ``delay`` s after ``after`` trials are stored. False when it
    finished first."""
    env = {**os.environ, "HPO_RUNS_DIR": str(cwd / "runs")}
    return kill_when([sys.executable, "-m", "hpo_cli", *args], trials, after, delay, cwd, env)


@pytest.mark.parametrize(("overrides", "n_trials"), CASES)
def test_random_kills_and_resumes_give_the_uninterrupted_trials(
    hpo: Hpo, tmp_path: Path, overrides: list[str], n_trials: int
) -> None:
    write_user_project(tmp_path, sleep_s=0.02)
    common = [*overrides, f"n_trials={n_trials}", "seed=4"]
    straight, killed = tmp_path / "runs" / "straight", tmp_path / "runs" / "killed"
    assert hpo("run", *common, f"hydra.run.dir={straight}").returncode == 0
    rng = np.random.default_rng(zlib.crc32(" ".join(overrides).encode()))  # fixed kill moments per case
    command = ["run", *common, f"hydra.run.dir={killed}"]
    for _ in range(2):  # kill the run, then kill its resume
        done = count_lines(killed / "trials.jsonl")
        after = done + int(rng.integers(1, max(2, (n_trials - done) // 2)))
        if not kill_after(command, killed / "trials.jsonl", after, float(rng.uniform(0, 0.05)), tmp_path):
            break
        command = ["resume", str(killed)]
    res = hpo("resume", str(killed))
    assert res.returncode == 0, res.output
    assert read_summary(killed)["status"] == "finished"
    assert outcome(killed) == outcome(straight)


ASYNC_POOLS = [  # several workers, results arriving together, killed at seeded random moments
    pytest.param(
        [*FUNCTION, "strategy=random", "executor=process", "executor.workers=4"], 32, id="random-4", marks=SLOW
    ),
    pytest.param(
        [*FUNCTION, "strategy=tpe", "strategy.n_startup_trials=4", "executor=process", "executor.workers=3"],
        24,
        id="tpe-3",
        marks=SLOW,
    ),
]


@pytest.mark.parametrize(("overrides", "n_trials"), ASYNC_POOLS)
def test_kills_of_an_asynchronous_pool_lose_and_duplicate_nothing(
    hpo: Hpo, tmp_path: Path, overrides: list[str], n_trials: int
) -> None:
    """Which worker finishes first is not reproducible, so an adaptive strategy's trials need not
    match an uninterrupted run's; what must hold: every trial recorded exactly once, each told
    once, in a run that resumes to the end."""
    write_user_project(tmp_path, sleep_s=0.05)
    killed = tmp_path / "runs" / "killed"
    command = ["run", *overrides, f"n_trials={n_trials}", "seed=4", f"hydra.run.dir={killed}"]
    rng = np.random.default_rng(zlib.crc32(" ".join(overrides).encode()))
    for _ in range(3):
        done = count_lines(killed / "trials.jsonl")
        after = done + int(rng.integers(1, max(2, (n_trials - done) // 3)))
        if not kill_after(command, killed / "trials.jsonl", after, float(rng.uniform(0, 0.05)), tmp_path):
            break
        command = ["resume", str(killed)]
    res = hpo("resume", str(killed))
    assert res.returncode == 0, res.output
    assert sorted(t["trial"] for t in read_trials(killed)) == list(range(n_trials))  # none lost, none twice
    told = [int(n) for n in (killed / "told.txt").read_text().split()]
    assert sorted(told) == list(range(n_trials))
