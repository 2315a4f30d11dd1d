"""Trials in parallel: ``executor=process`` and ``executor=ray`` against ``executor=serial``, and
Ray Tune's per-trial overhead beside them, in one run, as ratios.

1. Throughput on a CPU-bound objective (~0.2 s of one core per trial, 1 BLAS thread): trials per
   second of ``executor=process executor.workers=2`` over ``serial`` once the workers are up;
   the claim is ≥ 1.8× on 2 cores. The workers' start-up (spawn, imports, building the task)
   is reported beside it: it is paid once per run.
2. Per-trial overhead on a trivial objective: (executor − serial) seconds per trial, the
   workers already started; the goals are ≤ 5 ms (process) and ≤ 10 ms (Ray actors). Both run
   asynchronously (a new suggestion as soon as a trial finishes), 2 workers. Beside them, Ray
   Tune's marginal cost of one more trial with its defaults and with ``reuse_actors=True``
   (benchmarks/ray_tune_overhead.py; Ray Tune is a benchmark-only extra).

    python benchmarks/parallel_executors.py [--trials 40] [--overhead-trials 400] [--tune-trials 30]

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

SPEEDUP, OVERHEAD_MS, RAY_OVERHEAD_MS = 1.8, 5.0, 10.0


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
    parser.add_argument("--tune-trials", type=int, default=30)
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
        overhead = {}
        for name in ("process", "ray"):
            _, seconds = timed_run([*trivial, f"executor={name}", "executor.workers=2", "executor.threads=1"],
                                   Path(tmp) / f"t-{name}")  # fmt: skip
            overhead[name] = {
                "seconds": seconds,
                "ms_per_trial": 1000 * (seconds - serial_trivial) / args.overhead_trials,
            }
    from ray_tune_overhead import ray_tune_ms_per_trial, start_ray

    start_ray(2)
    tune = {
        reuse: ray_tune_ms_per_trial(args.tune_trials, reuse_actors=reuse, shutdown=False) for reuse in (False, True)
    }
    data = {
        "cpu_bound": {"trials": args.trials, "serial_s": serial, "process_s": pooled, "speedup": speedup,
                      "startup_s": startup},
        "overhead": {"trials": args.overhead_trials, "serial_s": serial_trivial, **overhead},
        "ray_tune": {"defaults": tune[False], "reuse_actors": tune[True]},
        "cores": os.cpu_count(),
    }  # fmt: skip
    rows.append(f"| CPU-bound (~0.2 s/trial), {args.trials} trials | {serial:.2f} s | process: {pooled:.2f} s "
                f"(+ {startup:.2f} s starting the workers) | {speedup:.2f}× (claim ≥ {SPEEDUP}×) |")  # fmt: skip
    for name, goal in (("process", OVERHEAD_MS), ("ray", RAY_OVERHEAD_MS)):
        ms = overhead[name]["ms_per_trial"]
        rows.append(f"| trivial, {args.overhead_trials} trials (workers started) | {serial_trivial:.3f} s | "
                    f"{name}: {overhead[name]['seconds']:.3f} s | {ms:.2f} ms per trial (goal ≤ {goal} ms) |")  # fmt: skip
        if ms > goal:
            failed.append(f"{name} overhead {ms:.2f} ms per trial > {goal} ms")
    for reuse, label in ((False, "defaults"), (True, "reuse_actors=True")):
        rows.append(f"| trivial, {args.tune_trials} trials | — | Ray Tune, {label} | "
                    f"{tune[reuse]['ms_per_trial']:.0f} ms per trial |")  # fmt: skip
    if speedup < SPEEDUP:
        failed.append(f"process/serial throughput {speedup:.2f}× < {SPEEDUP}×")
    text = "\n".join(
        [
            "## Trials in parallel: executor=process and ray vs serial, Ray Tune beside them (one run)",
            "",
            f"`python benchmarks/parallel_executors.py` on {os.cpu_count()} cores; batch_size=4, random search, "
            "1 BLAS thread per process.",
            "",
            "| objective | serial | 2 workers | ratio or overhead |",
            "|---|---:|---:|---:|",
            *rows,
        ]
    )
    return publish("parallel_executors", text, data, failed)


if __name__ == "__main__":
    raise SystemExit(main())
