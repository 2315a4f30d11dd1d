"""A hundred workers and more: how busy the driver keeps them, real and simulated.

1. Real workers (``executor=process``, a sleeping objective: lognormal, median 2 s) at each
   count of ``--real``: steady-state utilization, the time to start and to stop the pool, and
   each worker's RSS and PSS (``/proc/PID/smaps_rollup``) for ``task=function``; ``--mnist``
   adds the RSS of a worker that built ``task=mnist``. Counts whose workers do not fit in the
   memory available (measured RSS × count, with a margin) are skipped with the arithmetic.
2. Simulated workers (:mod:`hpo_cli.executors.simulated`): the real loop, strategy and store,
   N virtual workers, trials of 60 s median (lognormal σ 0.5, 2 % Pareto stragglers, 2 %
   failures; ASHA/Hyperband: the lowest rung's trials take that, each rung up eta times longer): utilization and the driver's real
   cost per result for each strategy at each N of ``--sim``. A strategy whose cell would take
   too long here (its own cost per trial times the trials) is capped at ``--sim-seconds`` of
   driver time: the cell reports what it reached.

    python benchmarks/scale.py [--real 8,32] [--sim 100,1000,10000] [--mnist]

Writes benchmarks/results/scale.{md,json}; the goal (≥ 95 % utilization at 1,000 simulated
workers for random, TPE and ASHA) is its claim.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from publish import publish

from hpo_cli.build import compose_study
from hpo_cli.executors.simulated import Durations, SimulatedExecutor
from hpo_cli.loop import StudyLoop
from hpo_cli.store import RunStore
from hpo_cli.trial import TrialRecord

GOAL, GOAL_WORKERS, GOAL_STRATEGIES = 0.95, 1000, ("random", "tpe", "asha")
STRATEGIES = {  # overrides of each simulated strategy (branin: a cheap objective)
    "random": ["strategy=random"],
    "tpe": ["strategy=tpe"],  # its cost capped: g over the latest window=250 rest points, as many liars
    "tpe_unwindowed": ["strategy=tpe", "strategy.window=1000000"],  # g over every rest point and liar
    "gp_bo": ["strategy=gp_bo"],  # its cost capped: a GP on at most max_observations=500 points (+ 500 fantasies)
    "gp_bo_uncapped": ["strategy=gp_bo", "strategy.max_observations=null"],  # a GP on every point
    "asha": ["strategy=asha", "strategy.min_budget=1", "strategy.max_budget=27"],
    "hyperband": ["strategy=hyperband", "strategy.min_budget=1", "strategy.max_budget=27"],
}
UNIT_BUDGET = 1.0  # multi-fidelity trials at the lowest rung take the median; a rung up, eta times longer
SKIP = {  # (strategy, N): the first ask of N suggestions alone would outlast the cell here
    ("gp_bo_uncapped", 1000): "a GP refit per suggestion on up to N points (cubic): hours for the first 1,000",
    ("gp_bo_uncapped", 10000): "a GP refit per suggestion on up to N points (cubic)",
    (
        "tpe_unwindowed",
        10000,
    ): "each suggestion scores against every pending one: 10,000 × 10,000 before the first result",
}
MARGIN = 0.6  # of the available memory a real run may use


def memory_of(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of process ``pid`` in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = float(value.split()[0]) / 1024
    return fields["Rss"], fields["Pss"]


def available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return float(line.split()[1]) / 1024
    return math.nan


def steady_utilization(records: list[TrialRecord], workers: int) -> float:
    """Busy worker-time over workers × [0, T], T when the (n − workers)-th result arrived (the
    final drain left out); a trial ran over [finished_s − seconds, finished_s]."""
    ends = sorted(float(r.finished_s or 0.0) for r in records)
    if len(ends) <= workers:
        return math.nan
    horizon = ends[len(ends) - workers - 1]
    busy = sum(
        max(0.0, min(float(r.finished_s or 0.0), horizon) - max(float(r.finished_s or 0.0) - r.seconds, 0.0))
        for r in records
    )
    return busy / (workers * horizon)


def real_workers(workers: int, trials_per_worker: int, folder: Path) -> dict[str, Any]:
    overrides = ["task=function", "task.fn=parallel_objectives.sleeps_lognormal", "space=branin", "strategy=random",
                 f"n_trials={workers * trials_per_worker}", "seed=0", "executor=process",
                 f"executor.workers={workers}", "executor.threads=1"]  # fmt: skip
    study = compose_study(overrides)
    executor: Any = study.executor
    started = time.perf_counter()
    executor.start()
    start_s = time.perf_counter() - started
    memory = [memory_of(w.process.pid) for w in executor.pool]
    loop = StudyLoop(study.strategy, study.task.evaluate, RunStore(folder), study.budget, executor=executor)
    try:
        records = loop.run().records
    finally:
        stopping = time.perf_counter()
        executor.close()
        stop_s = time.perf_counter() - stopping
    return {
        "workers": workers,
        "trials": len(records),
        "utilization": steady_utilization(records, workers),
        "start_s": start_s,
        "stop_s": stop_s,
        "rss_mb": sum(m[0] for m in memory) / len(memory),
        "pss_mb": sum(m[1] for m in memory) / len(memory),
    }


def mnist_worker_rss() -> dict[str, float]:
    study = compose_study(["task=mnist", "strategy=random", "executor=process", "executor.workers=1"])
    executor: Any = study.executor
    executor.start()
    try:
        rss, pss = memory_of(executor.pool[0].process.pid)
    finally:
        executor.close()
    return {"rss_mb": rss, "pss_mb": pss}


def simulate(strategy: str, workers: int, seconds: float, folder: Path) -> dict[str, Any]:
    """The real loop over ``workers`` virtual workers until 4 × workers trials, or ``seconds``
    of the driver's time (then the run is cut at a timeout, as a user's would be)."""
    n_trials = 4 * workers
    study = compose_study(["task=branin", *STRATEGIES[strategy], f"n_trials={n_trials}", "seed=0"])
    durations = Durations(unit_budget=UNIT_BUDGET if strategy in ("asha", "hyperband") else None)
    executor = SimulatedExecutor(workers, durations)
    budget = dataclasses.replace(study.budget, timeout_s=seconds)
    loop = StudyLoop(study.strategy, study.task.evaluate, RunStore(folder), budget, study.direction,
                     executor=executor, seed=0)  # fmt: skip
    started = time.perf_counter()
    outcome = loop.run()
    return {
        "strategy": strategy,
        "workers": workers,
        "trials": len(outcome.records),
        "of": n_trials,
        "utilization": executor.utilization(),
        "driver_ms_per_result": 1000 * executor.driver_s / max(1, executor.results),
        "results_per_wait": executor.results / max(1, executor.batches),
        "most_busy": executor.most_busy,
        "wall_s": time.perf_counter() - started,
        "virtual_s": executor.now,
    }


def utilization(row: dict[str, Any]) -> str:
    if math.isnan(row["utilization"]):  # the strategy never had work for every worker
        return f"never full (at most {row['most_busy']:,} busy)"
    return f"{row['utilization']:.1%}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", default="8,32", help="real worker counts (comma-separated; '' for none)")
    parser.add_argument("--real-trials", type=int, default=4, help="trials per real worker")
    parser.add_argument("--sim", default="100,1000,10000", help="simulated worker counts")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--sim-seconds", type=float, default=120.0, help="driver seconds per simulated cell")
    parser.add_argument("--mnist", action="store_true", help="also the RSS of a task=mnist worker")
    args = parser.parse_args()
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    here = str(Path(__file__).parent)
    sys.path.insert(0, here)
    os.environ["PYTHONPATH"] = os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])
    real, sims, notes, failed = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        per_worker_mb = None
        for workers in [int(w) for w in args.real.split(",") if w]:
            if per_worker_mb is not None and workers * per_worker_mb > MARGIN * available_mb():
                notes.append(f"{workers} real workers skipped: {workers} × {per_worker_mb:.0f} MB RSS > "
                             f"{MARGIN:.0%} of {available_mb():.0f} MB available")  # fmt: skip
                continue
            row = real_workers(workers, args.real_trials, Path(tmp) / f"real-{workers}")
            per_worker_mb = row["rss_mb"]
            real.append(row)
            print(row, flush=True)
        mnist = mnist_worker_rss() if args.mnist else None
        for workers in [int(w) for w in args.sim.split(",") if w]:
            for strategy in args.strategies.split(","):
                if (strategy, workers) in SKIP:
                    notes.append(f"{strategy} at {workers:,} simulated workers not run: {SKIP[strategy, workers]}")
                    continue
                row = simulate(strategy, workers, args.sim_seconds, Path(tmp) / f"sim-{strategy}-{workers}")
                sims.append(row)
                print(row, flush=True)
                if workers == GOAL_WORKERS and strategy in GOAL_STRATEGIES and not row["utilization"] >= GOAL:
                    failed.append(f"{strategy} at {workers} simulated workers: {row['utilization']:.1%} < {GOAL:.0%}")
    lines = [
        "## A hundred workers and more (`make bench-scale`)",
        "",
        f"Real workers: `executor=process`, `task=function`, a sleeping objective (lognormal, median 2 s), "
        f"{args.real_trials} trials per worker, random search; {os.cpu_count()} cores.",
        "",
        "| workers | trials | utilization (steady state) | start | stop | RSS per worker | PSS per worker |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['workers']} | {r['trials']} | {r['utilization']:.1%} | {r['start_s']:.1f} s | {r['stop_s']:.2f} s | "
            f"{r['rss_mb']:.0f} MB | {r['pss_mb']:.0f} MB |"
            for r in real
        ),
        *(f"\n{note}" for note in notes),
    ]
    if mnist is not None:
        lines += ["", f"A `task=mnist` worker: RSS {mnist['rss_mb']:.0f} MB, PSS {mnist['pss_mb']:.0f} MB."]
    lines += [
        "",
        "Simulated workers (`hpo_cli.executors.simulated`): the real loop, strategy and store (fsync included) on "
        "a virtual clock; trials of 60 s median (lognormal σ 0.5, 2 % Pareto stragglers, 2 % failures; ASHA and "
        "Hyperband: the lowest rung's trials, budgets 1 to 27, eta 3; each rung up 3× longer), branin; up to 4 × N "
        f"trials or {args.sim_seconds:g} s of driver time (a timeout, then the trials in flight are drained).",
        "",
        "| strategy | N | trials | utilization | driver ms per result | results per wait | wall |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['strategy']} | {r['workers']:,} | {r['trials']:,} of {r['of']:,} | {utilization(r)} | "
            f"{r['driver_ms_per_result']:.2f} | {r['results_per_wait']:.1f} | {r['wall_s']:.0f} s |"
            for r in sims
        ),
    ]
    data = {"real": real, "mnist": mnist, "simulated": sims, "notes": notes, "cores": os.cpu_count()}
    return publish("scale", "\n".join(lines), data, failed)


if __name__ == "__main__":
    raise SystemExit(main())
