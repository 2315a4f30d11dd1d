"""The options of hpo_cli's config groups (``conf/GROUP/NAME.yaml``, installed as ``hpo_cli.conf``)
and what they say about each other, read from the files: nothing here is a list kept by hand.

Light on purpose (no Hydra, no torch): error messages and the sweeper read it.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from hpo_cli.errors import ConfigError

# A gradient strategy's default space on task T is conf/space/T_gradient.yaml
# (``override /space@_global_.space: ${task}_gradient`` in conf/strategy/rmad.yaml), HOAG's
# conf/space/T_implicit.yaml (conf/strategy/hoag.yaml).
GRADIENT_SPACE_SUFFIX = "_gradient"
DEFAULT_SPACE_SUFFIXES = (GRADIENT_SPACE_SUFFIX, "_implicit")


def options(group: str, user_conf: Path | None = None) -> list[str]:
    """The options of ``group``, sorted: the packaged ones and, with ``user_conf``, the user's."""
    folder = importlib.resources.files("hpo_cli.conf") / group
    found = {p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")}
    if user_conf is not None and (user_conf / group).is_dir():
        found |= {p.stem for p in (user_conf / group).glob("*.yaml")}
    return sorted(found)


def differentiable_tasks(user_conf: Path | None = None) -> list[str]:
    """The task options that gradient strategies can run: those with a default gradient space."""
    spaces = set(options("space", user_conf))
    return [t for t in options("task", user_conf) if f"{t}{GRADIENT_SPACE_SUFFIX}" in spaces]


def a_differentiable_task() -> str:
    """For error lines: "a differentiable task (bilevel, digits, ...)"."""
    return f"a differentiable task ({', '.join(differentiable_tasks())})"


def gradient_space_task(missing_config: str | None) -> str | None:
    """The task whose default gradient space is ``missing_config`` (Hydra's ``group/option`` of a
    config it could not find), or None when that is not a gradient space."""
    group, _, option = (missing_config or "").partition("/")
    suffix = next((s for s in DEFAULT_SPACE_SUFFIXES if option.endswith(s)), None)
    if group != "space" or suffix is None:
        return None
    return option.removesuffix(suffix)


def tasks_with_option(key: str) -> list[str]:
    """The packaged task options whose file sets ``key`` (conf/task/NAME.yaml), sorted: where a
    key another task refuses belongs (e.g. task=hypercleaning's label_noise)."""
    import yaml

    folder = importlib.resources.files("hpo_cli.conf") / "task"
    found = []
    for name in options("task"):
        loaded = yaml.safe_load((folder / f"{name}.yaml").read_text(encoding="utf-8"))
        if isinstance(loaded, dict) and key in loaded:
            found.append(name)
    return found


def no_gradient_space(task: str) -> ConfigError:
    """The one-line refusal of a gradient strategy on a task without a default gradient space."""
    return ConfigError(
        "task",
        task,
        f"has no default space for gradient strategies (conf/space/<task>{GRADIENT_SPACE_SUFFIX}.yaml): "
        f"they need {a_differentiable_task()} or a space named with space=NAME",
    )
