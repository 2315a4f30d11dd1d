"""Every option of every config group composes and builds; every config file is packaged."""

from __future__ import annotations

import tomllib

import pytest
from conftest import CONF, REPO

from hpo_cli.errors import ConfigError
from hpo_cli.run import build_space, build_strategy, build_task
from hpo_cli.settings import read_settings
from hpo_cli.study import compose_config

# What an option needs beyond its defaults to be buildable.
EXTRA = {
    ("task", "function"): ["task.fn=builtins.len", "space=polynomial_shared"],
    ("task", "bilevel"): ["task.build=my_bilevel.build", "space=polynomial_shared"],
    ("strategy", "cmaes"): ["task=branin"],
    ("strategy", "hyperband"): ["task=digits", "task.max_epochs=3"],
    ("strategy", "successive_halving"): ["task=digits", "task.max_epochs=3"],
    ("strategy", "fixed"): ["+strategy.params={log_precision: 1.5}", "strategy.params_file=null"],
    ("strategy", "grid"): [],
}


# The task each space is made for, where the names differ.
SPACE_TASK = {
    "polynomial_shared": "polynomial",
    "polynomial_per_coef": "polynomial",
    "lr_momentum": "polynomial",
    "softmax_per_param": "softmax",
    "hypercleaning": "softmax",
    "ridge_log_precision": "ridge",
    "ridge_per_feature": "ridge",
}


def options(group: str) -> list[str]:

    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


# Spaces that only stand in for the user's own (task=function, task=bilevel).
PLACEHOLDERS = ("function", "bilevel")
CASES = [(g, o) for g in ("task", "space", "strategy") for o in options(g) if not (g == "space" and o in PLACEHOLDERS)]


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_option_composes_and_builds(group: str, option: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "examples"))  # my_bilevel.build for task=bilevel
    overrides = [f"{group}={option}", *EXTRA.get((group, option), [])]
    if group == "space":
        overrides = [f"task={SPACE_TASK.get(option, option)}", f"space={option}"]
    cfg = compose_config(overrides)
    settings = read_settings(cfg)
    task = build_task(cfg.task, "cpu")
    space = build_space(cfg.space, task)
    strategy = build_strategy(cfg.strategy, space, settings, task.fidelity)
    (suggestion,) = strategy.ask(1)
    assert space.contains(suggestion.params)
    value = task.evaluate(suggestion.params, suggestion.budget).value
    assert isinstance(value, float) and value == value


@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
def test_placeholder_spaces_ask_for_the_users_own(placeholder: str) -> None:
    cfg = compose_config(["task=polynomial", f"space={placeholder}"])
    with pytest.raises(ConfigError, match="the space defines no parameters; pick one with space=NAME"):
        build_space(cfg.space, build_task(cfg.task, "cpu"))


def test_the_default_space_follows_the_task() -> None:

    for task in ("ridge", "lasso", "linear", "polynomial"):
        assert compose_config([f"task={task}"]).space == compose_config([f"task={task}", f"space={task}"]).space


def test_every_config_folder_is_packaged() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {p.parent for p in CONF.rglob("*.yaml")}
    packaged = {
        CONF.joinpath(*name.split(".")[2:]) for name in setuptools["packages"] if name.startswith("hpo_cli.conf")
    }
    assert folders <= packaged, sorted(str(f.relative_to(REPO)) for f in folders - packaged)
    for folder in folders:
        name = ".".join(["hpo_cli", "conf", *folder.relative_to(CONF).parts])
        assert setuptools["package-data"].get(name) == ["*.yaml"], name


def test_every_strategy_module_joins_the_contract_suite() -> None:
    from strategy_cases import STRATEGIES

    covered = {case.name for case in STRATEGIES} | {"fixed"}  # fixed: one given point, tested in CLI
    assert covered == set(options("strategy")), set(options("strategy")) - covered
