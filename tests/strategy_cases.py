"""The one list every strategy joins to run the shared contract tests.

Adding a strategy = one module, one conf/strategy/*.yaml and one entry here.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

from hpo_cli.build import build_strategy, compose_config
from hpo_cli.settings import read_settings
from hpo_cli.space import SearchSpace
from hpo_cli.strategies.base import Strategy


@dataclass(frozen=True)
class StrategyCase:
    name: str  # conf/strategy/<name>.yaml
    overrides: dict[str, Any] = field(default_factory=dict)
    stochastic: bool = True  # different seeds give different suggestions
    vectors: bool = True  # supports vector parameters
    finite: bool = False  # finishes by itself before n_trials
    total: int | None = None  # a finite strategy's number of suggestions on the 2-parameter space
    gradient: bool = False  # asks for the gradient of the loss; float spaces only
    sequential: bool = False  # one suggestion at a time (waits for its outcome)
    min_dim: int = 1  # smallest unit-cube dimension it accepts

    def make(self, space: SearchSpace, seed: int = 0, n_trials: int = 64) -> Strategy:
        """The strategy as `hpo run strategy=NAME` composes it, with this case's overrides."""
        cfg = composed(self.name, tuple(f"strategy.{k}={v}" for k, v in self.overrides.items()))
        cfg.seed, cfg.n_trials = seed, n_trials  # read through the config's own ${seed}, ${n_trials}
        return build_strategy(cfg.strategy, space, read_settings(cfg))

    def __str__(self) -> str:
        return self.name


def composed(name: str, overrides: tuple[str, ...]) -> DictConfig:
    """A fresh copy of the config `hpo run strategy=NAME OVERRIDES` composes: Hydra composes each
    case once per test process (a tenth of a second each time), the tests get copies."""
    return copy.deepcopy(_composed_once(name, overrides))


@functools.cache
def _composed_once(name: str, overrides: tuple[str, ...]) -> DictConfig:
    return compose_config([f"strategy={name}", *overrides])


STRATEGIES = [
    StrategyCase("random"),
    StrategyCase("sobol"),
    StrategyCase("halton"),
    StrategyCase("lhs"),
    StrategyCase("grid", {"resolution": 3}, stochastic=False, vectors=False, finite=True, total=6),
    StrategyCase("grid", {"resolution": 3, "shuffle": True}, vectors=False, finite=True, total=6),
    StrategyCase("evolution", {"population": 6}),
    StrategyCase(
        "evolution",
        {"population": 5, "replacement": "generational", "selection": "proportional", "crossover": "uniform"},
    ),
    StrategyCase("evolution", {"population": 4, "replacement": "tournament", "elite": 0}),
    StrategyCase("cmaes", min_dim=2),
    StrategyCase("cmaes", {"restart": "bipop", "patience": 1, "popsize": 4}, min_dim=2),  # restarts mid-test
    StrategyCase("nelder_mead"),
    StrategyCase("nelder_mead", {"simplices": 3, "initial_step": 0.4, "patience": 3}),
    StrategyCase("pso"),
    StrategyCase("pso", {"swarm": 4, "cognitive": 1.5, "social": 2.7}),
    StrategyCase("gp_bo", {"n_initial": 3, "candidates": 128, "n_starts": 2}),
    StrategyCase("gp_bo", {"n_initial": 2, "acquisition": "lcb", "batch": "constant_liar", "candidates": 64}),
    StrategyCase("gp_bo", {"n_initial": 3, "candidates": 64, "n_starts": 2, "input_warping": True}),
    StrategyCase("gp_bo", {"n_initial": 3, "candidates": 64, "n_starts": 2, "trust_region": True}),
    StrategyCase("hammersley", stochastic=False, finite=True, total=100),
    StrategyCase("hammersley", {"scramble": True}, finite=True, total=100, min_dim=2),  # 1-D: i/n for every seed
    StrategyCase("poisson_disk", finite=True, total=100),
    StrategyCase("tpe", {"n_startup_trials": 3}),
    StrategyCase("tpe", {"n_startup_trials": 4, "multivariate": False, "startup": "random", "constant_liar": False}),
    StrategyCase("hyperband", {"max_budget": 9}, finite=True, total=13 + 6 + 3),
    StrategyCase("successive_halving", {"max_budget": 9}, finite=True, total=13),
    StrategyCase("asha", {"max_budget": 9}),  # never finishes by itself: n_trials is its budget
    StrategyCase("asha", {"max_budget": 27, "brackets": "hyperband"}),
    *[
        StrategyCase(name, {"init": "random"}, gradient=True, sequential=True)
        for name in ("rmad", "reverse", "forward", "drmad", "greedy", "rtho", "hoag")
    ],
]
