"""hpo compare and the trial exports (trials.csv, DataFrame)."""

from __future__ import annotations

import csv
import statistics
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Result, read_summary, read_trials

from hpo_cli.report.results import convergence_point, trials_dataframe


def test_convergence_point_is_where_99_percent_of_the_improvement_is_reached() -> None:
    curve = [10.0, 10.0, 5.0, 2.0, 1.05, 1.0, 1.0]  # improvement 9; 99 % of it at <= 1.09
    assert convergence_point(curve, sign=1.0) == 5
    assert convergence_point([-x for x in curve], sign=-1.0) == 5  # maximization
    assert convergence_point([float("nan"), 3.0, 3.0], sign=1.0) == 2
    assert convergence_point([float("nan")], sign=1.0) is None


def test_compare_a_multirun_of_three_strategies_and_three_seeds(hpo: Callable[..., Result], tmp_path: Path) -> None:
    res = hpo("run", "-m", "strategy=random,sobol,grid", "task=ridge", "seed=0,1,2", "n_trials=8")
    assert res.returncode == 0, res.output
    (sweep,) = (tmp_path / "runs" / "multirun").glob("*/*")
    out = hpo("compare", str(sweep))
    assert out.returncode == 0, out.output
    assert "hpo compare" in out.stdout and "sobol" in out.stdout
    with (sweep / "comparison.csv").open() as f:
        rows = {r["strategy"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"grid", "random", "sobol"} and all(r["runs"] == "3" for r in rows.values())
    summaries = [read_summary(sweep / str(i)) for i in range(9)]
    sobol = [s["best"]["value"] for s in summaries if s["strategy"] == "sobol"]
    assert float(rows["sobol"]["best_median"]) == pytest.approx(statistics.median(sobol))
    assert rows["sobol"]["test_metric"] == "test_mse" and float(rows["sobol"]["evaluations"]) == 8
    refits = [s["refit"]["test_mse"] for s in summaries if s["strategy"] == "sobol"]  # the refit yardstick
    assert float(rows["sobol"]["refit_test_median"]) == pytest.approx(statistics.median(refits))
    assert float(rows["sobol"]["refit_val_median"]) == pytest.approx(statistics.median(sobol))  # scikit-learn: itself
    table = (sweep / "comparison.md").read_text()
    assert "| ridge | holdout | sobol | 3 |" in table
    header, _, *lines = table.splitlines()
    assert "| test_mse (median) | refit val (median) | refit test (median) |" in header
    assert all("test_mse" not in line for line in lines)  # named once
    for name in ("best_vs_evaluations_ridge.png", "best_vs_seconds_ridge.png"):
        assert (sweep / "plots" / name).stat().st_size > 10_000


def test_gradient_runs_get_trajectory_plots_and_any_folder_works(hpo: Callable[..., Result], tmp_path: Path) -> None:
    assert hpo("run", "strategy=hoag", "task=polynomial", "space=polynomial_per_coef", "n_trials=6").returncode == 0
    out = hpo("compare", str(tmp_path / "runs"), "--out", str(tmp_path / "report"))
    assert out.returncode == 0, out.output
    assert (tmp_path / "report" / "plots" / "trajectories_polynomial_hoag.png").is_file()
    empty = hpo("compare", str(tmp_path / "report" / "plots"))
    assert empty.returncode == 2 and empty.stderr.startswith("hpo: error: paths=")


def test_trials_csv_and_dataframe(hpo: Callable[..., Result], tmp_path: Path) -> None:
    assert hpo("run", "task=polynomial", "space=polynomial_per_coef", "strategy=random", "n_trials=5").returncode == 0
    (run,) = (p.parent for p in (tmp_path / "runs").glob("20*/*/summary.json"))
    with (run / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    trials = read_trials(run)
    assert len(rows) == 5 and float(rows[2]["params.log_precision[11]"]) == trials[2]["params"]["log_precision"][11]
    df = trials_dataframe(run)
    assert list(df["trial"]) == [0, 1, 2, 3, 4] and df["metrics.test_mse"].iloc[0] == trials[0]["metrics"]["test_mse"]


def test_several_run_directories_write_into_their_common_parent(hpo: Callable[..., Result], tmp_path: Path) -> None:
    for strategy in ("random", "sobol"):
        assert hpo("run", f"strategy={strategy}", "task=ridge", "n_trials=4").returncode == 0
    runs = sorted(str(p.parent) for p in (tmp_path / "runs").glob("20*/*/summary.json"))
    assert hpo("compare", *runs).returncode == 0
    assert (Path(runs[0]).parent / "comparison.csv").is_file()


def test_the_test_metric_gets_a_column_of_its_own_when_rows_differ(tmp_path: Path) -> None:
    from hpo_cli.commands.compare import write_tables

    rows = [
        {"task": t, "criterion": "holdout", "strategy": "random", "runs": 1, "test_metric": m, "test_median": v}
        | {"evaluations": 4, "inner_steps": 0, "wall_seconds": 1.0}
        for t, m, v in (("ridge", "test_mse", 3088.9), ("digits", "test_accuracy", 0.9))
    ]
    write_tables(rows, tmp_path)
    header, _, ridge, digits = (tmp_path / "comparison.md").read_text().splitlines()
    assert "| test metric | test (median) |" in header
    assert "| test_mse | 3088.9 |" in ridge and "| test_accuracy | 0.9 |" in digits


def test_trajectory_lines_stay_distinct_for_forty_hyperparameters() -> None:
    from hpo_cli.report.compare_plots import line_styles

    styles = line_styles(40)
    assert len(set(styles)) == 40 and len({colour for colour, _ in styles[:20]}) == 20
