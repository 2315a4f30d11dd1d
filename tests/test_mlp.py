"""The MLP tasks: determinism, checkpoints, optimizer families, robustness metric, errors."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


CONFIG = {"optimizer": "momentum", "lr": 0.05, "momentum": 0.9, "dropout": 0.1, "hidden": 16}


def attached(folder: Path, **options: Any) -> DigitsTask:
    """A task as a worker builds it for a run whose checkpoints are in ``folder``."""
    task = DigitsTask(seed=0, **options)
    task.attach(folder)
    return task


def test_a_checkpoint_file_is_continued_by_another_worker_exactly(tmp_path: Path) -> None:
    """Worker A trains 2 epochs and writes the file (atomically: no temporary file is left);
    worker B, another task object, continues it to 6: 4 epochs, and the numbers of 6 from θ0."""
    attached(tmp_path).evaluate(CONFIG, 2)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"
    continued = attached(tmp_path).evaluate(CONFIG, 6)
    assert continued.cost["epochs"] == 4
    fresh = DigitsTask(seed=0, reuse_checkpoints=False).evaluate(CONFIG, 6)
    assert continued.metrics == fresh.metrics and fresh.cost["epochs"] == 6
    assert [p.name for p in tmp_path.iterdir()] == [files[0].name]


@pytest.mark.parametrize("damage", ["truncated", "flipped", "another-configuration", "empty"])
def test_a_damaged_checkpoint_is_refused_with_a_warning_and_training_starts_over(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    task = attached(tmp_path)
    task.evaluate(CONFIG, 2)
    (path,) = tmp_path.iterdir()
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flipped":
        path.write_bytes(raw[:-20] + bytes([raw[-20] ^ 0xFF]) + raw[-19:])
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # another configuration's intact file under this one's name
        other = {**CONFIG, "lr": 0.01}
        task.evaluate(other, 2)
        (other_path,) = set(tmp_path.iterdir()) - {path}
        path.write_bytes(other_path.read_bytes())
    with caplog.at_level("WARNING", logger="hpo_cli"):
        again = attached(tmp_path).evaluate(CONFIG, 6)
    assert again.cost["epochs"] == 6  # from scratch
    assert again.metrics == DigitsTask(seed=0, reuse_checkpoints=False).evaluate(CONFIG, 6).metrics
    assert f"ignoring the checkpoint {path}" in caplog.text


def test_a_checkpoint_ahead_of_the_budget_or_switched_off_is_not_used(tmp_path: Path) -> None:
    attached(tmp_path).evaluate(CONFIG, 4)
    assert attached(tmp_path).evaluate(CONFIG, 2).cost["epochs"] == 2  # 4 epochs cannot become 2
    assert attached(tmp_path, reuse_checkpoints=False).evaluate(CONFIG, 6).cost["epochs"] == 6


def test_released_checkpoints_are_removed_and_the_folder_goes_at_the_end(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    task = attached(folder)
    other = {**CONFIG, "lr": 0.01}
    task.evaluate(CONFIG, 1)
    task.evaluate(other, 1)
    assert len(list(folder.iterdir())) == 2
    task.release({**CONFIG, "epochs": 3})  # the configuration, whatever its epochs
    assert len(list(folder.iterdir())) == 1
    (folder / ".left-by-a-kill.pt.123.tmp").write_bytes(b"half")
    task.release_all()
    assert not folder.exists()
    assert task.evaluate(CONFIG, 1).cost["epochs"] == 1


def test_cross_validation_keeps_one_checkpoint_per_fold_and_releases_them_all(tmp_path: Path) -> None:
    from hpo_cli.tasks.criteria.cv import CrossValidation

    task = attached(tmp_path, criterion=CrossValidation(k=3))
    task.evaluate(CONFIG, 1)
    assert len(list(tmp_path.iterdir())) == 3
    continued = attached(tmp_path, criterion=CrossValidation(k=3)).evaluate(CONFIG, 2)
    assert continued.cost["epochs"] == 3  # one more epoch per fold
    task.release(CONFIG)
    assert not list(tmp_path.iterdir())


def test_the_file_limit_drops_the_least_recently_written(tmp_path: Path) -> None:
    from hpo_cli.tasks.checkpoints import CheckpointFiles

    files = CheckpointFiles(tmp_path, limit=2)
    for i, key in enumerate("abc"):
        files.save(key, {"epochs": i})
        os.utime(files.path(key), ns=(i * 10**9, i * 10**9))  # distinct times on coarse clocks
    assert files.load("a") is None and files.load("b") == {"epochs": 1} and files.load("c") == {"epochs": 2}
