"""The end-of-run table on the console."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hpo_cli.report.progress import format_params, format_value


def print_summary(summary: Mapping[str, Any], run_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    criterion = summary.get("criterion", "none")
    under = f" under {criterion}" if criterion not in ("none", "holdout") else ""
    table = Table(title=f"hpo run: {summary['strategy']} on {summary['task']}{under}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    best = summary["best"]
    table.add_row("status", str(summary["status"]))
    table.add_row(
        "trials",
        f"{summary['n_complete']} complete, {summary['n_failed']} failed, "
        f"{summary['n_pruned']} pruned (n_trials={summary['n_trials']})",
    )
    if best is not None:
        table.add_row(f"best {summary['metric']}", f"{format_value(best['value'])} (trial {best['trial']})")
        table.add_row("best params", format_params(best["params"], width=100))
        others = {k: v for k, v in best["metrics"].items() if k != summary["metric"]}
        if others:
            table.add_row("its metrics", format_params(others, width=100))
    table.add_row("wall time", f"{summary['wall_seconds']:.2f} s")
    table.add_row("run dir", str(run_dir))
    Console(soft_wrap=True).print(table)
