"""Data hyper-cleaning (Franceschi et al. 2017, §5.1) through the ``hypercleaning_franceschi2017`` preset.

For each seed (data split, flipped labels and strategy alike) three runs of the same preset:

    hpo run experiment=hypercleaning_franceschi2017 seed=S task.cleaning=oracle     # 1 evaluation
    hpo run experiment=hypercleaning_franceschi2017 seed=S task.cleaning=baseline   # 1 evaluation
    hpo run experiment=hypercleaning_franceschi2017 seed=S                          # learned (DH-R)

The preset's task is ``task=hypercleaning`` (:mod:`hpo_cli.tasks.hypercleaning`). Each arm's
number is ``final_test_accuracy``: the test accuracy of the model retrained on training +
validation (oracle: the clean training examples; baseline: all of them; learned: the training
examples weighted by the learned λ, validation by max λ), the paper's protocol. The
learned arm's trial is the run's best (lowest validation loss, the one ``hpo run`` reports);
its flipped-label detection (weight < 1e-3 = discarded) is scored by precision, recall and F1.

Target (medians over the seeds): learned ≥ baseline + 2 points and ≥ oracle − 1 point.
Writes benchmarks/results/hypercleaning_franceschi2017.{md,json}; exits 1 when the target fails.

    python benchmarks/hypercleaning_franceschi2017.py [--seeds 5] [--threads 1] [-- OVERRIDE ...]

Overrides after ``--`` go to every run (e.g. ``task.data_dir=~/data/mnist`` for the paper's
split sizes on the full MNIST, ``n_trials=50`` for a quick look).
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from publish import publish, seeded_arguments

from hpo_cli.runner import run_in_memory
from hpo_cli.trial import TrialRecord, TrialState

PRESET = "experiment=hypercleaning_franceschi2017"
PAPER = {"oracle": 90.46, "baseline": 87.74, "learned": 90.07}  # test accuracy %, Franceschi 2017 §5.1
ABOVE_BASELINE, BELOW_ORACLE = 2.0, 1.0  # percentage points
DETECTION = ("cleaning_precision", "cleaning_recall", "cleaning_f1")


def best(records: list[TrialRecord]) -> TrialRecord:
    complete = [r for r in records if r.state == TrialState.COMPLETE and r.value is not None]
    if not complete:
        raise RuntimeError(f"no complete trial: {records[-1].error if records else 'no trial'}")
    return min(complete, key=lambda r: float(r.value or 0.0))


def run_seed(seed: int, overrides: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"seed": seed}
    for arm in ("oracle", "baseline", "learned"):
        started = time.perf_counter()
        records = run_in_memory([PRESET, f"seed={seed}", f"task.cleaning={arm}", *overrides])
        row[f"{arm}_seconds"] = time.perf_counter() - started
        chosen = best(records)
        row[arm] = 100 * float(chosen.metrics["final_test_accuracy"])
        if arm == "learned":
            row["trials"] = len(records)
            row["best_trial"] = chosen.trial
            row.update({k: float(chosen.metrics[k]) for k in DETECTION})
            row["last_trial_accuracy"] = 100 * float(records[-1].metrics.get("final_test_accuracy", float("nan")))
    return row


def median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in rows)


def report(rows: list[dict[str, Any]], overrides: list[str], threads: int) -> tuple[str, list[str]]:
    med = {k: median(rows, k) for k in ("oracle", "baseline", "learned", *DETECTION)}
    seeds = f"{len(rows)} seed{'s' if len(rows) > 1 else ''} ({', '.join(str(r['seed']) for r in rows)})"
    lines = [
        "## Data hyper-cleaning (Franceschi et al. 2017, §5.1)",
        "",
        f"`hpo run {PRESET} seed=S [task.cleaning=oracle|baseline]`"
        + (f" with `{' '.join(overrides)}`" if overrides else "")
        + f"; median over {seeds}; test accuracy (%) of the model retrained on training + validation.",
        "",
        "| | Oracle | Baseline | DH-R (learned) | detection P / R / F1 |",
        "|---|---:|---:|---:|---|",
        f"| paper (MNIST, 5,000 train / 5,000 val / 10,000 test) | {PAPER['oracle']:.2f} | {PAPER['baseline']:.2f} "
        f"| {PAPER['learned']:.2f} | |",
        f"| this run (median) | {med['oracle']:.2f} | {med['baseline']:.2f} | {med['learned']:.2f} "
        f"| {med['cleaning_precision']:.3f} / {med['cleaning_recall']:.3f} / {med['cleaning_f1']:.3f} |",
        "",
        "| seed | Oracle | Baseline | learned (best trial) | learned − Baseline | Oracle − learned "
        "| precision | recall | F1 | trials | learned at the last trial | seconds oracle / baseline / learned |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['oracle']:.2f} | {r['baseline']:.2f} | {r['learned']:.2f} "
            f"| {r['learned'] - r['baseline']:+.2f} | {r['oracle'] - r['learned']:+.2f} "
            f"| {r['cleaning_precision']:.3f} | {r['cleaning_recall']:.3f} | {r['cleaning_f1']:.3f} "
            f"| {r['trials']} (best {r['best_trial']}) | {r['last_trial_accuracy']:.2f} "
            f"| {r['oracle_seconds']:.0f} / {r['baseline_seconds']:.0f} / {r['learned_seconds']:.0f} |"
        )
    failed = []
    if med["learned"] < med["baseline"] + ABOVE_BASELINE:
        failed.append(f"median learned {med['learned']:.2f} < median baseline {med['baseline']:.2f} + {ABOVE_BASELINE}")
    if med["learned"] < med["oracle"] - BELOW_ORACLE:
        failed.append(f"median learned {med['learned']:.2f} < median oracle {med['oracle']:.2f} − {BELOW_ORACLE}")
    lines += [
        "",
        f"target (medians): learned ≥ baseline + {ABOVE_BASELINE:g} and ≥ oracle − {BELOW_ORACLE:g} points: "
        + ("PASS" if not failed else "FAIL"),
        f"torch threads: {threads}; wall seconds are this machine's, under whatever else ran on it.",
    ]
    return "\n".join(lines), failed


def main() -> int:
    args = seeded_arguments(__doc__)
    rows = []
    for seed in range(args.seeds):
        rows.append(run_seed(seed, args.overrides))
        r = rows[-1]
        print(
            f"seed {seed}: oracle {r['oracle']:.2f}, baseline {r['baseline']:.2f}, learned {r['learned']:.2f} "
            f"(F1 {r['cleaning_f1']:.3f}), learned run {r['learned_seconds']:.0f} s",
            flush=True,
        )
    text, failed = report(rows, args.overrides, args.threads)
    return publish("hypercleaning_franceschi2017", text, {"rows": rows, "overrides": args.overrides}, failed)


if __name__ == "__main__":
    sys.exit(main())
