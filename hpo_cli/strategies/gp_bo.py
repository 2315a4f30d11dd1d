"""Gaussian-process Bayesian optimization over the space's unit cube.

1. A scrambled Sobol design of ``n_initial`` points.
2. Then, per suggestion: fit a GP (:mod:`hpo_cli.strategies._gp.gp`) to every observation (failed trials
   count as the worst loss seen, so the search steers away from them), maximize the acquisition
   (:mod:`hpo_cli.strategies._gp.acquisition`) from the best of ``candidates`` Sobol points plus points near
   the best observations, with multi-start L-BFGS-B (:mod:`hpo_cli.strategies._gp.optimize`), then
   a coordinate search over each categorical's choices and each int's values (up to 64 of them).
3. ``ask(n)`` with n > 1, and suggestions still pending from earlier asks, are handled with
   fantasies: each pending point joins the data with a made-up value — the GP's own mean there
   (``batch=kriging_believer``) or a constant (``batch=constant_liar``, value ``liar`` =
   min/mean/max of the observations) — so the next point goes elsewhere.

Features: float and int parameters use their unit-cube coordinate (log parameters are warped by
the space's encoding; ints are snapped to their value's cell by re-encoding the decoded point);
categorical parameters use the category index with a Hamming distance. Inactive conditional
parameters sit at the cube's centre: one GP input per unit dimension, whatever the branch. The
acquisition scores candidates with their inactive coordinates at rest and never moves those
coordinates (:meth:`GPBOStrategy._settle`), so its search runs over the active ones only.

What the GP models (``output_transform``, :mod:`hpo_cli.strategies._gp.outputs`): the standardized
losses by default; ``power`` (HEBO's Box-Cox / Yeo-Johnson) and ``rank`` (normal scores) lost to it
on the suite of ``benchmarks/cmaes_gp_vs_optuna.py`` (ellipsoid5: median regret 34 standardized
vs 2,096 power; branin at 30 evaluations: 0.0037 vs 0.021 power, 0.043 rank, 8 seeds).
``input_warping`` passes each continuous input through a Kumaraswamy CDF fitted with the GP
(:mod:`hpo_cli.strategies._gp.warping`); it lost to the plain inputs on held-out BBOB problems
(17–61 in 5-D at 50 evaluations: a bowl's floor near a face gets flattened), so it is off by default.
``trust_region`` (TuRBO-1, :mod:`hpo_cli.strategies._gp.trust_region`) maximizes the acquisition
in a box around the incumbent that shrinks while the search stalls and widens again when it
collapses. ``auto`` (the default): on where the space has a categorical parameter, off on
continuous spaces (both measured in the README's GP-BO section). ``explore_categories``: on a
space with categoricals, once the search stalls, that share of the suggestions puts one
categorical at another choice than the incumbent's and lets the acquisition pick the rest.

Cost per suggestion: a refit starts from the previous fit alone except at every 5th observation
(all ``fit_restarts``); each L-BFGS-B ascent of the acquisition is capped at 2·50 calls. The fit
is cubic in the points, so beyond ``max_observations`` (default 500) the GP sees a subset: the
best half of that many observations (by loss; failed trials count as the worst) and the most
recent ones for the rest; and at most that many pending points as fantasies (the most recent
asks). A suggestion then costs the same however long the run, and the driver keeps many
workers busy (a plain refit on 1,000 points takes seconds here). ``max_observations: null``
fits every observation.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from hpo_cli.errors import ConfigError
from hpo_cli.space import CategoricalParam, IntParam, SearchSpace
from hpo_cli.strategies._gp.acquisition import ACQUISITIONS, acquisition
from hpo_cli.strategies._gp.gp import GaussianProcess, fit_gp
from hpo_cli.strategies._gp.optimize import maximize
from hpo_cli.strategies._gp.outputs import OUTPUT_TRANSFORMS
from hpo_cli.strategies._gp.trust_region import TrustRegion, improves
from hpo_cli.strategies.base import Strategy
from hpo_cli.strategies.sobol_engine import ScrambledSobol
from hpo_cli.trial import Observation, Suggestion, TrialState
from hpo_cli.validate import flag, is_int, one_of, positive_int

log = logging.getLogger(__name__)

BATCH_MODES = ("kriging_believer", "constant_liar")
LIARS = ("min", "mean", "max")
_REFIT_EVERY = 5  # a GP refit starts only from its last fit, except at every 5th observation (all restarts) ...
_LARGE_DATA = 200  # ... and from this many observations on ...
_FULL_REFIT_EVERY = 25  # ... at every 25th
_SAME = 1e-9  # unit-cube points closer than this (max-norm) are the same suggestion
_INTEGER_GRID = 64  # an int with at most this many values: the acquisition tries each (coordinate search)


class GPBOStrategy(Strategy):
    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        n_trials: int,
        acquisition: str = "ei",
        beta: float = 2.0,
        n_initial: int = 10,
        batch: str = "kriging_believer",
        liar: str = "min",
        candidates: int = 1024,
        n_starts: int = 8,
        fit_restarts: int = 2,
        hyperprior: bool = True,
        noise: float | None = None,
        output_transform: str = "standardize",
        input_warping: bool = False,
        max_observations: int | None = 500,
        trust_region: bool | str = "auto",
        explore_categories: float = 0.5,
    ) -> None:
        super().__init__(space, seed, n_trials)
        self.acquisition = one_of(acquisition, "strategy.acquisition", ACQUISITIONS)
        if not isinstance(beta, int | float) or not math.isfinite(beta) or beta < 0:
            raise ConfigError("strategy.beta", beta, "must be a non-negative number")
        self.beta = float(beta)
        self.n_initial = positive_int(n_initial, "strategy.n_initial")
        self.batch = one_of(batch, "strategy.batch", BATCH_MODES)
        self.liar = one_of(liar, "strategy.liar", LIARS)
        self.n_candidates = positive_int(candidates, "strategy.candidates")
        self.n_starts = positive_int(n_starts, "strategy.n_starts")
        if not isinstance(fit_restarts, int) or fit_restarts < 0:
            raise ConfigError("strategy.fit_restarts", fit_restarts, "must be a non-negative integer")
        self.fit_restarts = fit_restarts
        self.hyperprior = flag(hyperprior, "strategy.hyperprior")
        if noise is not None and (not isinstance(noise, int | float) or not 0 < noise <= 1):
            raise ConfigError("strategy.noise", noise, "must be null (fitted) or a variance in (0, 1]")
        self.noise = None if noise is None else float(noise)
        self.output_transform = one_of(output_transform, "strategy.output_transform", OUTPUT_TRANSFORMS)
        self.input_warping = flag(input_warping, "strategy.input_warping")
        if max_observations is not None and (not is_int(max_observations) or max_observations < 2):
            raise ConfigError("strategy.max_observations", max_observations, "must be null (no cap) or an integer >= 2")
        self.max_observations = None if max_observations is None else int(max_observations)
        n_categorical = len([p for p in space.params if isinstance(p, CategoricalParam)])
        self._region = (
            TrustRegion.for_dim(space.dim - n_categorical, self.n_initial)
            if _uses_trust_region(trust_region, n_categorical > 0)
            else None
        )
        if isinstance(explore_categories, bool) or not isinstance(explore_categories, int | float):
            raise ConfigError("strategy.explore_categories", explore_categories, "must be a probability in [0, 1]")
        if not 0 <= explore_categories <= 1:
            raise ConfigError("strategy.explore_categories", explore_categories, "must be a probability in [0, 1]")
        self.explore_categories = float(explore_categories)
        self.categorical = np.zeros(space.dim, dtype=bool)
        self.category_sizes: list[tuple[int, int]] = []
        for p in space.params:
            if isinstance(p, CategoricalParam):
                dim = space.slice_of(p.name).start
                self.categorical[dim] = True
                self.category_sizes.append((dim, len(p.choices)))
        self._counts = np.ones(space.dim)
        for dim, count in self.category_sizes:
            self._counts[dim] = count
        self._conditional = [p for p in space.params if p.when]
        self._integer_features = [
            (space.slice_of(p.name).start, np.array([p.encode(v)[0] for v in range(p.low, p.high + 1, p.step)]))
            for p in space.params
            if isinstance(p, IntParam) and p.count <= _INTEGER_GRID
        ]
        self._at_rest = self._features(np.full((1, space.dim), 0.5))[0]  # an inactive parameter's features
        self.acquisition_points = 0  # points the acquisition scored for the last suggestion (a cost measure)
        self._initial = self._initial_design()
        self._served_initial = 0
        self._theta: np.ndarray | None = None  # last fitted GP hyperparameters (warm start)

    # -- unit cube <-> GP features ---------------------------------------------------------

    def _canonical(self, unit: np.ndarray) -> np.ndarray:
        """The unit point that decodes to the same parameters, with ints and categories centred."""
        return self.space.encode(self.space.decode(unit))

    def _features(self, units: np.ndarray) -> np.ndarray:
        f = np.array(units, dtype=float, copy=True)
        f[:, self.categorical] = np.minimum(
            np.floor(f[:, self.categorical] * self._counts[self.categorical]), self._counts[self.categorical] - 1
        )
        return f

    def _units(self, features: np.ndarray) -> np.ndarray:
        u = np.array(features, dtype=float, copy=True)
        u[..., self.categorical] = (u[..., self.categorical] + 0.5) / self._counts[self.categorical]
        return u

    def _settle(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``features`` with each inactive conditional parameter at rest (as the data have them),
        and the mask of those coordinates: the acquisition never searches along them."""
        inactive = np.zeros(features.shape, dtype=bool)
        for name, active in self._activity(features).items():
            inactive[:, self.space.slice_of(name)] = ~active[:, None]
        return np.where(inactive, self._at_rest, features), inactive

    def _activity(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """For each conditional parameter, whether its condition holds at each row, shape (m,):
        vectorized over the categorical parents' indices (the usual case), decoded otherwise."""
        active: dict[str, np.ndarray] = {}
        units = None
        for p in self._conditional:
            holds = np.ones(len(features), dtype=bool)
            for parent_name, allowed in p.when:
                parent = self.space[parent_name]
                dim = self.space.slice_of(parent_name).start
                holds &= active.get(parent_name, True)
                if isinstance(parent, CategoricalParam):
                    indices = [i for i, c in enumerate(parent.choices) if c in allowed]
                    holds &= np.isin(features[:, dim], indices)
                else:
                    units = self._units(features) if units is None else units
                    values = [parent.decode(units[i, dim : dim + 1]) for i in range(len(features))]
                    holds &= np.array([v in allowed for v in values], dtype=bool)
            active[p.name] = holds
        return active

    # -- proposals -------------------------------------------------------------------------

    def _initial_design(self) -> np.ndarray:
        m = max(1, math.ceil(math.log2(self.n_initial)))
        points = ScrambledSobol(self.space.dim, scramble=True, rng=self.seed).random_base2(m)
        return points[: self.n_initial]

    def _propose(self, n: int) -> list[Suggestion]:
        out: list[Suggestion] = []
        gp: GaussianProcess | None = None
        for _ in range(n):
            if self._served_initial < self.n_initial:
                unit = self._canonical(self._initial[self._served_initial])
                self._served_initial += 1
            else:
                data = self._training_data()
                if data is None:
                    unit = self._canonical(self.rng.random(self.space.dim))
                else:
                    if gp is None:
                        gp = self._fit(*data)
                    unit = self._next_point(gp, out)
            out.append(self._suggest(self.space.decode(unit), unit))
        return out

    def _training_data(self) -> tuple[np.ndarray, np.ndarray, int] | None:
        """(features, losses) the GP is fitted to — at most ``max_observations`` rows
        (:meth:`_subset`) — and how many observations there are in all."""
        done = {i: float(o.loss) for i, o in enumerate(self.history) if o.loss is not None and math.isfinite(o.loss)}
        if len(done) < 2:
            return None
        worst = max(done.values())
        failed = [i for i, o in enumerate(self.history) if o.state is TrialState.FAILED]
        rows = [*done, *failed]  # history positions
        values = np.array([*done.values(), *[worst] * len(failed)])
        keep = self._subset(values, np.array(rows))
        units = np.array([self._observed_unit(self.history[rows[k]]) for k in keep])
        return self._features(units), values[keep], len(rows)

    def _subset(self, values: np.ndarray, told: np.ndarray) -> np.ndarray:
        """The rows the GP sees: all of them up to ``max_observations``; beyond, the best
        ⌈max/2⌉ by value (ties: the first told) and the most recently told of the others, in
        their original order. ``told``: each row's position in the history."""
        cap = self.max_observations
        if cap is None or len(values) <= cap:
            return np.arange(len(values))
        best = np.lexsort((told, values))[: (cap + 1) // 2]
        others = np.setdiff1d(np.arange(len(values)), best)
        recent = others[np.argsort(-told[others], kind="stable")[: cap - len(best)]]
        return np.sort(np.concatenate([best, recent]))

    def _observed_unit(self, observation: Observation) -> np.ndarray:
        s = observation.suggestion
        return np.array(s.unit) if s.unit is not None else self.space.encode(s.params)

    def _fit(self, x: np.ndarray, values: np.ndarray, seen: int) -> GaussianProcess:
        """The GP of (``x``, ``values``); all restarts at every 5th (25th from 200 on) of the
        ``seen`` observations, else from the last fit alone."""
        every = _FULL_REFIT_EVERY if seen >= _LARGE_DATA else _REFIT_EVERY
        full = self._theta is None or seen % every == 0
        restarts = self.fit_restarts if full else 0
        gp = fit_gp(
            x,
            values,
            self.categorical,
            self.rng,
            restarts=restarts,
            warm_start=self._theta,
            prior=self.hyperprior,
            noise=self.noise,
            output=self.output_transform,
            warp=self.input_warping,
        )
        self._theta = gp.fitted
        return gp

    def _with_fantasies(self, gp: GaussianProcess, batch: list[Suggestion]) -> GaussianProcess:
        pending = [s for s in [*self.pending.values(), *batch] if s.unit is not None]
        if self.max_observations is not None:
            pending = pending[-self.max_observations :]  # the most recent asks (dicts keep ask order)
        if not pending:
            return gp
        x_new = self._features(np.array([s.unit for s in pending]))
        if self.batch == "kriging_believer":
            y_new, _ = gp.predict(x_new)
        else:
            lie = {"min": gp.y.min(), "mean": gp.y.mean(), "max": gp.y.max()}[self.liar]
            y_new = np.full(len(pending), float(lie))
        return gp.with_data(np.vstack([gp.x, x_new]), np.concatenate([gp.y, y_new]))

    def _next_point(self, gp: GaussianProcess, batch: list[Suggestion]) -> np.ndarray:
        model = self._with_fantasies(gp, batch)
        best = float(np.min(model.y))

        self.acquisition_points = 0

        def acq(points: np.ndarray, with_gradient: bool) -> tuple[np.ndarray, np.ndarray | None]:
            self.acquisition_points += len(points)
            if with_gradient:
                mean, std, dmean, dstd = model.predict_with_gradient(points)
                return acquisition(self.acquisition, mean, std, best, self.beta, dmean, dstd)
            mean, std = model.predict(points)
            return acquisition(self.acquisition, mean, std, best, self.beta)

        settle = self._settle if self._conditional else None
        bounds = self._region_box(gp)
        candidates = self._candidates(model, bounds)
        grids = [(dim, np.arange(count, dtype=float)) for dim, count in self.category_sizes]
        forced = self._forced_category(model)
        if forced is not None:
            dim, choice = forced
            candidates[:, dim] = choice
            grids = [(d, grid) for d, grid in grids if d != dim]
        grids += self._integer_grids(bounds)
        optima = maximize(
            acq,
            candidates,
            ~self.categorical,
            grids,
            self.n_starts,
            settle=settle,
            bounds=bounds,
        )
        taken = self._taken_units(batch)
        for point, _ in optima:
            unit = self._canonical(self._units(point))
            if not _is_taken(unit, taken):
                return unit
        for _ in range(100):  # every local optimum was a point already tried: take a fresh random one
            unit = self._canonical(self.rng.random(self.space.dim))
            if not _is_taken(unit, taken):
                return unit
        return unit

    def _integer_grids(self, bounds: tuple[np.ndarray, np.ndarray] | None) -> list[tuple[int, np.ndarray]]:
        """Per int parameter with at most ``_INTEGER_GRID`` values: its values' features inside
        ``bounds`` (the trust region), for the acquisition's coordinate search."""
        grids = []
        for dim, grid in self._integer_features:
            if bounds is not None:
                grid = grid[(grid >= bounds[0][dim] - 1e-12) & (grid <= bounds[1][dim] + 1e-12)]
            grids.append((dim, grid))
        return grids

    def _forced_category(self, model: GaussianProcess) -> tuple[int, int] | None:
        """While the search stalls (:meth:`_stalled`), with probability ``explore_categories`` (on a
        space with categoricals): one categorical dimension and a choice other than the incumbent's,
        drawn uniformly, that this suggestion must take; the acquisition then picks the rest. None:
        the acquisition picks everything. EI alone settles on the first choice that looks good and
        refines it by small steps (README: the mixed space); SMAC interleaves random points instead."""
        if not self.category_sizes or self.explore_categories <= 0 or not self._stalled():
            return None
        if self.rng.random() >= self.explore_categories:
            return None
        dim, count = self.category_sizes[int(self.rng.integers(len(self.category_sizes)))]
        if count < 2:
            return None
        incumbent = int(model.x[int(np.argmin(model.y)), dim])
        choice = int(self.rng.integers(count - 1))
        return dim, choice + (choice >= incumbent)

    def _stalled(self) -> bool:
        """Whether the last ``max(4, continuous dimensions)`` observations (in the order told) all
        failed to beat the best before them by 1e-3 of its magnitude (the trust region's rule)."""
        patience = max(4, int((~self.categorical).sum()))
        best, since = math.inf, 0
        for o in self.history:
            value = o.loss if o.loss is not None and math.isfinite(o.loss) else math.inf
            since = 0 if improves(value, best) else since + 1
            best = min(best, value)
        return since >= patience

    def _region_box(self, gp: GaussianProcess) -> tuple[np.ndarray, np.ndarray] | None:
        """The trust region's feature box around the incumbent (the fit's best observation); None
        without one. A conditional parameter inactive at the incumbent keeps its whole range: its
        coordinate there is a resting place, not a value to stay near once a branch activates it."""
        if self._region is None:
            return None
        center = gp.x[int(np.argmin(gp.y))]
        lower, upper = self._region.box(center, gp.lengths, ~self.categorical)
        if self._conditional:
            inactive = self._settle(center[None, :])[1][0]
            lower[inactive], upper[inactive] = 0.0, 1.0
        return lower, upper

    def _candidates(self, model: GaussianProcess, bounds: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        # an integer seed, not the Generator: the engine (as scipy's) spawns from a Generator's seed
        # sequence, whose spawn counter is not part of the generator's saved state (resume would differ)
        seed = int(self.rng.integers(2**63))
        sobol = ScrambledSobol(self.space.dim, scramble=True, rng=seed).random(self.n_candidates)
        if bounds is not None:  # the Sobol points fill the trust region (its categorical coordinates span [0, 1])
            sobol = bounds[0] + sobol * (bounds[1] - bounds[0])
        global_points = self._features(sobol)
        # local candidates: perturb the best few observations at scales from 1e-3 to 0.1
        top = model.x[np.argsort(model.y)[: min(5, len(model.y))]]
        per_point = 32
        scales = np.exp(self.rng.uniform(math.log(1e-3), math.log(0.1), (len(top) * per_point, 1)))
        local = np.repeat(top, per_point, axis=0)
        noise = self.rng.normal(size=local.shape) * scales
        noise[:, self.categorical] = 0.0
        lower, upper = (np.zeros(self.space.dim), np.ones(self.space.dim)) if bounds is None else bounds
        continuous = ~self.categorical  # a categorical feature is a category index: never clipped to [0, 1]
        local[:, continuous] = np.clip(
            local[:, continuous] + noise[:, continuous], lower[continuous], upper[continuous]
        )
        return np.vstack([global_points, local])

    def _taken_units(self, batch: list[Suggestion]) -> np.ndarray:
        units = [self._observed_unit(o) for o in self.history]
        units += [np.array(s.unit) for s in [*self.pending.values(), *batch] if s.unit is not None]
        return np.array(units) if units else np.empty((0, self.space.dim))

    # -- state -----------------------------------------------------------------------------

    def _extra_state(self) -> dict[str, Any]:
        return {
            "served_initial": self._served_initial,
            "theta": None if self._theta is None else [float(t) for t in self._theta],
            **({} if self._region is None else {"trust_region": self._region.state()}),
        }

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self._served_initial = int(extra.get("served_initial", 0))
        theta = extra.get("theta")
        self._theta = None if theta is None else np.array(theta, dtype=float)
        if self._region is not None and extra.get("trust_region") is not None:
            self._region = TrustRegion.from_state(extra["trust_region"])

    def _observe(self, observation: Observation) -> None:
        if self._region is not None:
            self._region.tell(observation.loss)


def _uses_trust_region(setting: Any, has_categorical: bool) -> bool:
    """``trust_region``: true, false, or ``auto`` — on where the space has a categorical parameter.

    There the GP shares its length scales across the choices, so the continuous optimum of a
    choice found late stays unresolved (README: the mixed space); the trust region's shrinking box
    refines it. On continuous spaces the measurements are mixed (README: BBOB), so it stays off."""
    if setting == "auto" and isinstance(setting, str):
        return has_categorical
    if not isinstance(setting, bool):
        raise ConfigError("strategy.trust_region", setting, "must be true, false or auto")
    return setting


def _is_taken(unit: np.ndarray, taken: np.ndarray) -> bool:
    return bool(len(taken)) and bool(np.any(np.max(np.abs(taken - unit), axis=1) < _SAME))
