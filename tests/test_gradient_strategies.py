"""Gradient-based strategies and differentiable tasks, in-process and through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import Result, make_space, read_summary, read_trials, run_dirs
from scipy.optimize import minimize

from hpo_cli.hypergrad.implicit import solve_inner
from hpo_cli.request import HypergradRequest
from hpo_cli.runner import run_in_memory
from hpo_cli.space import SearchSpace
from hpo_cli.strategies.gradient import project_box_l1
from hpo_cli.strategies.hoag import HoagStrategy
from hpo_cli.tasks.hypercleaning import HyperCleaningTask
from hpo_cli.tasks.polynomial import PolynomialTask
from hpo_cli.tasks.softmax import SoftmaxTask
from hpo_cli.trial import Observation, TrialState

Hpo = Callable[..., Result]


@pytest.mark.parametrize("radius", [None, 3.0, 0.5])
def test_projection_onto_box_and_l1_ball_is_the_euclidean_projection(radius: float | None) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(0.5, 0.8, 12)
    low, high = np.zeros(12), np.ones(12)
    got = project_box_l1(w, low, high, radius)
    cons = [] if radius is None else [{"type": "ineq", "fun": lambda x: radius - x.sum()}]
    ref = minimize(
        lambda x: np.sum((x - w) ** 2),
        np.full(12, 0.01),
        bounds=list(zip(low, high, strict=True)),
        constraints=cons,
        tol=1e-12,
    )
    np.testing.assert_allclose(got, ref.x, atol=1e-6)
    assert np.all((got >= 0) & (got <= 1)) and (radius is None or got.sum() <= radius + 1e-9)


def hoag_observation(strategy: HoagStrategy, loss: float, gradient: list[float], value_error: float = 0.0) -> None:
    (s,) = strategy.ask(1)
    metrics = {"value_error": value_error}
    strategy.tell([Observation(s, TrialState.COMPLETE, loss, metrics, gradient=tuple(gradient))])


def two_floats() -> SearchSpace:
    return make_space(
        {"a": {"type": "float", "low": -10.0, "high": 10.0}, "b": {"type": "float", "low": -10.0, "high": 10.0}}
    )


def test_hoag_step_acceptance_and_rejection_rule() -> None:
    hoag = HoagStrategy(two_floats(), seed=0, n_trials=10, init="center", tol0=0.1, decay=0.5)
    assert hoag.request().options["tol"] == 0.1
    hoag_observation(hoag, 1.0, [0.3, 0.4])  # first: L = ‖g‖ / √m
    assert pytest.approx(0.5 / np.sqrt(2)) == hoag.L
    np.testing.assert_allclose(hoag.z, -np.array([0.3, 0.4]) / hoag.L)
    assert hoag.request().options["tol"] == pytest.approx(0.05)
    L = hoag.L
    hoag_observation(hoag, 1.01, [1.0, 1.0])  # any rise beyond the evaluations' precision (0 here): rejected
    assert hoag.L == 2 * L and hoag.tol_scale == 0.5
    np.testing.assert_allclose(hoag.z, -np.array([0.3, 0.4]) / (2 * L))  # shorter step from the last point
    assert hoag.request().options["tol"] == pytest.approx(0.1 * 0.5**2 * 0.5)
    # accepted with a decrease beyond the bound 1.0 + c·tol + tol_prev·(c+1)·inc − L·inc²: L shrinks
    hoag_observation(hoag, 0.5, [0.1, 0.1])
    assert pytest.approx(2 * L * 0.95) == hoag.L
    assert hoag.accepted is not None and hoag.accepted["loss"] == 0.5
    hoag_observation(hoag, 0.49, [0.1, 0.1])  # a decrease too small for the bound: L stays
    assert pytest.approx(2 * L * 0.95) == hoag.L


def test_hoag_allows_for_the_evaluations_precision_and_shortens_a_step_that_reverses_the_last() -> None:
    hoag = HoagStrategy(two_floats(), seed=0, n_trials=10, init="center")
    hoag_observation(hoag, 1.0, [0.3, 0.4], value_error=0.004)
    hoag_observation(hoag, 1.005, [0.3, 0.4], value_error=0.002)  # within 0.004 + 0.002: accepted
    assert hoag.rejections == 0 and hoag.accepted is not None and hoag.accepted["loss"] == 1.005
    L, z = hoag.L, hoag.z.copy()
    assert L is not None
    hoag_observation(hoag, 0.9, [-0.6, -0.8])  # the step would undo the last one: L doubles first
    assert hoag.overshoots == 1 and pytest.approx(2 * L) == hoag.L
    np.testing.assert_allclose(hoag.z - z, np.array([0.6, 0.8]) / (2 * L))


def test_hoag_under_the_elbo_keeps_descending_without_a_period_two_oscillation() -> None:
    """Bakhteev's polynomial under the ELBO: with a step rejected only above 1.2 × the last
    value, the criterion rose after hyper-iteration 7 (1.5668 -> 1.636 by 30) while two log
    precisions jumped between the bound −2 and ≈3 every step."""
    records = run_in_memory(["experiment=bakhteev2020_polynomial", "strategy=hoag", "criterion=elbo", "n_trials=30"])
    values = [float(r.value) for r in records]  # type: ignore[arg-type]
    assert values[-1] <= values[7]
    best = np.minimum.accumulate(values)
    assert all(v <= b + 1e-3 for v, b in zip(values[8:], best[7:-1], strict=True))  # rises are small, and rejected
    z = np.array([r.params["log_precision"] for r in records[-12:]])
    steps = np.diff(z, axis=0)
    flips = (steps[1:] * steps[:-1] < 0) & (np.abs(steps[1:]) > 0.5)  # a coordinate reversing by > 0.5 log units
    assert not flips.any(axis=0).any(), np.argwhere(flips)


def test_polynomial_bilevel_optimum_is_the_closed_form_map() -> None:
    task = PolynomialTask(seed=3)
    params = {"log_precision": list(np.linspace(-1, 6, 12))}
    layout = task.layout_of(params)
    problem, h = task.problem(layout), task.hyper_vector(layout, params)
    theta = solve_inner(problem, h, problem.theta0, tol=1e-12).theta
    np.testing.assert_allclose(theta.numpy(), task.fit(params), rtol=1e-8, atol=1e-10)
    closed = task.evaluate(params).value
    assert PolynomialTask(seed=3, solver="lbfgs").evaluate(params).value == pytest.approx(closed, rel=1e-8)
    implicit = task.evaluate(params, None, HypergradRequest("implicit", tol=1e-12))
    assert implicit.value == pytest.approx(closed, rel=1e-8) and len(implicit.gradient or []) == 12


@pytest.mark.parametrize("method", ["greedy", pytest.param("rtho", marks=pytest.mark.slow)])
def test_online_methods_lower_q_against_the_same_training_with_fixed_h(method: str) -> None:
    common = [
        "task=polynomial",
        "space=polynomial_per_coef",
        "strategy.init=high",
        "task.inner_lr=0.002",
    ]
    adapted = run_in_memory([*common, f"strategy={method}", "n_trials=40"])
    fixed = run_in_memory([*common, f"strategy={method}", "n_trials=40", "strategy.lr=1e-12"])
    assert adapted[-1].value < 0.95 * fixed[-1].value  # type: ignore[operator]


@pytest.mark.slow
def test_drmad_lowers_q_on_the_polynomial_task() -> None:
    records = run_in_memory(["task=polynomial", "space=polynomial_per_coef", "strategy=drmad", "n_trials=25"])
    assert min(r.value for r in records) < 0.97 * records[0].value  # type: ignore[operator,type-var]


def test_divergence_stops_the_strategy_with_a_clear_message() -> None:
    from hpo_cli.build import compose_study

    study = compose_study(
        ["task=polynomial", "space=polynomial_per_coef", "strategy=drmad", "strategy.init=high", "n_trials=10",
         "strategy.options.anchors=1", "strategy.options.clip=null"]  # an unclipped adjoint: it overflows
    )  # fmt: skip
    task, strategy = study.task, study.strategy
    (s,) = strategy.ask(1)  # log precision 10: plain SGD at lr 0.01 diverges
    ev = task.evaluate(s.params, None, s.request)
    assert ev.value > 1e100
    strategy.tell([Observation(s, TrialState.COMPLETE, ev.value, gradient=tuple(ev.gradient or []))])
    assert strategy.is_finished() and "the outer step is not finite" in strategy.finish_message


def test_float32_hypergradients_run() -> None:
    records = run_in_memory(["task=softmax", "strategy=reverse", "n_trials=3", "dtype=float32", "task.inner_steps=20"])
    assert all(r.state == "complete" and r.gradient is not None for r in records)


def test_cleaning_f1_counts_discarded_flipped_examples() -> None:
    task = HyperCleaningTask(seed=0, label_noise=0.2)
    n = len(task.train.y)
    assert len(task.flipped) == round(0.2 * n)
    weights = np.ones(n)
    weights[task.flipped] = 0.0
    assert task.cleaning_f1(weights) == 1.0
    weights[task.flipped[: len(task.flipped) // 2]] = 1.0
    assert task.cleaning_f1(weights) == pytest.approx(2 * 0.5 / 1.5)
    assert task.cleaning_f1(np.ones(n)) == 0.0


def test_a_gradient_run_records_hypergradients_and_costs(hpo: Hpo, tmp_path: Path) -> None:
    res = hpo("run", "strategy=hoag", "task=polynomial", "space=polynomial_per_coef", "n_trials=12")
    assert res.returncode == 0, res.output
    run = run_dirs(tmp_path)[0]
    trials = read_trials(run)
    assert len(trials) == 12 and all(
        len(t["gradient"]) == 12 and len(t["params"]["log_precision"]) == 12 for t in trials
    )
    assert all(t["metrics"]["hypergradient_norm"] > 0 and t["cost"]["hvp"] > 0 for t in trials)
    summary = read_summary(run)
    assert summary["cost"]["hvp"] == sum(t["cost"]["hvp"] for t in trials)
    assert summary["best"]["value"] < trials[0]["value"]


@pytest.mark.slow  # in make test-slow: make test stays near its 10-minute budget
def test_gradcheck_command_passes_fails_and_refuses(hpo: Hpo) -> None:
    ok = hpo("gradcheck", "task=polynomial", "space=polynomial_per_coef", "method=forward")
    assert ok.returncode == 0 and ok.stdout.strip().splitlines()[-1].startswith("PASS: relative error")
    assert "log_precision[11]" in ok.stdout
    approx = hpo("gradcheck", "task=polynomial", "space=polynomial_per_coef", "method=drmad")
    assert approx.returncode == 1 and "FAIL" in approx.stdout
    bad = hpo("gradcheck", "task=polynomial", "method=magic")
    assert bad.returncode == 2 and bad.stderr.startswith("hpo: error: method='magic': must be one of")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["strategy=hoag", "task=lasso"],
            "task='lasso': has no default space for gradient strategies",
        ),
        (
            ["strategy=hoag", "task=lasso", "space=lasso"],
            "task='lasso': strategy 'implicit' needs a differentiable task",
        ),
        (
            ["strategy=hoag", "task=ridge", "space=ridge"],
            "space.params.alpha='alpha': gradient strategies on ridge tune log_precision",
        ),
        (
            ["strategy=rmad", "strategy.method=rmad_exact", "task=polynomial"],
            "task.convention='torch': rmad_exact needs task.convention=maclaurin",
        ),
        (
            ["strategy=rmad", "task=polynomial", "strategy.options.steps=50"],
            "strategy.options.steps=50: not an option of method reverse (its options: truncate, tape, memory_mb)",
        ),
        (
            ["strategy=rmad", "task=linear", "space=linear"],
            "space.params.model=('ridge', 'lasso'): is a categorical parameter: gradient strategies tune",
        ),
        (
            ["strategy=rmad", "task=polynomial", "space=ridge"],
            "space.params.alpha='alpha': task polynomial tunes only",
        ),
    ],
)
def test_incompatible_strategy_and_task_are_refused_up_front(hpo: Hpo, args: list[str], message: str) -> None:
    res = hpo("run", *args)
    assert res.returncode == 2 and res.stderr.startswith(f"hpo: error: {message}"), res.stderr


def test_a_resumed_gradient_run_continues_the_same_descent(hpo: Hpo, tmp_path: Path) -> None:
    args = ["strategy=rmad", "task=polynomial", "space=polynomial_per_coef"]
    assert hpo("run", *args, "n_trials=5").returncode == 0
    run = run_dirs(tmp_path)[0]
    assert hpo("resume", str(run), "n_trials=10").returncode == 0
    assert hpo("run", *args, "n_trials=10").returncode == 0
    straight = run_dirs(tmp_path)[1]
    assert [t["params"] for t in read_trials(run)] == [t["params"] for t in read_trials(straight)]
    assert torch.tensor(read_trials(run)[-1]["gradient"]).shape == (12,)


@pytest.mark.slow  # in make test-slow: make test stays near its 10-minute budget
@pytest.mark.parametrize("strategy", ["hoag"])  # the mechanism is the strategies' base class: one is enough
def test_a_big_space_leaves_its_history_to_the_trials_file_and_resumes_exactly(
    hpo: Hpo, tmp_path: Path, strategy: str
) -> None:
    args = [f"strategy={strategy}", "task=softmax", "space=softmax_per_param", "task.inner_steps=20"]
    assert hpo("run", *args, "n_trials=3").returncode == 0
    run = run_dirs(tmp_path)[0]
    state = json.loads((run / "strategy_state.json").read_text())["state"]
    assert all(h["in_trials_file"] and h["suggestion"]["params"] is None for h in state["history"])
    resumed = hpo("resume", str(run), "n_trials=6")
    assert resumed.returncode == 0 and "replaying" not in resumed.output, resumed.output
    assert hpo("run", *args, "n_trials=6").returncode == 0
    straight = run_dirs(tmp_path)[1]
    assert [t["value"] for t in read_trials(run)] == [t["value"] for t in read_trials(straight)]
    assert [t["params"] for t in read_trials(run)] == [t["params"] for t in read_trials(straight)]


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow  # in make test-slow: make test stays near its 10-minute budget
def test_the_readme_bilevel_example_runs_every_gradient_method(hpo: Hpo, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(EXAMPLES, tmp_path / "project")
    project = tmp_path / "project"
    args = ["task=bilevel", "task.build=my_bilevel.build", "space=my_bilevel", "n_trials=8"]
    res = hpo("run", *args, "strategy=hoag", cwd=project)  # the README's command line
    assert res.returncode == 0, res.output
    summary = read_summary(run_dirs(tmp_path)[0])
    assert summary["strategy"] == "hoag" and summary["n_complete"] == 8
    with pytest.MonkeyPatch.context() as mp:  # the other methods in-process, same project
        mp.chdir(project)
        mp.syspath_prepend(str(project))
        for strategy in ("rmad", "forward", "drmad", "greedy", "rtho"):
            records = run_in_memory([*args, f"strategy={strategy}"])
            assert all(r.state == "complete" for r in records), strategy
            assert min(r.value for r in records if r.value is not None) < 1.0, strategy
    check = hpo(
        "gradcheck",
        "task=bilevel",
        "task.build=my_bilevel.build",
        "space=my_bilevel",
        "method=reverse",
        cwd=project,
    )
    assert check.returncode == 0 and check.stdout.strip().splitlines()[-1].startswith("PASS")
    assert hpo("run", "task=bilevel", "space=my_bilevel", cwd=project).stderr.startswith("hpo: error: task.build=None")


def test_differentiable_ridge_agrees_with_scikit_learn() -> None:
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_squared_error

    from hpo_cli.tasks.linear import RidgeTask
    from hpo_cli.tasks.ridge import DifferentiableRidgeTask

    task, sklearn_task = DifferentiableRidgeTask(seed=1), RidgeTask(seed=1)
    d = task.data
    h = 1.3
    fitted = Ridge(alpha=np.exp(h)).fit(d.X_train, d.y_train)
    sklearn_mse = mean_squared_error(d.y_val, fitted.predict(d.X_val))
    assert sklearn_task.evaluate({"alpha": float(np.exp(h))}).value == sklearn_mse
    assert task.evaluate({"log_precision": h}).value == pytest.approx(sklearn_mse, rel=1e-8)
    request = HypergradRequest("implicit", tol=1e-12)
    implicit = task.evaluate({"log_precision": h}, None, request)

    assert implicit.value == pytest.approx(sklearn_mse, rel=1e-8)
    per_feature = task.evaluate({"log_precision": [h] * 10}, None, HypergradRequest("reverse"))
    assert len(per_feature.gradient or []) == 10


def test_inner_training_options_and_their_defaults() -> None:
    from hpo_cli.errors import ConfigError
    from hpo_cli.tasks.ridge import DifferentiableRidgeTask

    assert (
        PolynomialTask().optimizer.lr == 0.01
        and SoftmaxTask().optimizer.lr == 0.5
        and DifferentiableRidgeTask().optimizer.lr == 0.1
    )
    task = PolynomialTask(inner_steps=7, inner_momentum=0.5, convention="maclaurin", batch_size=5)
    assert (task.inner_steps, task.optimizer.momentum, task.optimizer.convention, task.batch_size) == (
        7,
        0.5,
        "maclaurin",
        5,
    )
    with pytest.raises(ConfigError, match=r"task\.inner_stepz=3: not an option of task polynomial"):
        PolynomialTask(inner_stepz=3)
    with pytest.raises(ConfigError, match=r"task\.inner_momentum=1\.0: must be in \[0, 1\)"):
        SoftmaxTask(inner_momentum=1.0)


def test_l1_budget_as_a_percentage_of_the_parameter_size() -> None:
    from hpo_cli.errors import ConfigError
    from hpo_cli.strategies.gradient import GradientStrategy

    space = make_space({"w": {"type": "float", "low": 0.0, "high": 1.0, "size": "n"}}, n=40)
    strategy = GradientStrategy(space, 0, 5, l1_budget={"w": "25%"}, init="high")
    assert strategy.budgets == {"w": 10.0}
    assert sum(strategy.ask(1)[0].params["w"]) == pytest.approx(10.0)
    for bad in ("a%", "-5%", "0%"):
        with pytest.raises(ConfigError, match=r"strategy\.l1_budget\.w"):
            GradientStrategy(space, 0, 5, l1_budget={"w": bad})


def test_an_exactly_zero_hypergradient_ends_the_run() -> None:
    from hpo_cli.strategies.gradient import GradientStrategy

    space = make_space({"x": {"type": "float", "low": -1.0, "high": 1.0, "size": "n"}}, n=3)
    strategy = GradientStrategy(space, 0, 50)
    (s,) = strategy.ask(1)
    strategy.tell([Observation(s, TrialState.COMPLETE, 1.0, gradient=(0.0, 0.0, 0.0))])
    assert strategy.is_finished() and strategy.ask(1) == []
    assert "hypergradient is exactly zero" in strategy.finish_message
