"""``benchmarks/gp_bo_scaling.py --spaces``: the seconds per suggestion by kind of space that the
README's GP-BO cost table states."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_only_the_suggestions_after_the_initial_design_are_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    scaling = importlib.import_module("gp_bo_scaling")
    problem = scaling.PROBLEMS["hartmann6"]
    regret, seconds = scaling.run_gp_bo(problem, 14, 0, [])
    assert len(seconds) == 14 - 10  # the default n_initial
    regret5, seconds5 = scaling.run_gp_bo(problem, 14, 0, ["strategy.n_initial=5"])
    assert len(seconds5) == 14 - 5
    assert regret > 0 and regret5 > 0  # hartmann6's optimum is not hit in 14 trials


def test_optuna_columns_are_its_own_timing_ratio_and_a_seed_by_seed_count() -> None:
    pytest.importorskip("optuna")
    result = run_script("--spaces", "--problems", "hartmann6", "--trials", "12", "--seeds", "2", "--optuna")
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("| hartmann6")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    ours_median = float(cells[2].split(",")[0])
    theirs_median, theirs_p90 = (float(v) for v in cells[4].split(","))
    assert 0 < theirs_median <= theirs_p90
    assert float(cells[6].rstrip("×")) == pytest.approx(theirs_median / ours_median, rel=0.05, abs=0.06)
    wins, losses = (int(v) for v in re.match(r"(\d+)–(\d+), p = ", cells[7]).groups())  # type: ignore[union-attr]
    assert wins + losses <= 2


def test_same_history_hands_optuna_exactly_our_trials_and_counts_its_agreeing_draws(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("optuna")
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    scaling = importlib.import_module("gp_bo_scaling")
    problem = scaling.PROBLEMS["conditional"]  # inactive parameters are absent from a trial
    space = scaling.parse_space(problem.space, {})
    history = [
        ({"lr": 0.01, "model": "linear", "l_c": 0.7}, 0.4),
        ({"lr": 0.1, "model": "tree", "t_depth": 6, "t_a": 0.2, "t_b": 0.8}, 0.25),
    ]
    study = scaling.study_with_history(space, history, seed=0)
    assert [(t.params, t.value) for t in study.trials] == history
    assert set(scaling.gp_sampler_choices(space, history, "model", draws=2)) <= {"linear", "tree", "net"}

    # Optuna's side stubbed: two draws of a value that is never ours, then the incumbent's model, so
    # the agreeing draws must equal the seeds on which gp_bo keeps the incumbent's choice
    seen: list[list[tuple[dict[str, object], float]]] = []

    def stub(space_: object, history_: list[tuple[dict[str, object], float]], name: str, draws: int) -> list[object]:
        seen.append(history_)
        incumbent = min(history_, key=lambda pv: pv[1])[0][name]
        return ["no such model", "no such model", incumbent][:draws]

    monkeypatch.setattr(scaling, "gp_sampler_choices", stub)
    row = scaling.same_history_row(problem, 11, seeds=3, draws=3)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:3] == ["conditional", "model", "11"]
    agree, total = (int(v) for v in re.match(r"(\d+)/(\d+) \(\d+%\)", cells[3]).groups())  # type: ignore[union-attr]
    assert total == 3 * 3
    assert cells[4] == f"{agree}/3"
    assert len(seen) == 3 and all(len(h) == 11 for h in seen)
    for trials in seen:  # our trials, each with its own objective value
        assert all(value == pytest.approx(problem.objective(params)) for params, value in trials)


def test_same_history_refuses_a_space_without_a_categorical_in_one_line() -> None:
    result = run_script("--same-history", "12", "--problems", "levy12")
    assert result.returncode != 0
    assert "--problems=levy12: --same-history needs a categorical parameter" in result.stderr
    assert "Traceback" not in result.stderr
