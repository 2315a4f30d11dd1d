"""The IDX reader and the MNIST folder layouts, on small files the tests write."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import Result

from hpo_cli.tasks.data.idx import IdxError, read_idx, write_idx
from hpo_cli.tasks.data.mnist import FILES, load_mnist
from hpo_cli.tasks.mlp import MnistTask


def fake_mnist(folder: Path, n_train: int = 60, n_test: int = 20, gz: bool = True) -> None:
    """Four IDX files: a class-dependent bright pixel on a noisy background, so it is learnable."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 30, (n, 28, 28)).astype(np.uint8)
        images[np.arange(n), 2 * labels + 3, 5:20] = 255
        suffix = ".gz" if gz else ""
        write_idx(folder / (FILES[f"{part}_images"] + suffix), images)
        write_idx(folder / (FILES[f"{part}_labels"] + suffix), labels)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip_gzipped_and_plain(tmp_path: Path, gz: bool) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, array)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if gz else b"\x00\x00")
    np.testing.assert_array_equal(read_idx(path), array)


def test_truncated_and_corrupt_files_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((5, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(IdxError, match=rf"{path}: truncated or padded: 3820 data bytes, expected 3920"):
        read_idx(path)
    path.write_bytes(b"GARBAGE!")
    with pytest.raises(IdxError, match=rf"{path}: not an IDX file"):
        read_idx(path)
    gz = tmp_path / "x.gz"
    gz.write_bytes(b"\x1f\x8b\x08\x00broken")
    with pytest.raises(IdxError, match=rf"{gz}: cannot be read"):
        read_idx(gz)


@pytest.mark.parametrize("layout", ["MNIST/raw", "."])
def test_both_folder_layouts_are_found(tmp_path: Path, layout: str) -> None:
    fake_mnist(tmp_path / layout, gz=layout == ".")
    data = load_mnist(tmp_path)
    assert data.X.shape == (60, 784) and data.X_test is not None and data.X_test.shape == (20, 784)
    assert data.X.min() >= 0.0 and data.X.max() == 1.0 and data.y.dtype == np.int64


def test_the_bundled_subset_is_used_without_a_folder() -> None:
    data = load_mnist(None)
    assert data.X.shape == (5000, 784) and data.X_test is None and set(data.y.tolist()) == set(range(10))
    assert "bundled 5,000-image MNIST subset" in data.source


def test_mnist_task_trains_on_the_users_files_with_their_test_set(tmp_path: Path) -> None:
    fake_mnist(tmp_path / "MNIST" / "raw", n_train=300, n_test=100)
    task = MnistTask(data_dir=str(tmp_path), seed=0, val_fraction=0.2)
    train, val, test = task.splits()
    assert (len(train.y), len(val.y), len(test.y)) == (240, 60, 100)
    ev = task.evaluate({"lr": 0.01}, budget=5)
    assert ev.metrics["test_accuracy"] > 0.9  # the planted pattern is easy


def test_a_missing_file_is_one_error_line(hpo: Callable[..., Result], tmp_path: Path) -> None:
    fake_mnist(tmp_path / "data")
    (tmp_path / "data" / (FILES["test_labels"] + ".gz")).unlink()
    res = hpo("run", "task=mnist", f"task.data_dir={tmp_path / 'data'}", "strategy=random", "n_trials=2")
    assert res.returncode == 2, res.output
    assert res.stderr.startswith(
        f"hpo: error: task.data_dir='{tmp_path / 'data'}': {tmp_path / 'data' / FILES['test_labels']}: no such file"
    )
