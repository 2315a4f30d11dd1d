"""The one list every strategy joins to run the shared contract tests.

Adding a strategy = one module, one conf/strategy/*.yaml and one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conftest import strategy_config
from hydra.utils import instantiate

from hpo_cli.space import SearchSpace
from hpo_cli.strategies.base import Strategy


@dataclass(frozen=True)
class StrategyCase:
    name: str  # conf/strategy/<name>.yaml
    overrides: dict[str, Any] = field(default_factory=dict)
    stochastic: bool = True  # different seeds give different suggestions
    vectors: bool = True  # supports vector parameters
    finite: bool = False  # finishes by itself before n_trials

    def make(self, space: SearchSpace, seed: int = 0, n_trials: int = 64) -> Strategy:
        cfg = {**strategy_config(self.name), **self.overrides}
        factory = instantiate(cfg, _convert_="all")
        return factory(space=space, seed=seed, n_trials=n_trials)  # type: ignore[no-any-return]

    def __str__(self) -> str:
        return self.name


STRATEGIES = [
    StrategyCase("random"),
    StrategyCase("sobol"),
    StrategyCase("halton"),
    StrategyCase("lhs"),
    StrategyCase("grid", {"resolution": 3}, stochastic=False, vectors=False, finite=True),
    StrategyCase("grid", {"resolution": 3, "shuffle": True}, vectors=False, finite=True),
]
