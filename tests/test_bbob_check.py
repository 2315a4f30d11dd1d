"""The regression check of ``benchmarks/bbob.py --check`` (what CI runs through make bench-bbob-quick)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest


def load_bbob() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bbob.py"
    spec = importlib.util.spec_from_file_location("bbob_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(method: str, function: int, instance: int, regret: float) -> dict:
    return {"method": method, "dim": 2, "function": function, "instance": instance, "regret": {"10": regret}}


def test_our_mean_ranks_are_read_per_cell_and_a_worse_rank_is_a_regression() -> None:
    bbob = load_bbob()
    # f1: tpe best, random worst; f10: tpe worst; medians over the two instances
    records = [
        *[record("tpe", 1, i, 0.1) for i in (1, 2)],
        *[record("random", 1, i, 1.0) for i in (1, 2)],
        *[record("optuna_tpe", 1, i, 0.5) for i in (1, 2)],
        *[record("tpe", 10, i, 9.0) for i in (1, 2)],
        *[record("random", 10, i, 5.0) for i in (1, 2)],
        *[record("optuna_tpe", 10, i, 1.0) for i in (1, 2)],
    ]
    ranks = bbob.our_mean_ranks(records, [2], [10], ["tpe", "random", "optuna_tpe"], [1, 10])
    assert ranks == {"d=2, 10·d, tpe": 2.0, "d=2, 10·d, random": 2.5}  # the peer is not ours: not checked
    assert bbob.regressions(ranks, {"d=2, 10·d, tpe": 1.0, "d=2, 10·d, random": 2.5}) == []  # within 1 rank
    worse = bbob.regressions(ranks, {"d=2, 10·d, tpe": 0.9, "d=2, 10·d, pso": 3.0})
    assert worse == [
        "d=2, 10·d, tpe: mean rank 2.00, baseline 0.90 (tolerance 1)",
        "d=2, 10·d, pso: not measured (baseline mean rank 3.00)",
    ]


def test_a_variant_of_our_strategy_runs_with_its_overrides() -> None:
    """``--methods gp_bo:n_initial=5`` pilots a default beside the peers: the strategy as composed,
    with ``strategy.n_initial=5``; a variant of something not ours is no method."""
    bbob = load_bbob()
    sphere = lambda x: float((x**2).sum())  # noqa: E731
    default, _ = bbob.method_runner("gp_bo")(sphere, 2, 6, 0)
    variant, _ = bbob.method_runner("gp_bo:n_initial=3+candidates=64")(sphere, 2, 6, 0)
    assert len(default) == len(variant) == 6
    assert default[:3] == variant[:3]  # the same Sobol design, then the variant's GP from the 4th point
    assert default[3:] != variant[3:]
    script = Path(bbob.__file__)
    refused = subprocess.run(
        [sys.executable, str(script), "--methods", "nope:x=1", "--report"], capture_output=True, text=True
    )
    assert refused.returncode == 1 and "--methods=nope:x=1: not a method" in refused.stderr


def test_instances_are_read_as_numbers_and_ranges() -> None:
    bbob = load_bbob()
    assert bbob.parse_ints("1,4-6,71") == [1, 4, 5, 6, 71]
    assert bbob.parse_ints("3") == [3]


def test_any_instance_id_is_a_problem_and_the_suite_s_own_ids_are_unchanged() -> None:
    """The suite's default list holds instances 1–5 and 71–80 only: the benchmark asks for the
    one it wants, so 6–70 work too (held-out instances for pilots), and instance 2 is still the
    problem the default list calls 2."""
    cocoex = pytest.importorskip("cocoex")
    bbob = load_bbob()
    x = np.linspace(-1.0, 1.0, 5)
    objective, _ = bbob.bbob_problem(10, 5, 2)
    default = cocoex.Suite("bbob", "", "dimensions:5 function_indices:10 instance_indices:2")
    assert objective(x) == next(iter(default))(x)
    held_out, f_opt_9 = bbob.bbob_problem(10, 5, 9)
    assert np.isfinite(held_out(x)) and held_out(x) > f_opt_9 and held_out(x) != objective(x)


def test_a_variant_of_ours_is_reported_as_ours_and_meets_its_namesakes() -> None:
    bbob = load_bbob()
    variant = "gp_bo:trust_region=true"
    records = [
        *[record(variant, f, i, 0.1) for f in (1, 10) for i in (1, 2)],
        *[record("gp_bo", f, i, 0.2) for f in (1, 10) for i in (1, 2)],
        *[record("optuna_gp", f, i, 0.3 if i == 1 else 0.05) for f in (1, 10) for i in (1, 2)],
    ]
    records = [{**r, "seconds_per_suggestion": 0.01} for r in records]
    text = bbob.report(records, [2], [10], [variant, "gp_bo", "optuna_gp"], [1, 10])
    assert f"Best of ours: {variant} (" in text and "best peer: optuna_gp (" in text
    assert f"- {variant} vs optuna_gp: won 2, lost 2 of 4 problems" in text
    assert "- gp_bo vs optuna_gp: won 2, lost 2 of 4 problems" in text
    assert bbob.is_ours(variant) and not bbob.is_ours("optuna_gp") and not bbob.is_ours("gp_boa")
