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
