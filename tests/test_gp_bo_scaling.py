"""``benchmarks/gp_bo_scaling.py --spaces``: the seconds per suggestion by kind of space that the
README's GP-BO cost table states."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gp_bo_scaling.py"


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_spaces_prints_one_timed_row_per_problem_over_the_model_based_suggestions() -> None:
    result = run_script("--spaces", "--problems", "conditional,hartmann6", "--trials", "14", "--seeds", "1")
    assert result.returncode == 0, result.stderr
    rows = [
        line
        for line in result.stdout.splitlines()
        if line.startswith("| conditional") or line.startswith("| hartmann6")
    ]
    assert [row.split("|")[2].strip() for row in rows] == ["13", "6"]  # parameters per problem
    for row in rows:
        median, p90 = (float(v) for v in row.split("|")[3].split(","))
        regret = float(row.split("|")[4])
        assert 0 < median <= p90 and regret >= 0
    assert "GPSampler" not in result.stdout  # only with --optuna


def test_an_unknown_problem_is_one_clear_line() -> None:
    result = run_script("--spaces", "--problems", "hartmann6,nope")
    assert result.returncode != 0
    assert re.search(r"--problems=nope: not a problem \(they are: conditional, ", result.stderr)
    assert "Traceback" not in result.stderr
