"""``hpo compare PATH... [--out DIR]``: runs side by side, grouped by task × strategy.

Per group, over its runs (seeds): the best value (median, IQR, mean ± std), the test metric
of each run's best trial (median), evaluations, inner steps and wall seconds used (median), and
the convergence point "Conv.": evaluations needed to reach 99 % of a run's total improvement
(Bakhteev & Strijov). Writes comparison.csv, comparison.md and plots/ (best-so-far against
evaluations and against wall time, median with IQR bands; hyperparameter trajectories of
gradient-based runs).
"""

from __future__ import annotations

import csv
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hpo_cli.errors import fail
from hpo_cli.report.progress import format_value
from hpo_cli.report.results import Run, best_so_far, convergence_point, find_runs, primary_test_metric

COLUMNS = (
    "task",
    "strategy",
    "runs",
    "best_median",
    "best_q25",
    "best_q75",
    "best_mean",
    "best_std",
    "test_metric",
    "test_median",
    "evaluations",
    "inner_steps",
    "wall_seconds",
    "conv_median",
)


def group_runs(runs: Sequence[Run]) -> dict[tuple[str, str], list[Run]]:
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(str(run.summary.get("task")), str(run.summary.get("strategy")))].append(run)
    return dict(sorted(groups.items()))


def aggregate(key: tuple[str, str], runs: Sequence[Run]) -> dict[str, Any]:
    bests = np.array([r.summary["best"]["value"] for r in runs if r.summary.get("best")], dtype=float)
    test_name = next((primary_test_metric(r.summary["best"]["metrics"]) for r in runs if r.summary.get("best")), None)
    tests = [r.summary["best"]["metrics"].get(test_name) for r in runs if r.summary.get("best") and test_name]
    convs = [c for r in runs if (c := convergence_point(best_so_far(r.values, r.direction), r.sign)) is not None]
    row: dict[str, Any] = dict(zip(("task", "strategy"), key, strict=True))
    row["runs"] = len(runs)
    if len(bests):
        q25, med, q75 = np.percentile(bests, [25, 50, 75])
        row.update(best_median=med, best_q25=q25, best_q75=q75, best_mean=bests.mean(), best_std=bests.std(ddof=0))
    row["test_metric"] = test_name or ""
    row["test_median"] = float(np.median([t for t in tests if t is not None])) if tests else None
    row["evaluations"] = float(np.median([r.summary.get("cost", {}).get("evaluations", len(r.records)) for r in runs]))
    row["inner_steps"] = float(np.median([r.summary.get("cost", {}).get("inner_steps", 0) for r in runs]))
    row["wall_seconds"] = float(np.median([r.summary.get("wall_seconds", 0.0) for r in runs]))
    row["conv_median"] = float(np.median(convs)) if convs else None
    return row


def write_tables(rows: Sequence[dict[str, Any]], out: Path) -> None:
    with (out / "comparison.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({c: row.get(c) for c in COLUMNS} for row in rows)
    header = [
        "task",
        "strategy",
        "runs",
        "best (median)",
        "IQR",
        "mean ± std",
        "test (median)",
        "evaluations",
        "inner steps",
        "seconds",
        "Conv.",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [
            r["task"],
            r["strategy"],
            str(r["runs"]),
            format_value(r.get("best_median"), 5),
            f"{format_value(r.get('best_q25'), 5)} – {format_value(r.get('best_q75'), 5)}",
            f"{format_value(r.get('best_mean'), 5)} ± {format_value(r.get('best_std'), 5)}",
            f"{format_value(r.get('test_median'), 5)} {r['test_metric']}".strip(),
            format_value(r["evaluations"], 5),
            format_value(r["inner_steps"], 5),
            format_value(r["wall_seconds"], 5),
            format_value(r.get("conv_median"), 5),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    (out / "comparison.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="hpo compare")
    for name in ("task", "strategy", "runs", "best (median)", "IQR", "test (median)", "evals", "seconds", "Conv."):
        table.add_column(name, justify="left" if name in ("task", "strategy") else "right")
    for r in rows:
        table.add_row(
            r["task"],
            r["strategy"],
            str(r["runs"]),
            format_value(r.get("best_median"), 5),
            f"{format_value(r.get('best_q25'), 5)} – {format_value(r.get('best_q75'), 5)}",
            f"{format_value(r.get('test_median'), 5)} {r['test_metric']}",
            format_value(r["evaluations"], 5),
            format_value(r["wall_seconds"], 5),
            format_value(r.get("conv_median"), 5),
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def compare(paths: Sequence[str], out: Path | None = None) -> int:
    runs = find_runs(paths)
    if not runs:
        fail(f"paths={list(paths)!r}: no run directories found (looked for summary.json)")
    groups = group_runs(runs)
    rows = [aggregate(key, group) for key, group in groups.items()]
    out = out or _default_out(paths)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"--out={str(out)!r}: {exc.strerror}")
    write_tables(rows, out)
    from hpo_cli.report.compare_plots import plot_curves, plot_trajectories

    plots = plot_curves(groups, out / "plots") + plot_trajectories(groups, out / "plots")
    print_table(rows)
    print(f"wrote {out / 'comparison.csv'}, {out / 'comparison.md'} and {len(plots)} plots in {out / 'plots'}")
    return 0


def _default_out(paths: Sequence[str]) -> Path:
    """A single folder given: write into it; several: into their common parent."""
    resolved = [Path(p).resolve() for p in paths]
    if len(resolved) == 1 and resolved[0].is_dir():
        return resolved[0]
    common = Path(os.path.commonpath([str(p) for p in resolved])) if resolved else Path.cwd()
    return common if common.is_dir() else Path.cwd()
