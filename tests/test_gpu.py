"""CUDA paths; they run where a GPU is present (`pytest -m gpu`) and are skipped elsewhere."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from hpo_cli.hypergrad import compute
from hpo_cli.hypergrad.check import relative_error
from hpo_cli.runner import run_in_memory
from hpo_cli.tasks.softmax import SoftmaxTask

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


@pytest.mark.parametrize("method", ["reverse", "forward", "drmad", "implicit"])
def test_cuda_hypergradients_match_cpu(method: str) -> None:
    params = {"log_precision": [-1.0] * 650}
    grads = []
    for device in ("cpu", "cuda"):
        task = SoftmaxTask(seed=0, inner_steps=20, device=device)
        layout = task.layout_of(params)
        problem, h = task.problem(layout), task.hyper_vector(layout, params)
        extra = {"tol": 1e-10} if method == "implicit" else {}
        grads.append(compute(method, problem, h, **extra).grad.cpu())
    assert relative_error(grads[1], grads[0]) <= 1e-8


def test_a_cuda_run_of_a_gradient_strategy() -> None:
    records = run_in_memory(["task=softmax", "strategy=hoag", "device=cuda", "n_trials=5"])
    assert all(r.state == "complete" for r in records)


@pytest.mark.parametrize("method", ["reverse", "forward", "drmad", "rmad_exact", "implicit"])
def test_cuda_mlp_hypergradients_match_cpu_in_float64(method: str) -> None:
    from hpo_cli.tasks.mlp import DigitsTask

    params = {"log_precision": [1.0, 2.0, 1.5, 2.5]}
    grads = []
    # implicit needs a true inner optimum to be well posed: capped at 20 steps (‖∇L‖∞ 1.5e-3, CG
    # stopped at its cap) the answer follows the L-BFGS path, which rounding moves (CPU against
    # CUDA differed by 1.4e-2 on an H200, torch 2.11; two CPUs by 1e-2). With a cap of 1,000 the
    # solve reaches ‖∇L‖∞ ≈ 3e-15 and CG converges in ~350 products, so both devices must agree
    # to 1e-8 like the unrolled methods.
    steps = 1000 if method == "implicit" else 20
    for device in ("cpu", "cuda"):
        task = DigitsTask(
            seed=0,
            hidden=32,
            activation="tanh",
            dtype="float64",
            inner_steps=steps,
            convention="maclaurin",
            device=device,
        )
        layout = task.layout_of(params)
        problem, h = task.problem(layout), task.hyper_vector(layout, params)
        assert problem.theta0.device.type == device and problem.tensors.index.device.type == device
        extra = {"tol": 1e-10} if method == "implicit" else {}
        result = compute(method, problem, h, **extra)
        if method == "implicit":
            assert result.extras["inner_grad_norm"] <= 1e-10 and result.extras["cg_converged"] == 1.0
        grads.append(result.grad.cpu())
    assert relative_error(grads[1], grads[0]) <= 1e-8


@pytest.mark.parametrize("strategy", ["hoag", "rmad", "drmad", "greedy", "rtho", "forward"])
def test_every_gradient_strategy_runs_on_the_mnist_mlp_on_cuda(strategy: str) -> None:
    records = run_in_memory([f"strategy={strategy}", "task=mnist", "device=cuda", "n_trials=3"])
    assert all(r.state == "complete" for r in records)


def test_cuda_seconds_per_epoch_and_per_hypergradient_are_recorded(capsys: pytest.CaptureFixture[str]) -> None:
    """Not an assertion on speed: prints CPU vs CUDA seconds for the closing note (pytest -s)."""
    import time

    from hpo_cli.tasks.mlp import MnistTask

    for device in ("cpu", "cuda"):
        task = MnistTask(seed=0, device=device)
        started = time.perf_counter()
        task.evaluate({"lr": 1e-3}, 1)
        epoch = time.perf_counter() - started
        params = {"log_precision": [2.0] * 4}
        layout = task.layout_of(params)
        problem, h = task.problem(layout), task.hyper_vector(layout, params)
        result = compute("reverse", problem, h, tape="recompute")
        print(f"{device}: {epoch:.3f} s per epoch, {result.cost.seconds:.3f} s per reverse hypergradient")


def criteria_on_cuda() -> dict[str, Any]:
    from hpo_cli.tasks.criteria.cv import CrossValidation
    from hpo_cli.tasks.criteria.elbo import Elbo
    from hpo_cli.tasks.criteria.evidence import Evidence

    return {
        "cv": CrossValidation(k=3),
        "laplace_full": Evidence(method="laplace"),
        "laplace_diagonal": Evidence(method="laplace", hessian="diagonal"),
        "elbo": Elbo(samples=2, eval_samples=3),
    }


@pytest.mark.parametrize("criterion", ["cv", "laplace_full", "laplace_diagonal", "elbo"])
def test_cuda_criteria_values_and_hypergradients_match_cpu(criterion: str) -> None:
    params = {"log_precision": [0.5, -1.0]}
    results = []
    for device in ("cpu", "cuda"):
        task = SoftmaxTask(
            seed=0, n_train=60, n_val=30, n_test=30, inner_steps=10, device=device,
            criterion=criteria_on_cuda()[criterion],
        )  # fmt: skip
        layout = task.layout_of(params)
        problem, h = task.problem(layout), task.hyper_vector(layout, params)
        assert problem.theta0.device.type == device
        results.append(compute("reverse", problem, h))
    assert results[1].value == pytest.approx(results[0].value, rel=1e-10)
    assert relative_error(results[1].grad.cpu(), results[0].grad.cpu()) <= 1e-8


@pytest.mark.parametrize(
    "overrides",
    [
        ["criterion=cv", "strategy=rmad"],
        ["criterion=elbo", "strategy=rmad"],
        ["criterion=cv", "strategy=random", "task.epochs=2"],
        ["criterion=elbo", "strategy=random", "space=mnist_gradient"],
    ],
    ids=["cv-rmad", "elbo-rmad", "cv-random", "elbo-random"],
)
def test_mnist_under_cv_and_elbo_on_cuda(overrides: list[str]) -> None:
    """Every trial completes on CUDA, except those whose training diverges on the CPU as well
    (elbo-random's first draw has per-step learning rates up to e^0.05: NaN on both devices)."""
    records = run_in_memory(["task=mnist", "device=cuda", "n_trials=3", *overrides])
    failed = [r.trial for r in records if r.state != "complete"]
    assert len(failed) < len(records), [r.error for r in records]
    if failed:
        assert all(r.error == "objective returned nan" for r in records if r.state != "complete")
        on_cpu = run_in_memory(["task=mnist", "device=cpu", "n_trials=3", *overrides])
        assert [r.trial for r in on_cpu if r.state != "complete"] == failed
