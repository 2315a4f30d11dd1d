"""Evaluate one given configuration, e.g. the ``best.yaml`` of an earlier run.

``weights`` says what is evaluated: ``retrain`` trains the parameters again from θ0 (the
task's own training); a path scores the weights saved in that ``.npz`` file (a run's
``best_model.npz``) without training; ``auto`` (the default) scores the ``best_model.npz``
beside ``params_file`` when that run's best model cannot be trained again from θ0 (HOAG's
warm starts, greedy and rtho's one training run: ``from_scratch`` false in the file) and
belongs to these parameters, and retrains otherwise. So the value a run reports as its best is
the value ``strategy=fixed strategy.params_file=…/best.yaml`` gives back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hpo_cli.errors import ConfigError
from hpo_cli.space import SearchSpace
from hpo_cli.store import BEST_MODEL, read_model
from hpo_cli.strategies.base import Strategy
from hpo_cli.trial import Suggestion

log = logging.getLogger("hpo_cli")


class FixedStrategy(Strategy):
    """Suggests ``params`` (or the mapping in ``params_file``) once, then finishes."""

    given_point = True

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        n_trials: int,
        params: Mapping[str, Any] | None = None,
        params_file: str | None = None,
        weights: str = "auto",
    ) -> None:
        super().__init__(space, seed, n_trials)
        if (params is None) == (params_file is None):
            raise ConfigError("strategy.params", params, "give exactly one of params or params_file")
        if params_file is not None:
            path = Path(params_file).expanduser()
            if not path.is_file():
                raise ConfigError("strategy.params_file", params_file, "no such file")
            params = yaml.safe_load(path.read_text(encoding="utf-8"))
        self.params = _checked_point(params, space)
        self.model_file = _weights_file(weights, params_file, self.params)
        self._asked = False

    def _propose(self, n: int) -> list[Suggestion]:
        if self._asked:
            return []
        self._asked = True
        suggestion = self._suggest(dict(self.params), self.space.encode(self.params))
        return [dataclasses.replace(suggestion, model_file=self.model_file)]

    def is_finished(self) -> bool:
        return self._asked

    @property
    def finish_message(self) -> str:
        return "the given configuration was evaluated"

    def _extra_state(self) -> dict[str, Any]:
        return {"asked": self._asked}

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self._asked = bool(extra["asked"])


HINT = "name the space they come from with space=NAME (a best.yaml's header has the full command)"


def _checked_point(params: Any, space: SearchSpace) -> dict[str, Any]:
    """``params`` when it is a point of ``space``; else a ConfigError naming the first unknown
    parameter, or the first missing one, or the point."""
    names = ", ".join(space.names)
    if isinstance(params, Mapping):
        unknown = [str(k) for k in params if k not in space.names]
        if unknown:
            key = unknown[0]
            raise ConfigError(f"strategy.params.{key}", params[key], f"not a parameter of the space ({names}): {HINT}")
        missing = [n for n in space.names if n not in params]
        if missing and not space.contains(dict(params)):
            raise ConfigError(f"strategy.params.{missing[0]}", None, f"missing from the point: {HINT}")
    if not isinstance(params, Mapping) or not space.contains(dict(params)):
        raise ConfigError("strategy.params", _short(params), f"not a valid point of the space ({names})")
    return dict(params)


def _short(params: object) -> object:
    """The parameters for an error line: long vectors abbreviated."""
    if not isinstance(params, Mapping):
        return params
    return {k: f"[{len(v)} values]" if isinstance(v, list) and len(v) > 4 else v for k, v in params.items()}


def _weights_file(weights: object, params_file: str | None, params: Mapping[str, Any]) -> str | None:
    """The saved model to score (a path), or None to train again (see the module)."""
    key = "strategy.weights"
    if weights == "retrain":
        return None
    if weights != "auto":
        if not isinstance(weights, str) or not weights:
            raise ConfigError(key, weights, "must be auto, retrain or the path of a saved model (best_model.npz)")
        path = Path(weights).expanduser()
        _read(path, key, weights)
        return str(path.resolve())
    if params_file is None:
        return None
    path = Path(params_file).expanduser().parent / BEST_MODEL
    if not path.is_file():
        return None
    model = _read(path, key, str(path))
    if model.from_scratch:
        return None
    if json.dumps(model.meta.get("params"), sort_keys=True) != json.dumps(dict(params), sort_keys=True):
        log.warning("%s belongs to other parameters than %s: training them again instead", path, params_file)
        return None
    log.info("scoring the weights saved in %s (the run's best model cannot be trained again from θ0)", path)
    return str(path.resolve())


def _read(path: Path, key: str, shown: str) -> Any:
    try:
        return read_model(path)
    except ValueError as exc:
        raise ConfigError(key, shown, str(exc).removeprefix(f"{path}: ")) from None
