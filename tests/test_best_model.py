"""The best trial's weights (``best_model.npz``), ``strategy=fixed`` giving back a run's best
value, and the refit of the best parameters by the task's standard training."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf

from hpo_cli.build import build_study, compose_config
from hpo_cli.errors import ConfigError
from hpo_cli.loop import Budget, StudyLoop
from hpo_cli.report.console import headline_first
from hpo_cli.runner import run_study
from hpo_cli.store import BEST_MODEL, RunStore, read_model
from hpo_cli.strategies.fixed import FixedStrategy
from hpo_cli.tasks.mlp import DigitsTask
from hpo_cli.tasks.mlp_model import mlp_logits
from hpo_cli.trial import Evaluation, TrainedModel
from tests.conftest import make_space

SMALL_MLP = ["task=digits", "task.hidden=16", "task.inner_steps=10", "task.epochs=2"]


def run_here(run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """``hpo run OVERRIDES`` in-process into ``run_dir``; its summary."""
    cfg = compose_config(overrides)
    store = RunStore(run_dir)
    with store.exclusive():
        status = run_study(build_study(cfg), cfg, store)
    assert status == "finished"
    return dict(json.loads((run_dir / "summary.json").read_text()))


# Every gradient strategy: (overrides, whether its best model is trained again from θ0 by the
# task's own evaluation). The MLP's black-box evaluation trains inner_steps from θ0 like the
# unrolled methods; HOAG warm-starts, greedy and rtho carry one training across hyper-iterations.
GRADIENT_RUNS = {
    "hoag-mlp": ([*SMALL_MLP, "strategy=hoag"], False),
    "hoag-polynomial": (["task=polynomial", "space=polynomial_per_coef", "strategy=hoag"], False),
    "reverse": ([*SMALL_MLP, "strategy=rmad"], True),
    "rmad_exact": ([*SMALL_MLP, "strategy=rmad", "strategy.method=rmad_exact", "task.convention=maclaurin"], True),
    "drmad": ([*SMALL_MLP, "strategy=drmad"], True),
    "forward": ([*SMALL_MLP, "strategy=forward"], True),
    "greedy": ([*SMALL_MLP, "strategy=greedy"], False),
    "rtho": ([*SMALL_MLP, "strategy=rtho"], False),
    "reverse-polynomial": (["task=polynomial", "space=polynomial_per_coef", "strategy=rmad"], False),
}
IN_MAKE_TEST = ("hoag-polynomial", "reverse-polynomial")  # the others (MLPs, greedy, drmad, ...): make test-slow


@pytest.mark.parametrize(
    "name", [n if n in IN_MAKE_TEST else pytest.param(n, marks=pytest.mark.slow) for n in sorted(GRADIENT_RUNS)]
)
def test_a_gradient_run_s_best_is_what_fixed_gives_back(tmp_path: Path, name: str) -> None:
    overrides, from_scratch = GRADIENT_RUNS[name]
    run = tmp_path / "run"
    summary = run_here(run, [*overrides, "n_trials=3", "seed=3", "refit=false"])
    saved = read_model(run / BEST_MODEL)
    assert saved.meta["trial"] == summary["best"]["trial"]
    assert saved.meta["params"] == summary["best"]["params"]
    assert saved.from_scratch is from_scratch
    task_overrides = [o for o in overrides if not o.startswith("strategy")]
    space = next((o for o in overrides if o.startswith("space=")), "space=digits_gradient")
    again = run_here(
        tmp_path / "fixed",
        [*task_overrides, space, "seed=3", "strategy=fixed", f"strategy.params_file={run / 'best.yaml'}"],
    )
    assert math.isclose(again["best"]["value"], summary["best"]["value"], rel_tol=1e-6)
    for metric in ("test_accuracy", "test_mse"):
        if metric in summary["best"]["metrics"]:
            assert math.isclose(again["best"]["metrics"][metric], summary["best"]["metrics"][metric], rel_tol=1e-6)


def test_a_params_file_from_a_run_brings_the_run_s_task_settings(tmp_path: Path) -> None:
    """The wiring alone (no run): a run directory's composed config beside a best.yaml makes
    ``strategy=fixed strategy.params_file=…`` without task=, space= or seed= build that run's
    task (lr_stages=4 from conf/task_space/, hidden=16 from its command line), space and seed;
    a best.yaml with no run config beside it keeps the configured task."""
    original = [*SMALL_MLP, "strategy=rmad", "seed=2"]
    run_study_cfg = compose_config(original)
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(run_study_cfg))
    reference = build_study(run_study_cfg)
    params = reference.space.decode(np.full(reference.space.dim, 0.3))
    (tmp_path / "best.yaml").write_text(yaml.safe_dump(params))
    study = build_study(compose_config(["strategy=fixed", f"strategy.params_file={tmp_path / 'best.yaml'}"]))
    assert study.task.dimensions()["n_schedule"] == 16 and study.settings.seed == 2
    assert study.task.model().sizes == [64, 16, 10] and study.metric == "val_loss"
    assert study.task.evaluate(params).value == reference.task.evaluate(params).value
    (tmp_path / ".hydra" / "config.yaml").unlink()
    with pytest.raises(ConfigError, match=r"strategy\.params\.log_lr"):
        build_study(compose_config(["strategy=fixed", f"strategy.params_file={tmp_path / 'best.yaml'}"]))


@pytest.mark.slow
def test_fixed_without_space_or_task_re_evaluates_under_the_run_s_task_settings(tmp_path: Path) -> None:
    """rmad on task=digits tunes space=digits_gradient, whose four learning-rate stages
    conf/task_space/ sets (task.lr_stages=4): ``strategy=fixed strategy.params_file=…`` with
    neither task=, space= nor seed= takes them from the run, and gives its best value back."""
    run = tmp_path / "run"
    summary = run_here(run, [*SMALL_MLP, "strategy=rmad", "n_trials=2", "seed=2", "refit=false"])
    assert len(summary["best"]["params"]["log_lr"]) == 4 * 4  # lr_stages × n_tensors
    fixed = ["strategy=fixed", f"strategy.params_file={run / 'best.yaml'}", "refit=false"]
    study = build_study(compose_config(fixed))
    assert study.task.dimensions()["n_schedule"] == 16 and study.settings.seed == 2
    assert study.task.model().sizes == [64, 16, 10] and study.space.contains(summary["best"]["params"])
    again = run_here(tmp_path / "fixed", fixed)
    assert again["best"]["value"] == pytest.approx(summary["best"]["value"], rel=1e-9)
    assert again["best"]["metrics"]["test_accuracy"] == summary["best"]["metrics"]["test_accuracy"]
    assert (again["task"], again["space"]) == (summary["task"], summary["space"])


@pytest.mark.slow
def test_retraining_a_warm_started_best_is_what_the_weights_file_exists_for(tmp_path: Path) -> None:
    """HOAG on the MLP: the saved weights give the reported value back, a retraining from θ0 does not."""
    run = tmp_path / "run"
    summary = run_here(run, [*SMALL_MLP, "strategy=hoag", "n_trials=4", "refit=false"])
    fixed = ["strategy=fixed", f"strategy.params_file={run / 'best.yaml'}", "strategy.weights=retrain"]
    retrained = run_here(tmp_path / "retrain", [*SMALL_MLP, "space=digits_gradient", *fixed])
    assert not math.isclose(retrained["best"]["value"], summary["best"]["value"], rel_tol=1e-3)


@pytest.mark.slow
def test_a_black_box_mlp_run_saves_weights_that_reproduce_its_best_trial(tmp_path: Path) -> None:
    run = tmp_path / "run"
    summary = run_here(run, [*SMALL_MLP, "strategy=random", "n_trials=3"])
    assert summary["best_model"] == BEST_MODEL
    with np.load(run / BEST_MODEL) as data:  # what a user does: one line
        theta, meta = data["theta"], json.loads(str(data["meta"]))
    assert meta["from_scratch"] is True and meta["trial"] == summary["best"]["trial"]
    sizes = meta["layer_sizes"]
    assert sizes == [64, summary["best"]["params"]["hidden"], 10] and theta.size == meta["n_params"]
    task = DigitsTask(seed=0, hidden=16, inner_steps=10, epochs=2)
    val = task.splits()[1]
    logits = mlp_logits(torch.as_tensor(theta), val.X, sizes, meta["activation"])
    accuracy = float((logits.argmax(1) == val.y).double().mean())
    assert accuracy == pytest.approx(summary["best"]["value"], abs=1e-12)
    # the refit of a black-box best trains the same configuration again from θ0: the same numbers
    refit = summary["refit"]
    assert "torch.optim" in refit["protocol"]
    assert refit["val_accuracy"] == summary["best"]["value"]
    assert refit["test_accuracy"] == summary["best"]["metrics"]["test_accuracy"]


def test_scikit_learn_tasks_save_their_coefficients(tmp_path: Path) -> None:
    run = tmp_path / "run"
    summary = run_here(run, ["task=ridge", "strategy=sobol", "n_trials=4"])
    model = read_model(run / BEST_MODEL)
    assert model.arrays["coef"].shape == (10,) and model.meta["alpha"] == summary["best"]["params"]["alpha"]
    assert summary["refit"]["val_mse"] == summary["best"]["value"]


def test_the_loop_keeps_the_best_trial_s_weights_only(tmp_path: Path) -> None:
    values = iter([3.0, 1.0, 2.0, 1.0, 5.0])  # trial 3 ties trial 1: the earlier one stays

    def objective(params: Any, budget: Any, request: Any) -> Evaluation:
        value = next(values)
        model = TrainedModel({"theta": np.full(3, params["x"])}, {"kind": "test"})
        return Evaluation(value, {}, model=model)

    from hpo_cli.strategies.random_search import RandomStrategy

    space = make_space({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    store = RunStore(tmp_path)
    records = StudyLoop(RandomStrategy(space, 0, 5), objective, store, Budget(5)).run().records
    model = read_model(tmp_path / BEST_MODEL)
    assert model.meta["trial"] == 1
    np.testing.assert_array_equal(model.arrays["theta"], np.full(3, records[1].params["x"]))


def test_a_damaged_weights_file_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "best.yaml").write_text("x: 0.5\n")
    (tmp_path / BEST_MODEL).write_bytes(b"not a zip file")
    space = make_space({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    with pytest.raises(ConfigError, match=r"strategy\.weights"):
        FixedStrategy(space, 0, 1, params_file=str(tmp_path / "best.yaml"))
    with pytest.raises(ConfigError, match=r"strategy\.weights"):
        FixedStrategy(space, 0, 1, params={"x": 0.5}, weights=str(tmp_path / "missing.npz"))
    assert FixedStrategy(space, 0, 1, params_file=str(tmp_path / "best.yaml"), weights="retrain").model_file is None


def test_weights_of_other_parameters_are_not_scored(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    from hpo_cli.trial import TrialRecord, TrialState

    record = TrialRecord(0, TrialState.COMPLETE, {"x": 0.25}, 1.0)
    store.write_model(record, TrainedModel({"theta": np.zeros(2)}, {}, from_scratch=False))
    (tmp_path / "best.yaml").write_text("x: 0.5\n")
    space = make_space({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    assert FixedStrategy(space, 0, 1, params_file=str(tmp_path / "best.yaml")).model_file is None
    (tmp_path / "best.yaml").write_text("x: 0.25\n")
    assert FixedStrategy(space, 0, 1, params_file=str(tmp_path / "best.yaml")).model_file is not None


def test_a_prior_s_refit_is_its_own_inner_training_from_theta0() -> None:
    """A space of log precisions refits with the inner SGD it was tuned under (what random search
    over it sees): the refit is the trial's evaluation, and the prior changes it."""
    task = DigitsTask(seed=1, hidden=16, inner_steps=10, training="bilevel")
    n_tensors = task.model().tensors.count
    params = {"log_precision": [5.0] * n_tensors}
    refit = task.refit(params)
    assert refit is not None and refit["protocol"].startswith("inner SGD from θ0")
    evaluated = task.evaluate(params)
    assert refit["val_loss"] == evaluated.value and refit["test_accuracy"] == evaluated.metrics["test_accuracy"]
    weaker = task.refit({"log_precision": [-5.0] * n_tensors})
    assert weaker is not None and weaker["val_loss"] != refit["val_loss"]


def test_the_summary_box_shows_headline_numbers_first() -> None:
    metrics = {"cleaning_f1": 0.5, "test_accuracy_pnoise_0.01": 0.7, "test_accuracy": 0.75, "final_test_accuracy": 0.88}
    assert list(headline_first(metrics)) == [
        "final_test_accuracy",
        "test_accuracy",
        "cleaning_f1",
        "test_accuracy_pnoise_0.01",
    ]


def test_a_task_declared_headline_comes_first_in_its_order() -> None:
    metrics = {"val_accuracy": 0.8, "cleaning_auc": 0.9, "test_accuracy": 0.75, "final_test_accuracy": 0.88, "n": 3}
    assert list(headline_first(metrics, ("cleaning_auc", "final_test_accuracy", "absent"))) == [
        "cleaning_auc",
        "final_test_accuracy",
        "test_accuracy",
        "val_accuracy",
        "n",
    ]


def test_learning_rates_refit_with_their_own_inner_training() -> None:
    """log_lr means nothing to Adam: a space with learning rates refits with the inner SGD from
    θ0, the training random search over that space sees (so the refit is its evaluation)."""
    task = DigitsTask(seed=2, hidden=16, inner_steps=10, lr_stages=2, training="bilevel")
    n = task.dimensions()["n_schedule"]
    params = {"log_lr": [-2.0] * n, "log_precision": [0.0] * task.model().tensors.count}
    refit = task.refit(params)
    assert refit is not None and refit["protocol"].startswith("inner SGD from θ0")
    evaluated = task.evaluate(params).metrics
    assert refit["val_loss"] == evaluated["val_loss"] and refit["test_accuracy"] == evaluated["test_accuracy"]


def test_precisions_at_the_inner_optimum_refit_at_the_optimum_solved_from_theta0() -> None:
    """task.inner=optimum (HOAG's default space): a trial's θ is the optimum of the training loss
    with the prior, solved from θ0, for any strategy; the refit solves it again from θ0, so it is
    the trial's evaluation, and the optimum beats inner_steps of SGD on the training loss."""
    task = DigitsTask(seed=3, hidden=16, inner_steps=30, training="bilevel", inner="optimum")
    params = {"log_precision": [1.0] * task.model().tensors.count}
    refit = task.refit(params)
    assert refit is not None and refit["protocol"].startswith("the inner optimum")
    evaluated = task.evaluate(params)
    assert refit["val_loss"] == evaluated.value and refit["test_accuracy"] == evaluated.metrics["test_accuracy"]
    trained = DigitsTask(seed=3, hidden=16, inner_steps=30, training="bilevel").evaluate(params)
    assert evaluated.cost["inner_steps"] > 0 and evaluated.value != trained.value


def test_an_unknown_inner_problem_is_one_config_error() -> None:
    with pytest.raises(ConfigError, match=r"task\.inner"):
        DigitsTask(seed=0, hidden=16, training="bilevel", inner="converged")
