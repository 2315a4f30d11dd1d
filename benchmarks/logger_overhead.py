"""What each logger costs per trial: the same run with ``logger=none``, ``csv``, ``tensorboard``,
``mlflow`` (and all three), through the whole loop into a run directory.

Two tasks: ``task=ridge`` (a trial takes milliseconds: the logger's own cost shows) and the
digits MLP for 3 epochs (a learning curve per trial). A trial's time is the interval between the
moments consecutive results reached the driver (``finished_s`` in trials.jsonl): it holds the
evaluation, the store's fsync and the loggers' work for the trial before, and not the opening
and closing of the run (MLflow's database set-up, the artifacts), which is reported apart. The
median interval over a run's trials, the fastest of the interleaved repeats (load only ever adds
time), its ratio to ``logger=none`` and the extra milliseconds per trial. Each logger runs once
untimed first (imports, MLflow's database). Writes benchmarks/results/logger_overhead.{md,json}.

    python benchmarks/logger_overhead.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hpo_cli.build import build_study, compose_config
from hpo_cli.runner import run_study
from hpo_cli.store import RunStore

RESULTS = Path(__file__).parent / "results"
LOGGERS = {
    "none": "none",
    "csv": "csv",
    "tensorboard": "tensorboard",
    "mlflow": "mlflow",
    "all": "[csv,tensorboard,mlflow]",
}
TASKS = {
    "ridge": (["task=ridge", "strategy=random"], 40),
    "digits (3 epochs)": (["task=digits", "strategy=random", "task.epochs=3"], 12),
}


def timed_run(overrides: list[str], folder: Path) -> tuple[float, float]:
    """(median seconds per trial, seconds of the whole run beyond its trials)."""
    cfg = compose_config(overrides)
    study = build_study(cfg)
    store = RunStore(folder)
    started = time.perf_counter()
    with store.exclusive():
        run_study(study, cfg, store)
    wall = time.perf_counter() - started
    stamps = np.array(sorted(r.finished_s or 0.0 for r in store.read_trials()))
    per_trial = float(np.median(np.diff(stamps)))
    return per_trial, wall - per_trial * len(stamps)


def measure(task: list[str], n: int, logger: str, root: Path) -> tuple[float, float]:
    return timed_run([*task, f"n_trials={n}", f"logger={logger}"], Path(tempfile.mkdtemp(dir=root)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import logging

    logging.getLogger("hpo_cli").setLevel(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # mlflow.db and mlruns/ land here
        for logger in LOGGERS.values():  # imports, MLflow's database: not timed
            measure(TASKS["ridge"][0], 2, logger, Path(tmp))
        for task_name, (task, n) in TASKS.items():
            best: dict[str, tuple[float, float]] = {}
            for _ in range(args.repeats):
                for name, logger in LOGGERS.items():
                    got = measure(task, n, logger, Path(tmp))
                    best[name] = min(best.get(name, got), got)
            base = best["none"][0]
            for name, (per_trial, fixed) in best.items():
                rows.append(
                    {"task": task_name, "logger": name, "s_per_trial": per_trial, "ratio_to_none": per_trial / base,
                     "extra_ms_per_trial": 1000 * (per_trial - base), "open_and_close_s": fixed}
                )  # fmt: skip
                print(json.dumps(rows[-1]), file=sys.stderr)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "logger_overhead.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| task | logger | s / trial | ratio to none | extra ms / trial | run start + end (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['logger']} | {r['s_per_trial']:.4f} | {r['ratio_to_none']:.2f} | "
            f"{r['extra_ms_per_trial']:.1f} | {r['open_and_close_s']:.2f} |"
        )
    (RESULTS / "logger_overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
