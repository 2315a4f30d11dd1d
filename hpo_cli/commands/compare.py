"""``hpo compare PATH... [--out DIR]``: runs side by side, grouped by task × criterion × strategy.

Per group, over its runs (seeds): the best value (median, IQR, mean ± std), the test metric
of each run's best trial (median) and, where the task measured it, the same metric under
N(0, σ²) noise on the parameters (Bakhteev & Strijov's robustness: one column per σ),
evaluations, inner steps and wall seconds used (median), and the convergence point "Conv.":
evaluations needed to reach 99 % of a run's total improvement (Bakhteev & Strijov). Writes
comparison.csv, comparison.md and plots/ (best-so-far against evaluations and against wall
time, median with IQR bands; hyperparameter trajectories of gradient-based runs).
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
    "criterion",
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


Key = tuple[str, str, str]  # (task, criterion, strategy)
PNOISE = "_pnoise_"  # metric name infix of the parameter-noise robustness (tasks/differentiable.py)


def group_runs(runs: Sequence[Run]) -> dict[Key, list[Run]]:
    groups: dict[Key, list[Run]] = defaultdict(list)
    for run in runs:
        s = run.summary
        groups[(str(s.get("task")), str(s.get("criterion", "holdout")), str(s.get("strategy")))].append(run)
    return dict(sorted(groups.items()))


def aggregate(key: Key, runs: Sequence[Run]) -> dict[str, Any]:
    done = [r for r in runs if r.summary.get("best")]
    bests = np.array([r.summary["best"]["value"] for r in done], dtype=float)
    test_name = next((primary_test_metric(r.summary["best"]["metrics"]) for r in done), None)
    convs = [c for r in runs if (c := convergence_point(best_so_far(r.values, r.direction), r.sign)) is not None]
    row: dict[str, Any] = dict(zip(("task", "criterion", "strategy"), key, strict=True))
    row["runs"] = len(runs)
    if len(bests):
        q25, med, q75 = np.percentile(bests, [25, 50, 75])
        row.update(best_median=med, best_q25=q25, best_q75=q75, best_mean=bests.mean(), best_std=bests.std(ddof=0))
    row["test_metric"] = test_name or ""
    row["test_median"] = _median_metric(done, test_name) if test_name else None
    if test_name:
        prefix = test_name + PNOISE
        for name in sorted({k for r in done for k in r.summary["best"]["metrics"] if k.startswith(prefix)}):
            row["test_pnoise_" + name.removeprefix(prefix)] = _median_metric(done, name)
    row.update(_refit_medians(done, test_name))
    row["evaluations"] = float(np.median([r.summary.get("cost", {}).get("evaluations", len(r.records)) for r in runs]))
    row["inner_steps"] = float(np.median([r.summary.get("cost", {}).get("inner_steps", 0) for r in runs]))
    row["wall_seconds"] = float(np.median([r.summary.get("wall_seconds", 0.0) for r in runs]))
    row["conv_median"] = float(np.median(convs)) if convs else None
    return row


def _median_metric(runs: Sequence[Run], name: str) -> float | None:
    """The median over runs of their best trial's metric ``name`` (None where none has it)."""
    values = [v for r in runs if (v := r.summary["best"]["metrics"].get(name)) is not None]
    return float(np.median(values)) if values else None


REFIT = {"refit_val_median": "refit val (median)", "refit_test_median": "refit test (median)"}


def _refit_medians(runs: Sequence[Run], test_name: str | None) -> dict[str, float]:
    """The medians over runs of their refit's validation and test scores (summary.json ``refit``:
    the best parameters trained again by the task's standard training, one yardstick)."""
    if not test_name:
        return {}
    names = {"refit_test_median": test_name, "refit_val_median": "val_" + test_name.removeprefix("test_")}
    out = {}
    for column, name in names.items():
        values = [v for r in runs if (v := (r.summary.get("refit") or {}).get(name)) is not None]
        if values:
            out[column] = float(np.median(values))
    return out


def refit_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The refit columns some row has."""
    return [c for c in REFIT if any(r.get(c) is not None for r in rows)]


def noise_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The test_pnoise_<σ> columns some row has, by σ."""
    names = {c for r in rows for c in r if c.startswith("test_pnoise_")}
    return sorted(names, key=lambda c: float(c.removeprefix("test_pnoise_")))


def test_header(rows: Sequence[dict[str, Any]]) -> str | None:
    """The test metric's name when every row reports the same one (the header names it once and
    cells hold numbers only); None when rows differ (a "test metric" column names each)."""
    names = {r["test_metric"] for r in rows if r.get("test_metric")}
    return names.pop() if len(names) == 1 else None


def write_tables(rows: Sequence[dict[str, Any]], out: Path) -> None:
    noise, refit = noise_columns(rows), refit_columns(rows)
    at = COLUMNS.index("test_median") + 1
    columns = [*COLUMNS[:at], *refit, *noise, *COLUMNS[at:]]
    with (out / "comparison.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({c: row.get(c) for c in columns} for row in rows)
    test = test_header(rows)
    header = ["task", "criterion", "strategy", "runs", "best (median)", "IQR", "mean ± std"]
    header += ["test metric", "test (median)"] if test is None else [f"{test} (median)"]
    header += [REFIT[c] for c in refit]
    header += [f"{test or 'test'}, σ={c.removeprefix('test_pnoise_')}" for c in noise]
    header += ["evaluations", "inner steps", "seconds", "Conv."]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [
            r["task"],
            r["criterion"],
            r["strategy"],
            str(r["runs"]),
            format_value(r.get("best_median"), 5),
            f"{format_value(r.get('best_q25'), 5)} – {format_value(r.get('best_q75'), 5)}",
            f"{format_value(r.get('best_mean'), 5)} ± {format_value(r.get('best_std'), 5)}",
            *([] if test is not None else [r["test_metric"] or "—"]),
            format_value(r.get("test_median"), 5),
            *(format_value(r.get(c), 5) for c in refit),
            *(format_value(r.get(c), 5) for c in noise),
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

    noise, refit = noise_columns(rows), refit_columns(rows)
    test = test_header(rows)
    table = Table(title="hpo compare")
    names = ["task", "criterion", "strategy", "runs", "best (median)", "IQR"]
    names += ["test metric", "test (median)"] if test is None else [f"{test} (median)"]
    names += [REFIT[c] for c in refit]
    names += [f"σ={c.removeprefix('test_pnoise_')}" for c in noise] + ["evals", "seconds", "Conv."]
    for name in names:
        table.add_column(name, justify="left" if name in ("task", "criterion", "strategy", "test metric") else "right")
    for r in rows:
        table.add_row(
            r["task"],
            r["criterion"],
            r["strategy"],
            str(r["runs"]),
            format_value(r.get("best_median"), 5),
            f"{format_value(r.get('best_q25'), 5)} – {format_value(r.get('best_q75'), 5)}",
            *([] if test is not None else [r["test_metric"] or "—"]),
            format_value(r.get("test_median"), 5),
            *(format_value(r.get(c), 5) for c in refit),
            *(format_value(r.get(c), 5) for c in noise),
            format_value(r["evaluations"], 5),
            format_value(r["wall_seconds"], 5),
            format_value(r.get("conv_median"), 5),
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)


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
