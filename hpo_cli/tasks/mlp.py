"""Multilayer perceptrons on MNIST (``task=mnist``) and scikit-learn's 8×8 digits (``task=digits``).

Hyperparameters (each one a task default unless the space tunes it): ``optimizer`` (sgd,
momentum, nesterov, adagrad, rmsprop, adam), ``lr``, ``momentum``, ``weight_decay`` or
``log_precision`` (a Gaussian prior: weight decay exp(h)/n_train), ``batch_size``, ``epochs``,
``hidden`` (units per hidden layer), ``layers``, ``activation``, ``dropout``.

The fidelity is the number of epochs: a multi-fidelity strategy passes it as the budget.
With ``reuse_checkpoints`` a configuration trained before for fewer epochs continues from
its checkpoint (successive halving's promotions) instead of starting again.

The whole data set lives as tensors on the device; the network is a plain function
``forward(weights, x)``, and one training step is a plain function of (weights,
hyperparameters, batch). Everything random (initialization, batch order, dropout) draws from
a generator seeded by the task seed and the configuration, so CPU runs are deterministic.
"""

from __future__ import annotations

import itertools
import json
import math
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hpo_cli.errors import ConfigError
from hpo_cli.hypergrad.request import HypergradRequest
from hpo_cli.tasks.base import Task, split_indices
from hpo_cli.tasks.bilevel_models import torch_device, torch_dtype
from hpo_cli.trial import Evaluation
from hpo_cli.validate import one_of, positive_int

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
}
HYPERPARAMETERS = (
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "log_precision",
    "batch_size",
    "epochs",
    "hidden",
    "layers",
    "activation",
    "dropout",
)
MAX_CHECKPOINTS = 256
Weights = list[Tensor]  # [W1 (d_in, h), b1 (h,), ..., W_out (h, k), b_out (k,)]


def init_weights(sizes: list[int], gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> Weights:
    """Uniform(±1/√fan_in) weights and biases, as torch.nn.Linear does, from ``gen``."""
    weights = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = 1.0 / math.sqrt(fan_in)
        for shape in ((fan_in, fan_out), (fan_out,)):
            w = (torch.rand(shape, generator=gen, dtype=dtype) * 2 - 1) * bound
            weights.append(w.to(device).requires_grad_(True))
    return weights


def forward(
    weights: Weights, x: Tensor, activation: str = "relu", dropout: float = 0.0, gen: torch.Generator | None = None
) -> Tensor:
    """Logits (n, k) for inputs x (n, d); dropout (inverted) only when ``gen`` is given."""
    act = ACTIVATIONS[activation]
    for i in range(0, len(weights) - 2, 2):
        x = act(x @ weights[i] + weights[i + 1])
        if dropout > 0 and gen is not None:
            keep = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device) >= dropout
            x = x * keep / (1 - dropout)
    return x @ weights[-2] + weights[-1]


def make_optimizer(
    name: str, weights: Weights, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    if name in ("sgd", "momentum", "nesterov"):
        mu = 0.0 if name == "sgd" else momentum
        return torch.optim.SGD(weights, lr=lr, momentum=mu, nesterov=name == "nesterov", weight_decay=weight_decay)
    cls = {"adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}[name]
    return cls(weights, lr=lr, weight_decay=weight_decay)


def train_step(
    weights: Weights,
    optimizer: torch.optim.Optimizer,
    hp: Mapping[str, Any],
    x: Tensor,
    y: Tensor,
    gen: torch.Generator,
) -> float:
    """One minibatch step; returns the batch loss."""
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(forward(weights, x, hp["activation"], hp["dropout"], gen), y)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@dataclass
class Checkpoint:
    weights: Weights
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    epochs: int


@dataclass(frozen=True)
class Splits:
    """Tensors on the device: X_* (n, d) float, y_* (n,) int64."""

    X_train: Tensor
    y_train: Tensor
    X_val: Tensor
    y_val: Tensor
    X_test: Tensor
    y_test: Tensor


class MLPTask(Task):
    metric = "val_accuracy"
    direction = "maximize"

    def __init__(
        self,
        seed: int = 0,
        epochs: int = 10,
        min_epochs: int = 1,
        max_epochs: int = 27,
        optimizer: str = "adam",
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        batch_size: int = 128,
        hidden: int = 256,
        layers: int = 1,
        activation: str = "relu",
        dropout: float = 0.0,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        test_noise: float = 0.0,
        reuse_checkpoints: bool = True,
        device: str = "cpu",
        dtype: str = "float32",
    ) -> None:
        self.seed = seed
        self.defaults: dict[str, Any] = {
            "optimizer": optimizer,
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "batch_size": batch_size,
            "epochs": epochs,
            "hidden": hidden,
            "layers": layers,
            "activation": activation,
            "dropout": dropout,
        }
        self._check(self.defaults, "task")
        self.fidelity = (positive_int(min_epochs, "task.min_epochs"), positive_int(max_epochs, "task.max_epochs"))
        self.test_noise, self.reuse = float(test_noise), bool(reuse_checkpoints)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.device, self.dtype = torch_device(device), torch_dtype(dtype)
        self._splits: Splits | None = None
        self._checkpoints: OrderedDict[str, Checkpoint] = OrderedDict()
        self.splits()  # load now: a missing or corrupt file is an error before any trial

    # -- data ----------------------------------------------------------------------------

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(X, y) to split into train/validation[/test], and a fixed test set or None."""
        raise NotImplementedError

    def splits(self) -> Splits:
        if self._splits is None:
            X, y, X_test, y_test = self.arrays()
            test_fraction = 0.0 if X_test is not None else self.test_fraction
            train, val, test = split_indices(len(y), self.seed, self.val_fraction, test_fraction)
            if X_test is None:
                X_test, y_test = X[test], y[test]
            assert y_test is not None

            def t(a: np.ndarray, labels: bool = False) -> Tensor:
                return torch.as_tensor(a, dtype=torch.int64 if labels else self.dtype, device=self.device)

            self._splits = Splits(
                t(X[train]), t(y[train], True), t(X[val]), t(y[val], True), t(X_test), t(y_test, True)
            )
        return self._splits

    # -- evaluation ----------------------------------------------------------------------

    def check_space(self, names: list[str]) -> None:
        unknown = [n for n in names if n not in HYPERPARAMETERS]
        if unknown:
            raise ConfigError(
                f"space.params.{unknown[0]}", unknown[0], f"task {self.name} tunes {', '.join(HYPERPARAMETERS)}"
            )

    def _check(self, hp: Mapping[str, Any], prefix: str) -> None:
        one_of(hp["optimizer"], f"{prefix}.optimizer", OPTIMIZERS)
        one_of(hp["activation"], f"{prefix}.activation", tuple(ACTIVATIONS))
        for key in ("batch_size", "epochs", "hidden", "layers"):
            positive_int(hp[key], f"{prefix}.{key}")
        if not 0.0 <= hp["dropout"] < 1.0:
            raise ConfigError(f"{prefix}.dropout", hp["dropout"], "must be in [0, 1)")

    def hyperparameters(self, params: Mapping[str, Any]) -> dict[str, Any]:
        self.check_space(list(params))
        hp = {**self.defaults, **params}
        if "log_precision" in params:
            hp["weight_decay"] = math.exp(params["log_precision"]) / len(self.splits().y_train)
        return hp

    def evaluate(
        self, params: Mapping[str, Any], budget: float | None = None, request: HypergradRequest | None = None
    ) -> Evaluation:
        hp = self.hyperparameters(params)
        epochs = max(1, round(budget)) if budget is not None else int(hp["epochs"])
        key = json.dumps({k: v for k, v in params.items() if k != "epochs"}, sort_keys=True)
        state = self._checkpoint(key, hp, epochs)
        done = state.epochs
        data = self.splits()
        steps = 0
        for _ in range(epochs - done):
            order = torch.randperm(len(data.y_train), generator=state.generator).to(self.device)
            for rows in order.split(int(hp["batch_size"])):
                loss = train_step(
                    state.weights, state.optimizer, hp, data.X_train[rows], data.y_train[rows], state.generator
                )
                steps += 1
                if not math.isfinite(loss):
                    raise FloatingPointError(f"the training loss became {loss} at epoch {state.epochs + 1}")
            state.epochs += 1
        metrics = self.scores(state.weights, hp)
        metrics["epochs"] = epochs
        return Evaluation(metrics["val_accuracy"], metrics, {"epochs": epochs - done, "inner_steps": steps})

    def _checkpoint(self, key: str, hp: Mapping[str, Any], epochs: int) -> Checkpoint:
        old = self._checkpoints.get(key) if self.reuse else None
        if old is not None and old.epochs <= epochs:
            self._checkpoints.move_to_end(key)
            return old
        data = self.splits()
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32(key.encode()))
        sizes = [data.X_train.shape[1], *[int(hp["hidden"])] * int(hp["layers"]), int(data.y_train.max()) + 1]
        weights = init_weights(sizes, gen, self.dtype, self.device)
        opt = make_optimizer(
            hp["optimizer"], weights, float(hp["lr"]), float(hp["momentum"]), float(hp["weight_decay"])
        )
        state = Checkpoint(weights, opt, gen, 0)
        if self.reuse:
            self._checkpoints[key] = state
            while len(self._checkpoints) > MAX_CHECKPOINTS:
                self._checkpoints.popitem(last=False)
        return state

    @torch.no_grad()
    def scores(self, weights: Weights, hp: Mapping[str, Any]) -> dict[str, float]:
        data = self.splits()

        def accuracy(logits: Tensor, y: Tensor) -> float:
            return float((logits.argmax(1) == y).double().mean())

        val_logits = forward(weights, data.X_val, hp["activation"])
        out = {
            "val_loss": float(F.cross_entropy(val_logits, data.y_val)),
            "val_accuracy": accuracy(val_logits, data.y_val),
            "test_accuracy": accuracy(forward(weights, data.X_test, hp["activation"]), data.y_test),
        }
        if self.test_noise > 0:  # robustness: Gaussian noise on the test inputs
            gen = torch.Generator().manual_seed(self.seed)
            noise = torch.randn(data.X_test.shape, generator=gen, dtype=self.dtype).to(self.device) * self.test_noise
            out["test_accuracy_noisy"] = accuracy(forward(weights, data.X_test + noise, hp["activation"]), data.y_test)
        return out


class MnistTask(MLPTask):
    """MNIST from ``data_dir`` (IDX files) or the bundled 5,000-image subset."""

    name = "mnist"

    def __init__(self, data_dir: str | None = None, **kwargs: Any) -> None:
        self.data_dir = data_dir
        super().__init__(**kwargs)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        from hpo_cli.tasks.data.idx import IdxError
        from hpo_cli.tasks.data.mnist import load_mnist

        try:
            data = load_mnist(self.data_dir)
        except IdxError as exc:
            raise ConfigError("task.data_dir", self.data_dir, str(exc)) from None
        return data.X, data.y, data.X_test, data.y_test


class DigitsTask(MLPTask):
    """scikit-learn's 8×8 digits (1,797 images), pixels scaled to [0, 1]."""

    name = "digits"

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return (X / 16.0).astype(np.float32), y.astype(np.int64), None, None
