"""Seconds from SIGTERM to a durable ``interrupted`` summary and to the process's exit, with the
signal sent while a trial sleeps 60 s (SLURM and ``docker stop`` send SIGKILL 10-30 s later).

    python benchmarks/sigterm_shutdown.py [hpo run overrides, e.g. executor=process executor.workers=1]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OBJECTIVE = """import time


def f(params):
    time.sleep(60 if params["x"] > 0.5 else 0.01)
    return params["x"] ** 2
"""


def status(summary: Path) -> str | None:
    try:
        return json.loads(summary.read_text()).get("status")
    except (OSError, ValueError):
        return None


def measure(root: Path, overrides: list[str]) -> tuple[int, float, float]:
    """(exit code, seconds to an interrupted summary, seconds to exit) of one run in ``root``."""
    (root / "conf" / "space").mkdir(parents=True)
    (root / "conf" / "space" / "one.yaml").write_text("params:\n  x: {type: float, low: 0.0, high: 1.0}\n")
    (root / "sleepy.py").write_text(OBJECTIVE)
    env = {**os.environ, "HPO_RUNS_DIR": str(root / "runs"), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "hpo_cli", "run", "task=function", "task.fn=sleepy.f", "space=one"]
    argv += ["strategy=grid", "strategy.resolution=4", "n_trials=4", f"hydra.run.dir={root / 'run'}", *overrides]
    proc = subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trials, summary = root / "run" / "trials.jsonl", root / "run" / "summary.json"
    while not (trials.exists() and len(trials.read_text().splitlines()) >= 2):  # trials 0 and 1 are quick
        if proc.poll() is not None:
            raise SystemExit(f"the run ended early with exit code {proc.returncode}")
        time.sleep(0.05)
    time.sleep(1.0)  # trial 2 (x = 2/3) sleeps 60 s
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    durable = None
    while proc.poll() is None or durable is None:
        if durable is None and status(summary) == "interrupted":
            durable = time.monotonic() - signalled
        elif durable is None and proc.poll() is not None:
            durable = float("nan")
        time.sleep(0.01)
    return proc.returncode, durable, time.monotonic() - signalled


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="sigterm-"))
    try:
        code, durable, gone = measure(root, sys.argv[1:])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"exit code {code}; summary 'interrupted' after {durable:.2f} s; process gone after {gone:.2f} s")


if __name__ == "__main__":
    main()
