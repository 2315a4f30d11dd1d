"""CMA-ES through the ``cma`` package's ask/tell (Hansen), with restarts, over the space's unit cube.

One generation = ``cma``'s population; its points are served in batches and told back once
all have come in (failed trials as the worst loss seen plus one). ``cma`` is not rewritten
here: its optimizer object is carried in the checkpoint (pickled), so resuming is exact. Its
normal draws come from a generator of the strategy's own (``randn``), pickled with it: ``cma``'s
default draws from numpy's global RNG, which no checkpoint sees (a resumed run diverged).

* **Start**: the centre of the cube, step size ``sigma0`` of each range (1/6 by default, as
  Optuna's CmaEsSampler; 0.3 lost to it on every function of the suite in
  ``benchmarks/cmaes_gp_vs_optuna.py``).
* **Integers and categoricals** (:class:`Genotype`): a linear int (or a two-choice categorical)
  gets a coordinate whose integer points are its values, handed to ``cma``'s
  ``integer_variables``: a lower bound on its standard deviation and integer centering
  (Hamano et al. 2022, the idea of Optuna's margin variant), so it keeps being explored instead
  of freezing on one value once σ falls below a cell's width. A categorical with three or more
  choices gets one coordinate per choice, the largest winning (Optuna's CmaEsSampler leaves
  categoricals to random sampling; as an index, the choices would get an order they lack).
* **Mirrored sampling** (``mirrors``, Auger, Brockhoff & Hansen 2011, ``cma``'s selective
  mirroring): about 16 % of each generation are the mirror images (through the mean) of the
  worst samples. Against Optuna's CmaEsSampler on the 14 functions of
  ``benchmarks/cmaes_gp_vs_optuna.py`` (7 seeds, 200 evaluations) it raised our wins from 5 to 10.
* **The box** (``boundary``): ``resample`` (the default, as Optuna's CmaEsSampler and ``cma``'s
  ``ask_and_eval``) draws a point that falls outside the box again from the same distribution,
  up to 100 times, then clips it; ``transform`` hands the box to ``cma``'s BoundTransform, which
  maps outside points back in and flattens the landscape near the faces (on BBOB's sphere in
  5-D it converged 3× slower: the README's BBOB section).
* **Restarts** (:mod:`hpo_cli.strategies._cma_restarts`): when ``cma`` stops, or the run's best
  has not improved over ``patience`` generations, a new run starts from a random point, with a
  larger population (``restart=ipop``, Auger & Hansen 2005) or alternating large and small
  populations (``bipop``, Hansen 2009); ``none`` runs one CMA-ES to the end.
"""

from __future__ import annotations

import base64
import math
import pickle
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpo_cli.errors import ConfigError
from hpo_cli.space import CategoricalParam, IntParam, SearchSpace
from hpo_cli.strategies._cma_restarts import RESTARTS, RestartSchedule, stagnated
from hpo_cli.strategies.base import Strategy
from hpo_cli.trial import Observation, Suggestion
from hpo_cli.validate import flag, one_of

BOUNDARIES = ("resample", "transform")
MAX_RESAMPLES = 100


class StandardNormal:
    """``randn(*shape)`` from a seeded generator of its own (picklable, so checkpoints carry it)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape)


@contextmanager
def numpy_global_rng_from(rng: np.random.Generator) -> Iterator[None]:
    """numpy's global RNG seeded from ``rng`` for the block, then put back as it was: what ``cma``
    draws from it (integer centering) becomes part of the strategy's seeded, checkpointed state."""
    saved = np.random.get_state()
    np.random.seed(int(rng.integers(2**32)))
    try:
        yield
    finally:
        np.random.set_state(saved)


@dataclass(frozen=True)
class Genotype:
    """CMA-ES's coordinates for the unit cube's dimensions, one list entry per unit dimension:

    * 0: a continuous coordinate, the unit coordinate itself;
    * k > 0: an ordinal one (a linear int, or a categorical with two choices) with k values,
      spanning [−0.5, k − 0.5] with its values at 0, 1, …, k − 1 (an integer variable for ``cma``);
    * k < 0: a categorical with |k| ≥ 3 choices, one coordinate in [0, 1] per choice, the largest
      wins (one-hot): choices have no order, so no neighbour is nearer than another.
    """

    kinds: tuple[int, ...]

    @classmethod
    def of(cls, space: SearchSpace) -> Genotype:
        kinds = [0] * space.dim
        for p in space.params:
            at = space.slice_of(p.name).start
            if isinstance(p, CategoricalParam) and len(p.choices) >= 3:
                kinds[at] = -len(p.choices)
            elif isinstance(p, CategoricalParam) and len(p.choices) == 2:
                kinds[at] = 2
            elif isinstance(p, IntParam) and not p.log and p.count > 1:
                kinds[at] = p.count
        return cls(tuple(kinds))

    def _coordinates(self) -> list[int]:
        """Per genotype coordinate: k > 0 for an ordinal one with k values, else 0."""
        out: list[int] = []
        for kind in self.kinds:
            out += [0] * -kind if kind < 0 else [kind]
        return out

    @property
    def dim(self) -> int:
        return len(self._coordinates())

    @property
    def discrete(self) -> list[int]:
        """The genotype indices of the ordinal coordinates (``cma``'s ``integer_variables``)."""
        return [i for i, k in enumerate(self._coordinates()) if k > 0]

    @property
    def lower(self) -> np.ndarray:
        return np.array([-0.5 if k > 0 else 0.0 for k in self._coordinates()])

    @property
    def upper(self) -> np.ndarray:
        return np.array([k - 0.5 if k > 0 else 1.0 for k in self._coordinates()])

    @property
    def widths(self) -> np.ndarray:
        return self.upper - self.lower

    def centre(self) -> np.ndarray:
        return np.array([math.floor((k - 1) / 2) if k > 0 else 0.5 for k in self._coordinates()])

    def random(self, rng: np.random.Generator) -> np.ndarray:
        return self.lower + rng.random(self.dim) * self.widths

    def to_unit(self, g: np.ndarray) -> np.ndarray:
        u = np.empty(len(self.kinds))
        at = 0
        for i, kind in enumerate(self.kinds):
            if kind < 0:
                u[i] = (int(np.argmax(g[at : at - kind])) + 0.5) / -kind
                at -= kind
                continue
            u[i] = (min(max(round(float(g[at])), 0), kind - 1) + 0.5) / kind if kind > 0 else g[at]
            at += 1
        return np.clip(u, 0.0, np.nextafter(1.0, 0.0))


@contextmanager
def _quiet_about_redrawn_points() -> Iterator[None]:
    """``cma`` warns at ``tell`` of asked points never told (an "orphaned" mirror, a point left in
    its integer archive): with ``boundary=resample`` those are the out-of-box draws, replaced on
    purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*orphanated injected solution")
        warnings.filterwarnings("ignore", message=r"\s*tell: \d+ solution\(s\) of round int archive")
        yield


class CmaEsStrategy(Strategy):
    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        n_trials: int,
        sigma0: float = 1 / 6,
        popsize: int | None = None,
        restart: str = "ipop",
        patience: int | None = None,
        mirrors: bool = True,
        boundary: str = "resample",
    ) -> None:
        super().__init__(space, seed, n_trials)
        self.genotype = Genotype.of(space)
        if self.genotype.dim < 2:
            raise ConfigError("strategy", "cmaes", "CMA-ES needs at least 2 dimensions (use random, sobol or grid)")
        if not isinstance(sigma0, int | float) or not 0 < sigma0 <= 1:
            raise ConfigError("strategy.sigma0", sigma0, "must be in (0, 1] (a fraction of each range)")
        if popsize is not None and (not isinstance(popsize, int) or popsize < 2):
            raise ConfigError("strategy.popsize", popsize, "must be null (cma's default) or an integer >= 2")
        if patience is not None and (not isinstance(patience, int) or patience < 1):
            raise ConfigError("strategy.patience", patience, "must be null (from the dimension) or a positive integer")
        self.sigma0 = float(sigma0)
        default_popsize = 4 + int(3 * math.log(self.genotype.dim))
        self.schedule = RestartSchedule(one_of(restart, "strategy.restart", RESTARTS), popsize or default_popsize)
        self.patience = patience
        self.mirrors = flag(mirrors, "strategy.mirrors")
        self.boundary = one_of(boundary, "strategy.boundary", BOUNDARIES)
        self.es = self._new_es(self.genotype.centre(), self.schedule.popsize, self.sigma0)
        self.generation: list[np.ndarray] = []
        self.served = 0
        self.results: dict[int, float] = {}
        self.order: list[int] = []
        self.run_bests: list[float] = []  # the best loss of each generation of the current run

    def _new_es(self, x0: np.ndarray, popsize: int, sigma: float) -> Any:
        import cma

        options: dict[str, Any] = {
            # resample: cma samples freely and out-of-box points are drawn again (_inside_the_box)
            "bounds": [list(self.genotype.lower), list(self.genotype.upper)] if self.boundary == "transform" else None,
            "CMA_stds": list(self.genotype.widths),
            "popsize": popsize,
            "CMA_mirrors": True if self.mirrors else 0,  # True: cma's selective mirroring, ≈ 0.16·λ mirrors
            "seed": math.nan,  # nan: cma leaves numpy's global RNG alone
            "randn": StandardNormal(int(self.rng.integers(2**31))),
            "verbose": -9,
        }
        if self.genotype.discrete:
            options["integer_variables"] = self.genotype.discrete
        return cma.CMAEvolutionStrategy(list(x0), sigma, options)  # a list: cma reads a 1-element array as a dimension

    @property
    def restarts(self) -> int:
        return self.schedule.restarts

    def _generation_patience(self) -> int:
        if self.patience is not None:
            return self.patience
        return 10 + math.ceil(10 * self.genotype.dim / self.schedule.popsize)

    def _propose(self, n: int) -> list[Suggestion]:
        if self.served == len(self.generation) and not self.pending and not self.results:
            self.generation = [self._inside_the_box(np.asarray(x, dtype=float)) for x in self.es.ask()]
            self.served, self.order = 0, []
        batch = self.generation[self.served : self.served + n]
        self.served += len(batch)
        out = [self._suggest_unit(self.genotype.to_unit(g)) for g in batch]
        self.order += [s.key for s in out]
        return out

    def _inside_the_box(self, x: np.ndarray) -> np.ndarray:
        """``boundary=resample``: a point outside the genotype's box is replaced by a fresh draw
        from the same distribution, up to ``MAX_RESAMPLES`` times, then clipped (``cma``'s own
        rejection sampling in ``ask_and_eval``; what Optuna's CmaEsSampler does). The search
        distribution is truncated to the box rather than folded into it: ``transform``
        (``cma``'s BoundTransform, the package's default) distorts the landscape near the faces."""
        lower, upper = self.genotype.lower, self.genotype.upper
        if self.boundary == "transform":
            return x
        for _ in range(MAX_RESAMPLES):
            if np.all((x >= lower) & (x <= upper)):
                return x
            x = np.asarray(self.es.ask(1)[0], dtype=float)
        return np.clip(x, lower, upper)

    def _observe(self, observation: Observation) -> None:
        self.results[observation.suggestion.key] = observation.loss if observation.loss is not None else math.inf
        if self.served == len(self.generation) and len(self.results) == len(self.generation):
            losses = [self.results[k] for k in self.order]
            finite = [x for x in losses if math.isfinite(x)]
            worst = max(finite) + 1.0 if finite else 1.0
            with numpy_global_rng_from(self.rng), _quiet_about_redrawn_points():
                self.es.tell(self.generation, [x if math.isfinite(x) else worst for x in losses])
            self.results = {}
            self.run_bests.append(min(finite) if finite else math.inf)
            self.generation, self.served = [], 0
            if self._should_restart():
                self._restart()

    def _should_restart(self) -> bool:
        if self.schedule.mode == "none":
            return False
        return bool(self.es.stop()) or stagnated(self.run_bests, self._generation_patience())

    def _restart(self) -> None:
        popsize, sigma_factor = self.schedule.next(self.es.countevals, self.rng)
        self.es = self._new_es(self.genotype.random(self.rng), popsize, self.sigma0 * sigma_factor)
        self.run_bests = []

    def _extra_state(self) -> dict[str, Any]:
        blob = pickle.dumps(
            (self.es, self.generation, self.served, self.results, self.order, self.schedule, self.run_bests)
        )
        return {"pickle": base64.b64encode(blob).decode("ascii")}

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        (self.es, self.generation, self.served, self.results, self.order, self.schedule, self.run_bests) = pickle.loads(
            base64.b64decode(extra["pickle"])
        )
