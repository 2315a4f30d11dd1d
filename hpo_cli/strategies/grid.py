"""Grid search over per-parameter grids (log-aware), conditional parameters included."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from hpo_cli.errors import ConfigError
from hpo_cli.space import SearchSpace
from hpo_cli.strategies.base import Strategy
from hpo_cli.trial import Suggestion
from hpo_cli.validate import flag, positive_int

log = logging.getLogger(__name__)


class GridStrategy(Strategy):
    """Enumerates the product of per-parameter grids; finishes when every point was asked.

    ``resolution``: points per float parameter (int and categorical parameters are enumerated
    in full up to it). ``resolutions``: per-parameter overrides ``{name: points}``. Floats are
    evenly spaced, in log space for ``log: true``; both endpoints are included.
    ``shuffle``: visit the grid in a seeded random order instead of declaration order.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        n_trials: int,
        resolution: int = 10,
        resolutions: Mapping[str, int] | None = None,
        shuffle: bool = False,
    ) -> None:
        super().__init__(space, seed, n_trials)
        per_param = {name: positive_int(resolution, "strategy.resolution") for name in space.names}
        for name, r in (resolutions or {}).items():
            if name not in per_param:
                raise ConfigError(f"strategy.resolutions.{name}", r, "not a parameter of the space")
            per_param[name] = positive_int(r, f"strategy.resolutions.{name}")
        self.points = space.grid(per_param)
        if flag(shuffle, "strategy.shuffle"):
            order = self.rng.permutation(len(self.points))
            self.points = [self.points[i] for i in order]
        self._served = 0
        if n_trials < len(self.points):
            log.warning(
                "grid: %d points but n_trials=%d; only the first %d are evaluated%s",
                len(self.points),
                n_trials,
                n_trials,
                "" if shuffle else " (strategy.shuffle=true samples them in random order)",
            )

    def _propose(self, n: int) -> list[Suggestion]:
        batch = self.points[self._served : self._served + n]
        self._served += len(batch)
        return [self._suggest(dict(p), self.space.encode(p)) for p in batch]

    def is_finished(self) -> bool:
        return self._served >= len(self.points)

    @property
    def finish_message(self) -> str:
        return f"the grid is exhausted ({len(self.points)} points)"

    def _extra_state(self) -> dict[str, Any]:
        return {"served": self._served, "points": self.points}

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self._served = int(extra["served"])
        self.points = [dict(p) for p in extra["points"]]
