"""CUDA paths; they run where a GPU is present (`pytest -m gpu`) and are skipped elsewhere."""

from __future__ import annotations

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
        extra = {"inner_tol": 1e-10} if method == "implicit" else {}
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
    for device in ("cpu", "cuda"):
        task = DigitsTask(
            seed=0, hidden=32, activation="tanh", dtype="float64", inner_steps=20, convention="maclaurin", device=device
        )
        layout = task.layout_of(params)
        problem, h = task.problem(layout), task.hyper_vector(layout, params)
        assert problem.theta0.device.type == device and problem.tensors.index.device.type == device
        extra = {"inner_tol": 1e-10} if method == "implicit" else {}
        grads.append(compute(method, problem, h, **extra).grad.cpu())
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
