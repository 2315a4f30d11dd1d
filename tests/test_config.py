"""Every option of every config group composes and builds; every config file is packaged."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import CONF, REPO

from hpo_cli.build import build_study, compose_config
from hpo_cli.errors import ConfigError

# What an option needs beyond its defaults to be buildable.
EXTRA = {
    ("task", "function"): ["task.fn=builtins.len", "space=polynomial_shared"],
    ("task", "bilevel"): ["task.build=my_bilevel.build", "space=polynomial_shared"],
    ("strategy", "cmaes"): ["task=branin"],
    ("strategy", "asha"): ["task=digits", "task.max_epochs=3"],
    ("strategy", "hyperband"): ["task=digits", "task.max_epochs=3"],
    ("strategy", "successive_halving"): ["task=digits", "task.max_epochs=3"],
    ("strategy", "fixed"): ["+strategy.params={log_precision: 1.5}", "strategy.params_file=null"],
    ("strategy", "grid"): [],
}


# Smaller budgets for the tasks that train a model: the test checks that an option builds and
# evaluates, not what training reaches (make test's time).
CHEAP = {
    "softmax": ["task.inner_steps=8"],
    "hypercleaning": ["task.inner_steps=8"],
    "digits": ["task.epochs=1", "task.inner_steps=8", "task.hidden=16", "task.param_noise=[]"],
    "mnist": ["task.epochs=1", "task.inner_steps=8", "task.hidden=16", "task.param_noise=[]"],
}

# The task each space is made for, where the names differ.
SPACE_TASK = {
    "polynomial_shared": "polynomial",
    "polynomial_per_coef": "polynomial",
    "lr_momentum": "polynomial",
    "softmax_per_param": "softmax",
    "hypercleaning": "hypercleaning",
    "ridge_log_precision": "ridge",
    "ridge_per_feature": "ridge",
    "ridge_evidence": "ridge",
    "polynomial_gradient": "polynomial",
    "ridge_gradient": "ridge",
    "softmax_gradient": "softmax",
    "hypercleaning_gradient": "hypercleaning",
    "hypercleaning_implicit": "hypercleaning",
    "digits_gradient": "digits",
    "mnist_gradient": "mnist",
    "polynomial_implicit": "polynomial",
    "ridge_implicit": "ridge",
    "softmax_implicit": "softmax",
    "digits_implicit": "digits",
    "mnist_implicit": "mnist",
    "mnist_per_layer": "digits",
    "mnist_per_param": "digits",
    "mnist_lr_schedule": "digits",
    "mnist_shared": "digits",
    "mnist_per_layer_lr": "digits",
}


def options(group: str) -> list[str]:

    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


# Spaces that only stand in for the user's own (task=function, task=bilevel).
PLACEHOLDERS = ("function", "bilevel", "bilevel_gradient", "bilevel_implicit")
GROUPS = ("task", "space", "strategy", "criterion")
CASES = [(g, o) for g in GROUPS for o in options(g) if not (g == "space" and o in PLACEHOLDERS)]
# Seconds each (a dense Newton solve over a precision per weight; MNIST's gradient spaces, whose
# task and black-box spaces stay): make test-slow.
SLOW_CASES = {("space", "softmax_per_param"), ("space", "mnist_gradient"), ("space", "mnist_implicit")}
PARAMS = [pytest.param(g, o, marks=pytest.mark.slow) if (g, o) in SLOW_CASES else (g, o) for g, o in CASES]


@pytest.mark.parametrize(("group", "option"), PARAMS, ids=[f"{g}={o}" for g, o in CASES])
def test_every_option_composes_and_builds(group: str, option: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "examples"))  # my_bilevel.build for task=bilevel
    overrides = [f"{group}={option}", *EXTRA.get((group, option), [])]
    if group == "space":
        overrides = [f"task={SPACE_TASK.get(option, option)}", f"space={option}"]
    task_option = next((o.split("=", 1)[1] for o in reversed(overrides) if o.startswith("task=")), "polynomial")
    study = build_study(compose_config([*overrides, *CHEAP.get(task_option, [])]))
    task, space, strategy = study.task, study.space, study.strategy
    (suggestion,) = strategy.ask(1)
    assert space.contains(suggestion.params)
    value = task.evaluate(suggestion.params, suggestion.budget).value
    assert isinstance(value, float) and value == value


@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
def test_placeholder_spaces_ask_for_the_users_own(placeholder: str) -> None:
    cfg = compose_config(["task=polynomial", f"space={placeholder}"])
    with pytest.raises(ConfigError, match="the space defines no parameters; pick one with space=NAME"):
        build_study(cfg)


def test_the_default_space_follows_the_task() -> None:

    for task in ("ridge", "lasso", "linear", "polynomial"):
        assert compose_config([f"task={task}"]).space == compose_config([f"task={task}", f"space={task}"]).space


def test_the_wheel_holds_every_package_and_config_file(tmp_path: Path) -> None:
    """Packages are discovered, not listed: a wheel (a non-editable install) holds every module
    of hpo_cli (the hypergradient engine once went missing) and every config YAML."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("hpo_cli-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    sources = {str(p.relative_to(REPO)) for p in (REPO / "hpo_cli").rglob("*.py") if p.parent.name != "conf"}
    sources = {s for s in sources if "__pycache__" not in s and not s.startswith("hpo_cli/conf/")}
    configs = {"hpo_cli/conf/" + str(p.relative_to(CONF)) for p in CONF.rglob("*.yaml")}
    assert sources and configs
    assert sources | configs <= shipped, sorted((sources | configs) - shipped)


def test_every_strategy_module_joins_the_contract_suite() -> None:
    from strategy_cases import STRATEGIES

    covered = {case.name for case in STRATEGIES} | {"fixed"}  # fixed: one given point, tested in CLI
    assert covered == set(options("strategy")), set(options("strategy")) - covered
