"""One wiring path: every entry point builds its study through ``hpo_cli.build.build_study``."""

from __future__ import annotations

import pytest
import torch
from conftest import Hpo

from hpo_cli.build import compose_study
from hpo_cli.errors import ConfigError
from hpo_cli.runner import run_in_memory

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where no GPU is present")


def test_a_study_holds_its_parts_and_the_resolved_device() -> None:
    study = compose_study(["task=ridge", "strategy=random", "n_trials=3", "device=auto"])
    assert study.settings.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert study.direction == study.task.direction == "minimize"
    assert study.space.names == ["alpha"] and study.budget.n_trials == 3


@NO_CUDA
def test_device_cuda_without_a_gpu_is_the_same_one_line_error_in_the_python_api() -> None:
    with pytest.raises(ConfigError, match=r"device='cuda': no CUDA device is available here"):
        run_in_memory(["task=polynomial", "space=polynomial_per_coef", "strategy=hoag", "n_trials=2", "device=cuda"])


@NO_CUDA
@pytest.mark.parametrize(
    "args",
    [
        ["gradcheck", "task=polynomial", "space=polynomial_shared", "device=cuda"],
        ["run", "task=polynomial", "space=polynomial_shared", "strategy=hoag", "n_trials=2", "device=cuda"],
    ],
    ids=["gradcheck", "run"],
)
def test_device_cuda_without_a_gpu_is_one_line_in_every_command(hpo: Hpo, args: list[str]) -> None:
    res = hpo(*args)
    assert res.returncode == 2, res.output
    assert res.stderr.strip() == (
        "hpo: error: device='cuda': no CUDA device is available here; use device=cpu or device=auto"
    )


def test_device_auto_runs_gradcheck_where_it_ran_on_the_cpu_before(hpo: Hpo) -> None:
    res = hpo("gradcheck", "task=polynomial", "space=polynomial_shared", "device=auto")
    assert res.returncode == 0 and "PASS" in res.stdout, res.output
