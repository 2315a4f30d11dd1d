"""``hpo bench SUITE [--check | --update] [--baseline-dir DIR] [--results-dir DIR]``.

A suite (``benchmarks/SUITE.yaml``, or a path) lists cells: a task (and space), strategies,
n_trials and Hydra overrides, run for every seed. Per cell and strategy it measures

* ``best_value``: the median over seeds of the run's best value (the quality metric);
* ``seconds_ratio``: median wall seconds divided by the reference strategy's, measured in the
  same run (never absolute seconds, which depend on the machine).

Results go to ``RESULTS_DIR/SUITE.json``. ``--update`` makes them the baseline
(``BASELINE_DIR/SUITE.json``), storing each metric's tolerance: for quality, the larger of the
suite's relative tolerance and twice the interquartile range over seeds (calibrated on the
spread of the seeds); for timing ratios, the suite's ``time_factor``. ``--check`` compares with
the baseline and exits 1 with one line per regression.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hpo_cli.errors import ConfigError, fail
from hpo_cli.report.progress import LiveBar, format_value, use_live_display
from hpo_cli.store import best_trial


@dataclass(frozen=True)
class Cell:
    task: str
    strategy: str
    space: str | None = None
    n_trials: int = 16
    overrides: tuple[str, ...] = ()
    label: str | None = None  # the cell's name where task/space alone would repeat another's

    @property
    def name(self) -> str:
        return self.label or f"{self.task}{'/' + self.space if self.space else ''}"

    def args(self, seed: int, data_seed: int | None = None) -> list[str]:
        """The overrides of one run; ``data_seed`` holds the task's data fixed across seeds."""
        space = [f"space={self.space}"] if self.space else []
        data = [] if data_seed is None else [f"task.seed={data_seed}"]
        return [
            f"task={self.task}",
            *space,
            f"strategy={self.strategy}",
            f"n_trials={self.n_trials}",
            f"seed={seed}",
            *data,
            *self.overrides,
        ]


@dataclass
class Suite:
    name: str
    cells: list[Cell]
    seeds: list[int]
    reference: str
    tolerance: float = 0.02
    time_factor: float = 3.0
    data_seed: int | None = 0  # None: the data split follows each seed


def load_suite(spec: str) -> Suite:
    path = Path(spec) if spec.endswith((".yaml", ".yml")) else Path("benchmarks") / f"{spec}.yaml"
    if not path.is_file():
        raise ConfigError("suite", spec, f"no suite file {path}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    cells = []
    for i, c in enumerate(raw.get("cells") or []):
        for strategy in c.get("strategies") or []:
            overrides = tuple(c.get("overrides") or ())
            cells.append(
                Cell(c["task"], strategy, c.get("space"), int(c.get("n_trials", 16)), overrides, c.get("name"))
            )
        if raw.get("reference") not in (c.get("strategies") or []):
            raise ConfigError(
                f"suite.cells[{i}].strategies",
                c.get("strategies"),
                f"must include the reference {raw.get('reference')!r}",
            )
    if not cells:
        raise ConfigError("suite.cells", raw.get("cells"), "the suite defines no cells")
    pairs = [(cell.name, cell.strategy) for cell in cells]
    repeated = next((p for p in pairs if pairs.count(p) > 1), None)
    if repeated is not None:
        raise ConfigError("suite.cells", repeated[0], "two cells share this name: give one its own `name`")
    return Suite(
        str(raw.get("name", path.stem)),
        cells,
        list(raw.get("seeds") or [0]),
        str(raw["reference"]),
        float(raw.get("tolerance", 0.02)),
        float(raw.get("time_factor", 3.0)),
        raw.get("data_seed", 0),
    )


def run_suite(suite: Suite) -> dict[str, dict[str, Any]]:
    """{"task/space strategy": {"best_value": {...}, "seconds_ratio": {...}}}."""
    from hpo_cli.runner import run_in_memory, run_with_direction

    measured: dict[tuple[str, str], dict[str, Any]] = {}
    # interleaved (every cell of seed 0, then of seed 1, ...): a burst of load hits every strategy
    jobs = [(cell, seed) for seed in suite.seeds for cell in suite.cells]
    run_in_memory(jobs[0][0].args(jobs[0][1], suite.data_seed))  # warm-up: imports out of the timings
    with _progress(len(jobs), suite.name) as advance:
        for cell, seed in jobs:
            t0 = time.perf_counter()
            records, direction = run_with_direction(cell.args(seed, suite.data_seed))

            seconds = time.perf_counter() - t0
            entry = measured.setdefault(
                (cell.name, cell.strategy), {"values": [], "seconds": [], "direction": direction}
            )
            best = best_trial(records, direction)
            entry["values"].append(None if best is None else best.value)
            entry["seconds"].append(seconds)
            entry["direction"] = direction
            advance(f"{cell.name} {cell.strategy} seed={seed}", seconds)
    out: dict[str, dict[str, Any]] = {}
    for (name, strategy), entry in measured.items():
        values = [v for v in entry["values"] if v is not None]
        ref = min(measured[(name, suite.reference)]["seconds"])
        q25, q75 = np.percentile(values, [25, 75]) if values else (np.nan, np.nan)
        out[f"{name} {strategy}"] = {
            "best_value": {
                "value": statistics.median(values) if values else None,
                "iqr": float(q75 - q25),
                "direction": entry["direction"],
            },
            # the fastest run of each: load only ever adds time, so the minimum is the least disturbed
            "seconds_ratio": {"value": min(entry["seconds"]) / ref},
        }
    return out


def tolerances(suite: Suite, results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Results with each metric's tolerance attached (what --update stores)."""
    out: dict[str, dict[str, Any]] = {}
    for cell, metrics in results.items():
        quality = dict(metrics["best_value"])
        scale = abs(quality["value"]) if quality["value"] is not None else 0.0
        quality["tolerance"] = max(suite.tolerance * scale, 2.0 * quality["iqr"])
        timing = dict(metrics["seconds_ratio"])
        timing["tolerance_factor"] = suite.time_factor
        out[cell] = {"best_value": quality, "seconds_ratio": timing}
    return out


def regressions(suite: Suite, baseline: Mapping[str, Any], results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per metric that got worse than the baseline allows: "regression: ..." fails the
    check; a timing ratio beyond its tolerance factor f but within f² is a "warning: ..." line
    (timings are interleaved and the fastest of the seeds counts, but a loaded machine still
    moves a ratio by up to ~4x; a real slowdown of an algorithm moves it by far more)."""
    lines = []
    for cell, metrics in results.items():
        task, strategy = cell.rsplit(" ", 1)
        base = baseline.get("cells", {}).get(cell)
        if base is None:
            lines.append(
                f"regression: suite={suite.name} task={task} strategy={strategy}: no baseline "
                f"(run hpo bench {suite.name} --update)"
            )
            continue
        q, bq = metrics["best_value"], base["best_value"]
        sign = 1.0 if bq.get("direction", "minimize") == "minimize" else -1.0
        if q["value"] is None or sign * (q["value"] - bq["value"]) > bq["tolerance"]:
            lines.append(
                f"regression: suite={suite.name} task={task} strategy={strategy} metric=best_value "
                f"baseline={bq['value']:.6g} measured={format_value(q['value'])} "
                f"tolerance={bq['tolerance']:.3g} ({bq.get('direction', 'minimize')})"
            )
        t, bt = metrics["seconds_ratio"]["value"], base["seconds_ratio"]
        factor = bt["tolerance_factor"]
        if strategy != suite.reference and t > bt["value"] * factor:
            fails = t > bt["value"] * factor**2
            lines.append(
                f"{'regression' if fails else 'warning'}: suite={suite.name} task={task} strategy={strategy} "
                f"metric=seconds_ratio baseline={bt['value']:.3g} measured={t:.3g} tolerance=x{factor:g} "
                f"(vs {suite.reference}; timing fails beyond x{factor**2:g}, a loaded machine stays below)"
            )
    return lines


class _progress:
    """A rich progress bar on a terminal, plain lines otherwise; calling it advances one job."""

    def __init__(self, total: int, name: str) -> None:
        self.total, self.done, self.started = total, 0, time.monotonic()
        self.bar = LiveBar(f"bench {name}", total) if use_live_display() else None

    def __enter__(self) -> Callable[[str, float], None]:
        if self.bar is not None:
            self.bar.__enter__()
        return self.advance

    def advance(self, label: str, seconds: float) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.done, label)
        else:
            print(
                f"[{self.done}/{self.total}] {label}: {seconds:.2f} s "
                f"(elapsed {time.monotonic() - self.started:.1f} s)",
                flush=True,
            )

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__()


def bench(spec: str, mode: str | None, baseline_dir: str, results_dir: str) -> int:
    """Run suite ``spec``; ``mode`` "check" compares with the baseline, "update" replaces it."""
    try:
        suite = load_suite(spec)
    except (ConfigError, KeyError, ValueError, TypeError) as exc:
        fail(str(exc))
    try:
        results = tolerances(suite, run_suite(suite))
    except ConfigError as exc:  # a cell's overrides do not compose
        fail(f"suite {suite.name}: {exc}")
    document = {"suite": suite.name, "reference": suite.reference, "seeds": suite.seeds, "cells": results}
    _write(Path(results_dir) / f"{suite.name}.json", document)
    _print(document)
    baseline_path = Path(baseline_dir) / f"{suite.name}.json"
    if mode == "update":
        _write(baseline_path, document)
        print(f"baseline updated: {baseline_path}")
        return 0
    if mode == "check":
        if not baseline_path.is_file():
            fail(f"baseline={str(baseline_path)!r}: no such file (run hpo bench {suite.name} --update)")
        lines = regressions(suite, json.loads(baseline_path.read_text(encoding="utf-8")), results)
        for line in lines:
            print(line)
        failed = [line for line in lines if line.startswith("regression")]
        print(f"bench {suite.name}: {len(results)} cells, {len(failed)} regression(s) against {baseline_path}")
        return 1 if failed else 0
    return 0


def _write(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _print(document: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"hpo bench {document['suite']} (timing relative to {document['reference']})")
    for name in ("cell", "best value (median)", "IQR", "tolerance", "seconds ratio"):
        table.add_column(name, justify="left" if name == "cell" else "right")
    for cell, m in document["cells"].items():
        q = m["best_value"]
        table.add_row(
            cell,
            f"{q['value']:.6g}" if q["value"] is not None else "-",
            f"{q['iqr']:.3g}",
            f"{q['tolerance']:.3g}",
            f"{m['seconds_ratio']['value']:.2f}",
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)
