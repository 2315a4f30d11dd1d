"""hpo bench: suites, baselines, and the regression check (a planted regression must fail)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpo_cli.cli import main as hpo
from hpo_cli.commands.bench import load_suite, regressions
from hpo_cli.errors import ConfigError


def main(args: list[str]) -> int:
    """``hpo bench ARGS``'s exit code (errors exit through SystemExit)."""
    try:
        return hpo(["bench", *args])
    except SystemExit as exc:
        return int(exc.code or 0)


SUITE = """
name: tiny
reference: random
seeds: [0, 1]
tolerance: 0.02
time_factor: 50.0
cells:
  - task: ridge
    strategies: [random, sobol]
    n_trials: 6
"""


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SUITE)
    return path


def run(suite_file: Path, tmp_path: Path, *flags: str) -> int:
    return main(
        [
            str(suite_file),
            *flags,
            "--baseline-dir",
            str(tmp_path / "baseline"),
            "--results-dir",
            str(tmp_path / "results"),
        ]
    )


def test_unchanged_baseline_passes_and_a_planted_regression_fails(
    suite_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(suite_file, tmp_path, "--update") == 0
    baseline = json.loads((tmp_path / "baseline" / "tiny.json").read_text())
    assert set(baseline["cells"]) == {"ridge random", "ridge sobol"}
    assert run(suite_file, tmp_path, "--check") == 0
    assert "bench tiny: 2 cells, 0 regression(s)" in capsys.readouterr().out

    planted = baseline["cells"]["ridge sobol"]["best_value"]
    measured = planted["value"]
    planted["value"] = measured - 10 * planted["tolerance"] - 1.0  # the baseline claims a much better MSE
    (tmp_path / "baseline" / "tiny.json").write_text(json.dumps(baseline))
    assert run(suite_file, tmp_path, "--check") == 1
    out = capsys.readouterr().out
    expected = (
        f"regression: suite=tiny task=ridge strategy=sobol metric=best_value baseline={planted['value']:.6g} "
        f"measured={measured:.6g} tolerance={planted['tolerance']:.3g} (minimize)"
    )
    assert expected in out.splitlines()
    assert "strategy=random" not in out.split("regression")[-1]


def test_a_slower_strategy_than_the_baseline_allows_is_a_timing_regression(
    suite_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(suite_file, tmp_path, "--update") == 0
    baseline = json.loads((tmp_path / "baseline" / "tiny.json").read_text())
    baseline["cells"]["ridge sobol"]["seconds_ratio"]["value"] = 1e-5  # far beyond x50²
    (tmp_path / "baseline" / "tiny.json").write_text(json.dumps(baseline))
    assert run(suite_file, tmp_path, "--check") == 1
    assert "regression: suite=tiny task=ridge strategy=sobol metric=seconds_ratio baseline=1e-05" in (
        capsys.readouterr().out
    )


def test_timing_beyond_its_factor_but_within_its_square_only_warns() -> None:
    """A loaded machine moves a timing ratio by a few times: that warns; far beyond, it fails."""
    suite = load_suite(str(Path(__file__).resolve().parents[1] / "benchmarks" / "quick.yaml"))
    quality = {"value": 1.0, "iqr": 0.0, "tolerance": 0.1, "direction": "minimize"}
    baseline = {
        "cells": {"ridge sobol": {"best_value": quality, "seconds_ratio": {"value": 1.0, "tolerance_factor": 4}}}
    }

    def check(ratio: float) -> list[str]:
        results = {"ridge sobol": {"best_value": quality, "seconds_ratio": {"value": ratio}}}
        return regressions(suite, baseline, results)

    assert check(3.9) == []
    (line,) = check(10.0)
    assert line.startswith("warning: ") and "measured=10 tolerance=x4" in line
    (line,) = check(17.0)
    assert line.startswith("regression: ") and "timing fails beyond x16" in line


def test_quality_tolerance_is_calibrated_on_the_seed_spread(suite_file: Path, tmp_path: Path) -> None:
    assert run(suite_file, tmp_path, "--update") == 0
    cell = json.loads((tmp_path / "results" / "tiny.json").read_text())["cells"]["ridge random"]["best_value"]
    assert cell["tolerance"] == pytest.approx(max(0.02 * abs(cell["value"]), 2 * cell["iqr"]))


def test_bad_suites_and_a_missing_baseline_are_clear_errors(
    tmp_path: Path, suite_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "none.yaml")]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nreference: random\ncells:\n  - task: ridge\n    strategies: [sobol]\n")
    assert main([str(bad)]) == 2
    assert "must include the reference 'random'" in capsys.readouterr().err
    assert run(suite_file, tmp_path, "--check") == 2
    assert "no such file (run hpo bench tiny --update)" in capsys.readouterr().err
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(SUITE.replace("n_trials: 6", "n_trials: 6\n    overrides: [strategy.no_such_knob=1]"))
    assert main([str(overrides), "--results-dir", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hpo: error: suite tiny: overrides=") and "no_such_knob" in err and len(err.splitlines()) == 1


def test_the_shipped_quick_suite_loads() -> None:
    suite = load_suite(str(Path(__file__).resolve().parents[1] / "benchmarks" / "quick.yaml"))
    assert suite.reference == "random" and suite.data_seed == 0 and len(suite.cells) == 11
    parallel = [c for c in suite.cells if c.name == "ridge-process"]  # the parallel cell (executor=process)
    assert len(parallel) == 2 and all("executor=process" in c.overrides for c in parallel)


def test_two_cells_with_one_name_and_strategy_are_refused(tmp_path: Path) -> None:
    spec = tmp_path / "twice.yaml"
    cell = "  - {task: ridge, strategies: [random], n_trials: 2}\n"
    spec.write_text("name: twice\nreference: random\ncells:\n" + cell + cell)
    with pytest.raises(ConfigError, match="two cells share this name"):
        load_suite(str(spec))


@pytest.mark.slow
def test_the_quick_digits_cell_tells_hyperband_from_random() -> None:
    """The cell once ran both at one fidelity with the same draws: one baseline for two strategies."""
    from hpo_cli.runner import run_in_memory

    suite = load_suite(str(Path(__file__).resolve().parents[1] / "benchmarks" / "quick.yaml"))
    (cell_random, cell_hyperband) = [c for c in suite.cells if c.task == "digits"]
    random = run_in_memory(cell_random.args(0, suite.data_seed))
    hyperband = run_in_memory(cell_hyperband.args(0, suite.data_seed))
    assert {r.budget for r in random} == {None} and {r.budget for r in hyperband} == {1.0, 3.0, 9.0}
    epochs = [sum(int(r.cost.get("epochs", 0)) for r in records) for records in (random, hyperband)]
    assert epochs == [13 * 3, 9 + 3 * 2 + 6]  # a bracket continuing from checkpoints; 13 configurations at 3
    assert max(r.value or 0 for r in random) != max(r.value or 0 for r in hyperband)
