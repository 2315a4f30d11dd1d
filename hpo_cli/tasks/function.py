"""Any importable Python function as a task: ``task=function task.fn=my_module.my_objective``.

The function takes the parameter dict and returns a float, or a dict of metrics in which
``task.metric`` (default ``value``) is the objective. The current directory is importable, as
with ``python -m``.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hpo_cli.errors import ConfigError
from hpo_cli.tasks.base import DIRECTIONS, Task
from hpo_cli.trial import Evaluation, Request


def import_callable(path: str, key: str) -> Callable[..., Any]:
    """``"pkg.module.attr"`` or ``"pkg.module:attr"`` -> the object, or a ConfigError."""
    if not isinstance(path, str) or not path:
        raise ConfigError(key, path, "expected 'module.function' (e.g. my_module.my_objective)")
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(key, path, "expected 'module.function' (e.g. my_module.my_objective)")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(key, path, f"cannot import module {module_name!r} ({exc})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(key, path, f"module {module_name!r} has no callable {attr!r}")
    return fn


class FunctionTask(Task):
    name = "function"

    def __init__(
        self,
        fn: str | None = None,
        direction: str = "minimize",
        metric: str = "value",
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        if fn is None:
            raise ConfigError("task.fn", fn, "set it to your objective, e.g. task.fn=my_module.f")
        if direction not in DIRECTIONS:
            raise ConfigError("task.direction", direction, "must be minimize or maximize")
        self.fn = import_callable(fn, "task.fn")
        self.direction = direction
        self.metric = metric
        self.name = fn.replace(":", ".").rsplit(".", 1)[-1]

    def evaluate(
        self, params: Mapping[str, Any], budget: float | None = None, request: Request | None = None
    ) -> Evaluation:
        out = self.fn(dict(params))
        if isinstance(out, Mapping):
            if self.metric not in out:
                raise KeyError(f"the objective returned {sorted(out)}, without {self.metric!r}")
            metrics = {str(k): _plain(v) for k, v in out.items()}
            return Evaluation(float(out[self.metric]), metrics)
        value = float(out)
        return Evaluation(value, {self.metric: value} if math.isfinite(value) else {})


def _plain(v: Any) -> Any:
    """Numbers (numpy, torch scalars too) become floats; everything else stays as it is."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return v
