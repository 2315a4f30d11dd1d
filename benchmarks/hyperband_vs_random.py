"""Hyperband against random search on the bundled MNIST subset, at equal total training epochs.

Per seed: Hyperband (η = 3, 1 to 27 epochs, promotions continue from checkpoints) runs one
pass; random search then trains as many configurations for 27 epochs as fit into the same
number of epochs. Reported: the best validation accuracy of each, and the epochs Hyperband
had spent when its best first matched random search's final best (vs random's total).
Claims under test: Hyperband's best ≥ random's (median over seeds), and it matches random's
final best within ≤ 1/3 of random's epochs (median over seeds).

    python benchmarks/hyperband_vs_random.py [--seeds 5] [--out benchmarks/results/hyperband_vs_random.md]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from hpo_cli.runner import run_in_memory
from hpo_cli.trial import TrialRecord

MAX_EPOCHS = 27  # conf/experiment/mnist_hyperband.yaml


def epochs_to_reach(records: list[TrialRecord], target: float) -> float:
    """Cumulative epochs trained when the running best validation accuracy first reaches target."""
    spent = 0
    for r in sorted(records, key=lambda r: r.trial):
        spent += int(r.cost.get("epochs", 0))
        if r.value is not None and r.value >= target:
            return spent
    return float("inf")


def run_seed(seed: int) -> dict[str, float]:
    t0 = time.perf_counter()
    hb = run_in_memory(["experiment=mnist_hyperband", f"seed={seed}"])
    t_hb = time.perf_counter() - t0
    hb_epochs = sum(int(r.cost.get("epochs", 0)) for r in hb)
    n_random = hb_epochs // MAX_EPOCHS
    t0 = time.perf_counter()
    rnd = run_in_memory(
        ["task=mnist", f"seed={seed}", "strategy=random", f"n_trials={n_random}", f"task.epochs={MAX_EPOCHS}"]
    )
    t_rnd = time.perf_counter() - t0
    rnd_epochs = sum(int(r.cost.get("epochs", 0)) for r in rnd)
    best_rnd = max(r.value for r in rnd if r.value is not None)
    best_hb = max(r.value for r in hb if r.value is not None)
    reach = epochs_to_reach(hb, best_rnd)
    return {
        "seed": seed,
        "hb_best": best_hb,
        "hb_epochs": hb_epochs,
        "hb_evaluations": len(hb),
        "random_best": best_rnd,
        "random_epochs": rnd_epochs,
        "random_configs": n_random,
        "hb_epochs_to_match": reach,
        "fraction": reach / rnd_epochs,
        "seconds_per_epoch_hb": t_hb / hb_epochs,
        "seconds_per_epoch_random": t_rnd / rnd_epochs,
    }


def table(rows: list[dict[str, float]]) -> str:
    lines = [
        "| seed | Hyperband best val acc | epochs | evaluations | random best val acc | epochs | configs "
        "| Hyperband epochs to match random's best | fraction of random's epochs |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        reach = "never" if r["hb_epochs_to_match"] == float("inf") else f"{r['hb_epochs_to_match']:.0f}"
        lines.append(
            f"| {r['seed']:.0f} | {r['hb_best']:.4f} | {r['hb_epochs']:.0f} | {r['hb_evaluations']:.0f} | {r['random_best']:.4f} "
            f"| {r['random_epochs']:.0f} | {r['random_configs']:.0f} | {reach} | {r['fraction']:.2f} |"
        )
    med_hb = statistics.median(r["hb_best"] for r in rows)
    med_rnd = statistics.median(r["random_best"] for r in rows)
    med_fraction = statistics.median(r["fraction"] for r in rows)
    sec = statistics.median(r["seconds_per_epoch_random"] for r in rows)
    lines += [
        "",
        f"median best val accuracy: Hyperband {med_hb:.4f}, random {med_rnd:.4f}; "
        f"median fraction of random's epochs Hyperband needs to match it: {med_fraction:.2f}",
        f"CPU seconds per epoch (random's 27-epoch runs, median): {sec:.3f}",
        f"claim 1 (Hyperband best ≥ random best, medians): {'PASS' if med_hb >= med_rnd else 'FAIL'}",
        f"claim 2 (Hyperband matches random's best within ≤ 1/3 of its epochs, median): "
        f"{'PASS' if med_fraction <= 1 / 3 else 'FAIL'}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hyperband_vs_random.md"))
    args = parser.parse_args()
    rows = []
    for seed in range(args.seeds):
        rows.append(run_seed(seed))
        r = rows[-1]
        print(
            f"seed {seed}: hyperband {r['hb_best']:.4f} / random {r['random_best']:.4f}, fraction {r['fraction']:.2f}",
            flush=True,
        )
    text = "## Hyperband vs random search: MLP on the bundled MNIST subset, equal total epochs\n\n" + table(rows) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
