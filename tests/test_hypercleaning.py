"""Data hyper-cleaning (Franceschi 2017): task=hypercleaning on the softmax task's data and split
sizes, the three arms,
the L1-budget normalization, the retraining on train + validation, the detection scores, and
the ``hypercleaning_franceschi2017`` preset. Small sizes and few steps throughout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import Hpo

from hpo_cli.build import compose_config, compose_study
from hpo_cli.errors import ConfigError
from hpo_cli.request import HypergradRequest
from hpo_cli.runner import run_in_memory
from hpo_cli.strategies.fixed import FixedStrategy
from hpo_cli.strategies.gradient import GradientStrategy
from hpo_cli.tasks.data.idx import write_idx
from hpo_cli.tasks.data.mnist import FILES, load_mnist
from hpo_cli.tasks.hypercleaning import HyperCleaningTask, cleaning_scores, gap_closed, l1_radius
from hpo_cli.tasks.softmax import SoftmaxTask

PRESET = "experiment=hypercleaning_franceschi2017"
TINY = ["task.n_train=60", "task.n_val=60", "task.n_test=60", "task.inner_steps=3"]
SMALL = {"n_train": 80, "n_val": 40, "n_test": 50, "label_noise": 0.25, "inner_steps": 5, "inner_lr": 0.1}
REVERSE = HypergradRequest.of("reverse", {})


def small(**kwargs: object) -> HyperCleaningTask:
    return HyperCleaningTask(seed=3, **{**SMALL, **kwargs})  # type: ignore[arg-type]


def with_weights(task: HyperCleaningTask, weights: np.ndarray) -> dict[str, list[float]]:
    assert len(weights) == task.dimensions()["n_train"]
    return {"example_weights": [float(w) for w in weights]}


def write_mnist(folder: Path, n_train: int, n_test: int) -> None:
    """Four small IDX files: each class a bright row on a noisy background."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        images[np.arange(n), 2 * labels + 4, 4:24] = 255
        write_idx(folder / FILES[f"{part}_images"], images)
        write_idx(folder / FILES[f"{part}_labels"], labels)


# -- the preset ------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_preset_composes_to_the_scaled_protocol_on_the_bundled_subset() -> None:
    cfg = compose_config([PRESET])
    assert cfg.n_trials == 200 and cfg.dtype == "float32" and cfg.task.data == "mnist" and cfg.task.data_dir is None
    assert (cfg.task.n_train, cfg.task.n_val, cfg.task.n_test) == (5000, 5000, 10000)
    assert cfg.task.cleaning == "learned" and cfg.task.l1_budget == "clean" and cfg.task.retrain is True
    assert cfg.strategy.lr == 0.005 and cfg.strategy.outer == "adam" and cfg.strategy.method == "reverse"
    study = compose_study([PRESET])
    task, strategy = study.task, study.strategy
    assert isinstance(task, HyperCleaningTask) and isinstance(strategy, GradientStrategy)
    # the paper's 5,000/5,000/10,000 scaled by 5,000/20,000 to the bundled 5,000 images
    assert (len(task.train.y), len(task.val.y), len(task.test.y)) == (1250, 1250, 2500)
    assert len(task.flipped) == 625 and task.radius == 625.0
    assert strategy.budgets == {"example_weights": 625.0} and study.space.dim == 1250
    assert task.problem(task.layout_of({"example_weights": [0.5] * 1250})).optimizer.lr == pytest.approx(0.2)


@pytest.mark.parametrize("cleaning", ["oracle", pytest.param("baseline", marks=pytest.mark.slow)])
def test_the_references_are_one_evaluation(cleaning: str) -> None:
    records = run_in_memory([PRESET, f"task.cleaning={cleaning}", *TINY])
    assert len(records) == 1 and records[0].state == "complete"
    metrics = records[0].metrics
    assert {"final_test_accuracy", "test_accuracy", "cleaning_f1"} <= set(metrics)
    assert metrics["cleaning_f1"] == (1.0 if cleaning == "oracle" else 0.0)


def test_the_run_summary_shows_the_final_test_accuracy_first(hpo: Hpo, tmp_path: Path) -> None:
    """The number to compare with the paper leads summary.json's best metrics and the console
    box, then the rank-based detection scores: the task declares them (Task.headline)."""
    res = hpo("run", PRESET, "n_trials=2", *TINY)
    assert res.returncode == 0, res.output
    (path,) = (tmp_path / "runs").glob("**/summary.json")
    summary = json.loads(path.read_text())
    headline = ["final_test_accuracy", "cleaning_precision_at_r", "cleaning_auc"]
    assert summary["headline"] == headline
    assert list(summary["best"]["metrics"])[:3] == headline
    row = res.output[res.output.index("its metrics") :].split()
    assert [word for word in row if word != "│"][2].startswith("final_test_accuracy=")


def test_a_learned_run_records_the_final_accuracy_and_the_detection_scores() -> None:
    records = run_in_memory([PRESET, "n_trials=3", *TINY])
    assert len(records) == 3 and all(r.state == "complete" for r in records)
    for r in records:
        assert {"final_test_accuracy", "cleaning_precision", "cleaning_recall", "cleaning_f1"} <= set(r.metrics)
        assert sum(r.params["example_weights"]) <= 30 + 1e-9  # ‖λ‖₁ ≤ R = the 30 clean examples
    assert records[1].params != records[0].params  # the weights moved


def test_the_paper_sizes_with_the_idx_files(tmp_path: Path) -> None:
    write_mnist(tmp_path, n_train=10_000, n_test=10_000)
    study = compose_study([PRESET, f"task.data_dir={tmp_path}"])
    task, strategy = study.task, study.strategy
    assert isinstance(task, HyperCleaningTask) and isinstance(strategy, GradientStrategy)
    assert (len(task.train.y), len(task.val.y), len(task.test.y)) == (5000, 5000, 10000)
    assert len(task.flipped) == 2500 and strategy.budgets == {"example_weights": 2500.0}


def test_idx_files_give_train_and_validation_from_the_training_file_and_test_from_t10k(tmp_path: Path) -> None:
    write_mnist(tmp_path, n_train=200, n_test=50)
    task = HyperCleaningTask(data="mnist", data_dir=str(tmp_path), n_train=60, n_val=40, n_test=30, label_noise=0.5)
    assert (len(task.train.y), len(task.val.y), len(task.test.y)) == (60, 40, 30) and len(task.flipped) == 30
    t10k = load_mnist(tmp_path).X_test
    assert t10k is not None
    matches = (task.test.X[:, None, :] == torch.as_tensor(t10k, dtype=task.dtype)[None]).all(-1).sum(1)
    assert bool((matches == 1).all()), "every test example is one of the t10k images"
    ev = task.evaluate(with_weights(task, np.full(60, 0.5)), None, REVERSE)
    assert np.isfinite(ev.value) and ev.gradient is not None and len(ev.gradient) == 60


def test_idx_sizes_that_do_not_fit_are_refused_without_scale_to_fit(tmp_path: Path) -> None:
    write_mnist(tmp_path, n_train=100, n_test=20)
    with pytest.raises(ConfigError) as err:
        SoftmaxTask(data="mnist", data_dir=str(tmp_path), n_train=80, n_val=40)
    assert err.value.key == "task.n_train" and "scale_to_fit" in err.value.reason
    with pytest.raises(ConfigError, match=r"task\.data_dir"):
        SoftmaxTask(data="mnist", data_dir=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"task\.data_dir"):
        SoftmaxTask(data_dir=str(tmp_path))  # IDX files are MNIST's


# -- task=hypercleaning, split from task=softmax ---------------------------------------------------

# Recorded on main at 3faf03b, when SoftmaxTask held the hyper-cleaning options too: (value, the
# hypergradient's sum, its first entry, test accuracy, final_test_accuracy, cleaning_auc).
BEFORE_THE_SPLIT = {
    "learned": (1.191062135920284, -0.5171669346879153, 0.01973275773705535, 0.66, 0.86, 0.42583333333333334),
    "oracle": (0.7683489944305554, 0.0, 0.0, 0.84, 0.96, 1.0),
    "baseline": (0.9872816206610097, 0.0, 0.0, 0.72, 0.86, 0.5),
}
SIZES = {"n_train": 80, "n_val": 40, "n_test": 50, "inner_steps": 20}


@pytest.mark.parametrize("cleaning", sorted(BEFORE_THE_SPLIT))
def test_the_split_keeps_the_numbers_of_the_combined_task(cleaning: str) -> None:
    task = HyperCleaningTask(seed=3, label_noise=0.25, cleaning=cleaning, l1_budget="clean", retrain=True, **SIZES)
    lam = {"example_weights": [float(x) for x in np.linspace(0.05, 0.95, 80)]}
    ev = task.evaluate(lam, None, REVERSE)
    assert ev.gradient is not None
    m = ev.metrics
    got = (ev.value, sum(ev.gradient), ev.gradient[0], m["test_accuracy"], m["final_test_accuracy"], m["cleaning_auc"])
    assert got == pytest.approx(BEFORE_THE_SPLIT[cleaning], rel=1e-9, abs=1e-12)


def test_plain_softmax_keeps_its_numbers_and_has_no_hyper_cleaning_options() -> None:
    ev = SoftmaxTask(seed=3, **SIZES).evaluate({"log_precision": 0.5}, None, REVERSE)  # type: ignore[arg-type]
    assert ev.gradient is not None
    got = (ev.value, ev.gradient[0], ev.metrics["test_accuracy"])
    assert got == pytest.approx((0.7089921167442315, 0.14755702881767102, 0.84), rel=1e-9)
    assert not any(k.startswith("cleaning") or k == "final_test_accuracy" for k in ev.metrics)
    with pytest.raises(ConfigError) as err:
        SoftmaxTask(label_noise=0.3)
    assert err.value.key == "task.label_noise" and "task=hypercleaning" in err.value.reason


@pytest.mark.parametrize("option", ["task.label_noise=0.3", "+task.cleaning=oracle", "task.l1_budget=clean"])
def test_a_hyper_cleaning_option_on_task_softmax_is_one_line_naming_it(hpo_refusal: Hpo, option: str) -> None:
    res = hpo_refusal("run", "task=softmax", option)
    assert res.returncode == 2, res.output
    key = option.lstrip("+").split("=")[0]
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"hpo: error: {key}=") and "task=hypercleaning" in line, line
    assert "Traceback" not in res.output


def test_task_hypercleaning_composes_with_its_spaces() -> None:
    cfg = compose_config(["task=hypercleaning"])
    assert set(cfg.space.params) == {"example_weights"} and cfg.task.label_noise == 0.5
    assert "label_noise" not in compose_config(["task=softmax"]).task
    for strategy in ("reverse", "hoag"):
        assert set(compose_config([f"strategy={strategy}", "task=hypercleaning"]).space.params) == {"example_weights"}


# -- split sizes and label noise --------------------------------------------------------------


def test_split_sizes_and_flipped_labels_are_as_configured() -> None:
    noisy, clean = small(), small(label_noise=0.0)
    assert (len(noisy.train.y), len(noisy.val.y), len(noisy.test.y)) == (80, 40, 50)
    assert len(noisy.flipped) == 20 and len(noisy.clean) == 60
    changed = np.flatnonzero((noisy.train.y != clean.train.y).numpy())
    np.testing.assert_array_equal(changed, noisy.flipped)  # every flipped label is a wrong class
    assert torch.equal(noisy.train.X, clean.train.X) and torch.equal(noisy.val.y, clean.val.y)


def test_default_sizes_keep_the_fractions_and_scale_to_fit_keeps_the_ratios() -> None:
    default = SoftmaxTask(seed=0)
    assert (len(default.train.y), len(default.val.y), len(default.test.y)) == (899, 449, 449)
    scaled = SoftmaxTask(n_train=1000, n_val=1000, n_test=2000, scale_to_fit=True, inner_steps=2)
    assert (len(scaled.train.y), len(scaled.val.y), len(scaled.test.y)) == (449, 449, 898)  # × 1797/4000
    with pytest.raises(ConfigError) as err:
        SoftmaxTask(n_train=1000, n_val=1000, n_test=2000)
    assert err.value.key == "task.n_train"
    with pytest.raises(ConfigError, match=r"task\.n_val"):
        SoftmaxTask(n_val=0)


# -- the three arms ---------------------------------------------------------------------------


def test_each_arm_trains_on_its_examples() -> None:
    learned, oracle, baseline = (small(cleaning=c) for c in ("learned", "oracle", "baseline"))
    assert torch.equal(learned.model().train.X, learned.train.X)
    assert torch.equal(baseline.model().train.X, baseline.train.X)
    assert torch.equal(oracle.model().train.y, oracle.train.y[torch.as_tensor(oracle.clean)])
    assert oracle.model().n == 60 and oracle.dimensions()["n_train"] == 80  # one weight per training example


def test_oracle_is_the_learned_training_at_the_clean_indicator_with_budget_clean() -> None:
    """With R = the clean count, lr·N/R on mean(λℓ) at λ = 1[clean] is plain training on the clean ones."""
    learned, oracle = small(l1_budget="clean"), small(cleaning="oracle", l1_budget="clean")
    indicator = np.ones(80)
    indicator[learned.flipped] = 0.0
    a = learned.evaluate(with_weights(learned, indicator), None, REVERSE)
    b = oracle.evaluate(with_weights(oracle, np.full(80, 0.3)), None, REVERSE)
    c = oracle.evaluate(with_weights(oracle, np.full(80, 0.9)), None, REVERSE)
    assert a.value == pytest.approx(b.value, rel=1e-10) and b.value == c.value  # λ plays no part in the oracle
    assert b.gradient == [0.0] * 80 and b.metrics["test_accuracy"] == a.metrics["test_accuracy"]
    assert b.metrics["cleaning_f1"] == 1.0 and a.metrics["cleaning_f1"] == 1.0


def test_baseline_is_the_learned_training_at_weight_one_without_a_budget() -> None:
    learned, baseline = small(), small(cleaning="baseline")
    a = learned.evaluate(with_weights(learned, np.ones(80)), None, REVERSE)
    b = baseline.evaluate(with_weights(baseline, np.zeros(80)), None, REVERSE)
    assert a.value == pytest.approx(b.value, rel=1e-10) and b.metrics["cleaning_recall"] == 0.0


def test_the_budget_normalizes_the_inner_step() -> None:
    task = small(l1_budget=16)
    assert task.problem(task.layout_of(with_weights(task, np.ones(80)))).optimizer.lr == pytest.approx(0.1 * 80 / 16)
    assert task.problem(task.layout_of({"log_precision": 0.0})).optimizer.lr == 0.1  # no example weights
    assert small(l1_budget="clean").radius == 60.0 and l1_radius(None, 80, 0.25, "k") is None
    with pytest.raises(ConfigError, match=r"task\.l1_budget"):
        small(l1_budget="all")


def test_references_refuse_hypergradients_for_other_hyperparameters() -> None:
    oracle = small(cleaning="oracle")
    with pytest.raises(ConfigError) as err:
        oracle.check_hypergradient(REVERSE, ["example_weights", "log_precision"])
    assert err.value.key == "task.cleaning"
    ev = oracle.evaluate({"log_precision": 1.0, **with_weights(oracle, np.ones(80))})  # black box: applied
    assert np.isfinite(ev.value) and ev.gradient is None


# -- retraining and the detection scores -----------------------------------------------------


def test_the_retraining_uses_train_and_validation_with_weight_max_lambda() -> None:
    task = small(l1_budget="clean", retrain=True)
    lam = np.linspace(0.0, 0.8, 80)
    split, weights = task.final_training_set(with_weights(task, lam))
    assert torch.equal(split.X, torch.cat([task.train.X, task.val.X]))
    assert torch.equal(split.y, torch.cat([task.train.y, task.val.y]))
    np.testing.assert_allclose(weights, np.concatenate([lam, np.full(40, 0.8)]))
    oracle_split, oracle_weights = small(cleaning="oracle").final_training_set({})
    assert len(oracle_split.y) == 60 + 40 and (oracle_weights == 1).all()


def test_the_retrained_learned_model_at_the_clean_indicator_is_the_oracle_one() -> None:
    learned, oracle = (small(cleaning=c, l1_budget="clean", retrain=True) for c in ("learned", "oracle"))
    indicator = np.ones(80)
    indicator[learned.flipped] = 0.0
    a = learned.evaluate(with_weights(learned, indicator), None, REVERSE).metrics["final_test_accuracy"]
    b = oracle.evaluate(with_weights(oracle, np.ones(80)), None, REVERSE).metrics["final_test_accuracy"]
    assert a == b
    baseline = small(cleaning="baseline", l1_budget="clean", retrain=True)
    c = baseline.evaluate(with_weights(baseline, np.ones(80))).metrics["final_test_accuracy"]
    assert c == learned.final_test_accuracy(with_weights(learned, np.ones(80)))


def test_precision_recall_f1_against_a_hand_computed_case() -> None:
    weights = np.array([0.0, 0.5, 0.0, 1.0, 0.0009, 1.0, 0.001])
    flipped = np.array([0, 1, 3])
    # discarded (< 1e-3): {0, 2, 4}; flipped {0, 1, 3}; hits {0}
    scores = cleaning_scores(weights, flipped)
    assert {k: scores[k] for k in ("cleaning_precision", "cleaning_recall", "cleaning_f1")} == pytest.approx(
        {"cleaning_precision": 1 / 3, "cleaning_recall": 1 / 3, "cleaning_f1": 1 / 3}
    )
    weights[[1, 2, 4]] = [0.0, 1.0, 1.0]  # discarded {0, 1}: precision 1, recall 2/3, F1 0.8
    scores = cleaning_scores(weights, flipped)
    assert {k: scores[k] for k in ("cleaning_precision", "cleaning_recall", "cleaning_f1")} == pytest.approx(
        {"cleaning_precision": 1.0, "cleaning_recall": 2 / 3, "cleaning_f1": 0.8}
    )
    scores = cleaning_scores(np.ones(7), flipped)  # nothing discarded; every rank tied: chance level
    assert scores == {
        "cleaning_precision": 0.0,
        "cleaning_recall": 0.0,
        "cleaning_f1": 0.0,
        "cleaning_precision_at_r": pytest.approx(3 / 7),  # the noise fraction: chance
        "cleaning_auc": 0.5,
    }


def test_rank_based_detection_scores_against_a_hand_computed_case() -> None:
    weights = np.array([0.2, 0.9, 0.4, 0.3, 0.8, 0.5])
    flipped = np.array([0, 1, 4])
    # the R = 3 lowest weights: examples 0, 3, 2, of which 0 is flipped: precision at R 1/3;
    # AUC: the (flipped, clean) pairs where the flipped weight is lower: (0, 2), (0, 3), (0, 5)
    # of 9 pairs: 1/3
    scores = cleaning_scores(weights, flipped)
    assert scores["cleaning_precision_at_r"] == pytest.approx(1 / 3)
    assert scores["cleaning_auc"] == pytest.approx(1 / 3)
    weights[3] = 0.2  # tied with example 0 at the lowest: still rank 1-2, precision at R 1/3;
    # the pair (0, 3) counts half: AUC 2.5/9
    scores = cleaning_scores(weights, flipped)
    assert scores["cleaning_precision_at_r"] == pytest.approx(1 / 3)
    assert scores["cleaning_auc"] == pytest.approx(2.5 / 9)


def test_the_gap_closed_is_the_share_of_the_baseline_to_oracle_distance() -> None:
    assert gap_closed(88.48, 83.96, 89.12) == pytest.approx(4.52 / 5.16)
    assert gap_closed(90.07, 87.74, 90.46) == pytest.approx(0.857, abs=1e-3)  # the paper's DH-R
    assert gap_closed(89.0, 84.0, 89.0) == 1.0 and gap_closed(84.0, 84.0, 89.0) == 0.0
    assert gap_closed(83.0, 84.0, 89.0) == pytest.approx(-0.2)
    assert np.isnan(gap_closed(85.0, 84.0, 84.0))


def test_rank_based_detection_scores_mean_something_before_any_weight_is_discarded() -> None:
    """Weights far above the 1e-3 cut-off: F1 is 0, precision at R and the AUC already see the
    flipped examples sinking; the AUC equals scikit-learn's roc_auc_score."""
    from sklearn.metrics import roc_auc_score

    weights = np.array([0.61, 0.93, 0.58, 0.97, 0.6, 0.95, 0.61, 0.9])
    flipped = np.array([0, 2, 4, 6])
    scores = cleaning_scores(weights, flipped)
    assert scores["cleaning_f1"] == 0.0
    assert scores["cleaning_precision_at_r"] == 1.0 and scores["cleaning_auc"] == 1.0
    rng = np.random.default_rng(0)
    for _ in range(20):
        w = rng.choice([0.2, 0.5, 0.7, 1.0], size=30)  # many ties
        f = rng.choice(30, size=9, replace=False)
        truth = np.zeros(30, dtype=bool)
        truth[f] = True
        got = cleaning_scores(w, f)
        assert got["cleaning_auc"] == pytest.approx(roc_auc_score(truth, -w), abs=1e-12)
        tie_breaks = [np.lexsort((rng.random(30), w))[:9] for _ in range(4000)]  # random among equal weights
        expected = np.mean([truth[lowest].mean() for lowest in tie_breaks])
        assert got["cleaning_precision_at_r"] == pytest.approx(expected, abs=0.01)


# -- bad input ----------------------------------------------------------------------------------


def test_a_bad_cleaning_value_names_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        HyperCleaningTask(cleaning="magic")
    assert err.value.key == "task.cleaning" and "learned, oracle, baseline" in err.value.reason
    with pytest.raises(ConfigError) as err:
        compose_study([PRESET, "task.cleaning=magic"])
    assert err.value.key == "task.cleaning"


def test_a_bad_cleaning_value_is_one_error_line_with_exit_code_2(hpo: Hpo, tmp_path: Path) -> None:
    res = hpo("run", PRESET, "task.cleaning=magic")
    assert res.returncode == 2, res.output
    assert res.stderr.strip() == "hpo: error: task.cleaning='magic': must be one of learned, oracle, baseline"
    assert "Traceback" not in res.output and not list((tmp_path / "runs").glob("20*/*"))


@pytest.mark.slow
def test_a_reference_run_stops_on_its_zero_hypergradient() -> None:
    study = compose_study([PRESET, "task.cleaning=baseline", *TINY])
    assert isinstance(study.strategy, GradientStrategy)
    (suggestion,) = study.strategy.ask(1)
    assert suggestion.params["example_weights"] == [0.5] * 60
    evaluation = study.task.evaluate(suggestion.params, request=suggestion.request)
    assert evaluation.gradient is not None and not any(evaluation.gradient)


@pytest.mark.slow
def test_strategy_fixed_over_the_preset_re_evaluates_a_best_yaml(tmp_path: Path) -> None:
    best = tmp_path / "best.yaml"
    best.write_text(yaml.safe_dump({"example_weights": [0.0] * 30 + [1.0] * 30}))
    study = compose_study([PRESET, "strategy=fixed", f"strategy.params_file={best}", *TINY])
    assert isinstance(study.strategy, FixedStrategy)
    (suggestion,) = study.strategy.ask(1)
    assert suggestion.params["example_weights"] == [0.0] * 30 + [1.0] * 30
