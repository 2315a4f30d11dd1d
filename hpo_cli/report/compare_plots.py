"""Plots of ``hpo compare``: median best-so-far with IQR bands, hyperparameter trajectories."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hpo_cli.report.results import Run, best_so_far


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _band(curves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and quartiles across runs of curves of unequal length (padded with their last value).

    Where a run has no value yet (NaN), the band is left out rather than computed over the
    others: a median over a changing set of runs could rise."""

    length = max(len(c) for c in curves)
    padded = np.array(
        [np.pad(c, (0, length - len(c)), mode="edge") if len(c) else np.full(length, np.nan) for c in curves]
    )
    with np.errstate(all="ignore"):
        q25, med, q75 = np.percentile(padded, [25, 50, 75], axis=0)  # NaN until every run has a value
    return q25, med, q75


def _log_scale_if_wide(ax, values: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    finite = values[np.isfinite(values)]
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 10:
        ax.set_yscale("log")


Key = tuple[str, str, str]  # (task, criterion, strategy), as hpo compare groups runs


def figure_name(task: str, criterion: str) -> str:
    """The task, and the criterion where it is not the default (hold-out, or none)."""
    if criterion in ("holdout", "none"):
        return task
    return f"{task}_" + re.sub(r"[^A-Za-z0-9]+", "_", criterion).strip("_")


def plot_curves(groups: Mapping[Key, list[Run]], folder: Path) -> list[Path]:
    """Per task and criterion: best so far against evaluations and against wall time, one
    band per strategy."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for task, criterion in sorted({key[:2] for key in groups}):
        of_task = {strategy: runs for (t, c, strategy), runs in groups.items() if (t, c) == (task, criterion)}
        for axis in ("evaluations", "seconds"):
            path = folder / f"best_vs_{axis}_{figure_name(task, criterion)}.png"
            if _plot_task_curves(figure_name(task, criterion), of_task, axis, path):
                written.append(path)
    return written


def _plot_task_curves(task: str, by_strategy: Mapping[str, list[Run]], axis: str, path: Path) -> bool:
    """One figure: a median line and IQR band per strategy; False (nothing written) when empty."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    every = []
    direction, metric = "minimize", "value"
    for strategy, runs in by_strategy.items():
        direction = runs[0].summary.get("direction", direction)
        metric = runs[0].summary.get("metric", metric)
        curves = [best_so_far(r.values, r.direction) for r in runs]
        if axis == "evaluations":
            q25, med, q75 = _band(curves)
            x = np.arange(1, len(med) + 1)
        else:
            x, med, q25, q75 = _time_band(runs, curves)
        line = ax.plot(x, med, lw=2, label=f"{strategy} (n={len(runs)})")[0]
        ax.fill_between(x, q25, q75, color=line.get_color(), alpha=0.2)
        every += [med, q75]
    if every:
        _log_scale_if_wide(ax, np.concatenate(every))
        if axis == "seconds":
            ax.set_xscale("log")
        against = "evaluations" if axis == "evaluations" else "wall time"
        ax.set_xlabel("evaluations" if axis == "evaluations" else "wall time (s)")
        ax.set_ylabel(f"best {metric} so far ({direction}); median, IQR band")
        ax.set_title(f"{task}: best so far against {against}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
    plt.close(fig)
    return bool(every)


def _time_band(runs: Sequence[Run], curves: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Curves resampled on a common wall-time grid (cumulative trial seconds)."""
    times = [np.cumsum([r.seconds for r in run.records]) for run in runs]
    end = max((t[-1] for t in times if len(t)), default=1.0)
    start = min((t[0] for t in times if len(t) and t[0] > 0), default=end / 1000)
    grid = np.geomspace(start, end, 200) if end > start else np.linspace(0, end, 200)
    resampled = []
    for t, c in zip(times, curves, strict=True):
        idx = np.searchsorted(t, grid, side="right") - 1
        resampled.append(np.where(idx >= 0, c[np.clip(idx, 0, None)], np.nan) if len(c) else np.full_like(grid, np.nan))
    with np.errstate(all="ignore"):
        q25, med, q75 = np.percentile(np.array(resampled), [25, 50, 75], axis=0)
    return grid, med, q25, q75


def plot_trajectories(groups: Mapping[Key, list[Run]], folder: Path) -> list[Path]:
    """Hyperparameters against hyper-iteration for gradient-based runs (the first run of a group)."""
    plt = _pyplot()
    written = []
    for (task_name, criterion, strategy), runs in groups.items():
        task = figure_name(task_name, criterion)
        run = runs[0]
        if not any(r.gradient is not None for r in run.records):
            continue
        names, series = _flat_params(run)
        shown = min(len(names), MAX_TRAJECTORIES)
        fig, ax = plt.subplots(figsize=(8.5 + 1.2 * ((shown - 1) // 10), 4.5), dpi=110)
        for (name, values), (colour, style) in zip(zip(names, series, strict=False), line_styles(shown), strict=False):
            ax.plot(range(len(values)), values, lw=1.2, color=colour, linestyle=style, label=name)
        ax.set_xlabel("hyper-iteration")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set_ylabel("hyperparameter value")
        more = f" (first {shown})" if len(names) > shown else ""
        ax.set_title(f"{strategy} on {task}: hyperparameter trajectories{more}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=1 + (shown - 1) // 10, loc="center left", bbox_to_anchor=(1.01, 0.5))
        fig.tight_layout()
        path = folder / f"trajectories_{task}_{strategy}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


MAX_TRAJECTORIES = 40


def line_styles(n: int) -> list[tuple[tuple[float, ...], str]]:
    """(colour, line style) of ``n`` lines, all different: tab20's 20 colours, then the same
    colours dashed, dotted, dash-dotted."""
    import matplotlib

    colours = [matplotlib.colormaps["tab20"](i) for i in range(20)]
    return [(colours[i % 20], ("-", "--", ":", "-.")[(i // 20) % 4]) for i in range(n)]


def _flat_params(run: Run) -> tuple[list[str], list[list[float]]]:
    names: list[str] = []
    series: list[list[float]] = []
    for record in run.records:
        flat = []
        for k, v in record.params.items():
            flat += [(f"{k}[{i}]", float(x)) for i, x in enumerate(v)] if isinstance(v, list) else [(k, float(v))]
        if not names:
            names = [n for n, _ in flat]
            series = [[] for _ in names]
        for s, (_, x) in zip(series, flat, strict=False):
            s.append(x if math.isfinite(x) else math.nan)
    return names, series
