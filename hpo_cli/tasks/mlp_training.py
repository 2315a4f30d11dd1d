"""How an MLP task trains its network: ``task.training`` picks one of two objects at construction.

* ``blackbox`` (:class:`BlackBoxTraining`, the default of conf/task/digits.yaml and mnist.yaml):
  ``torch.optim`` over the space's knobs (``optimizer``, ``lr``, ``momentum``, ``weight_decay``
  or ``log_precision`` — a Gaussian prior, weight decay exp(h)/n_train —, ``batch_size``,
  ``epochs``, ``hidden``, ``layers``, ``activation``, ``dropout``) for ``epochs`` epochs; the
  value is the validation accuracy (maximized). The fidelity is the number of epochs: a
  multi-fidelity strategy passes it as the budget, and with ``reuse_checkpoints`` a
  configuration trained before for fewer epochs continues from its checkpoint: in the run's
  ``checkpoints/`` folder (:mod:`hpo_cli.tasks.checkpoints`), which every worker reaches, once
  the task is attached to a run; in this object's memory (the last ``MAX_CHECKPOINTS``) before.
* ``bilevel`` (:class:`BilevelTraining`, set by the ``conf/task_space/`` files of the gradient
  spaces: ``mnist_gradient``, ``mnist_implicit``, ``mnist_per_layer``, …): the differentiable
  model's inner SGD (``task.inner_steps`` minibatch steps of ``task.batch_size``, ``inner_lr``,
  ``inner_momentum``) over the kinds ``log_precision``, ``log_lr``, ``momentum`` and
  ``example_weights``, the training every hypergradient method differentiates, whatever the
  strategy; the value is the criterion's validation loss (minimized). So ``strategy=fixed`` or
  random search on such a space evaluates exactly what a gradient strategy optimized.

The choice is the config's, never the parameter names' (``log_precision`` and ``momentum`` mean
something in both): a space that does not fit the training is refused in one line naming the
key to set.
"""

from __future__ import annotations

import json
import logging
import zlib
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from hpo_cli.errors import ConfigError
from hpo_cli.request import HypergradRequest
from hpo_cli.tasks.bilevel_models import KINDS, Split
from hpo_cli.tasks.checkpoints import CheckpointFiles
from hpo_cli.tasks.criteria.cv import CrossValidation, fold_indices
from hpo_cli.tasks.criteria.holdout import Holdout
from hpo_cli.tasks.differentiable import DifferentiableTask
from hpo_cli.tasks.mlp_model import initial_theta, mlp_logits, tensor_sizes
from hpo_cli.tasks.mlp_trainer import Checkpoint, start, train_epochs
from hpo_cli.trial import Evaluation, Request, SavedModel, TrainedModel
from hpo_cli.validate import one_of

log = logging.getLogger("hpo_cli")
TRAININGS = ("blackbox", "bilevel")
KNOBS = (  # what the black-box training tunes
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


class MLPHost(DifferentiableTask):
    """What a training uses of its MLP task (:class:`hpo_cli.tasks.mlp.MLPTask` is one): a
    differentiable task with the network's data splits, layer sizes, scores and saved form."""

    defaults: dict[str, Any]  # the black-box knobs' defaults
    reuse: bool  # continue a configuration's training from its checkpoint (Hyperband's promotions)

    @abstractmethod
    def splits(self) -> tuple[Split, Split, Split]:
        """(train, validation, test)."""

    @abstractmethod
    def sizes(self, hidden: int, layers: int) -> list[int]:
        """The layer widths, input to output."""

    @abstractmethod
    def scores(self, theta: torch.Tensor, sizes: list[int], activation: str) -> dict[str, float]:
        """Loss and accuracy of the network θ on each split."""

    @abstractmethod
    def network(
        self, theta: torch.Tensor, sizes: Sequence[int], activation: str, from_scratch: bool = True
    ) -> TrainedModel:
        """θ as saved weights."""


class MLPTraining(Protocol):
    """What an MLP task asks of its training (see the module)."""

    def objective(self) -> tuple[str, str]:
        """(metric, direction) of the value."""
        ...

    def check_space(self, names: list[str]) -> None: ...

    def check_hypergradient(self, request: HypergradRequest, names: list[str]) -> None: ...

    def evaluate(self, params: Mapping[str, Any], budget: float | None, request: Request | None) -> Evaluation: ...

    def refit(self, params: Mapping[str, Any], budget: float | None) -> dict[str, Any] | None: ...

    def attach(self, folder: Path) -> None: ...

    def release(self, params: Mapping[str, Any]) -> None: ...

    def release_all(self) -> None: ...


def config_key(params: Mapping[str, Any]) -> str:
    """What names a configuration across its evaluations: its parameters but the epochs."""
    return json.dumps({k: v for k, v in params.items() if k != "epochs"}, sort_keys=True)


def training_of(name: Any, task: MLPHost) -> MLPTraining:
    """The training ``task.training`` names, for ``task``."""
    if one_of(name, "task.training", TRAININGS) == "bilevel":
        return BilevelTraining(task)
    return BlackBoxTraining(task)


class BlackBoxTraining:
    """``torch.optim`` training over the space's knobs (``task.training=blackbox``)."""

    def __init__(self, task: MLPHost) -> None:
        self.task = task
        self._checkpoints: OrderedDict[str, Checkpoint] = OrderedDict()  # before attach
        self.files: CheckpointFiles | None = None  # the run's checkpoints/, once attached

    def objective(self) -> tuple[str, str]:
        return self.task.criterion.metric("val_accuracy"), "maximize"

    def check_space(self, names: list[str]) -> None:
        task = self.task
        bilevel = [n for n in names if n in KINDS and n not in KNOBS]
        if bilevel:
            raise ConfigError(
                f"space.params.{bilevel[0]}",
                bilevel[0],
                "belongs to the inner SGD training of the bilevel model: set task.training=bilevel "
                "(conf/task_space/ does for the gradient spaces)",
            )
        unknown = [n for n in names if n not in KNOBS]
        if unknown:
            raise ConfigError(f"space.params.{unknown[0]}", unknown[0], f"task {task.name} tunes {', '.join(KNOBS)}")
        if not isinstance(task.criterion, Holdout | CrossValidation):
            raise ConfigError(
                "criterion",
                task.criterion.name,
                f"needs the differentiable model: task.training=bilevel and a space of {', '.join(KINDS[:2])} … "
                f"(e.g. space={task.name}_gradient), not torch.optim knobs",
            )

    def check_hypergradient(self, request: HypergradRequest, names: list[str]) -> None:
        raise ConfigError(
            "task.training",
            "blackbox",
            f"gradient strategies differentiate the bilevel inner SGD: task.training=bilevel with a space of "
            f"{', '.join(KINDS)} (e.g. space={self.task.name}_gradient, the default for gradient strategies)",
        )

    def hyperparameters(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The task's defaults with ``params`` over them (a log precision as weight decay)."""
        self.check_space(list(params))
        hp = {**self.task.defaults, **params}
        if isinstance(params.get("log_precision"), list):
            raise ConfigError(
                "space.params.log_precision",
                f"[{len(params['log_precision'])} values]",
                "task.training=blackbox takes one log precision (torch.optim's weight decay exp(h)/n_train); "
                "one per tensor or per weight needs task.training=bilevel",
            )
        if "log_precision" in params:
            hp["weight_decay"] = float(np.exp(params["log_precision"])) / len(self.task.splits()[0].y)
        return hp

    def evaluate(self, params: Mapping[str, Any], budget: float | None, request: Request | None) -> Evaluation:
        if isinstance(request, HypergradRequest):
            self.check_hypergradient(request, list(params))
        task = self.task
        hp = self.hyperparameters(params)
        epochs = max(1, round(budget)) if budget is not None else int(hp["epochs"])
        key = config_key(params)
        sizes = task.sizes(hp["hidden"], hp["layers"])
        if isinstance(request, SavedModel):
            return self._evaluate_saved_network(request, sizes, hp)
        if isinstance(task.criterion, CrossValidation):
            return self._evaluate_folds(key, hp, sizes, epochs)
        state = self._checkpoint(key, hp, sizes, epochs)
        done = state.epochs
        steps = train_epochs(state, sizes, hp, task.splits()[0], epochs)
        self._keep(key, state, done)
        theta = state.theta.detach()
        metrics: dict[str, float] = {**task.scores(theta, sizes, hp["activation"]), "epochs": epochs}
        model = task.network(theta, sizes, hp["activation"])
        return Evaluation(
            metrics["val_accuracy"], metrics, {"epochs": epochs - done, "inner_steps": steps}, model=model
        )

    def _evaluate_saved_network(self, saved: SavedModel, sizes: list[int], hp: Mapping[str, Any]) -> Evaluation:
        """Scores of saved weights for black-box hyperparameters (no training)."""
        task = self.task
        theta = torch.as_tensor(saved.arrays.get("theta", np.empty(0)))
        expected = sum(tensor_sizes(sizes))
        if theta.numel() != expected:
            raise ValueError(
                f"the saved weights have {theta.numel()} parameters; a network of layer sizes {sizes} has {expected}"
            )
        theta = theta.to(dtype=task.dtype, device=task.device)
        metrics = task.scores(theta, sizes, hp["activation"])
        model = task.network(theta, sizes, hp["activation"], from_scratch=False)
        return Evaluation(metrics["val_accuracy"], metrics, {"epochs": 0, "inner_steps": 0}, model=model)

    def _evaluate_folds(self, key: str, hp: Mapping[str, Any], sizes: list[int], epochs: int) -> Evaluation:
        """k-fold cross-validation of torch.optim training on training + validation examples:
        the value is the mean held-out accuracy over the folds (``cv_fold<q>`` each); test
        metrics are the mean over the fold models."""
        task = self.task
        assert isinstance(task.criterion, CrossValidation)
        train, val, _ = task.splits()
        X, y = torch.cat([train.X, val.X]), torch.cat([train.y, val.y])
        folds = fold_indices(len(y), task.criterion.k, task.seed)
        metrics: dict[str, float] = {}
        trained, steps = 0, 0
        for q, (train_rows, held_rows) in enumerate(folds):
            state = self._checkpoint(f"{key}|fold{q}", hp, sizes, epochs)
            done = state.epochs
            trained += epochs - done
            tr, te = torch.as_tensor(train_rows, device=X.device), torch.as_tensor(held_rows, device=X.device)
            steps += train_epochs(state, sizes, hp, Split(X[tr], y[tr]), epochs)
            self._keep(f"{key}|fold{q}", state, done)
            with torch.no_grad():
                logits = mlp_logits(state.theta.detach(), X[te], sizes, hp["activation"])
            metrics[f"cv_fold{q}"] = float((logits.argmax(1) == y[te]).double().mean())
            loss = float(torch.nn.functional.cross_entropy(logits, y[te]))
            metrics["cv_loss"] = metrics.get("cv_loss", 0.0) + loss / len(folds)
            for name, value in task.scores(state.theta.detach(), sizes, hp["activation"]).items():
                if not name.startswith("val_"):  # the validation examples were trained on
                    metrics[name] = metrics.get(name, 0.0) + value / len(folds)
        value = float(np.mean([metrics[f"cv_fold{q}"] for q in range(len(folds))]))
        metrics.update({task.metric: value, "epochs": epochs})
        return Evaluation(value, metrics, {"epochs": trained, "inner_steps": steps})

    def refit(self, params: Mapping[str, Any], budget: float | None) -> dict[str, Any] | None:
        """Trained again from θ0 (no checkpoint) for the trial's epochs: the same numbers."""
        hp = self.hyperparameters(params)
        epochs = max(1, round(budget)) if budget is not None else int(hp["epochs"])
        return self.standard_training(params, hp, epochs)

    def standard_training(self, params: Mapping[str, Any], hp: Mapping[str, Any], epochs: int) -> dict[str, Any]:
        """Train ``hp`` from θ0 with the random stream of ``params`` (so a black-box trial's refit
        repeats it exactly, and a prior's refit differs from the untuned default only by it)."""
        task = self.task
        sizes = task.sizes(hp["hidden"], hp["layers"])
        state = self._fresh(config_key(params), hp, sizes)
        steps = train_epochs(state, sizes, hp, task.splits()[0], epochs)
        protocol = (
            f"torch.optim {hp['optimizer']} lr={hp['lr']:g} weight_decay={hp['weight_decay']:g}, "
            f"batch {hp['batch_size']}, {epochs} epochs from θ0"
        )
        return {
            "protocol": protocol,
            **task.scores(state.theta.detach(), sizes, hp["activation"]),
            "inner_steps": steps,
        }

    def _fresh(self, key: str, hp: Mapping[str, Any], sizes: Sequence[int]) -> Checkpoint:
        """A training of ``hp`` at θ0, with the random stream of configuration ``key``."""
        task = self.task
        gen = torch.Generator().manual_seed(task.seed * 1_000_003 + zlib.crc32(key.encode()))
        return start(initial_theta(list(sizes), task.seed, task.dtype, task.device), hp, gen)

    def _checkpoint(self, key: str, hp: Mapping[str, Any], sizes: list[int], epochs: int) -> Checkpoint:
        """The training of configuration ``key`` to continue: its checkpoint when it has one
        of at most ``epochs`` epochs (and ``reuse_checkpoints``), else a fresh one at θ0."""
        reuse = self.task.reuse
        if self.files is not None:
            return self._from_file(key, hp, sizes, epochs) if reuse else self._fresh(key, hp, sizes)
        old = self._checkpoints.get(key) if reuse else None
        if old is not None and old.epochs <= epochs:
            self._checkpoints.move_to_end(key)
            return old
        state = self._fresh(key, hp, sizes)
        if reuse:
            self._checkpoints[key] = state
            while len(self._checkpoints) > MAX_CHECKPOINTS:
                self._checkpoints.popitem(last=False)
        return state

    def _from_file(self, key: str, hp: Mapping[str, Any], sizes: list[int], epochs: int) -> Checkpoint:
        assert self.files is not None
        state = self._fresh(key, hp, sizes)
        saved = self.files.load(key)
        if saved is None or not isinstance(saved.get("epochs"), int) or saved["epochs"] > epochs:
            return state
        try:
            state.load_state_dict(saved)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            log.warning("ignoring the checkpoint %s: it does not fit (%s); training from scratch", key, exc)
            return self._fresh(key, hp, sizes)
        return state

    def _keep(self, key: str, state: Checkpoint, done: int) -> None:
        """Write the checkpoint of a training that went on (the in-memory ones are kept as is)."""
        if self.files is not None and self.task.reuse and state.epochs != done:
            self.files.save(key, state.state_dict())

    # -- the run's checkpoints (hpo_cli.tasks.mlp.MLPTask.attach) ---------------------------------

    def attach(self, folder: Path) -> None:
        self.files = CheckpointFiles(folder)
        self._checkpoints.clear()

    def release(self, params: Mapping[str, Any]) -> None:
        """Forget the checkpoints of ``params`` (every fold's, under cross-validation)."""
        key = config_key(params)
        folds = self.task.criterion.k if isinstance(self.task.criterion, CrossValidation) else 0
        for name in [key, *(f"{key}|fold{q}" for q in range(folds))]:
            self._checkpoints.pop(name, None)
            if self.files is not None:
                self.files.discard(name)

    def release_all(self) -> None:
        self._checkpoints.clear()
        if self.files is not None:
            self.files.clear()


class BilevelTraining:
    """The differentiable model's inner SGD (``task.training=bilevel``): evaluation,
    hypergradients and checks are the differentiable task's own (:class:`DifferentiableTask`,
    which the MLP task is)."""

    def __init__(self, task: MLPHost) -> None:
        self.task = task

    def objective(self) -> tuple[str, str]:
        return self.task.criterion.metric("val_loss"), "minimize"

    def attach(self, folder: Path) -> None:
        """The inner SGD keeps nothing between trials (a gradient strategy's state travels with
        its requests)."""

    def release(self, params: Mapping[str, Any]) -> None:
        pass

    def release_all(self) -> None:
        pass

    def check_space(self, names: list[str]) -> None:
        knobs = [n for n in names if n not in KINDS]
        if knobs:
            raise ConfigError(
                f"space.params.{knobs[0]}",
                knobs[0],
                f"task.training=bilevel tunes only {', '.join(KINDS)}; torch.optim knobs need task.training=blackbox",
            )
        self.task.check_criterion(names)

    def check_hypergradient(self, request: HypergradRequest, names: list[str]) -> None:
        DifferentiableTask.check_hypergradient(self.task, request, names)

    def evaluate(self, params: Mapping[str, Any], budget: float | None, request: Request | None) -> Evaluation:
        return DifferentiableTask.evaluate(self.task, params, budget, request)

    def refit(self, params: Mapping[str, Any], budget: float | None) -> dict[str, Any] | None:
        """The trials' own inner problem solved again from θ0 — ``inner_steps`` of the inner SGD
        (``task.inner=train``) or the inner optimum (``optimum``): what random search and TPE over
        the same space see, and what the hyperparameters were tuned for (a prior tuned for 240
        SGD steps is not a prior for Adam's 10 epochs)."""
        return DifferentiableTask.refit(self.task, params, budget)
