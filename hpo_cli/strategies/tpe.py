"""Tree-structured Parzen estimator (Bergstra et al. 2011), univariate or multivariate.

The observations are split into the good ones (the best ``gamma`` fraction of the completed
trials, at most ``max_good``) and the rest; failed and pruned trials, and with ``constant_liar``
the suggestions still being evaluated, join the rest. Two Parzen mixtures are built over the unit
cube (:mod:`hpo_cli.strategies._parzen`): l(x) on the good ones, g(x) on the rest.
``n_ei_candidates`` points are drawn from l and the one with the largest l(x)/g(x) is suggested
(the ratio is monotone in expected improvement).

Parameters are handled in *groups*, in declaration order:

* ``multivariate: true`` (the default, as Optuna 5 for one objective): the parameters that share
  one condition (``when``) form one joint estimator (Falkner 2018; Optuna's ``multivariate`` with
  ``group``);
* ``multivariate: false`` (Bergstra 2011): every numeric coordinate and every categorical
  parameter is its own one-dimensional estimator.

A conditional group is sampled only when its condition holds for the values drawn before it, and
only the trials in which it was active inform it: its good/rest split is made among those trials
(hyperopt's per-node split), so a branch is modelled from its own best trials, not left to its
prior until it holds some of the overall best ones. The rest estimator g keeps the latest
``window`` rest trials, so a suggestion's cost stops growing with the history beyond it.
Everything is a function of the history, the pending suggestions and the seeded RNG, so a resumed
run suggests exactly what the uninterrupted one would have.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpo_cli.errors import ConfigError
from hpo_cli.space import CategoricalParam, FloatParam, IntParam, Param, SearchSpace
from hpo_cli.strategies._parzen import Mixture, build_mixture
from hpo_cli.strategies.base import Strategy
from hpo_cli.strategies.sobol_engine import ScrambledSobol
from hpo_cli.trial import Observation, Suggestion, TrialState
from hpo_cli.validate import flag, is_number, non_negative_int, one_of, positive_float, positive_int

BANDWIDTHS = ("neighbours", "scott")
STARTUPS = ("sobol", "random")
RECENT = 25


@dataclass(frozen=True)
class _Group:
    """Parameters estimated together: their numeric unit coordinates, their categoricals."""

    params: tuple[Param, ...]
    numeric: tuple[int, ...]  # indices into the space's unit vector
    categorical: tuple[CategoricalParam, ...]
    joint: bool
    min_width: np.ndarray

    def is_active(self, space: SearchSpace, values: dict) -> bool:
        return space.is_active(self.params[0], values)


@dataclass
class _Rows:
    """The observations encoded so far, in history order (a cache: a function of the history)."""

    units: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    present: list[set[str]] = field(default_factory=list)
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class _Points:
    """Observed points in unit coordinates, with their losses (inf: failed, pruned or pending)."""

    units: np.ndarray  # (n, dim)
    present: list[set[str]]  # the active parameter names of each point
    losses: np.ndarray  # (n,)
    gamma: float
    max_good: int

    def good_among(self, among: np.ndarray) -> np.ndarray:
        """(n,) bool: the best ``gamma`` fraction (at most ``max_good``) of the completed points
        in the mask ``among``, ties broken by trial order."""
        candidates = np.flatnonzero(among & np.isfinite(self.losses))
        n_good = min(math.ceil(self.gamma * len(candidates)), self.max_good)
        order = candidates[np.argsort(self.losses[candidates], kind="stable")]
        good = np.zeros(len(self.losses), dtype=bool)
        good[order[:n_good]] = True
        return good

    @property
    def good(self) -> np.ndarray:
        """The split over every point (the groups without a condition use it)."""
        return self.good_among(np.ones(len(self.losses), dtype=bool))


class TPEStrategy(Strategy):
    """TPE over the space's unit-cube encoding: log/int/step floats, categoricals, conditions."""

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        n_trials: int,
        n_startup_trials: int = 10,
        n_ei_candidates: int = 24,
        gamma: float = 0.15,
        max_good: int = 25,
        prior_weight: float = 1.0,
        multivariate: bool = True,
        constant_liar: bool = True,
        categorical_smoothing: float = 0.2,
        bandwidth: str = "neighbours",
        startup: str = "sobol",
        window: int = 250,
        categorical_greed: float = 1.0,
    ) -> None:
        super().__init__(space, seed, n_trials)
        self.n_startup_trials = non_negative_int(n_startup_trials, "strategy.n_startup_trials")
        self.n_ei_candidates = positive_int(n_ei_candidates, "strategy.n_ei_candidates")
        self.gamma = _fraction(gamma, "strategy.gamma")
        self.max_good = positive_int(max_good, "strategy.max_good")
        self.prior_weight = positive_float(prior_weight, "strategy.prior_weight")
        self.multivariate = flag(multivariate, "strategy.multivariate")
        self.constant_liar = flag(constant_liar, "strategy.constant_liar")
        self.categorical_smoothing = _fraction(categorical_smoothing, "strategy.categorical_smoothing")
        self.bandwidth = one_of(bandwidth, "strategy.bandwidth", BANDWIDTHS)
        self.startup = one_of(startup, "strategy.startup", STARTUPS)
        self.window = positive_int(window, "strategy.window")
        self.categorical_greed = _non_negative(categorical_greed, "strategy.categorical_greed")
        self._rows = _Rows()
        self.groups = self._make_groups()
        self._startup_points = self._startup_design()

    # -- groups ------------------------------------------------------------------------

    def _make_groups(self) -> list[_Group]:
        by_condition: dict[tuple, list[Param]] = {}
        for p in self.space.params:
            by_condition.setdefault(p.when, []).append(p)
        groups: list[_Group] = []
        for params in by_condition.values():
            numeric = [p for p in params if not isinstance(p, CategoricalParam)]
            categorical = [p for p in params if isinstance(p, CategoricalParam)]
            if self.multivariate:
                groups.append(self._group(params, numeric, categorical, joint=True))
                continue
            if numeric:
                groups.append(self._group(numeric, numeric, [], joint=False))
            groups += [self._group([c], [], [c], joint=True) for c in categorical]
        order = {p.name: i for i, p in enumerate(self.space.params)}
        return sorted(groups, key=lambda g: min(order[p.name] for p in g.params))

    def _group(
        self, params: Sequence[Param], numeric: Sequence[Param], categorical: Sequence[CategoricalParam], joint: bool
    ) -> _Group:
        indices: list[int] = []
        widths: list[float] = []
        for p in numeric:
            part = self.space.slice_of(p.name)
            indices += list(range(part.start, part.stop))
            widths += [_resolution(p)] * p.dim
        return _Group(tuple(params), tuple(indices), tuple(categorical), joint, np.asarray(widths, dtype=float))

    # -- ask ---------------------------------------------------------------------------

    def _propose(self, n: int) -> list[Suggestion]:
        suggestions: list[Suggestion] = []
        for _ in range(n):
            seen = len(self.history) + len(self.pending) + len(suggestions)
            if seen < self.n_startup_trials or not self._any_completed():
                unit = self._startup_point()
            else:
                unit = self._sample(self._points(suggestions))
            suggestions.append(self._suggest_unit(unit))
        return suggestions

    def _startup_design(self) -> np.ndarray:
        """The startup trials' points: a scrambled Sobol design from the seed (or none: random)."""
        if self.startup == "random" or self.n_startup_trials == 0:
            return np.empty((0, self.space.dim))
        engine = ScrambledSobol(self.space.dim, scramble=True, rng=np.random.default_rng(self.seed))
        return engine.random_base2(math.ceil(math.log2(self.n_startup_trials)))[: self.n_startup_trials]

    def _startup_point(self) -> np.ndarray:
        """The next startup point (suggestion keys count from 0), then uniform random ones."""
        if self._next_key < len(self._startup_points):
            return self._startup_points[self._next_key].copy()
        return self.rng.random(self.space.dim)

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self._rows = _Rows()  # the restored history is encoded afresh at the next ask

    def _any_completed(self) -> bool:
        self._sync_rows()
        return bool(np.isfinite(self._rows.losses).any())

    def _sync_rows(self) -> None:
        """Bring the observed rows (unit point, active names, loss) up to the history: only the
        observations told since the last ask are encoded (the history only grows)."""
        rows = self._rows
        new = self.history[len(rows.losses) :]
        if new:
            rows.units = np.vstack(
                [rows.units.reshape(-1, self.space.dim), *[self._unit_of(o.suggestion) for o in new]]
            )
            rows.present += [set(o.suggestion.params) for o in new]
            rows.losses = np.concatenate([rows.losses, [_loss_of(o) for o in new]])

    def _points(self, proposed: list[Suggestion]) -> _Points:
        """Every observation and, as liars, the latest ``window`` pending suggestions with their
        losses. More liars would change nothing: l is drawn from completed points only, and g
        keeps the latest ``window`` rest points, the liars coming last (on a conditional space,
        liars in which a group is inactive are the exception). The cap keeps a suggestion's cost
        flat however many trials are in flight."""
        self._sync_rows()
        units, present, losses = (
            self._rows.units.reshape(-1, self.space.dim),
            list(self._rows.present),
            self._rows.losses,
        )
        if self.constant_liar:
            pending = self._liars(proposed)
            if pending:
                units = np.vstack([units, *[self._unit_of(s) for s in pending]])
                present += [set(s.params) for s in pending]
                losses = np.concatenate([losses, np.full(len(pending), math.inf)])
        return _Points(units, present, losses, self.gamma, self.max_good)

    def _liars(self, proposed: list[Suggestion]) -> list[Suggestion]:
        """The pending suggestions (and those of this ask) that count as bad points: the latest ``window``."""
        return (list(self.pending.values()) + proposed)[-self.window :]

    def _unit_of(self, s: Suggestion) -> np.ndarray:
        return np.asarray(s.unit, dtype=float) if s.unit is not None else self.space.encode(s.params)

    def _sample(self, points: _Points) -> np.ndarray:
        """One unit point: each active group drawn by l/g, in declaration order."""
        unit = np.full(self.space.dim, 0.5)
        values: dict = {}
        for group in self.groups:
            if not group.is_active(self.space, values):
                continue
            self._sample_group(group, points, unit)
            for p in group.params:
                values[p.name] = p.decode(unit[self.space.slice_of(p.name)])
        return unit

    def _sample_group(self, group: _Group, points: _Points, unit: np.ndarray) -> None:
        """Write the group's coordinates into ``unit``: the best of the candidates drawn from l."""
        good, rest = self._estimators(group, points)
        if group.joint and group.categorical:
            choices = self._draw_categoricals(good, rest)
            good, rest = good.given(choices), rest.given(choices)
        numeric, choices = good.sample(self.rng, self.n_ei_candidates, group.joint)
        score = good.log_density(numeric, choices, group.joint) - rest.log_density(numeric, choices, group.joint)
        if group.joint:
            best = int(np.argmax(score))
            numeric_best, choices_best = numeric[best], choices[best]
        else:  # one independent choice per coordinate
            picks = np.argmax(score, axis=0)
            numeric_best = numeric[picks, np.arange(numeric.shape[1])]
            choices_best = np.zeros(0, dtype=int)
        unit[list(group.numeric)] = numeric_best
        for c, index in zip(group.categorical, choices_best, strict=True):
            unit[self.space.slice_of(c.name).start] = (int(index) + 0.5) / len(c.choices)

    def _draw_categoricals(self, good: Mixture, rest: Mixture) -> np.ndarray:
        """The group's categorical values, drawn with probability ∝ l(c)·(l(c)/g(c))^greed over
        their own (numeric-free) densities: ``n_ei_candidates`` draws from l, one of them picked
        ∝ (l/g)^greed. 0 draws from l (each choice in proportion to its share of the good
        trials); a large greed is the argmax of l/g, which settles on one branch for good."""
        _, drawn = good.sample(self.rng, self.n_ei_candidates, joint=True)
        log_ratio = good.categorical_log_density(drawn) - rest.categorical_log_density(drawn)
        logits = self.categorical_greed * log_ratio
        probs = np.exp(logits - logits.max())
        return drawn[int(self.rng.choice(len(drawn), p=probs / probs.sum()))]

    def _estimators(self, group: _Group, points: _Points) -> tuple[Mixture, Mixture]:
        """l and g of a group, both over the points in which the group is active: the good/rest
        split is made among them (hyperopt's per-node split), so a branch's own best trials
        shape its l even when another branch holds the overall best ones. g keeps the latest
        ``window`` rest points."""
        active = np.array([group.params[0].name in names for names in points.present], dtype=bool)
        good = points.good_among(active)
        rest = np.flatnonzero(active & ~good)[-self.window :]
        return self._mixture(group, points.units[good]), self._mixture(group, points.units[rest])

    def _mixture(self, group: _Group, units: np.ndarray) -> Mixture:
        choices = np.array(
            [
                [
                    min(int(u[self.space.slice_of(c.name).start] * len(c.choices)), len(c.choices) - 1)
                    for c in group.categorical
                ]
                for u in units
            ],
            dtype=int,
        ).reshape(len(units), len(group.categorical))
        return build_mixture(
            units[:, list(group.numeric)],
            choices,
            [len(c.choices) for c in group.categorical],
            weights=recency_weights(len(units)),
            prior_weight=self.prior_weight,
            rule=self.bandwidth if group.joint else "neighbours",
            min_width=group.min_width,
            categorical_smoothing=self.categorical_smoothing,
        )


def _loss_of(observation: Observation) -> float:
    """A completed trial's loss; inf for a failed or pruned one (never good)."""
    if observation.state == TrialState.COMPLETE and observation.loss is not None:
        return float(observation.loss)
    return math.inf


def recency_weights(n: int, recent: int = RECENT) -> np.ndarray:
    """Weights of n observations in trial order: the last ``recent`` count fully, older ones
    ramp down linearly to 1/n (Bergstra 2011's forgetting, as hyperopt and Optuna)."""
    if n < recent:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, n - recent), np.ones(recent)])


def _resolution(p: Param) -> float:
    """The smallest kernel width worth having on a coordinate: an int's cell, a float's step."""
    if isinstance(p, IntParam) and not p.log:
        return 1.0 / p.count
    if isinstance(p, FloatParam) and p.step is not None:
        return p.step / (p.high - p.low)
    return 0.0


def _non_negative(value: object, key: str) -> float:
    if not is_number(value) or not float(value) >= 0:  # type: ignore[arg-type]
        raise ConfigError(key, value, "must be a number >= 0")
    return float(value)  # type: ignore[arg-type]


def _fraction(value: object, key: str) -> float:
    number = positive_float(value, key)
    if number > 1:
        raise ConfigError(key, value, "must be in (0, 1]")
    return number
