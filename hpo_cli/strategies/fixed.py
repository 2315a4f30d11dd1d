"""Evaluate one given configuration, e.g. the ``best.yaml`` of an earlier run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hpo_cli.errors import ConfigError
from hpo_cli.space import SearchSpace
from hpo_cli.strategies.base import Strategy
from hpo_cli.trial import Suggestion


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
        self._asked = False

    def _propose(self, n: int) -> list[Suggestion]:
        if self._asked:
            return []
        self._asked = True
        return [self._suggest(dict(self.params), self.space.encode(self.params))]

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
