"""Ray Tune's per-trial overhead on a trivial objective (a function trainable that reports a constant).

A peer's number for the per-trial overhead of hpo's executors (benchmarks/parallel_executors.py):
Ray Tune as its users meet it, with its defaults, ``tune.Tuner(trainable, param_space={"x":
tune.uniform(0, 1)}, tune_config=tune.TuneConfig(num_samples=N))`` (random search, a FIFO scheduler,
one trial per CPU, the default CSV/JSON/TensorBoard result loggers, and a fresh actor per trial:
a new worker process that imports ``ray.tune``, ~1.5 s of CPU here), and the same with
``TuneConfig(reuse_actors=True)`` (trials run one after another in a kept actor).
Only the console and the storage are changed: ``RunConfig(verbose=0)`` (no progress table; the
header Ray still prints per experiment is swallowed) and ``storage_path`` in a temporary folder
(never ``~/ray_results``). Ray runs locally (``ray.init(address="local", num_cpus=2)``, no
dashboard, usage statistics off).

What is measured, in this order:

* ``import ray`` and ``ray.init`` (a fresh local instance): reported on their own, never counted
  in the trials;
* per case, a warm-up fit of 2 trials (the first fit pays for Tune's imports and first workers),
  then a fit of 1 trial and a fit of N trials, each timed around ``Tuner(...)`` and ``fit()``.

**ms per trial = (fit of N trials − fit of 1 trial) / (N − 1)**: the marginal cost of one more
trial, without the fixed cost of a fit (setting up the experiment, writing its state, tearing it
down). ``total / N`` (the N-trial fit divided by N, after the warm-up) is reported beside it.
Both use ``num_cpus`` trials at a time, as hpo's executors use their workers.

    python benchmarks/ray_tune_overhead.py [--trials 30] [--cpus 2] [--no-reuse]

Writes benchmarks/results/ray_tune_overhead.{md,json}. From another benchmark (benchmarks/ on
sys.path; start Ray once to share it between calls, else each call starts and stops its own):

    from ray_tune_overhead import ray_tune_ms_per_trial, start_ray
    start_ray(2)
    ray_tune_ms_per_trial(200, reuse_actors=False, shutdown=False)["ms_per_trial"]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_TRIALS = 30


def start_ray(num_cpus: int = 2) -> float | None:
    """Start a fresh local Ray instance with ``num_cpus`` CPUs, quietly; the seconds it took, or
    None when Ray is already running in this process (then it is used as it is)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report over the network
    import ray

    if ray.is_initialized():
        return None
    started = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    return time.perf_counter() - started


def _fit(n_trials: int, reuse_actors: bool, storage: str, name: str) -> float:
    """Seconds of ``Tuner(...).fit()`` with ``n_trials`` samples of the trivial trainable."""
    from ray import tune

    def trainable(config: dict[str, Any]) -> None:  # nested: Ray pickles it by value
        from ray import tune

        tune.report({"value": 0.0})

    started = time.perf_counter()
    # verbose=0 still prints each experiment's header and paths (Ray's new output engine): swallowed
    with contextlib.redirect_stdout(io.StringIO()):
        tuner = tune.Tuner(
            trainable,
            param_space={"x": tune.uniform(0, 1)},
            tune_config=tune.TuneConfig(num_samples=n_trials, reuse_actors=reuse_actors),
            run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0),
        )
        results = tuner.fit()
    seconds = time.perf_counter() - started
    if results.num_errors or len(results) != n_trials:
        raise RuntimeError(f"{name}: {results.num_errors} of {len(results)} trials failed (asked {n_trials})")
    return seconds


def ray_tune_ms_per_trial(
    n_trials: int, reuse_actors: bool, *, num_cpus: int = 2, shutdown: bool = True
) -> dict[str, Any]:
    """Ray Tune's overhead per trial on a trivial objective, in ms: (fit of ``n_trials`` − fit of 1
    trial) / (``n_trials`` − 1), after a warm-up fit of 2 trials. Starts a local Ray with
    ``num_cpus`` CPUs when none is running (``ray_init_s``, None when one was; it is shut down
    at the end when ``shutdown`` and started here). Every run's files go to a temporary folder,
    removed at the end.

    Keys: ms_per_trial, ms_per_trial_total (fit / n_trials), fit_s, one_trial_fit_s,
    warmup_s, ray_init_s, n_trials, reuse_actors, num_cpus, ray."""
    if n_trials < 2:
        raise ValueError(f"n_trials must be at least 2, not {n_trials}")
    import ray

    ray_init_s = start_ray(num_cpus)
    try:
        with tempfile.TemporaryDirectory(prefix="ray_tune_overhead_") as storage:
            tag = "reuse" if reuse_actors else "fresh"
            warmup = _fit(2, reuse_actors, storage, f"warmup_{tag}")
            one = _fit(1, reuse_actors, storage, f"one_{tag}")
            many = _fit(n_trials, reuse_actors, storage, f"n{n_trials}_{tag}")
    finally:
        if shutdown and ray_init_s is not None:
            ray.shutdown()
    return {
        "ms_per_trial": 1000 * (many - one) / (n_trials - 1),
        "ms_per_trial_total": 1000 * many / n_trials,
        "fit_s": many,
        "one_trial_fit_s": one,
        "warmup_s": warmup,
        "ray_init_s": ray_init_s,
        "n_trials": n_trials,
        "reuse_actors": reuse_actors,
        "num_cpus": num_cpus,
        "ray": ray.__version__,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=DEFAULT_TRIALS, help=f"trials per fit (default {DEFAULT_TRIALS})")
    parser.add_argument("--cpus", type=int, default=2, help="ray.init(num_cpus=...) (default 2)")
    parser.add_argument("--no-reuse", action="store_true", help="measure only the default (no reuse_actors=True)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = time.perf_counter()
    import ray
    from publish import publish

    import_s = time.perf_counter() - started
    init_s = start_ray(args.cpus)
    cases = [False] if args.no_reuse else [False, True]
    try:
        results = [ray_tune_ms_per_trial(args.trials, reuse, num_cpus=args.cpus, shutdown=False) for reuse in cases]
    finally:
        ray.shutdown()
    rows = [
        f"| {'`reuse_actors=True`' if r['reuse_actors'] else 'defaults (a fresh actor per trial)'} "
        f"| {r['warmup_s']:.2f} s | {r['one_trial_fit_s']:.2f} s | {r['fit_s']:.2f} s "
        f"| **{r['ms_per_trial']:.0f} ms** | {r['ms_per_trial_total']:.0f} ms |"
        for r in results
    ]
    text = "\n".join(
        [
            f"## Ray Tune {ray.__version__}: overhead per trial on a trivial objective",
            "",
            f"`python benchmarks/ray_tune_overhead.py --trials {args.trials}` on {os.cpu_count()} cores, "
            f"local Ray with num_cpus={args.cpus}; a function trainable that reports a constant, "
            "`Tuner` defaults but `verbose=0` and a temporary `storage_path`.",
            "",
            f"| Tuner | warm-up fit (2 trials) | fit of 1 trial | fit of {args.trials} trials "
            f"| per trial: (fit of {args.trials} − fit of 1) / {args.trials - 1} | per trial: total / {args.trials} |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"Not in the numbers above: `import ray` {import_s:.2f} s, `ray.init` (a fresh local instance) "
            f"{init_s:.2f} s. Load average at the end: {os.getloadavg()[0]:.2f} (1 min).",
        ]
    )
    data = {
        "import_ray_s": import_s,
        "ray_init_s": init_s,
        "loadavg_1min": os.getloadavg()[0],
        "cores": os.cpu_count(),
        "trials": args.trials,
        "cases": results,
    }
    return publish("ray_tune_overhead", text, data, [])


if __name__ == "__main__":
    raise SystemExit(main())
