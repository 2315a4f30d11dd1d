"""Multilayer perceptrons on MNIST (``task=mnist``) and scikit-learn's 8×8 digits (``task=digits``).

One network (:mod:`hpo_cli.tasks.mlp_model`: a function of one flat parameter vector θ), one
data split and one initialization (from the task seed) serve two trainings, chosen by
``task.training`` (:mod:`hpo_cli.tasks.mlp_training`):

* ``blackbox`` (the default) — ``torch.optim`` over knobs such as ``optimizer``, ``lr``,
  ``epochs``, ``hidden``; the value is the validation accuracy (maximized);
* ``bilevel`` (set by ``conf/task_space/`` for the gradient spaces: ``space=mnist_gradient``,
  ``mnist_implicit``, ``mnist_per_layer``, …) — the inner SGD of the differentiable model over
  ``log_precision``, ``log_lr``, ``momentum``, ``example_weights``, what every hypergradient
  method differentiates; the value is the validation cross-entropy (minimized).

The network's architecture of the bilevel training is the task's (``task.hidden``, ``layers``,
``activation``; a smooth activation — tanh, sigmoid, gelu, softplus — for gradient checks).
Everything random (initialization, batch order, dropout) is seeded, so CPU runs are deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hpo_cli.errors import ConfigError
from hpo_cli.request import HypergradRequest
from hpo_cli.tasks.base import split_indices
from hpo_cli.tasks.bilevel_models import Split, split_of
from hpo_cli.tasks.mlp_model import ACTIVATIONS, SMOOTH, MLPModel, initial_theta, layer_sizes, mlp_logits
from hpo_cli.tasks.mlp_trainer import OPTIMIZERS
from hpo_cli.tasks.mlp_training import MLPHost, training_of
from hpo_cli.trial import Evaluation, Request, TrainedModel
from hpo_cli.validate import one_of, positive_int


class MLPTask(MLPHost):
    metric = "val_accuracy"
    direction = "maximize"
    training_config = "task/digits.yaml"
    training_keys = ("inner_steps", "inner_lr", "inner_momentum", "convention", "batch_size")
    INNER = ("train", "optimum")

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
        lr_stages: int = 1,
        training: str = "blackbox",
        inner: str = "train",
        reuse_checkpoints: bool = True,
        device: str = "cpu",
        dtype: str = "float32",
        **inner_training: Any,
    ) -> None:
        super().__init__(seed, device, dtype, {**inner_training, "batch_size": batch_size})
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
        self.lr_stages = positive_int(lr_stages, "task.lr_stages")
        self.test_noise, self.reuse = float(test_noise), bool(reuse_checkpoints)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self._splits: tuple[Split, Split, Split] | None = None
        self._model: MLPModel | None = None
        # a bilevel trial's θ: inner_steps of the inner SGD from θ0, or the inner optimum solved
        # from θ0 (at most inner_steps L-BFGS iterations, then Newton-CG: what HOAG differentiates)
        self.at_optimum = one_of(inner, "task.inner", self.INNER) == "optimum"
        self.trainer = training_of(training, self)  # black-box torch.optim or the bilevel inner SGD
        self.metric, self.direction = self.trainer.objective()
        self.splits()  # load now: a missing or corrupt file is an error before any trial

    # -- data ----------------------------------------------------------------------------

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(X, y) to split into train/validation[/test], and a fixed test set or None."""
        raise NotImplementedError

    def splits(self) -> tuple[Split, Split, Split]:
        """(train, validation, test) on the device: X (n, d) in the task's dtype, y (n,) int64."""
        if self._splits is None:
            X, y, X_test, y_test = self.arrays()
            test_fraction = 0.0 if X_test is not None else self.test_fraction
            train, val, test = split_indices(len(y), self.seed, self.val_fraction, test_fraction)
            if X_test is None or y_test is None:
                X_test, y_test = X[test], y[test]

            def split(X_part: np.ndarray, y_part: np.ndarray) -> Split:
                return split_of(X_part, y_part, self.dtype, self.device, labels=True)

            self._splits = (split(X[train], y[train]), split(X[val], y[val]), split(X_test, y_test))
        return self._splits

    def sizes(self, hidden: int, layers: int) -> list[int]:
        train = self.splits()[0]
        return layer_sizes(train.X.shape[1], int(hidden), int(layers), int(train.y.max()) + 1)

    # -- the differentiable model ----------------------------------------------------------

    def model(self) -> MLPModel:
        if self._model is None:
            train, val, _ = self.splits()
            sizes = self.sizes(self.defaults["hidden"], self.defaults["layers"])
            self._model = MLPModel(train, val, None, sizes, self.defaults["activation"], self.lr_stages)
        return self._model

    def theta0(self) -> Tensor:
        return initial_theta(self.model().sizes, self.seed, self.dtype, self.device)

    def solve_options(self) -> dict[str, int]:
        return {"solve_iterations": self.inner_steps}  # HOAG's inner solve: at most inner_steps L-BFGS steps

    def dimensions(self) -> dict[str, int]:
        dims = super().dimensions()
        return {**dims, "n_schedule": self.lr_stages * dims["n_tensors"]}

    def kinks(self) -> str | None:
        activation = self.defaults["activation"]
        if activation in SMOOTH:
            return None
        return f"task.activation={activation} has kinks; check with a smooth one ({', '.join(SMOOTH)})"

    def test_metrics(self, theta: Tensor) -> dict[str, float]:
        return self.scores(theta, self.model().sizes, self.defaults["activation"])

    @torch.no_grad()
    def scores(self, theta: Tensor, sizes: list[int], activation: str) -> dict[str, float]:
        """Validation and test loss and accuracy of θ; robustness under parameter noise
        (``task.param_noise``) and input noise (``task.test_noise``)."""
        _, val, test = self.splits()

        def on(split: Split, th: Tensor, X: Tensor | None = None) -> tuple[float, float]:
            logits = mlp_logits(th, split.X if X is None else X, sizes, activation)
            loss = torch.nn.functional.cross_entropy(logits, split.y)
            return float(loss), float((logits.argmax(1) == split.y).double().mean())

        val_loss, val_accuracy = on(val, theta)
        test_loss, test_accuracy = on(test, theta)
        out = {
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
        }

        def noisy(th: Tensor) -> dict[str, float]:
            loss, accuracy = on(test, th)
            return {"test_accuracy": accuracy, "test_loss": loss}

        out.update(self.parameter_noise(theta, noisy))
        if self.test_noise > 0:  # Gaussian noise on the test inputs
            gen = torch.Generator().manual_seed(self.seed)
            noise = torch.randn(test.X.shape, generator=gen, dtype=torch.float64).to(test.X) * self.test_noise
            out["test_accuracy_noisy"] = on(test, theta, test.X + noise)[1]
        return out

    # -- the training (task.training) ---------------------------------------------------------

    def check_space(self, names: list[str]) -> None:
        self.trainer.check_space(names)

    def objective_for(self, names: Sequence[str]) -> tuple[str, str]:
        return self.metric, self.direction

    def check_hypergradient(self, request: HypergradRequest, names: list[str]) -> None:
        self.trainer.check_hypergradient(request, names)

    def _check(self, hp: Mapping[str, Any], prefix: str) -> None:
        one_of(hp["optimizer"], f"{prefix}.optimizer", OPTIMIZERS)
        one_of(hp["activation"], f"{prefix}.activation", tuple(ACTIVATIONS))
        for key in ("batch_size", "epochs", "hidden", "layers"):
            positive_int(hp[key], f"{prefix}.{key}")
        if not 0.0 <= hp["dropout"] < 1.0:
            raise ConfigError(f"{prefix}.dropout", hp["dropout"], "must be in [0, 1)")

    def evaluate(
        self, params: Mapping[str, Any], budget: float | None = None, request: Request | None = None
    ) -> Evaluation:
        return self.trainer.evaluate(params, budget, request)

    def refit(self, params: Mapping[str, Any], budget: float | None = None) -> dict[str, Any] | None:
        """The parameters trained again by the standard training of ``task.training``
        (:mod:`hpo_cli.tasks.mlp_training`)."""
        return self.trainer.refit(params, budget)

    def attach(self, folder: Path) -> None:
        self.trainer.attach(folder)

    def release(self, params: Mapping[str, Any]) -> None:
        self.trainer.release(params)

    def release_all(self) -> None:
        self.trainer.release_all()

    def network(self, theta: Tensor, sizes: Sequence[int], activation: str, from_scratch: bool = True) -> TrainedModel:
        """θ as saved weights, with what it takes to run them (layer sizes, activation)."""
        meta = {"task": self.name, "layer_sizes": list(sizes), "activation": activation, "n_params": int(theta.numel())}
        return TrainedModel({"theta": theta.detach().cpu().numpy().copy()}, meta, from_scratch)

    def model_meta(self) -> dict[str, Any]:
        return {"task": self.name, "layer_sizes": list(self.model().sizes), "activation": self.defaults["activation"]}


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
