"""Data hyper-cleaning (Franceschi et al. 2017, §5.1) through the ``hypercleaning_franceschi2017`` preset.

For each seed (data split, flipped labels and strategy alike) three runs of the same preset:

    hpo run experiment=hypercleaning_franceschi2017 seed=S task.cleaning=oracle     # 1 evaluation
    hpo run experiment=hypercleaning_franceschi2017 seed=S task.cleaning=baseline   # 1 evaluation
    hpo run experiment=hypercleaning_franceschi2017 seed=S                          # learned (DH-R)

The preset's task is ``task=hypercleaning`` (:mod:`hpo_cli.tasks.hypercleaning`). Each arm's
number is ``final_test_accuracy``: the test accuracy of the model retrained on training +
validation (oracle: the clean training examples; baseline: all of them; learned: the training
examples weighted by the learned λ, validation by max λ), the paper's protocol. The
learned arm's trial is the run's best (lowest validation loss, the one ``hpo run`` reports).
Per seed and as the median over seeds: the fraction of the Baseline→Oracle gap the learned
weights close, (learned − baseline) / (oracle − baseline)
(:func:`hpo_cli.tasks.hypercleaning.gap_closed`), and the rank-based detection of the flipped
labels by low weights (precision at R, R = the number flipped, chance = the noise fraction;
ROC AUC, chance 0.5) after 1, 10 and 25 hyper-iterations and at the last one (hyper-iteration k
= the trial after k outer steps; trial 0 is the uniform start, chance level).

Claims (medians over the seeds): gap fraction ≥ 0.86 (Franceschi's DH-R closes 86 % of it);
learned ≥ baseline + 2 points and ≥ oracle − 1 point; precision at R after one
hyper-iteration above chance. Writes benchmarks/results/hypercleaning_franceschi2017.{md,json}
(with every trial's detection scores and final accuracy); exits 1 when a claim fails.

    python benchmarks/hypercleaning_franceschi2017.py [--seeds 5] [--threads 1] [-- OVERRIDE ...]

Overrides after ``--`` go to every run (e.g. ``task.data_dir=~/data/mnist`` for the paper's
split sizes on the full MNIST, ``n_trials=50`` for a quick look).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

from publish import RESULTS, publish, seeded_arguments

from hpo_cli.runner import run_in_memory
from hpo_cli.tasks.hypercleaning import gap_closed
from hpo_cli.trial import TrialRecord, TrialState

PRESET = "experiment=hypercleaning_franceschi2017"
PAPER = {"oracle": 90.46, "baseline": 87.74, "learned": 90.07}  # test accuracy %, Franceschi 2017 §5.1
PAPER_GAP = gap_closed(PAPER["learned"], PAPER["baseline"], PAPER["oracle"])  # 0.857
GAP_TARGET = 0.86  # median fraction of the Baseline→Oracle gap closed
ABOVE_BASELINE, BELOW_ORACLE = 2.0, 1.0  # percentage points
RANKED = ("cleaning_precision_at_r", "cleaning_auc")
EARLY = (1, 10, 25)  # hyper-iterations at which detection is reported, and the last one


def best(records: list[TrialRecord]) -> TrialRecord:
    complete = [r for r in records if r.state == TrialState.COMPLETE and r.value is not None]
    if not complete:
        raise RuntimeError(f"no complete trial: {records[-1].error if records else 'no trial'}")
    return min(complete, key=lambda r: float(r.value or 0.0))


def detection_at(trajectory: list[dict[str, float]], iteration: int | None) -> dict[str, float]:
    """The trajectory's entry after ``iteration`` hyper-iterations (None: the last one; nan
    where the run stopped before it)."""
    if iteration is not None and iteration >= len(trajectory):
        return dict.fromkeys(RANKED, float("nan"))
    entry = trajectory[-1 if iteration is None else iteration]
    return {k: entry[k] for k in RANKED}


def run_seed(seed: int, overrides: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"seed": seed}
    for arm in ("oracle", "baseline", "learned"):
        started = time.process_time()
        records = run_in_memory([PRESET, f"seed={seed}", f"task.cleaning={arm}", *overrides])
        row[f"{arm}_cpu_seconds"] = time.process_time() - started
        chosen = best(records)
        row[arm] = 100 * float(chosen.metrics["final_test_accuracy"])
        if arm == "learned":
            row["trials"] = len(records)
            row["best_trial"] = chosen.trial
            row.update({k: float(chosen.metrics[k]) for k in RANKED})
            row["last_trial_accuracy"] = 100 * float(records[-1].metrics.get("final_test_accuracy", float("nan")))
            row["trajectory"] = [
                {
                    "trial": r.trial,
                    "val_loss": float(r.value or float("nan")),
                    "final_test_accuracy": float(r.metrics.get("final_test_accuracy", float("nan"))),
                    **{k: float(r.metrics[k]) for k in (*RANKED, "cleaning_f1")},
                }
                for r in sorted(records, key=lambda r: r.trial)
                if r.state == TrialState.COMPLETE
            ]
    row["gap_closed"] = gap_closed(row["learned"], row["baseline"], row["oracle"])
    return row


def median(values: Any) -> float:
    return statistics.median(float(v) for v in values)


def report(rows: list[dict[str, Any]], overrides: list[str], threads: int) -> tuple[str, list[str]]:
    med = {k: median(r[k] for r in rows) for k in ("oracle", "baseline", "learned", "gap_closed")}
    gaps = [r["gap_closed"] for r in rows]
    points: list[int | None] = [*EARLY, None]
    names = [f"{k}" for k in EARLY] + ["last"]
    detection = {
        (name, key): median(detection_at(r["trajectory"], at)[key] for r in rows)
        for name, at in zip(names, points, strict=True)
        for key in RANKED
    }
    seeds = f"{len(rows)} seed{'s' if len(rows) > 1 else ''} ({', '.join(str(r['seed']) for r in rows)})"
    cpu = sum(r[f"{arm}_cpu_seconds"] for r in rows for arm in ("oracle", "baseline", "learned"))
    at_header = " | ".join(f"P@R / AUC at {n}" for n in names)
    lines = [
        "## Data hyper-cleaning (Franceschi et al. 2017, §5.1)",
        "",
        f"`hpo run {PRESET} seed=S [task.cleaning=oracle|baseline]`"
        + (f" with `{' '.join(overrides)}`" if overrides else "")
        + f"; median over {seeds}; test accuracy (%) of the model retrained on training + validation; "
        "gap closed = (learned − Baseline) / (Oracle − Baseline); detection of the flipped labels by low "
        "weights: precision at R (chance: the noise fraction) and ROC AUC (chance 0.5) after k hyper-iterations.",
        "",
        f"| | Oracle | Baseline | DH-R (learned) | gap closed | {at_header} |",
        "|---|---:|---:|---:|---|" + "---|" * len(names),
        f"| paper (MNIST, 5,000 train / 5,000 val / 10,000 test) | {PAPER['oracle']:.2f} | {PAPER['baseline']:.2f} "
        f"| {PAPER['learned']:.2f} | {PAPER_GAP:.3f} |" + " |" * len(names),
        f"| this run (median) | {med['oracle']:.2f} | {med['baseline']:.2f} | {med['learned']:.2f} "
        f"| {med['gap_closed']:.3f} [{min(gaps):.3f}, {max(gaps):.3f}] | "
        + " | ".join(f"{detection[(n, RANKED[0])]:.3f} / {detection[(n, RANKED[1])]:.3f}" for n in names)
        + " |",
        "",
        "| seed | Oracle | Baseline | learned (best trial) | gap closed | learned − Baseline | Oracle − learned | "
        + at_header
        + " | trials | learned at the last trial | CPU s oracle / baseline / learned |",
        "|---:|---:|---:|---:|---:|---:|---:|" + "---|" * len(names) + "---:|---:|---|",
    ]
    for r in rows:
        at = [detection_at(r["trajectory"], p) for p in points]
        lines.append(
            f"| {r['seed']} | {r['oracle']:.2f} | {r['baseline']:.2f} | {r['learned']:.2f} | {r['gap_closed']:.3f} "
            f"| {r['learned'] - r['baseline']:+.2f} | {r['oracle'] - r['learned']:+.2f} | "
            + " | ".join(f"{d[RANKED[0]]:.3f} / {d[RANKED[1]]:.3f}" for d in at)
            + f" | {r['trials']} (best {r['best_trial']}) | {r['last_trial_accuracy']:.2f} "
            f"| {r['oracle_cpu_seconds']:.0f} / {r['baseline_cpu_seconds']:.0f} / {r['learned_cpu_seconds']:.0f} |"
        )
    failed = claims(med, detection[(names[0], RANKED[0])], chance(rows))
    lines += [
        "",
        f"claims (medians): gap closed ≥ {GAP_TARGET:g}; learned ≥ baseline + {ABOVE_BASELINE:g} and "
        f"≥ oracle − {BELOW_ORACLE:g} points; precision at R after {EARLY[0]} hyper-iteration above chance: "
        + ("PASS" if not failed else "FAIL"),
        f"torch threads: {threads}; CPU seconds of this process, {cpu:.0f} in all.",
    ]
    return "\n".join(lines), failed


def chance(rows: list[dict[str, Any]]) -> float:
    """Precision at R of uniform weights: the noise fraction, as trial 0 (the uniform start) scores it."""
    return median(r["trajectory"][0][RANKED[0]] for r in rows)


def claims(med: dict[str, float], precision_first: float, chance_level: float) -> list[str]:
    failed = []
    if med["gap_closed"] < GAP_TARGET:
        failed.append(f"median gap closed {med['gap_closed']:.3f} < {GAP_TARGET}")
    if med["learned"] < med["baseline"] + ABOVE_BASELINE:
        failed.append(f"median learned {med['learned']:.2f} < median baseline {med['baseline']:.2f} + {ABOVE_BASELINE}")
    if med["learned"] < med["oracle"] - BELOW_ORACLE:
        failed.append(f"median learned {med['learned']:.2f} < median oracle {med['oracle']:.2f} − {BELOW_ORACLE}")
    if not precision_first > chance_level:
        failed.append(f"median precision at R after {EARLY[0]} hyper-iteration {precision_first:.3f} ≤ chance")
    return failed


def main() -> int:
    args = seeded_arguments(__doc__)
    rows: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        rows.append(run_seed(seed, args.overrides))
        partial = RESULTS / "hypercleaning_franceschi2017.partial.json"  # the seeds so far, should a run stop
        partial.parent.mkdir(exist_ok=True)
        partial.write_text(json.dumps({"rows": rows, "overrides": args.overrides}, default=str) + "\n")
        r = rows[-1]
        print(
            f"seed {seed}: oracle {r['oracle']:.2f}, baseline {r['baseline']:.2f}, learned {r['learned']:.2f} "
            f"(gap closed {r['gap_closed']:.3f}; P@R {r[RANKED[0]]:.3f}, AUC {r[RANKED[1]]:.3f}), "
            f"learned run {r['learned_cpu_seconds']:.0f} CPU s",
            flush=True,
        )
    text, failed = report(rows, args.overrides, args.threads)
    return publish("hypercleaning_franceschi2017", text, {"rows": rows, "overrides": args.overrides}, failed)


if __name__ == "__main__":
    sys.exit(main())
