"""Multilayer perceptrons on MNIST (``task=mnist``) and scikit-learn's 8×8 digits (``task=digits``).

One network (:mod:`hpo_cli.tasks.mlp_model`: a function of one flat parameter vector θ), one
data split and one initialization (from the task seed) serve two kinds of search spaces:

* **black-box knobs** — ``optimizer`` (sgd, momentum, nesterov, adagrad, rmsprop, adam), ``lr``,
  ``momentum``, ``weight_decay`` or ``log_precision`` (a Gaussian prior: weight decay
  exp(h)/n_train), ``batch_size``, ``epochs``, ``hidden``, ``layers``, ``activation``,
  ``dropout``: θ is trained with ``torch.optim`` for ``epochs`` epochs; the value is the
  validation accuracy (maximized). The fidelity is the number of epochs: a multi-fidelity
  strategy passes it as the budget, and with ``reuse_checkpoints`` a configuration trained
  before for fewer epochs continues from its checkpoint.
* **differentiable hyperparameters** — a space of only ``log_precision`` (shared, one per weight
  matrix and bias: ``size: n_tensors``, or one per weight: ``size: n_params``), ``log_lr``
  (shared, per tensor, or per tensor per stage: ``size: n_schedule`` with ``task.lr_stages``),
  ``momentum`` and ``example_weights`` (``size: n_train``): θ is trained by the inner SGD of the
  bilevel problem (``task.inner_steps`` minibatch steps of ``task.batch_size``, ``inner_lr``,
  ``inner_momentum``), the training every hypergradient method differentiates, whatever the
  strategy; the value is the validation cross-entropy (minimized). So ``strategy=fixed`` or
  random search on such a space evaluates exactly what a gradient strategy optimized.

The network's architecture in the second case is the task's (``task.hidden``, ``layers``,
``activation``; a smooth activation — tanh, sigmoid, gelu, softplus — for gradient checks).
Everything random (initialization, batch order, dropout) is seeded, so CPU runs are deterministic.
"""

from __future__ import annotations

import json
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hpo_cli.errors import ConfigError
from hpo_cli.request import HypergradRequest
from hpo_cli.tasks.base import split_indices
from hpo_cli.tasks.bilevel_models import KINDS, Split, split_of
from hpo_cli.tasks.criteria.cv import CrossValidation, fold_indices
from hpo_cli.tasks.criteria.holdout import Holdout
from hpo_cli.tasks.differentiable import DifferentiableTask
from hpo_cli.tasks.mlp_model import (
    ACTIVATIONS,
    SMOOTH,
    MLPModel,
    initial_theta,
    layer_sizes,
    mlp_logits,
    tensor_sizes,
)
from hpo_cli.tasks.mlp_trainer import OPTIMIZERS, Checkpoint, start, train_epochs
from hpo_cli.trial import Evaluation, Request, SavedModel, TrainedModel
from hpo_cli.validate import one_of, positive_int

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
SGD_ONLY = ("log_lr", "example_weights")  # differentiable kinds with no torch.optim meaning
MAX_CHECKPOINTS = 256


def is_gradient_space(names: Sequence[str]) -> bool:
    """True when every name is a differentiable kind: the space trains by the inner SGD."""
    return bool(names) and all(n in KINDS for n in names)


class MLPTask(DifferentiableTask):
    metric = "val_accuracy"
    direction = "maximize"
    training_config = "task/digits.yaml"
    training_keys = ("inner_steps", "inner_lr", "inner_momentum", "convention", "batch_size")
    at_optimum = False  # a network's training objective has no unique optimum: train inner_steps

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
        reuse_checkpoints: bool = True,
        device: str = "cpu",
        dtype: str = "float32",
        **training: Any,
    ) -> None:
        super().__init__(seed, device, dtype, {**training, "batch_size": batch_size})
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
        self._checkpoints: OrderedDict[str, Checkpoint] = OrderedDict()
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

    # -- spaces ----------------------------------------------------------------------------

    def check_space(self, names: list[str]) -> None:
        known = (*HYPERPARAMETERS, *SGD_ONLY)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"space.params.{unknown[0]}", unknown[0], f"task {self.name} tunes {', '.join(known)}")
        sgd_only = [n for n in names if n in SGD_ONLY]
        blackbox = [n for n in names if n not in KINDS]
        if not blackbox:
            self.check_criterion(names)
        elif not isinstance(self.criterion, Holdout | CrossValidation):
            raise ConfigError(
                "criterion",
                self.criterion.name,
                f"needs the differentiable model: tune {', '.join(KINDS[:2])} … "
                f"(e.g. space={self.name}_gradient), not torch.optim knobs like {blackbox[0]!r}",
            )
        if sgd_only and blackbox:
            raise ConfigError(
                f"space.params.{sgd_only[0]}",
                sgd_only[0],
                f"belongs to the inner SGD training of differentiable spaces; it cannot be tuned together with "
                f"{blackbox[0]!r} (a torch.optim knob)",
            )

    def objective_for(self, names: Sequence[str]) -> tuple[str, str]:
        if is_gradient_space(names):
            return self.criterion.metric("val_loss"), "minimize"
        return self.metric, self.direction

    def check_hypergradient(self, request: HypergradRequest, names: list[str]) -> None:
        blackbox = [n for n in names if n not in KINDS]
        if blackbox:
            raise ConfigError(
                f"space.params.{blackbox[0]}",
                blackbox[0],
                f"gradient strategies on task {self.name} tune only {', '.join(KINDS)} "
                f"(e.g. space={self.name}_gradient, the default for gradient strategies)",
            )
        super().check_hypergradient(request, names)

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
            hp["weight_decay"] = float(np.exp(params["log_precision"])) / len(self.splits()[0].y)
        return hp

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(
        self, params: Mapping[str, Any], budget: float | None = None, request: Request | None = None
    ) -> Evaluation:
        if (request is not None and not isinstance(request, SavedModel)) or is_gradient_space(list(params)):
            return super().evaluate(params, budget, request)
        hp = self.hyperparameters(params)
        epochs = max(1, round(budget)) if budget is not None else int(hp["epochs"])
        key = json.dumps({k: v for k, v in params.items() if k != "epochs"}, sort_keys=True)
        sizes = self.sizes(hp["hidden"], hp["layers"])
        if isinstance(request, SavedModel):
            return self._evaluate_saved_network(request, sizes, hp)
        if isinstance(self.criterion, CrossValidation):
            return self._evaluate_folds(key, hp, sizes, epochs)
        state = self._checkpoint(key, hp, sizes, epochs)
        done = state.epochs
        steps = train_epochs(state, sizes, hp, self.splits()[0], epochs)
        theta = state.theta.detach()
        metrics: dict[str, float] = {**self.scores(theta, sizes, hp["activation"]), "epochs": epochs}
        model = self.network(theta, sizes, hp["activation"])
        return Evaluation(
            metrics["val_accuracy"], metrics, {"epochs": epochs - done, "inner_steps": steps}, model=model
        )

    def network(self, theta: Tensor, sizes: Sequence[int], activation: str, from_scratch: bool = True) -> TrainedModel:
        """θ as saved weights, with what it takes to run them (layer sizes, activation)."""
        meta = {"task": self.name, "layer_sizes": list(sizes), "activation": activation, "n_params": int(theta.numel())}
        return TrainedModel({"theta": theta.detach().cpu().numpy().copy()}, meta, from_scratch)

    def model_meta(self) -> dict[str, Any]:
        return {"task": self.name, "layer_sizes": list(self.model().sizes), "activation": self.defaults["activation"]}

    def _evaluate_saved_network(self, saved: SavedModel, sizes: list[int], hp: Mapping[str, Any]) -> Evaluation:
        """Scores of saved weights for black-box hyperparameters (no training)."""
        theta = torch.as_tensor(saved.arrays.get("theta", np.empty(0)))
        expected = sum(tensor_sizes(sizes))
        if theta.numel() != expected:
            raise ValueError(
                f"the saved weights have {theta.numel()} parameters; a network of layer sizes {sizes} has {expected}"
            )
        theta = theta.to(dtype=self.dtype, device=self.device)
        metrics = self.scores(theta, sizes, hp["activation"])
        model = self.network(theta, sizes, hp["activation"], from_scratch=False)
        return Evaluation(metrics["val_accuracy"], metrics, {"epochs": 0, "inner_steps": 0}, model=model)

    def _evaluate_folds(self, key: str, hp: Mapping[str, Any], sizes: list[int], epochs: int) -> Evaluation:
        """k-fold cross-validation of torch.optim training on training + validation examples:
        the value is the mean held-out accuracy over the folds (``cv_fold<q>`` each); test
        metrics are the mean over the fold models."""
        assert isinstance(self.criterion, CrossValidation)
        train, val, _ = self.splits()
        X, y = torch.cat([train.X, val.X]), torch.cat([train.y, val.y])
        folds = fold_indices(len(y), self.criterion.k, self.seed)
        metrics: dict[str, float] = {}
        trained, steps = 0, 0
        for q, (train_rows, held_rows) in enumerate(folds):
            state = self._checkpoint(f"{key}|fold{q}", hp, sizes, epochs)
            trained += epochs - state.epochs
            tr, te = torch.as_tensor(train_rows, device=X.device), torch.as_tensor(held_rows, device=X.device)
            steps += train_epochs(state, sizes, hp, Split(X[tr], y[tr]), epochs)
            with torch.no_grad():
                logits = mlp_logits(state.theta.detach(), X[te], sizes, hp["activation"])
            metrics[f"cv_fold{q}"] = float((logits.argmax(1) == y[te]).double().mean())
            loss = float(torch.nn.functional.cross_entropy(logits, y[te]))
            metrics["cv_loss"] = metrics.get("cv_loss", 0.0) + loss / len(folds)
            for name, value in self.scores(state.theta.detach(), sizes, hp["activation"]).items():
                if not name.startswith("val_"):  # the validation examples were trained on
                    metrics[name] = metrics.get(name, 0.0) + value / len(folds)
        value = float(np.mean([metrics[f"cv_fold{q}"] for q in range(len(folds))]))
        metrics.update({self.metric: value, "epochs": epochs})
        return Evaluation(value, metrics, {"epochs": trained, "inner_steps": steps})

    # -- refit: the standard training as one yardstick ----------------------------------------

    def refit(self, params: Mapping[str, Any], budget: float | None = None) -> dict[str, Any] | None:
        """Black-box knobs: trained again from θ0 (no checkpoint) for the trial's epochs. A
        space of log precisions: the task's default torch.optim training (what random search
        over black-box knobs sees, and the untuned default is) with the learned Gaussian prior
        ½·Σ exp(h)·θ²/n_train added to its loss. Other differentiable kinds (learning rates,
        momentum, example weights) have no meaning there: their own inner training from θ0."""
        names = list(params)
        if not is_gradient_space(names):
            hp = self.hyperparameters(params)
            epochs = max(1, round(budget)) if budget is not None else int(hp["epochs"])
            return self._standard_training(params, hp, epochs, "")
        if set(names) != {"log_precision"}:
            return super().refit(params, budget)
        hp = dict(self.defaults)
        model = self.model()
        h = torch.as_tensor(params["log_precision"], dtype=self.dtype, device=self.device).reshape(-1)
        hp["penalty"] = torch.exp(model.tensors.per_parameter(h)) / model.n
        return self._standard_training({}, hp, int(hp["epochs"]), " + the learned prior ½·Σ exp(h)·θ²/n_train")

    def _standard_training(
        self, params: Mapping[str, Any], hp: Mapping[str, Any], epochs: int, extra: str
    ) -> dict[str, Any]:
        """Train ``hp`` from θ0 with the random stream of ``params`` (so a black-box trial's refit
        repeats it exactly, and a prior's refit differs from the untuned default only by it)."""
        sizes = self.sizes(hp["hidden"], hp["layers"])
        key = json.dumps({k: v for k, v in params.items() if k != "epochs"}, sort_keys=True)
        state = self._fresh(key, hp, sizes)
        steps = train_epochs(state, sizes, hp, self.splits()[0], epochs)
        protocol = (
            f"torch.optim {hp['optimizer']} lr={hp['lr']:g} weight_decay={hp['weight_decay']:g}, "
            f"batch {hp['batch_size']}, {epochs} epochs from θ0{extra}"
        )
        return {
            "protocol": protocol,
            **self.scores(state.theta.detach(), sizes, hp["activation"]),
            "inner_steps": steps,
        }

    def _fresh(self, key: str, hp: Mapping[str, Any], sizes: list[int]) -> Checkpoint:
        """A training of ``hp`` at θ0, with the random stream of configuration ``key``."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32(key.encode()))
        return start(initial_theta(sizes, self.seed, self.dtype, self.device), hp, gen)

    def _checkpoint(self, key: str, hp: Mapping[str, Any], sizes: list[int], epochs: int) -> Checkpoint:
        old = self._checkpoints.get(key) if self.reuse else None
        if old is not None and old.epochs <= epochs:
            self._checkpoints.move_to_end(key)
            return old
        state = self._fresh(key, hp, sizes)
        if self.reuse:
            self._checkpoints[key] = state
            while len(self._checkpoints) > MAX_CHECKPOINTS:
                self._checkpoints.popitem(last=False)
        return state


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
