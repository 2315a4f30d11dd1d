"""The contract every model-selection criterion keeps, checked on every criterion of
conf/criterion/ (tests/criterion_cases.py): a black-box and a gradient run on a regression model
and on a classifier give finite values under the criterion's metric name, the same seed gives
identical trials, summary.json names the criterion, and a criterion it cannot use is a one-line
error with exit code 2."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import CONF, Hpo, read_summary, read_trials, run_dirs
from criterion_cases import CRITERIA, SETUPS, CriterionCase, Setup

from hpo_cli.build import compose_study
from hpo_cli.runner import run_in_memory
from hpo_cli.trial import TrialRecord, TrialState

POLYNOMIAL = SETUPS[0]
RUNS = [case.param(setup, s) for case in CRITERIA for setup in SETUPS for s in ("random", *setup.gradient)]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """These problems are tiny: on a busy 2-core machine a second torch thread only spins (runs
    10x slower), here and in the `hpo` subprocesses."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_every_criterion_config_joins_the_contract_suite() -> None:
    shipped = {p.stem for p in (CONF / "criterion").glob("*.yaml")}
    listed = {case.name for case in CRITERIA}
    assert shipped == listed, shipped ^ listed


def comparable(records: list[TrialRecord]) -> list[dict[str, Any]]:
    """What a trial holds that the seed decides (wall-clock timings and memory measurements left out)."""
    return [
        {
            "trial": r.trial,
            "state": r.state,
            "params": r.params,
            "value": r.value,
            "metrics": {k: v for k, v in r.metrics.items() if not k.endswith("seconds")},
            "cost": {k: v for k, v in r.cost.items() if not k.endswith("bytes")},
        }
        for r in records
    ]


@pytest.mark.parametrize(("case", "setup", "strategy"), RUNS)
def test_a_short_run_is_finite_named_and_deterministic(case: CriterionCase, setup: Setup, strategy: str) -> None:
    args = case.args(setup, strategy, "n_trials=2", "seed=3")
    records = run_in_memory(args)
    assert len(records) == 2
    metric = case.metric_on(setup)
    for r in records:
        assert r.state is TrialState.COMPLETE, r.error
        assert r.value is not None and math.isfinite(r.value)
        assert r.metrics[metric] == r.value, sorted(r.metrics)
        assert all(math.isfinite(v) for v in r.metrics.values() if isinstance(v, float))
        if case.folds:
            folds = [r.metrics[f"cv_fold{q}"] for q in range(case.folds)]
            assert f"cv_fold{case.folds}" not in r.metrics
            assert r.value == pytest.approx(float(np.mean(folds)), rel=1e-12)
    assert comparable(run_in_memory(args)) == comparable(records)


@pytest.mark.parametrize(  # through the CLI: cv in make test, the others in make test-slow
    "case", [pytest.param(c, id=str(c), marks=() if c.name == "cv" else pytest.mark.slow) for c in CRITERIA]
)
def test_summary_json_names_the_criterion_and_its_metric(case: CriterionCase, hpo: Hpo, tmp_path: Path) -> None:
    res = hpo("run", *case.args(POLYNOMIAL, "random", "n_trials=3", f"runs_dir={tmp_path / 'runs'}"))
    assert res.returncode == 0, res.output
    (run,) = run_dirs(tmp_path)
    summary = read_summary(run)
    metric = case.metric_on(POLYNOMIAL)
    assert summary["criterion"].startswith(case.described), summary["criterion"]
    assert summary["metric"] == metric and summary["status"] == "finished" and summary["n_complete"] == 3
    trials = read_trials(run)
    assert all(math.isfinite(t["value"]) and t["metrics"][metric] == t["value"] for t in trials)
    assert summary["best"]["value"] == min(t["value"] for t in trials)


def test_a_function_task_has_no_criterion() -> None:
    assert compose_study(["task=branin"]).criterion == "none"  # what summary.json's "criterion" reads


@pytest.mark.parametrize("space", ["ridge_log_precision", "ridge"], ids=["differentiable", "scikit-learn"])
def test_cv_on_ridge_is_the_mean_of_its_folds(space: str) -> None:
    args = ["task=ridge", f"space={space}", "criterion=cv", "strategy=random", "n_trials=3"]
    records = run_in_memory(args)
    assert len(records) == 3
    for r in records:
        folds = [v for k, v in r.metrics.items() if k.startswith("cv_fold")]
        assert len(folds) == 4 and len(set(folds)) == 4
        assert r.value == r.metrics["cv_mse"] == pytest.approx(float(np.mean(folds)), rel=1e-12)


BAD_INPUTS = [
    (["task=branin", "criterion=evidence"], ["criterion='evidence'", "takes no criterion"]),
    (["task=softmax", "space=hypercleaning", "criterion=elbo"], ["criterion='elbo'", "example_weights"]),
    (
        ["task=softmax", "+space.params.log_noise_precision={type:float,low:-1.0,high:1.0}"],
        ["space.params.log_noise_precision", "has no noise precision"],
    ),
    (["criterion=cv", "criterion.k=1"], ["criterion.k=1: must be at least 2 folds"]),
    (["criterion=nonexistent"], ["criterion/nonexistent"]),
    (["criterion=elbo", "criterion.prune_thresholds=[1.5]"], ["criterion.prune_thresholds=1.5", "(0, 1)"]),
    (
        ["task=digits", "space=digits_gradient", "criterion=evidence", "criterion.hessian=full"],
        ["criterion.hessian='full'", "criterion.hessian=diagonal"],
    ),
    (["task=digits", "criterion=elbo"], ["criterion='elbo'", "needs the differentiable model"]),
]


@pytest.mark.parametrize(  # those that load a data set (softmax, digits) in make test-slow
    ("args", "fragments"),
    [
        pytest.param(a, f, id=" ".join(a), marks=pytest.mark.slow if a[0] in ("task=softmax", "task=digits") else ())
        for a, f in BAD_INPUTS
    ],
)
def test_a_criterion_that_cannot_apply_is_a_one_line_error(
    hpo: Hpo, tmp_path: Path, args: list[str], fragments: list[str]
) -> None:
    res = hpo("run", *args, "strategy=random", "n_trials=1", f"runs_dir={tmp_path / 'runs'}")
    assert res.returncode == 2, res.output
    assert res.stderr.startswith("hpo: error: ") and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert all(fragment in res.stderr for fragment in fragments), res.stderr
    assert "Traceback" not in res.output
    assert not list((tmp_path / "runs").glob("20*/*")), "a refused config leaves no run directory behind"
