"""The wiring's own shape: what build.py imports and recognizes, the public API, the config files."""

from __future__ import annotations

import ast
import hashlib
import subprocess
import sys
from collections import defaultdict

import pytest
from conftest import CONF, REPO
from hydra.errors import HydraException, MissingConfigException

import hpo_cli
from hpo_cli.build import _evaluates_a_given_point, compose_config, missing_gradient_space
from hpo_cli.options import a_differentiable_task, differentiable_tasks, options
from hpo_cli.strategies.fixed import FixedStrategy


class RefitStrategy(FixedStrategy):
    """A user's own strategy that evaluates a given point, as FixedStrategy does."""


def test_build_does_not_import_the_loop_and_the_package_imports_nothing_heavy() -> None:
    code = (
        "import sys, hpo_cli\n"
        "assert 'torch' not in sys.modules and 'hpo_cli.build' not in sys.modules, 'hpo_cli imports eagerly'\n"
        "import hpo_cli.build\n"
        "assert 'hpo_cli.loop' not in sys.modules, 'build imports the loop'\n"
        "print('OK')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "OK", out.stderr


def test_the_public_api_is_what_mypy_sees_and_what_python_imports() -> None:
    """Every name of ``hpo_cli.__all__`` is imported under TYPE_CHECKING (so mypy and IDEs see
    it) from the module the lazy lookup imports it from, and resolves to that object."""
    tree = ast.parse((REPO / "hpo_cli" / "__init__.py").read_text())
    typed: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imported in node.body:
                assert isinstance(imported, ast.ImportFrom) and imported.module is not None
                typed.update({alias.name: imported.module for alias in imported.names})
    lazy = dict(hpo_cli._WHERE)
    assert typed == lazy and sorted(hpo_cli.__all__) == sorted(lazy)
    for name, module in lazy.items():
        assert getattr(hpo_cli, name) is getattr(__import__(module, fromlist=[name]), name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        hpo_cli.nope  # noqa: B018


def test_no_two_config_files_are_byte_identical() -> None:
    """A config shared by two options is inherited (a defaults list), not copied."""
    by_digest: dict[str, list[str]] = defaultdict(list)
    for path in sorted(CONF.rglob("*.yaml")):
        by_digest[hashlib.sha256(path.read_bytes()).hexdigest()].append(str(path.relative_to(CONF)))
    assert [names for names in by_digest.values() if len(names) > 1] == []


@pytest.mark.parametrize(
    ("copy", "original"),
    [
        (["task=digits", "space=digits"], ["task=digits", "space=mnist"]),
        (["task=digits", "space=digits_gradient"], ["task=digits", "space=mnist_gradient"]),
        (["task=digits", "space=mnist_lr_schedule"], ["task=mnist", "space=mnist_lr_schedule"]),
    ],
)
def test_inherited_configs_compose_to_their_originals(copy: list[str], original: list[str]) -> None:
    a, b = compose_config(copy), compose_config(original)
    assert a.space == b.space and a.task.get("lr_stages") == b.task.get("lr_stages")
    assert a.task.training == b.task.training


def test_the_differentiable_tasks_are_those_with_a_gradient_space() -> None:
    expected = ["bilevel", "digits", "hypercleaning", "mnist", "polynomial", "ridge", "softmax"]
    assert differentiable_tasks() == expected
    assert {f"{t}_gradient" for t in expected} <= set(options("space"))
    assert a_differentiable_task() == f"a differentiable task ({', '.join(expected)})"
    hand_written = "polynomial, ridge, softmax"
    sources = [p for p in (REPO / "hpo_cli").rglob("*.py") if hand_written in p.read_text()]
    assert sources == [], "the list is derived, never written by hand"


def test_a_missing_gradient_space_is_recognized_by_type_not_by_message() -> None:
    missing = MissingConfigException("any words at all", missing_cfg_file="space/branin_gradient")
    refusal = missing_gradient_space(missing)
    assert refusal is not None and (refusal.key, refusal.value) == ("task", "branin")
    assert "has no default space for gradient strategies" in refusal.reason
    assert missing_gradient_space(MissingConfigException("x", missing_cfg_file="space/my_space")) is None
    assert missing_gradient_space(MissingConfigException("x", missing_cfg_file="task/branin_gradient")) is None
    assert missing_gradient_space(HydraException("Could not find 'space/branin_gradient'")) is None


def test_a_strategy_that_evaluates_a_given_point_says_so_by_type() -> None:
    def strategy(target: str) -> object:
        return compose_config(["strategy=fixed", f"strategy._target_={target}"]).strategy

    assert _evaluates_a_given_point(strategy("hpo_cli.strategies.fixed.FixedStrategy"))
    assert _evaluates_a_given_point(strategy(f"{__name__}.RefitStrategy"))  # a subclass, another name
    assert not _evaluates_a_given_point(compose_config(["strategy=tpe"]).strategy)
    assert not _evaluates_a_given_point(strategy("no.such.Strategy"))
