"""Plots written into the run directory (matplotlib, imported only when plotting)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hpo_cli.report.results import best_so_far
from hpo_cli.trial import TrialRecord


def plot_history(records: Sequence[TrialRecord], direction: str, path: Path, title: str, metric: str) -> None:
    """Best value so far against trial number, with every complete trial as a dot."""
    # matplotlib's object interface with the Agg canvas: no pyplot (its import and its global
    # figure registry cost more than drawing this figure)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    records = sorted(records, key=lambda r: r.trial)
    trials = np.array([r.trial for r in records])
    values = [r.value if r.state == "complete" else None for r in records]
    fig = Figure(figsize=(7, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    done = [(t, v) for t, v in zip(trials, values, strict=True) if v is not None]
    if done:
        t, v = zip(*done, strict=True)
        ax.scatter(t, v, s=12, alpha=0.45, color="tab:gray", label="trial value")
        ax.step(
            trials,
            best_so_far(values, direction),
            where="post",
            color="tab:blue",
            lw=2,
            label="best so far",
        )
        positive = np.array(v) > 0
        if positive.all() and max(v) / min(v) > 100:
            ax.set_yscale("log")
    failed = [t for t, v in zip(trials, values, strict=True) if v is None]
    for i, t in enumerate(failed):
        ax.axvline(t, color="tab:red", alpha=0.25, lw=1, label="failed trial" if i == 0 else None)
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"{metric} ({direction})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if records:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
