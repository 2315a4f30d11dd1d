"""The end-of-run table on the console."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    headline: Sequence[str] = summary.get("headline") or ()
    table.add_row("status", str(summary["status"]))
    table.add_row(
        "trials",
        f"{summary['n_complete']} complete, {summary['n_failed']} failed"
        + (f" ({summary['n_retried']} lost with their worker and run again)" if summary.get("n_retried") else "")
        + f", {summary['n_pruned']} pruned (n_trials={summary['n_trials']})",
    )
    if best is not None:
        table.add_row(f"best {summary['metric']}", f"{format_value(best['value'])} (trial {best['trial']})")
        table.add_row("best params", format_params(best["params"], width=100))
        others = headline_first({k: v for k, v in best["metrics"].items() if k != summary["metric"]}, headline)
        if others:
            table.add_row("its metrics", format_params(others, width=100))
    refit = summary.get("refit")
    if refit:
        scores = headline_first({k: v for k, v in refit.items() if k != "protocol"}, headline)
        table.add_row("refit", f"{format_params(scores, width=100)}\n({refit.get('protocol', '')})")
    table.add_row("wall time", f"{summary['wall_seconds']:.2f} s")
    table.add_row("run dir", str(run_dir))
    Console(soft_wrap=True).print(table)


def headline_first(metrics: Mapping[str, Any], headline: Sequence[str] = ()) -> dict[str, Any]:
    """Metrics with the numbers to compare with papers first: those the task declares
    (``Task.headline``, recorded in summary.json as ``headline``) in its order, then, for the
    rest, a final retraining's, test scores without noise, validation scores, then the others
    (robustness under noise, counters); the order within each group is kept."""
    declared = {name: i for i, name in enumerate(headline)}

    def rank(name: str) -> tuple[int, int]:
        if name in declared:
            return 0, declared[name]
        if name.startswith("final_"):
            return 1, 0
        if name.startswith("test_") and "noise" not in name:
            return 2, 0
        if name.startswith("val_"):
            return 3, 0
        return 4, 0

    return dict(sorted(metrics.items(), key=lambda item: rank(item[0])))
