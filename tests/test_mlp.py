"""The MLP tasks: determinism, checkpoints, optimizer families, robustness metric, errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Result, read_summary, run_dirs

from hpo_cli.errors import ConfigError
from hpo_cli.tasks.mlp import OPTIMIZERS, DigitsTask
from hpo_cli.tasks.mlp_training import BlackBoxTraining


def test_same_seed_same_result_and_different_seed_differs() -> None:
    params = {"lr": 0.01, "hidden": 64, "dropout": 0.2}
    a, b = DigitsTask(seed=3).evaluate(params, 3), DigitsTask(seed=3).evaluate(params, 3)
    assert a.metrics == b.metrics
    assert DigitsTask(seed=4).evaluate(params, 3).metrics != a.metrics


def test_continuing_a_checkpoint_equals_training_from_scratch() -> None:
    params = {"optimizer": "momentum", "lr": 0.05, "momentum": 0.9, "dropout": 0.1}
    task = DigitsTask(seed=0)
    task.evaluate(params, 2)
    continued = task.evaluate(params, 6)
    assert continued.cost == {"epochs": 4, "inner_steps": 4 * 9}  # ⌈1079 training images / 128⌉
    fresh = DigitsTask(seed=0, reuse_checkpoints=False).evaluate(params, 6)
    assert continued.metrics == fresh.metrics and fresh.cost["epochs"] == 6


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_family_learns_digits(optimizer: str) -> None:
    lr = {"sgd": 0.5, "momentum": 0.1, "nesterov": 0.1, "adagrad": 0.05, "rmsprop": 0.003, "adam": 0.003}[optimizer]
    ev = DigitsTask(seed=0).evaluate({"optimizer": optimizer, "lr": lr}, 10)
    assert ev.metrics["val_accuracy"] > 0.9, ev.metrics


def test_noise_robustness_metric_and_prior_precision() -> None:
    task = DigitsTask(seed=0, test_noise=0.5)
    ev = task.evaluate({"log_precision": 2.0}, 5)
    assert ev.metrics["test_accuracy_noisy"] < ev.metrics["test_accuracy"]
    n_train = len(task.splits()[0].y)
    assert n_train == 1797 - 2 * 359
    assert BlackBoxTraining(task).hyperparameters({"log_precision": 2.0})["weight_decay"] == pytest.approx(
        7.389056 / n_train, rel=1e-6
    )


def test_bad_hyperparameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"task\.optimizer='lbfgs': must be one of sgd, momentum"):
        DigitsTask(optimizer="lbfgs")
    with pytest.raises(ConfigError, match=r"task\.dropout=1\.0: must be in \[0, 1\)"):
        DigitsTask(dropout=1.0)
    with pytest.raises(ConfigError, match=r"space\.params\.depth='depth': task digits tunes"):
        DigitsTask().check_space(["lr", "depth"])


@pytest.mark.slow
def test_hyperband_on_the_bundled_mnist_reaches_90_percent(hpo: Callable[..., Result], tmp_path: Path) -> None:
    res = hpo("run", "task=mnist", "strategy=hyperband", "strategy.eta=3", "strategy.max_budget=27", timeout=600)
    assert res.returncode == 0, res.output
    summary = read_summary(run_dirs(tmp_path)[0])
    assert summary["best"]["metrics"]["test_accuracy"] >= 0.90
