"""What each logger costs per trial: the same run with ``logger=none``, ``csv``, ``tensorboard``,
``mlflow`` (and all three), through the whole loop into a run directory.

Two tasks: ``task=ridge`` (a trial takes milliseconds: the logger's own cost shows) and the
digits MLP for 3 epochs (a learning curve per trial). Per logger: the marginal seconds per trial
(the difference of a long and a short run, so opening the logger — MLflow's database set-up,
imports — is left out and reported apart), its ratio to ``logger=none`` and the extra
milliseconds per trial. The interleaved repeats keep the fastest (load only ever adds time).
Writes benchmarks/results/logger_overhead.{md,json}.

    python benchmarks/logger_overhead.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

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
    "ridge": (["task=ridge", "strategy=random"], 10, 60),
    "digits (3 epochs)": (["task=digits", "strategy=random", "task.epochs=3"], 3, 13),
}


def timed_run(overrides: list[str], folder: Path) -> float:
    cfg = compose_config(overrides)
    study = build_study(cfg)
    store = RunStore(folder)
    started = time.perf_counter()
    with store.exclusive():
        run_study(study, cfg, store)
    return time.perf_counter() - started


def measure(task: list[str], short: int, long: int, logger: str, root: Path) -> tuple[float, float]:
    """(seconds per trial at the margin, seconds of a short run beyond its trials)."""
    times = {}
    for n in (short, long):
        folder = Path(tempfile.mkdtemp(dir=root))
        times[n] = timed_run([*task, f"n_trials={n}", f"logger={logger}"], folder)
    per_trial = (times[long] - times[short]) / (long - short)
    return per_trial, times[short] - short * per_trial


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import logging

    logging.getLogger("hpo_cli").setLevel(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # mlflow.db and mlruns/ land here
        for task_name, (task, short, long) in TASKS.items():
            best: dict[str, tuple[float, float]] = {}
            for _ in range(args.repeats):
                for name, logger in LOGGERS.items():
                    got = measure(task, short, long, logger, Path(tmp))
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
