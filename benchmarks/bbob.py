"""COCO's BBOB suite (``cocoex``, the ``coco-experiment`` package): our black-box strategies against
the state of the art's, function by function.

Problems: BBOB functions (default f1, f7, f10, f15, f17, f20, f21, f24: sphere, step ellipsoid,
ellipsoid, Rastrigin, Schaffers F7, Schwefel, Gallagher 101, Lunacek bi-Rastrigin) in 2, 5 and
10 dimensions, instances 1–3, box [−5, 5]^d, evaluated through ``cocoex.Suite("bbob", ...)``;
f_opt from ``cocoex.BareProblem``. Each method runs once per problem (seed = the instance) for
max(budget multipliers)·d evaluations; the best f − f_opt after 10·d and 50·d evaluations are
read off the same run (COCO's anytime view).

Methods: ours (``tpe``, ``gp_bo``, ``cmaes``, ``evolution``, ``nelder_mead``, ``pso``, ``random``,
each as ``hpo run strategy=NAME`` composes it) and the peers:

* Optuna 5: ``optuna_tpe`` (TPESampler), ``optuna_gp`` (GPSampler), ``optuna_cmaes`` (CmaEsSampler);
* ``botorch``: BoTorch 0.18's SingleTaskGP with qLogNoisyExpectedImprovement (``q = 1``), 2·d + 1
  Sobol start points, ``optimize_acqf`` with 5 restarts over 256 raw samples;
* ``smac``: SMAC3 2.4's BlackBoxFacade (its GP);
* ``hyperopt``: hyperopt 0.3's ``tpe.suggest`` through ``fmin``;
* ``skopt``: scikit-optimize 0.10's ``Optimizer`` with its GP (``gp_hedge``).

Dropped: **HEBO** — HEBO 0.3.6 (the registry's newest) requires ``numpy<1.25`` and ``pymoo==0.6.0``;
this project runs numpy 2.4 (scipy 1.17 needs numpy ≥ 1.26.4, torch 2.13 is pinned), so pip can
only install it by downgrading numpy, which breaks scipy (``No module named 'numpy.exceptions'``).

Reported, per (dimension, budget): the median f − f_opt over the instances per function and
method, each method's rank per function (by that median; ties share the mean rank), its mean
rank over the functions, its median seconds per suggestion (ask + tell, the objective excluded),
and the matchups of each of our strategies with its namesakes (tpe: Optuna TPE, hyperopt; cmaes:
Optuna CMA-ES; gp_bo: Optuna GP, skopt, BoTorch, SMAC3): wins/losses over the problems and a
two-sided Wilcoxon signed-rank p-value (paired by function and instance).

A full run is long (hours: the GP methods at 500 evaluations in 10-D); it can be run in parts,
``--resume`` keeps what an earlier run of the same ``--out`` already measured, and ``--report``
prints the tables of what it holds (a function enters a table once every method has run on it):

    python benchmarks/bbob.py [--dims 2,5,10] [--functions 1,7,10,15,17,20,21,24] [--instances 1,2,3]
        [--budget-mult 10,50] [--methods tpe,gp_bo,...] [--resume] [--out benchmarks/results/bbob.md]
    python benchmarks/bbob.py --quick    # 2-D, f1 f10 f15, 2 instances, ours + Optuna's TPE and CMA-ES (~1 min)
    python benchmarks/bbob.py --methods gp_bo,gp_bo:n_initial=5+fit_restarts=3   # a variant of ours beside it

Install the peers with ``pip install -c constraints.txt '.[bbob]'`` (``make bench-bbob`` does).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

LOWER, UPPER = -5.0, 5.0
FUNCTIONS = (1, 7, 10, 15, 17, 20, 21, 24)
OURS = ("tpe", "gp_bo", "cmaes", "evolution", "nelder_mead", "pso", "random")
PEERS = ("optuna_tpe", "optuna_gp", "optuna_cmaes", "botorch", "smac", "hyperopt", "skopt")
NAMESAKES = {
    "tpe": ("optuna_tpe", "hyperopt"),
    "cmaes": ("optuna_cmaes",),
    "gp_bo": ("optuna_gp", "skopt", "botorch", "smac"),
}
QUICK = {
    "dims": [2],
    "functions": [1, 10, 15],
    "instances": [1, 2],
    "budget_mult": [10, 50],
    "methods": ["tpe", "cmaes", "evolution", "nelder_mead", "pso", "random", "optuna_tpe", "optuna_cmaes"],
}
Objective = Callable[[np.ndarray], float]
Trace = tuple[list[float], float]  # f of every evaluation, seconds per suggestion


# -- the drivers: one function per method, (objective, dim, budget, seed) -> trace ----------------


def timed_loop(
    ask: Callable[[], Any],
    tell: Callable[[Any, float], None],
    to_x: Callable[[Any], np.ndarray],
    objective: Objective,
    budget: int,
) -> Trace:
    """Ask, evaluate, tell ``budget`` times; the seconds of ask + tell only."""
    values, overhead = [], 0.0
    for _ in range(budget):
        t0 = time.perf_counter()
        handle = ask()
        x = to_x(handle)
        t1 = time.perf_counter()
        value = objective(x)
        t2 = time.perf_counter()
        tell(handle, value)
        overhead += t1 - t0 + time.perf_counter() - t2
        values.append(value)
    return values, overhead / budget


def run_ours(name: str, overrides: tuple[str, ...] = ()) -> Callable[[Objective, int, int, int], Trace]:
    """Our strategy ``name`` as ``hpo run strategy=NAME`` composes it, with ``overrides`` (a
    variant's ``strategy.KEY=VALUE``)."""

    def run(objective: Objective, dim: int, budget: int, seed: int) -> Trace:
        from hpo_cli.build import build_strategy, compose_config
        from hpo_cli.settings import read_settings
        from hpo_cli.space import parse_space
        from hpo_cli.trial import Observation, TrialState

        space = parse_space({f"x{i}": {"type": "float", "low": LOWER, "high": UPPER} for i in range(dim)}, {})
        cfg = compose_config([f"strategy={name}", f"seed={seed}", f"n_trials={budget}", *overrides])
        strategy = build_strategy(cfg.strategy, space, read_settings(cfg))
        return timed_loop(
            lambda: strategy.ask(1)[0],
            lambda s, value: strategy.tell([Observation(s, TrialState.COMPLETE, value)]),
            lambda s: np.array([s.params[f"x{i}"] for i in range(dim)]),
            objective,
            budget,
        )

    return run


def run_optuna(sampler_name: str) -> Callable[[Objective, int, int, int], Trace]:
    def run(objective: Objective, dim: int, budget: int, seed: int) -> Trace:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = getattr(optuna.samplers, sampler_name)(seed=seed)
        study = optuna.create_study(sampler=sampler, direction="minimize")

        def ask() -> Any:
            trial = study.ask()
            return trial, np.array([trial.suggest_float(f"x{i}", LOWER, UPPER) for i in range(dim)])

        return timed_loop(ask, lambda h, value: study.tell(h[0], value), lambda h: h[1], objective, budget)

    return run


def run_hyperopt(objective: Objective, dim: int, budget: int, seed: int) -> Trace:
    from hyperopt import STATUS_OK, Trials, fmin, hp, tpe

    values: list[float] = []
    inside = [0.0]

    def wrapped(params: dict[str, float]) -> dict[str, Any]:
        t0 = time.perf_counter()
        value = objective(np.array([params[f"x{i}"] for i in range(dim)]))
        inside[0] += time.perf_counter() - t0
        values.append(value)
        return {"loss": value, "status": STATUS_OK}

    space = {f"x{i}": hp.uniform(f"x{i}", LOWER, UPPER) for i in range(dim)}
    t0 = time.perf_counter()
    fmin(
        wrapped,
        space,
        algo=tpe.suggest,
        max_evals=budget,
        trials=Trials(),
        rstate=np.random.default_rng(seed),
        show_progressbar=False,
    )
    return values, (time.perf_counter() - t0 - inside[0]) / budget


def run_skopt(objective: Objective, dim: int, budget: int, seed: int) -> Trace:
    import skopt

    optimizer = skopt.Optimizer([(LOWER, UPPER)] * dim, base_estimator="GP", random_state=seed)
    return timed_loop(optimizer.ask, lambda x, value: optimizer.tell(x, value), np.asarray, objective, budget)


def run_smac(objective: Objective, dim: int, budget: int, seed: int) -> Trace:
    from ConfigSpace import ConfigurationSpace, Float
    from smac import BlackBoxFacade, Scenario
    from smac.runhistory.dataclasses import TrialValue

    logging.getLogger("smac").setLevel(logging.ERROR)
    space = ConfigurationSpace(seed=seed)
    space.add([Float(f"x{i}", (LOWER, UPPER)) for i in range(dim)])
    with tempfile.TemporaryDirectory() as out:
        scenario = Scenario(space, deterministic=True, n_trials=budget, seed=seed, output_directory=Path(out))
        facade = BlackBoxFacade(scenario, lambda config, seed=0: 0.0, overwrite=True, logging_level=40)
        return timed_loop(
            facade.ask,
            lambda info, value: facade.tell(info, TrialValue(cost=value)),
            lambda info: np.array([info.config[f"x{i}"] for i in range(dim)]),
            objective,
            budget,
        )


class BoTorchLoop:
    """SingleTaskGP + qLogNoisyExpectedImprovement over the unit cube (BoTorch's maximization of −f)."""

    def __init__(self, dim: int, budget: int, seed: int) -> None:
        import torch
        from torch.quasirandom import SobolEngine

        self.dim, self.seed = dim, seed
        n_start = min(2 * dim + 1, budget)
        self.start = SobolEngine(dim, scramble=True, seed=seed).draw(n_start).double()
        self.X: list[Any] = []
        self.y: list[float] = []
        torch.manual_seed(seed)

    def ask(self) -> Any:
        import torch
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from botorch.optim import optimize_acqf
        from gpytorch.mlls import ExactMarginalLogLikelihood

        if len(self.X) < len(self.start):
            return self.start[len(self.X)]
        train_x = torch.stack(self.X)
        train_y = -torch.tensor(self.y, dtype=torch.double).unsqueeze(-1)
        model = SingleTaskGP(train_x, train_y, outcome_transform=Standardize(m=1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
            acquisition = qLogNoisyExpectedImprovement(model, train_x, prune_baseline=True)
            bounds = torch.stack([torch.zeros(self.dim), torch.ones(self.dim)]).double()
            candidate, _ = optimize_acqf(acquisition, bounds, q=1, num_restarts=5, raw_samples=256)
        return candidate[0].detach()

    def tell(self, u: Any, value: float) -> None:
        self.X.append(u)
        self.y.append(value)


def run_botorch(objective: Objective, dim: int, budget: int, seed: int) -> Trace:
    loop = BoTorchLoop(dim, budget, seed)
    return timed_loop(loop.ask, loop.tell, lambda u: LOWER + (UPPER - LOWER) * u.numpy(), objective, budget)


METHODS: dict[str, Callable[[Objective, int, int, int], Trace]] = {
    **{name: run_ours(name) for name in OURS},
    "optuna_tpe": run_optuna("TPESampler"),
    "optuna_gp": run_optuna("GPSampler"),
    "optuna_cmaes": run_optuna("CmaEsSampler"),
    "botorch": run_botorch,
    "smac": run_smac,
    "hyperopt": run_hyperopt,
    "skopt": run_skopt,
}


def method_runner(method: str) -> Callable[[Objective, int, int, int], Trace]:
    """A method of METHODS, or a variant of ours named ``STRATEGY:KEY=VALUE+KEY=VALUE`` (e.g.
    ``gp_bo:n_initial=5``: ``strategy.n_initial=5``), for pilots of a default beside the peers."""
    if method in METHODS:
        return METHODS[method]
    name, _, options = method.partition(":")
    return run_ours(name, tuple(f"strategy.{option}" for option in options.split("+") if option))


# -- running -------------------------------------------------------------------------------------


def bbob_problem(function: int, dim: int, instance: int) -> tuple[Objective, float]:
    import cocoex

    # the suite's own instance list (1–5, 71–80) is replaced by the one asked for: any instance id works
    suite = cocoex.Suite("bbob", f"instances: {instance}", f"dimensions:{dim} function_indices:{function}")
    problem = suite.get_problem_by_function_dimension_instance(function, dim, instance)
    f_opt = float(cocoex.BareProblem("bbob", function, dim, instance).best_value())
    return (lambda x: float(problem(np.asarray(x, dtype=float)))), f_opt


def record_key(r: dict[str, Any]) -> tuple[str, int, int, int]:
    return r["method"], r["dim"], r["function"], r["instance"]


def run_one(method: str, function: int, dim: int, instance: int, mults: list[int]) -> dict[str, Any]:
    objective, f_opt = bbob_problem(function, dim, instance)
    budget = max(mults) * dim
    t0 = time.perf_counter()
    values, seconds = method_runner(method)(objective, dim, budget, instance)
    best = np.minimum.accumulate(np.asarray(values) - f_opt)
    return {
        "method": method,
        "dim": dim,
        "function": function,
        "instance": instance,
        "regret": {str(m): float(best[m * dim - 1]) for m in mults},
        "seconds_per_suggestion": seconds,
        "wall_s": time.perf_counter() - t0,
    }


# -- tables ----------------------------------------------------------------------------------------


def medians(records: list[dict[str, Any]], dim: int, mult: int, methods: list[str], functions: list[int]) -> dict:
    """{function: {method: median f − f_opt over instances}} for the cells that have records."""
    out: dict[int, dict[str, float]] = {}
    for f in functions:
        row = {}
        for m in methods:
            got = [r["regret"][str(mult)] for r in records if (r["method"], r["dim"], r["function"]) == (m, dim, f)]
            if got:
                row[m] = float(np.median(got))
        if len(row) == len(methods):
            out[f] = row
    return out


def mean_ranks(table: dict[int, dict[str, float]], methods: list[str]) -> tuple[dict[int, dict[str, float]], dict]:
    ranks = {f: dict(zip(methods, stats.rankdata([row[m] for m in methods]), strict=True)) for f, row in table.items()}
    mean = {m: float(np.mean([ranks[f][m] for f in ranks])) for m in methods} if ranks else {}
    return ranks, mean


def is_ours(method: str) -> bool:
    """One of our strategies, or a variant of one (``gp_bo:trust_region=true``)."""
    return method.partition(":")[0] in OURS


def matchups(records: list[dict[str, Any]], dim: int, mult: int, methods: list[str]) -> list[str]:
    """Each of ours (variants too) against its namesakes among ``methods``."""
    lines = []
    by_key = {record_key(r): r["regret"][str(mult)] for r in records if r["dim"] == dim}
    for ours in (m for m in methods if is_ours(m)):
        for peer in (p for p in NAMESAKES.get(ours.partition(":")[0], ()) if p in methods):
            pairs = [
                (v, by_key[(peer, *k[1:])]) for k, v in by_key.items() if k[0] == ours and (peer, *k[1:]) in by_key
            ]
            if not pairs:
                continue
            a, b = np.array(pairs).T
            wins, losses = int(np.sum(a < b)), int(np.sum(a > b))
            p = stats.wilcoxon(a, b).pvalue if np.any(a != b) else 1.0
            lines.append(f"{ours} vs {peer}: won {wins}, lost {losses} of {len(a)} problems, Wilcoxon p = {p:.3g}")
    return lines


def report(
    records: list[dict[str, Any]], dims: list[int], mults: list[int], methods: list[str], functions: list[int]
) -> str:
    out = []
    for dim in dims:
        for mult in mults:
            table = medians(records, dim, mult, methods, functions)
            if not table:
                continue
            ranks, mean = mean_ranks(table, methods)
            n_instances = len({r["instance"] for r in records if r["dim"] == dim})
            out += [
                f"\n### d = {dim}, budget {mult}·d = {mult * dim} evaluations ({n_instances} instances)\n",
                "Median f − f_opt (rank among the methods).\n",
                "| f | " + " | ".join(methods) + " |",
                "|---" * (len(methods) + 1) + "|",
            ]
            for f, row in table.items():
                out.append(f"| f{f} | " + " | ".join(f"{row[m]:.3g} ({ranks[f][m]:g})" for m in methods) + " |")
            out.append("| **mean rank** | " + " | ".join(f"**{mean[m]:.2f}**" for m in methods) + " |")
            seconds = {
                m: np.median([r["seconds_per_suggestion"] for r in records if r["method"] == m and r["dim"] == dim])
                for m in methods
            }
            out.append("| s / suggestion | " + " | ".join(f"{seconds[m]:.3g}" for m in methods) + " |")
            ours = [m for m in methods if is_ours(m)]
            peers = [m for m in methods if not is_ours(m)]
            if ours and peers:
                best_ours, best_peer = min(ours, key=mean.get), min(peers, key=mean.get)  # type: ignore[arg-type]
                out.append(
                    f"\nBest of ours: {best_ours} ({mean[best_ours]:.2f}); best peer: {best_peer} "
                    f"({mean[best_peer]:.2f})."
                )
            out += ["", *[f"- {line}" for line in matchups(records, dim, mult, methods)]]
    return "\n".join(out) + "\n"


RANK_TOLERANCE = 1.0  # how much one of our strategies' mean rank in a cell may worsen before it is a regression


def our_mean_ranks(
    records: list[dict[str, Any]], dims: list[int], mults: list[int], methods: list[str], functions: list[int]
) -> dict[str, float]:
    """{"d=D, M·d, METHOD": mean rank among ``methods``} for each of our strategies in each cell."""
    out = {}
    for dim in dims:
        for mult in mults:
            table = medians(records, dim, mult, methods, functions)
            if table:
                _, mean = mean_ranks(table, methods)
                out.update({f"d={dim}, {mult}·d, {m}": mean[m] for m in methods if m in OURS})
    return out


def regressions(current: dict[str, float], baseline: dict[str, float]) -> list[str]:
    """One line per cell where one of our strategies ranks more than RANK_TOLERANCE worse than in
    the baseline, or has no rank at all."""
    failed = []
    for cell, then in baseline.items():
        now = current.get(cell)
        if now is None:
            failed.append(f"{cell}: not measured (baseline mean rank {then:.2f})")
        elif now > then + RANK_TOLERANCE:
            failed.append(f"{cell}: mean rank {now:.2f}, baseline {then:.2f} (tolerance {RANK_TOLERANCE:g})")
    return failed


def parse_ints(text: str) -> list[int]:
    """``1,4-6`` → [1, 4, 5, 6]: numbers and inclusive ranges, comma-separated."""
    numbers: list[int] = []
    for token in filter(None, text.split(",")):
        first, _, last = token.partition("-")
        numbers += list(range(int(first), int(last or first) + 1))
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=parse_ints, default=[2, 5, 10])
    parser.add_argument("--functions", type=parse_ints, default=list(FUNCTIONS))
    parser.add_argument("--instances", type=parse_ints, default=[1, 2, 3])
    parser.add_argument("--budget-mult", type=parse_ints, default=[10, 50])
    parser.add_argument("--methods", type=lambda s: s.split(","), default=list(OURS + PEERS))
    parser.add_argument("--quick", action="store_true", help="2-D, 3 functions, 2 instances, ours + Optuna (~1 min)")
    parser.add_argument("--resume", action="store_true", help="keep the records already in --out's .json")
    parser.add_argument("--report", action="store_true", help="run nothing: the tables of --out's .json records")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--check",
        type=Path,
        default=None,
        help="compare our strategies' mean ranks with this baseline (.json): exit 1 naming each cell that "
        f"worsened by more than {RANK_TOLERANCE:g} (CI: --quick --check benchmarks/baseline/bbob_quick.json)",
    )
    parser.add_argument("--save-baseline", type=Path, default=None, help="write our strategies' mean ranks there")
    args = parser.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    unknown = [m for m in args.methods if m not in METHODS and not is_ours(m)]
    if unknown:
        they = f"{', '.join(METHODS)}, or a variant of ours, STRATEGY:KEY=VALUE+KEY=VALUE"
        raise SystemExit(f"--methods={','.join(unknown)}: not a method (they are: {they})")
    out = args.out or Path("benchmarks/results") / ("bbob_quick.md" if args.quick else "bbob.md")
    warnings.filterwarnings("ignore")
    records: list[dict[str, Any]] = []
    if (args.resume or args.report) and out.with_suffix(".json").exists():
        records = json.loads(out.with_suffix(".json").read_text())["records"]
    done = {record_key(r) for r in records if all(str(m) in r["regret"] for m in args.budget_mult)}
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for dim in [] if args.report else args.dims:
        for function in args.functions:
            for instance in args.instances:
                for method in args.methods:
                    if (method, dim, function, instance) in done:
                        continue
                    record = run_one(method, function, dim, instance, args.budget_mult)
                    records = [r for r in records if record_key(r) != record_key(record)] + [record]
                    print(
                        f"d={dim} f{function} i{instance} {method:13s} "
                        + " ".join(f"{k}·d: {v:.3g}" for k, v in record["regret"].items())
                        + f"  {record['seconds_per_suggestion']:.3g} s/sugg  ({record['wall_s']:.0f} s)",
                        flush=True,
                    )
                    out.with_suffix(".json").write_text(json.dumps({"records": records}, indent=1))
    wall = time.perf_counter() - t0
    text = report(records, args.dims, args.budget_mult, args.methods, args.functions)
    ran = (
        f"Ran: dims {args.dims}, functions {args.functions}, instances {args.instances}, budgets "
        f"{args.budget_mult}·d, methods {args.methods}; {wall:.0f} s wall in this invocation.\n"
    )
    print(ran + text)
    out.write_text(ran + text)
    ranks = our_mean_ranks(records, args.dims, args.budget_mult, args.methods, args.functions)
    if args.save_baseline is not None:
        args.save_baseline.write_text(json.dumps({"mean_ranks": ranks}, indent=1, ensure_ascii=False) + "\n")
    if args.check is not None:
        failed = regressions(ranks, json.loads(args.check.read_text())["mean_ranks"])
        for line in failed:
            print(f"REGRESSION {line}")
        if failed:
            raise SystemExit(1)
        print(f"bbob: no regression against {args.check} ({len(ranks)} cells of our strategies)")


if __name__ == "__main__":
    main()
