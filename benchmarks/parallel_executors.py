"""Trials in parallel: ``executor=process`` against ``executor=serial`` in one run, as ratios.

1. Throughput on a CPU-bound objective (~0.2 s of one core per trial, 1 BLAS thread): trials per
   second of ``executor=process executor.workers=2`` over ``serial`` once the workers are up;
   the claim is ≥ 1.8× on 2 cores. The workers' start-up (spawn, imports, building the task)
   is reported beside it: it is paid once per run.
2. Per-trial overhead on a trivial objective: (process − serial) seconds per trial, the worker
   pool already started; the goal is ≤ 5 ms.

    python benchmarks/parallel_executors.py [--trials 24] [--overhead-trials 400]

Writes benchmarks/results/parallel_executors.{md,json}; exits 1 when a claim fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from publish import publish

from hpo_cli.build import compose_study
from hpo_cli.loop import StudyLoop
from hpo_cli.store import RunStore

SPEEDUP, OVERHEAD_MS = 1.8, 5.0


def timed_run(overrides: list[str], folder: Path) -> tuple[float, float]:
    """(seconds of the whole run, seconds after the workers started) of ``hpo run OVERRIDES``."""
    study = compose_study(overrides)
    started = time.perf_counter()
    study.executor.start()
    ready = time.perf_counter()
    loop = StudyLoop(study.strategy, study.task.evaluate, RunStore(folder), study.budget, executor=study.executor)
    try:
        records = loop.run().records
        done = time.perf_counter()
    finally:
        study.executor.close()  # stopping the workers is not the trials' time
    assert all(r.state == "complete" for r in records), [r.error for r in records]
    return done - started, done - ready


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--overhead-trials", type=int, default=400)
    args = parser.parse_args()
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    sys.path.insert(0, str(Path(__file__).parent))
    base = ["task=function", "space=branin", "strategy=random", "batch_size=4", "seed=0"]
    import tempfile

    rows, data, failed = [], {}, []
    with tempfile.TemporaryDirectory() as tmp:
        cpu = [*base, "task.fn=parallel_objectives.cpu_bound", f"n_trials={args.trials}"]
        _, serial = timed_run([*cpu, "executor=serial"], Path(tmp) / "s")
        whole, pooled = timed_run(
            [*cpu, "executor=process", "executor.workers=2", "executor.threads=1"], Path(tmp) / "p"
        )
        speedup, startup = serial / pooled, whole - pooled
        trivial = [*base, "task.fn=parallel_objectives.trivial", f"n_trials={args.overhead_trials}"]
        _, serial_trivial = timed_run([*trivial, "executor=serial"], Path(tmp) / "ts")
        _, pooled_trivial = timed_run(
            [*trivial, "executor=process", "executor.workers=2", "executor.threads=1"], Path(tmp) / "tp"
        )
        overhead_ms = 1000 * (pooled_trivial - serial_trivial) / args.overhead_trials
    data = {
        "cpu_bound": {"trials": args.trials, "serial_s": serial, "process_s": pooled, "speedup": speedup,
                      "startup_s": startup},
        "overhead": {"trials": args.overhead_trials, "serial_s": serial_trivial, "process_s": pooled_trivial,
                     "ms_per_trial": overhead_ms},
        "cores": os.cpu_count(),
    }  # fmt: skip
    rows.append(f"| CPU-bound (~0.2 s/trial), {args.trials} trials | {serial:.2f} s | {pooled:.2f} s "
                f"(+ {startup:.2f} s starting the workers) | {speedup:.2f}× (claim ≥ {SPEEDUP}×) |")  # fmt: skip
    rows.append(f"| trivial, {args.overhead_trials} trials (pool started) | {serial_trivial:.3f} s | "
                f"{pooled_trivial:.3f} s | {overhead_ms:.2f} ms per trial (goal ≤ {OVERHEAD_MS} ms) |")  # fmt: skip
    if speedup < SPEEDUP:
        failed.append(f"process/serial throughput {speedup:.2f}× < {SPEEDUP}×")
    if overhead_ms > OVERHEAD_MS:
        failed.append(f"process overhead {overhead_ms:.2f} ms per trial > {OVERHEAD_MS} ms")
    text = "\n".join(
        [
            "## Trials in parallel: executor=process vs serial (one run)",
            "",
            f"`python benchmarks/parallel_executors.py` on {os.cpu_count()} cores; batch_size=4, random search, "
            "1 BLAS thread per process.",
            "",
            "| objective | serial | process, 2 workers | ratio |",
            "|---|---:|---:|---:|",
            *rows,
        ]
    )
    return publish("parallel_executors", text, data, failed)


if __name__ == "__main__":
    raise SystemExit(main())
