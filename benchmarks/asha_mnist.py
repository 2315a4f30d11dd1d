"""ASHA vs Hyperband vs random search on the bundled MNIST subset, at equal wall clock with 2 workers.

Per seed and strategy, one ``hpo run`` as a subprocess with the same deadline T (``timeout_s``)
and a trial count it never reaches::

    hpo run task=mnist strategy=S executor=process executor.workers=2 batch_size=2 seed=K
        timeout_s=T n_trials=100000 task.min_epochs=1 task.max_epochs=27 hydra.run.dir=...

The MLP's fidelity is its epochs. ASHA and Hyperband (both η = 3) take their rungs from the task's
range, 1, 3, 9, 27 epochs; random search trains every configuration for the top of the range
(``task.epochs=27``). The three draw the same configurations, in the same order, for a seed.
27 epochs (the task's own range) keep one full-fidelity trial at a few seconds on one core
(0.1-0.5 s per epoch on the 3,000 training images, by batch size and width and the machine's
load: 2-14 s per trial, ~5 s typical), so that random search still gets a few dozen trials in
T. Hyperband makes one pass of its 4 brackets (~420 epochs, fewer when a promotion continues
from a checkpoint: ~45 s here) and stops when the pass is done, even before T; ASHA and random
search run until T. ``timeout_s`` stops *asking* at T: trials that finish after T are not counted.

The time of a trial is when its result reached the driver, in seconds since the run started
(worker start-up included): ``finished_s`` in trials.jsonl where the executor writes it. Where
it does not (the batch-synchronous executor before ``finished_s``), it is **estimated** as that
executor runs trials: batches of batch_size trials in trial order (Hyperband's also end at the
end of a rung), each spread over the workers and ending with its slowest trial; the trials'
``seconds`` laid out so, shifted to end at the run's ``wall_seconds`` (summary.json), the rest
taken for the workers' start-up. The output says so. (Checked against ``finished_s`` of 40-s
runs with ``executor.asynchronous=false``: mean error 0.2-0.8 s, max 4 s.)

Reported per seed: the best validation accuracy of each strategy by T (the objective; its
direction from summary.json) and the test accuracy of that trial; when ASHA (and random search)
first reached Hyperband's best by T ("not reached" otherwise), and when Hyperband reached it
itself; the medians over seeds. Claim under test: ASHA reaches Hyperband's best accuracy in ≤
Hyperband's time (medians over seeds).

    python benchmarks/asha_mnist.py [--seconds 60] [--seeds 3] [--workers 2] [--executor process]
        [-- more hpo overrides for every run, e.g. executor.asynchronous=false]

9 runs of up to T + ~15 s (start-up, the last trials, the outputs) with the defaults: ~9 minutes. The
runs stay in runs/asha_mnist/<time>/ (--runs-dir); the tables go to
benchmarks/results/asha_mnist.{md,json}. Exits 1 when the claim fails.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

STRATEGIES = ("asha", "hyperband", "random")
NAMES = {"asha": "ASHA", "hyperband": "Hyperband", "random": "random"}
N_TRIALS = 100_000  # never reached: the deadline (or Hyperband's single pass) ends a run
NOT_REACHED = math.inf


def hpo_command(strategy: str, seed: int, args: argparse.Namespace, run_dir: Path) -> list[str]:
    overrides = [
        "task=mnist",
        f"strategy={strategy}",
        f"executor={args.executor}",
        f"executor.workers={args.workers}",
        f"batch_size={args.batch_size or args.workers}",
        f"seed={seed}",
        f"timeout_s={args.seconds}",
        f"n_trials={N_TRIALS}",
        f"task.min_epochs={args.min_epochs}",
        f"task.max_epochs={args.max_epochs}",
        f"hydra.run.dir={run_dir}",
    ]
    if strategy == "random":  # no budget from the strategy: the task's epochs, the full fidelity
        overrides.append(f"task.epochs={args.max_epochs}")
    return [sys.executable, "-m", "hpo_cli", "run", *overrides, *args.overrides]


def run_hpo(command: list[str], run_dir: Path, seconds: float) -> float:
    """Run ``command`` (console to run_dir.with_suffix('.log')); its wall seconds. A run that
    overruns T by far is interrupted (Ctrl-C: hpo still writes its summary, which is used), then
    killed."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    log = run_dir.with_suffix(".log")
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1"})
        stopped = False
        try:
            proc.wait(timeout=seconds + max(60.0, seconds / 2))
        except subprocess.TimeoutExpired:
            stopped = True
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if proc.returncode != 0 and not (stopped and (run_dir / "trials.jsonl").exists()):
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n" + "\n".join(tail))
    return time.perf_counter() - started


def estimated_finish(
    rows: list[dict[str, Any]], workers: int, wall: float, batch_size: int, rung_barriers: bool
) -> dict[int, float]:
    """trial -> estimated seconds since the run started at which its result reached the driver,
    for the batch-synchronous executor: the rows in trial order, in batches of ``batch_size``
    (with ``rung_barriers``, Hyperband's, a batch also ends where the budget changes: its asks
    stop at the end of a rung), each batch packed onto ``workers`` (a trial starts when a worker
    is free and takes its ``seconds``) and ending with its last trial; all shifted so that the
    last one ends at ``wall``, the time the packing does not explain taken for the workers'
    start-up before the first trial."""
    batches: list[list[dict[str, Any]]] = []
    for row in sorted(rows, key=lambda r: r["trial"]):
        barrier = rung_barriers and batches and row.get("budget") != batches[-1][-1].get("budget")
        if batches and len(batches[-1]) < batch_size and not barrier:
            batches[-1].append(row)
        else:
            batches.append([row])
    ends: dict[int, float] = {}
    clock = 0.0
    for batch in batches:
        free = [clock] * max(1, workers)
        for row in batch:
            start = heapq.heappop(free)
            ends[row["trial"]] = start + float(row.get("seconds") or 0.0)
            heapq.heappush(free, ends[row["trial"]])
        clock = max(ends[row["trial"]] for row in batch)
    shift = max(0.0, wall - clock)
    return {t: e + shift for t, e in ends.items()}


def load_run(run_dir: Path, workers: int, batch_size: int) -> dict[str, Any]:
    """The run's trials with their finish times (``t``), its summary, and how ``t`` was found."""
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines() if line.strip()]
    measured = bool(rows) and all(r.get("finished_s") is not None for r in rows)
    if measured:
        times = {r["trial"]: float(r["finished_s"]) for r in rows}
    else:
        wall = float(summary.get("wall_seconds") or 0.0)
        barriers = summary.get("strategy") in ("hyperband", "successive_halving")
        times = estimated_finish(rows, workers, wall, batch_size, barriers)
    trials = sorted(({**r, "t": times[r["trial"]]} for r in rows), key=lambda r: (r["t"], r["trial"]))
    return {"summary": summary, "trials": trials, "time_source": "finished_s" if measured else "estimated"}


def best_by(trials: list[dict[str, Any]], deadline: float, maximize: bool) -> dict[str, Any] | None:
    """The best complete trial with a result by ``deadline`` (the first one on ties)."""
    best = None
    for r in trials:
        if r["t"] > deadline or r.get("state") != "complete" or r.get("value") is None:
            continue
        if best is None or (r["value"] > best["value"] if maximize else r["value"] < best["value"]):
            best = r
    return best


def time_to_reach(trials: list[dict[str, Any]], target: float, deadline: float, maximize: bool) -> float:
    """When the running best first reached ``target`` by ``deadline``; NOT_REACHED otherwise."""
    for r in trials:  # sorted by finish time
        if r["t"] > deadline:
            break
        if r.get("state") != "complete" or r.get("value") is None:
            continue
        if (r["value"] >= target) if maximize else (r["value"] <= target):
            return float(r["t"])
    return NOT_REACHED


def promotions_continued(trials: list[dict[str, Any]], min_budget: float) -> tuple[int, int]:
    """(promoted trials that continued from a checkpoint, promoted trials): a promotion trains
    fewer epochs than its budget when the worker that runs it holds the configuration's checkpoint."""
    promoted = [r for r in trials if r.get("budget") is not None and float(r["budget"]) > min_budget]
    continued = [r for r in promoted if int((r.get("cost") or {}).get("epochs", 0)) < round(float(r["budget"]))]
    return len(continued), len(promoted)


def summarize(run: dict[str, Any], deadline: float, args: argparse.Namespace) -> dict[str, Any]:
    summary, trials = run["summary"], run["trials"]
    maximize = summary["direction"] == "maximize"
    best = best_by(trials, deadline, maximize)
    continued, promoted = promotions_continued(trials, args.min_epochs)
    return {
        "metric": summary["metric"],
        "direction": summary["direction"],
        "best": None if best is None else best["value"],
        "best_trial": None if best is None else best["trial"],
        "best_budget": None if best is None else best.get("budget"),
        "best_test_accuracy": None if best is None else best.get("metrics", {}).get("test_accuracy"),
        "time_to_own_best": NOT_REACHED if best is None else best["t"],
        "trials": len(trials),
        "trials_by_deadline": sum(r["t"] <= deadline for r in trials),
        "failed": sum(r.get("state") == "failed" for r in trials),
        "epochs_trained": sum(int((r.get("cost") or {}).get("epochs", 0)) for r in trials),
        "promotions": promoted,
        "promotions_from_checkpoint": continued,
        "first_start_s": min((r["t"] - float(r.get("seconds") or 0.0) for r in trials), default=math.nan),
        "last_result_s": max((r["t"] for r in trials), default=0.0),
        "wall_seconds": summary.get("wall_seconds"),
        "status": summary.get("status"),
        "message": summary.get("message"),
        "time_source": run["time_source"],
    }


def jsonable(obj: Any) -> Any:
    """``obj`` with infinite and NaN floats (not reached, no value) as None: strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj


def fmt_s(seconds: float) -> str:
    return "not reached" if seconds == NOT_REACHED else f"{seconds:.1f} s"


def fmt_acc(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="wall clock T of each run (default 60)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="executor.workers (default 2)")
    parser.add_argument("--executor", default="process", help="executor=... (default process)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch_size (default: --workers)")
    parser.add_argument("--min-epochs", type=int, default=1, help="task.min_epochs (default 1)")
    parser.add_argument("--max-epochs", type=int, default=27, help="task.max_epochs, random's epochs (default 27)")
    parser.add_argument("--runs-dir", type=Path, default=None, help="default: runs/asha_mnist/<time>")
    parser.add_argument("--no-run", action="store_true", help="only analyze the runs already in --runs-dir")
    parser.add_argument("overrides", nargs="*", help="hpo run overrides for every run (after --)")
    args = parser.parse_args()
    if args.no_run and args.runs_dir is None:
        parser.error("--no-run needs --runs-dir")
    sys.path.insert(0, str(Path(__file__).parent))
    from publish import publish

    root = args.runs_dir or Path(__file__).resolve().parent.parent / "runs" / "asha_mnist" / time.strftime(
        "%Y-%m-%d_%H-%M-%S"
    )
    per_seed: list[dict[str, Any]] = []
    runs: dict[str, dict[str, Any]] = {}
    for seed in range(args.seeds):
        got: dict[str, dict[str, Any]] = {}
        for strategy in STRATEGIES:
            run_dir = (root / f"{strategy}_seed{seed}").resolve()
            wall = (
                math.nan if args.no_run else run_hpo(hpo_command(strategy, seed, args, run_dir), run_dir, args.seconds)
            )
            run = load_run(run_dir, args.workers, args.batch_size or args.workers)
            got[strategy] = {**summarize(run, args.seconds, args), "process_s": wall, "run_dir": str(run_dir)}
            got[strategy]["_trials"] = run["trials"]
            g = got[strategy]
            print(
                f"seed {seed} {strategy}: best {fmt_acc(g['best'])} at {fmt_s(g['time_to_own_best'])}, "
                f"{g['trials_by_deadline']} trials by T, {g['epochs_trained']} epochs ({g['message']}; "
                f"{'' if math.isnan(wall) else f'process {wall:.0f} s, '}times {g['time_source']})",
                flush=True,
            )
        maximize = got["hyperband"]["direction"] == "maximize"
        target = got["hyperband"]["best"]
        row: dict[str, Any] = {"seed": seed, "hyperband_best": target}
        for strategy in STRATEGIES:
            g = got[strategy]
            trials = g.pop("_trials")
            reach = NOT_REACHED if target is None else time_to_reach(trials, target, args.seconds, maximize)
            row[f"{strategy}_best"] = g["best"]
            row[f"{strategy}_test_accuracy"] = g["best_test_accuracy"]
            row[f"{strategy}_to_hyperband_best_s"] = reach
            runs[f"{strategy}_seed{seed}"] = g
        row["asha_le_hyperband"] = row["asha_to_hyperband_best_s"] <= row["hyperband_to_hyperband_best_s"]
        per_seed.append(row)

    def median(key: str) -> float:
        values = [r[key] for r in per_seed if r[key] is not None]
        return statistics.median(values) if values else math.nan

    med = {k: median(k) for k in per_seed[0] if k not in ("seed", "asha_le_hyperband")}
    claim = med["asha_to_hyperband_best_s"] <= med["hyperband_to_hyperband_best_s"]
    estimated = sorted({name for name, g in runs.items() if g["time_source"] == "estimated"})
    lines = [
        f"## ASHA vs Hyperband vs random search: MLP on the bundled MNIST subset, {args.seconds:g} s each, "
        f"{args.workers} workers",
        "",
        f"`python benchmarks/asha_mnist.py --seconds {args.seconds:g} --seeds {args.seeds} --workers {args.workers}"
        f"{' -- ' + ' '.join(args.overrides) if args.overrides else ''}` "
        f"on {os.cpu_count()} cores: executor={args.executor}, batch_size={args.batch_size or args.workers}, "
        f"epochs {args.min_epochs}–{args.max_epochs} (η = 3; random search trains {args.max_epochs}); "
        "best validation accuracy of the trials with a result by T, the test accuracy of that trial; "
        "times in seconds since the run started.",
        "",
        "| seed | ASHA best val (test) | Hyperband best val (test) | random best val (test) "
        "| Hyperband: time to its best | ASHA: time to Hyperband's best | random: time to Hyperband's best "
        "| ASHA ≤ Hyperband |",
        "|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in per_seed:
        lines.append(
            f"| {r['seed']} | {fmt_acc(r['asha_best'])} ({fmt_acc(r['asha_test_accuracy'])}) "
            f"| {fmt_acc(r['hyperband_best'])} ({fmt_acc(r['hyperband_test_accuracy'])}) "
            f"| {fmt_acc(r['random_best'])} ({fmt_acc(r['random_test_accuracy'])}) "
            f"| {fmt_s(r['hyperband_to_hyperband_best_s'])} | {fmt_s(r['asha_to_hyperband_best_s'])} "
            f"| {fmt_s(r['random_to_hyperband_best_s'])} | {'yes' if r['asha_le_hyperband'] else 'no'} |"
        )
    lines.append(
        f"| median | {fmt_acc(med['asha_best'])} ({fmt_acc(med['asha_test_accuracy'])}) "
        f"| {fmt_acc(med['hyperband_best'])} ({fmt_acc(med['hyperband_test_accuracy'])}) "
        f"| {fmt_acc(med['random_best'])} ({fmt_acc(med['random_test_accuracy'])}) "
        f"| {fmt_s(med['hyperband_to_hyperband_best_s'])} | {fmt_s(med['asha_to_hyperband_best_s'])} "
        f"| {fmt_s(med['random_to_hyperband_best_s'])} | {'yes' if claim else 'no'} |"
    )
    lines += [
        "",
        "| run | trials (by T) | epochs trained | promotions from a checkpoint | best trial (epochs) "
        "| first trial started (workers' start-up) | last result | how the run ended |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, g in runs.items():
        promos = f"{g['promotions_from_checkpoint']} / {g['promotions']}" if g["promotions"] else "–"
        lines.append(
            f"| {name} | {g['trials']} ({g['trials_by_deadline']}) | {g['epochs_trained']} | {promos} "
            f"| {g['best_trial']} ({g['best_budget'] if g['best_budget'] is not None else args.max_epochs:g}) "
            f"| {g['first_start_s']:.1f} s | {g['last_result_s']:.1f} s | {g['message']} |"
        )
    lines += [
        "",
        "Times: "
        + (
            f"**estimated** for {', '.join(estimated)} (no `finished_s` in trials.jsonl: the trials' seconds "
            "laid out in batches of batch_size over the workers, shifted to end at the run's wall_seconds)."
            if estimated
            else "`finished_s` of trials.jsonl (when each result reached the driver)."
        ),
        f"Claim: ASHA reaches Hyperband's best accuracy in ≤ Hyperband's time (medians over seeds): "
        f"{'PASS' if claim else 'FAIL'}. Load average at the end: {os.getloadavg()[0]:.2f} (1 min).",
    ]
    failed = [] if claim else ["ASHA did not reach Hyperband's best accuracy within Hyperband's time (median)"]
    data = {
        "seconds": args.seconds,
        "seeds": args.seeds,
        "workers": args.workers,
        "executor": args.executor,
        "epochs": [args.min_epochs, args.max_epochs],
        "overrides": args.overrides,
        "per_seed": per_seed,
        "median": med,
        "runs": runs,
        "estimated_times": estimated,
        "cores": os.cpu_count(),
        "loadavg_1min": os.getloadavg()[0],
    }
    return publish("asha_mnist", "\n".join(lines), jsonable(data), failed)


if __name__ == "__main__":
    raise SystemExit(main())
