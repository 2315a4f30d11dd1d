"""Gradient-based HPO on the MLP: hypergradients by value (float64, a small tanh MLP on digits),
the hyperparameter kinds and their granularities, HOAG on a non-convex inner problem, default
spaces, and a gradient result re-evaluated as a black box."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from conftest import Hpo, read_summary, read_trials, run_dirs

from hpo_cli.build import compose_config, compose_study
from hpo_cli.errors import ConfigError
from hpo_cli.hypergrad import compute
from hpo_cli.hypergrad.check import finite_difference, relative_error
from hpo_cli.hypergrad.implicit import conjugate_gradient, implicit, solve_inner
from hpo_cli.hypergrad.problem import BilevelProblem, ParameterTensors, outer_gradients
from hpo_cli.request import HypergradRequest
from hpo_cli.tasks.mlp import DigitsTask
from hpo_cli.tasks.mlp_training import BilevelTraining, BlackBoxTraining

F64 = torch.float64
STEPS_TO_CONVERGE = 400


def small_task(**overrides: Any) -> DigitsTask:
    """A 64-8-10 tanh MLP on digits in float64 (610 parameters, 4 tensors)."""
    options: dict[str, Any] = {
        "seed": 0,
        "hidden": 8,
        "activation": "tanh",
        "dtype": "float64",
        "inner_steps": 12,
        "batch_size": 64,
        "inner_lr": 0.3,
        "inner_momentum": 0.5,
        "convention": "maclaurin",
        "lr_stages": 2,
        "param_noise": [],
        "training": "bilevel",
        **overrides,
    }
    return DigitsTask(**options)


def problem_of(task: DigitsTask, params: dict[str, Any]) -> tuple[BilevelProblem, torch.Tensor]:
    layout = task.layout_of(params)
    return task.problem(layout), task.hyper_vector(layout, params)


def kind_params(kind: str, task: DigitsTask) -> dict[str, Any]:
    dims = task.dimensions()
    rng = np.random.default_rng(1)
    per_tensor = [float(x) for x in rng.uniform(0.0, 3.0, dims["n_tensors"])]
    return {
        "shared_precision": {"log_precision": 1.5},
        "per_layer_precision": {"log_precision": per_tensor},
        "per_param_precision": {"log_precision": [float(x) for x in rng.uniform(0.0, 3.0, dims["n_params"])]},
        "log_lr": {"log_lr": math.log(0.3), "log_precision": per_tensor},
        "log_lr_schedule": {"log_lr": [float(x) for x in rng.uniform(-2.0, -0.5, dims["n_schedule"])]},
        "momentum": {"momentum": 0.6, "log_precision": 1.0},
    }[kind]


KIND_NAMES = [
    "shared_precision",
    "per_layer_precision",
    "per_param_precision",
    "log_lr",
    "log_lr_schedule",
    "momentum",
]


def directional_errors(problem: BilevelProblem, h: torch.Tensor, grad: torch.Tensor, n: int = 2) -> list[float]:
    """|gᵀd − FD_d| / |FD_d| along n random unit directions (central differences, eps 1e-5)."""
    gen = torch.Generator().manual_seed(7)
    errors = []
    for _ in range(n):
        d = torch.randn(h.numel(), generator=gen, dtype=F64)
        d /= torch.linalg.vector_norm(d)
        eps = 1e-5
        fd = (float(problem.objective(h + eps * d)) - float(problem.objective(h - eps * d))) / (2 * eps)
        errors.append(abs(float(grad @ d) - fd) / max(abs(fd), 1e-12))
    return errors


@pytest.mark.parametrize("kind", KIND_NAMES)
@pytest.mark.parametrize("method", ["reverse", "forward", "rmad_exact"])
def test_mlp_hypergradients_match_finite_differences(method: str, kind: str) -> None:
    task = small_task()
    params = kind_params(kind, task)
    if method == "forward" and kind == "per_param_precision":
        pytest.skip("forward mode over 610 tangents is the reverse test's job (cost ∝ hyperparameters)")
    problem, h = problem_of(task, params)
    result = compute(method, problem, h)
    assert result.value == pytest.approx(float(problem.objective(h)), rel=1e-10)
    tolerance = 1e-4 if kind in ("log_lr", "log_lr_schedule", "momentum") else 1e-6
    assert max(directional_errors(problem, h, result.grad)) <= tolerance


@pytest.mark.parametrize("kind", ["per_layer_precision", "log_lr_schedule", "momentum"])
def test_reverse_forward_and_rmad_exact_agree_to_round_off_on_the_mlp(kind: str) -> None:
    task = small_task()
    problem, h = problem_of(task, kind_params(kind, task))
    grads = {m: compute(m, problem, h).grad for m in ("reverse", "forward", "rmad_exact")}
    assert relative_error(grads["forward"], grads["reverse"]) <= 1e-10
    assert relative_error(grads["rmad_exact"], grads["reverse"]) <= 1e-10


def test_implicit_matches_reverse_run_to_convergence_where_the_prior_makes_it_strongly_convex() -> None:
    # full batch, many steps: θ_T is the inner optimum; a large precision makes L strongly convex
    task = small_task(
        inner_steps=STEPS_TO_CONVERGE, batch_size=5000, inner_lr=1.0, inner_momentum=0.9, convention="torch"
    )
    params = {"log_precision": [7.0, 6.5, 7.0, 6.5]}
    problem, h = problem_of(task, params)
    unrolled = compute("reverse", problem, h)
    at_optimum = compute("implicit", problem, h, tol=1e-12, curvature="hessian")
    assert relative_error(at_optimum.extras["theta"], unrolled.extras["theta"]) <= 1e-6
    assert at_optimum.extras["cg_damping"] == 0.0
    assert relative_error(at_optimum.grad, unrolled.grad) <= 1e-5


def test_implicit_off_a_minimum_damps_the_indefinite_hessian_and_says_so() -> None:
    task = small_task()
    problem, h = problem_of(task, {"log_precision": [-6.0] * 4})
    theta = problem.theta0 + 2.0 * torch.randn(
        problem.theta0.numel(), generator=torch.Generator().manual_seed(0), dtype=F64
    )
    hessian = torch.func.jacrev(torch.func.grad(problem.full_inner_loss))(theta, h)
    assert float(torch.linalg.eigvalsh(hessian).min()) < 0  # indefinite: plain CG cannot solve it
    result = implicit(problem, h, theta, cg_rtol=1e-10)
    damping = result.extras["cg_damping"]
    assert damping > 0
    _, d_theta, d_h = outer_gradients(problem, theta, h)
    damped_alone = conjugate_gradient(lambda w: hessian @ w + damping * w, d_theta, rtol=1e-10)
    # the products of the abandoned undamped attempt are counted too (here 5 of 22)
    assert result.extras["cg_iterations"] > damped_alone.iterations + 1
    # the same hypergradient with (H + λI) solved densely
    q = torch.linalg.solve(hessian + damping * torch.eye(len(theta), dtype=F64), d_theta)
    mixed = torch.func.grad(lambda hh: torch.func.grad(problem.full_inner_loss)(theta, hh) @ q)(h)
    assert relative_error(result.grad, d_h - mixed) <= 1e-6


def test_parameter_tensors_expand_every_granularity() -> None:
    tensors = ParameterTensors([3, 2], stages=2)
    assert tensors.per_parameter(torch.tensor([1.0])).shape == ()
    assert tensors.per_parameter(torch.tensor([1.0, 2.0])).tolist() == [1, 1, 1, 2, 2]
    assert tensors.per_parameter(torch.arange(5.0)).tolist() == [0, 1, 2, 3, 4]
    schedule = torch.tensor([1.0, 2.0, 3.0, 4.0])  # (stage, tensor)
    assert tensors.at_step(schedule, 0, 10).tolist() == [1, 1, 1, 2, 2]
    assert tensors.at_step(schedule, 4, 10).tolist() == [1, 1, 1, 2, 2]
    assert tensors.at_step(schedule, 5, 10).tolist() == [3, 3, 3, 4, 4]
    assert tensors.at_step(schedule, 9, 10).tolist() == [3, 3, 3, 4, 4]


def test_dimensions_and_bad_lengths_name_the_allowed_granularities() -> None:
    task = small_task()
    assert task.dimensions() == {"n_params": 610, "n_train": 1079, "n_tensors": 4, "n_schedule": 8}
    with pytest.raises(ConfigError, match=r"log_lr has 7 values; this model takes 1 \(shared\), 4 \(per tensor\)"):
        task.layout_of({"log_lr": [0.0] * 7})
    with pytest.raises(ConfigError, match=r"momentum has 4 values"):
        task.layout_of({"momentum": [0.5] * 4})


def test_each_training_refuses_the_other_s_parameters_naming_task_training() -> None:
    with pytest.raises(
        ConfigError, match=r"space\.params\.log_lr='log_lr': belongs to the inner SGD.*task\.training=bilevel"
    ):
        small_task(training="blackbox").check_space(["log_lr", "optimizer"])
    with pytest.raises(ConfigError, match=r"space\.params\.optimizer='optimizer': .*task\.training=blackbox"):
        small_task().check_space(["log_lr", "optimizer"])
    with pytest.raises(ConfigError, match=r"task\.training='blackbox': gradient strategies"):
        small_task(training="blackbox").check_hypergradient(HypergradRequest.of("reverse", {}), ["log_precision"])
    with pytest.raises(ConfigError, match=r"task\.training='auto': must be one of blackbox, bilevel"):
        small_task(training="auto")


def test_the_training_is_the_config_s_not_the_parameter_names() -> None:
    """One log prior precision means weight decay under torch.optim (blackbox) and the inner
    SGD's prior (bilevel): conf/task_space/ picks bilevel for space=mnist_shared; the same space
    with task.training=blackbox is the black-box training, whose value is the accuracy."""
    bilevel = compose_study(["strategy=random", "task=digits", "space=mnist_shared"])
    assert isinstance(bilevel.task, DigitsTask) and isinstance(bilevel.task.trainer, BilevelTraining)
    assert (bilevel.metric, bilevel.direction) == ("val_loss", "minimize")
    blackbox = compose_study(["strategy=random", "task=digits", "space=mnist_shared", "task.training=blackbox"])
    assert isinstance(blackbox.task, DigitsTask) and isinstance(blackbox.task.trainer, BlackBoxTraining)
    assert (blackbox.metric, blackbox.direction) == ("val_accuracy", "maximize")
    for strategy in ("rmad", "hoag"):
        for task in ("digits", "mnist"):
            assert compose_config([f"strategy={strategy}", f"task={task}"]).task.training == "bilevel"
    assert compose_config(["strategy=random", "task=mnist"]).task.training == "blackbox"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["strategy=rmad", "task=digits", "space=mnist_shared", "task.training=blackbox"],
            "hpo: error: task.training='blackbox': gradient strategies",
        ),
        (["task=digits", "space=mnist_per_layer_lr", "task.training=blackbox"], "hpo: error: space.params.log_lr="),
        (["task=digits", "task.training=auto"], "hpo: error: task.training='auto': must be one of blackbox, bilevel"),
    ],
)
def test_a_space_that_does_not_fit_the_training_is_one_line(hpo_refusal: Hpo, args: list[str], line: str) -> None:
    res = hpo_refusal("run", *args)
    assert res.returncode == 2, res.output
    (only,) = res.stderr.strip().splitlines()
    assert only.startswith(line) and "Traceback" not in res.output, only


def test_parameter_noise_robustness_is_seeded_and_degrades_with_sigma() -> None:
    task = small_task(param_noise=[0.0, 0.5, 2.0], inner_steps=40)
    a = task.evaluate({"log_precision": [1.0] * 4}).metrics
    assert a == task.evaluate({"log_precision": [1.0] * 4}).metrics
    assert a["test_accuracy_pnoise_0"] == a["test_accuracy"]
    assert a["test_loss_pnoise_0.5"] > a["test_loss"]
    assert a["test_accuracy_pnoise_2"] < a["test_accuracy_pnoise_0.5"]


def test_polynomial_reports_rmse_under_parameter_noise() -> None:
    study = compose_study(["task=polynomial", "strategy=random", "task.param_noise=[0.25,0.5]"])
    metrics = study.task.evaluate({"log_precision": 4.0}).metrics
    assert metrics["test_rmse"] < metrics["test_rmse_pnoise_0.25"] < metrics["test_rmse_pnoise_0.5"]


@pytest.mark.parametrize("strategy", ["hoag", "rmad", "drmad", "greedy", "rtho", "forward"])
def test_gradient_strategies_default_spaces_on_the_mlps(strategy: str) -> None:
    """HOAG: per-layer precisions at the inner optimum (learning rates do not move it); the unrolled methods:
    a learning rate per tensor per stage and per-layer precisions over the untuned default's
    training length on mnist (the defaults of the README's "Defaults that pay off")."""
    precisions = {"type": "float", "low": -5.0, "high": 9.0, "size": "n_tensors"}
    for task in ("mnist", "digits"):
        cfg = compose_config([f"strategy={strategy}", f"task={task}"])
        if strategy == "hoag":
            assert dict(cfg.space.params) == {"log_precision": precisions}
        else:
            assert dict(cfg.space.params) == {
                "log_lr": {"type": "float", "low": -5.0, "high": 0.4, "size": "n_schedule"},
                "log_precision": precisions,
            }
            assert cfg.task.lr_stages == 4 and cfg.strategy.lr == 0.3
    mnist = compose_config([f"strategy={strategy}", "task=mnist"])
    assert (mnist.n_trials, mnist.task.inner_steps) == ((20, 100) if strategy == "hoag" else (25, 240))
    assert mnist.task.inner == ("optimum" if strategy == "hoag" else "train")  # HOAG's θ*(h), for every arm
    named = compose_config([f"strategy={strategy}", "task=digits", "space=mnist_lr_schedule"])
    assert set(named.space.params) == {"log_lr", "log_precision"} and named.task.lr_stages == 4
    assert "optimizer" in compose_config(["strategy=random", "task=mnist"]).space.params
    assert compose_config([f"strategy={strategy}", "task=mnist", "n_trials=7"]).n_trials == 7
    assert compose_config(["strategy=random", "task=mnist"]).n_trials == 128


def test_the_objective_of_a_differentiable_space_is_the_validation_loss() -> None:
    gradient = compose_study(["strategy=random", "task=digits", "space=mnist_per_layer"])
    assert (gradient.metric, gradient.direction) == ("val_loss", "minimize")
    blackbox = compose_study(["strategy=random", "task=digits"])
    assert (blackbox.metric, blackbox.direction) == ("val_accuracy", "maximize")


def test_forward_modes_refuse_a_per_parameter_space_naming_the_count(hpo: Hpo) -> None:
    for strategy in ("forward", "rtho"):
        res = hpo("run", f"strategy={strategy}", "task=digits", "space=mnist_per_param")
        assert res.returncode == 2, res.output
        assert "strategy.method" in res.output and "19,210" in res.output and "Traceback" not in res.output


def test_a_gradient_strategy_on_a_task_without_a_gradient_space_is_one_line(hpo: Hpo) -> None:
    res = hpo("run", "strategy=hoag", "task=branin")
    assert res.returncode == 2 and "task='branin': has no default space for gradient strategies" in res.output


@pytest.mark.slow  # in make test-slow: make test stays near its 10-minute budget
def test_a_gradient_result_re_evaluated_by_strategy_fixed_gives_the_same_value(hpo: Hpo, tmp_path: Path) -> None:
    common = ["task=digits", "task.hidden=16", "task.inner_steps=30", "task.param_noise=[0.01]"]
    # a space without task settings of its own (tests/test_best_model.py re-evaluates the default
    # space, whose four lr stages conf/task_space/ sets)
    res = hpo("run", "strategy=rmad", "n_trials=4", "space=mnist_per_layer", *common)
    assert res.returncode == 0, res.output
    run = run_dirs(tmp_path)[0]
    best = read_summary(run)["best"]
    row = next(r for r in read_trials(run) if r["trial"] == best["trial"])
    assert row["cost"]["held_bytes"] > 0 and row["metrics"]["hypergradient_seconds"] > 0
    assert "test_accuracy_pnoise_0.01" in row["metrics"]
    params = yaml.safe_load((run / "best.yaml").read_text())
    assert params["log_precision"] == row["params"]["log_precision"]
    header = (run / "best.yaml").read_text().splitlines()[2]
    assert "space=mnist_per_layer" in header
    # the issue's command: no space named; the space of the run that wrote best.yaml is used
    res = hpo("run", "strategy=fixed", f"strategy.params_file={run / 'best.yaml'}", "n_trials=1", *common)
    assert res.returncode == 0, res.output
    fixed = read_trials(run_dirs(tmp_path)[1])[0]
    assert fixed["value"] == row["value"]
    assert fixed["metrics"]["test_accuracy"] == row["metrics"]["test_accuracy"]
    assert read_summary(run_dirs(tmp_path)[1])["metric"] == "val_loss"
    elsewhere = tmp_path / "best.yaml"  # outside its run directory: the space must be named
    elsewhere.write_text((run / "best.yaml").read_text())
    refused = hpo("run", "strategy=fixed", f"strategy.params_file={elsewhere}", *common)
    assert refused.returncode == 2 and "name the space they come from with space=NAME" in refused.output


def test_gradcheck_on_a_small_mlp(hpo: Hpo) -> None:
    res = hpo(
        "gradcheck",
        "task=digits",
        "space=mnist_per_layer",
        "method=reverse",
        "task.activation=tanh",
        "task.hidden=16",
        "task.inner_steps=30",
    )
    assert res.returncode == 0 and "PASS" in res.output, res.output


def test_the_graph_tape_equals_the_recomputing_tape_and_auto_picks_by_memory() -> None:
    from hpo_cli.hypergrad.unrolled import graph_bytes_per_step, reverse, reverse_auto, reverse_graph

    task = small_task()
    problem, h = problem_of(task, kind_params("log_lr_schedule", task))
    recompute, graph = reverse(problem, h), reverse_graph(problem, h)
    assert relative_error(graph.grad, recompute.grad) <= 1e-12
    assert graph.cost.peak_bytes > recompute.cost.peak_bytes > 0
    per_step = graph_bytes_per_step(problem, h)
    assert per_step > 0
    fits = problem.n_steps * per_step / 2**20
    assert reverse_auto(problem, h, memory_mb=2 * fits).extras["graph_tape"] == 1.0
    assert reverse_auto(problem, h, memory_mb=fits / 2).extras["graph_tape"] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["run", "strategy=hoag", "task=mnist", "n_trials=5"],  # the default space (its budget: composed above)
        ["run", "strategy=rmad", "task=mnist", "space=mnist_per_layer", "task.inner_steps=300", "n_trials=3"],
        ["run", "strategy=drmad", "task=mnist", "n_trials=3"],
        ["run", "strategy=greedy", "task=mnist", "n_trials=5"],
        ["run", "strategy=rtho", "task=digits", "n_trials=5"],
        ["run", "strategy=forward", "task=digits", "n_trials=3"],
        ["run", "strategy=hoag", "task=mnist", "space=mnist_per_param", "n_trials=3"],
        ["run", "strategy=rmad", "task=mnist", "space=mnist_lr_schedule", "n_trials=3"],
        ["gradcheck", "task=digits", "space=mnist_per_layer", "method=reverse"],
    ],
    ids=lambda a: " ".join(a[1:4]),
)
def test_the_issue_commands_work(hpo: Hpo, tmp_path: Path, args: list[str]) -> None:
    res = hpo(*args, timeout=900)
    assert res.returncode == 0, res.output
    if args[0] == "gradcheck":
        assert "PASS" in res.output and "eps=1e-07" in res.output
        return
    summary = read_summary(run_dirs(tmp_path)[0])
    assert summary["status"] == "finished" and summary["n_failed"] == 0 and summary["metric"] == "val_loss"
    assert summary["best"]["metrics"]["test_accuracy"] > 0.8


@pytest.mark.slow  # ~20 s: a converged inner solve and a dense Hessian of 1,210 parameters
def test_implicit_on_bench_peers_mlp_matches_a_dense_solve_once_cg_may_converge() -> None:
    """bench-peers' MLP (64-16-10 tanh on digits, per-layer precisions, float64): at θ* solved
    to ‖∇θL‖∞ ≤ 1e-12 the Hessian is positive definite with condition number ~1.1e4, and CG
    needs ~350 products for relative residual 1e-10. The task caps implicit's CG at inner_steps
    (50) products: relative residual ~1e-2, a hypergradient 5.8e-3 off the dense solve (the
    disagreement with torchopt's CG, which runs up to 10·p products), now flagged by
    cg_converged = 0. Uncapped, it matches the dense solve to ~5e-11 (torchopt: 4.7e-11)."""
    mlp = ["task=digits", "space=digits_gradient", "task.activation=tanh", "task.hidden=16", "task.inner_steps=50"]
    study = compose_study(["strategy=rmad", "dtype=float64", *mlp])
    task = study.task
    params = study.space.decode(np.full(study.space.dim, 0.4))
    problem, h = problem_of(task, params)  # type: ignore[arg-type]
    converged = dataclasses.replace(problem, solve_iterations=20_000)
    theta = solve_inner(converged, h, problem.theta0, tol=1e-12).theta
    hessian = torch.func.jacrev(torch.func.grad(problem.full_inner_loss))(theta, h)
    assert float(torch.linalg.eigvalsh(hessian).min()) > 0
    _, d_theta, d_h = outer_gradients(problem, theta, h)
    q = torch.linalg.solve(hessian, d_theta)
    dense = d_h - torch.func.grad(lambda hh: torch.func.grad(problem.full_inner_loss)(theta, hh) @ q)(h)
    capped = implicit(problem, h, theta, cg_rtol=1e-10)
    assert capped.extras["cg_iterations"] <= 51 and capped.extras["cg_converged"] == 0.0
    assert relative_error(capped.grad, dense) > 1e-3
    full = implicit(converged, h, theta, cg_rtol=1e-10)
    assert full.extras["cg_converged"] == 1.0 and full.extras["cg_damping"] == 0.0
    assert relative_error(full.grad, dense) <= 1e-8


@pytest.mark.slow  # ~2 min: converged inner solves of a network
def test_implicit_on_an_mlp_matches_finite_differences_of_converged_solves_and_the_ggn_is_biased() -> None:
    """A 64-16-10 tanh MLP on digits in float64, per-layer precisions: at θ* solved to
    ‖∇θL‖∞ ≤ 1e-12, the Hessian's implicit hypergradient matches central differences of Q at
    solves warm-started from θ* (measured 1.1e-6); the Gauss-Newton matrix drops the network's own
    curvature and is off by ~11 %, which is why curvature=auto keeps the Hessian where it is
    positive definite."""
    study = compose_study(["strategy=hoag", "task=digits", "space=digits_implicit"])  # its space only
    task = small_task(hidden=16, convention="torch", lr_stages=1, inner_steps=100, batch_size=128)
    params = study.space.decode(np.full(study.space.dim, 0.4))
    problem, h = problem_of(task, params)
    problem = dataclasses.replace(problem, solve_iterations=20_000)
    theta = solve_inner(problem, h, problem.theta0, tol=1e-12).theta
    reference = finite_difference(
        lambda x: float(problem.outer(solve_inner(problem, x, theta, tol=1e-12).theta, x)), h, eps=1e-5
    )
    hessian = implicit(problem, h, theta, cg_rtol=1e-10, curvature="hessian")
    ggn = implicit(problem, h, theta, cg_rtol=1e-10, curvature="ggn")
    assert relative_error(hessian.grad, reference) <= 1e-4
    assert relative_error(ggn.grad, reference) > 1e-2 and ggn.extras["cg_damping"] == 0.0
