"""Every option of every config group composes and builds; every config file is packaged."""

from __future__ import annotations

import tomllib

import pytest
from conftest import CONF, REPO
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from hpo_cli.app import register_resolvers
from hpo_cli.run import build_space, build_strategy, build_task
from hpo_cli.settings import read_settings

# What an option needs beyond its defaults to be buildable.
EXTRA = {
    ("task", "function"): ["task.fn=builtins.len", "space=polynomial_shared"],
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
}


def options(group: str) -> list[str]:

    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def composed(overrides: list[str]) -> DictConfig:
    register_resolvers()
    with initialize_config_module("hpo_cli.conf", version_base="1.3"):
        return compose("config", overrides=overrides)


CASES = [(g, o) for g in ("task", "space", "strategy") for o in options(g)]


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_option_composes_and_builds(group: str, option: str) -> None:
    overrides = [f"{group}={option}", *EXTRA.get((group, option), [])]
    if group == "space":
        overrides = [f"task={SPACE_TASK.get(option, option)}", f"space={option}"]
        if option == "function":
            overrides = ["task=function", "task.fn=builtins.len", "space=polynomial"]
    cfg = composed(overrides)
    settings = read_settings(cfg)
    task = build_task(cfg.task, "cpu")
    space = build_space(cfg.space, task)
    strategy = build_strategy(cfg.strategy, space, settings)
    (suggestion,) = strategy.ask(1)
    assert space.contains(suggestion.params)
    value = task.evaluate(suggestion.params).value
    assert isinstance(value, float) and value == value


def test_the_default_space_follows_the_task() -> None:
    for task in ("ridge", "lasso", "linear", "polynomial"):
        assert composed([f"task={task}"]).space == composed([f"task={task}", f"space={task}"]).space


def test_every_config_folder_is_packaged() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {p.parent for p in CONF.rglob("*.yaml")}
    packaged = {
        CONF.joinpath(*name.split(".")[2:])
        for name in setuptools["packages"]
        if name.startswith("hpo_cli.conf")
    }
    assert folders <= packaged, sorted(str(f.relative_to(REPO)) for f in folders - packaged)
    for folder in folders:
        name = ".".join(["hpo_cli", "conf", *folder.relative_to(CONF).parts])
        assert setuptools["package-data"].get(name) == ["*.yaml"], name


def test_every_strategy_module_joins_the_contract_suite() -> None:
    from strategy_cases import STRATEGIES

    covered = {case.name for case in STRATEGIES} | {
        "fixed"
    }  # fixed: one given point, tested in CLI
    assert covered == set(options("strategy")), set(options("strategy")) - covered
