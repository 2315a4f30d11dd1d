"""``hpo``: the command-line entry point. Thin by design: argparse reads each subcommand's
options (``hpo SUBCOMMAND --help``), heavy imports happen per command, every error is one
line from :func:`hpo_cli.errors.fail`. ``hpo run`` hands its arguments to Hydra untouched."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from hpo_cli.errors import ConfigError, RunDirError, fail

DESCRIPTION = "Hyperparameter optimization experiments from the command line."
EPILOG = """\
Runs are written to runs/<date>/<time>_<strategy>_<task>/ (trials.jsonl, summary.json,
best.yaml, plots/). Documentation: README.md.
"""
RUN_HELP = """run a study, e.g. hpo run strategy=sobol task=ridge n_trials=64;
hpo run -m strategy=grid,random seed=0,1,2 (Hydra multirun); hpo run --help (config groups);
hpo run --cfg job (the composed config)"""


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line through :func:`fail` (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.partition(" ")[2]
        fail(f"{command}: {message}" if command else message)


def make_parser() -> Parser:
    from importlib.metadata import version

    parser = Parser(prog="hpo", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("-V", "--version", action="version", version=f"hpo_cli {version('hpo_cli')}")
    commands = parser.add_subparsers(dest="command", metavar="<command>", parser_class=Parser)
    commands.add_parser("run", help=RUN_HELP, add_help=False)
    resume = commands.add_parser("resume", help="continue an interrupted run where it stopped")
    resume.add_argument("run_dir", metavar="RUN_DIR", help="the run directory (it holds summary.json)")
    resume.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE", help="n_trials=N or timeout_s=S")
    compare = commands.add_parser("compare", help="runs or multirun folders side by side: table, CSV, plots")
    compare.add_argument("paths", nargs="+", metavar="PATH", help="run directories or folders holding runs")
    compare.add_argument("--out", metavar="DIR", help="where tables and plots go (default: the common folder)")
    bench = commands.add_parser("bench", help="a benchmark suite (benchmarks/SUITE.yaml) against its baseline")
    bench.add_argument("suite", metavar="SUITE", help="a suite name in benchmarks/, or a YAML path")
    mode = bench.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when a metric regresses against the baseline")
    mode.add_argument("--update", action="store_true", help="make these results the baseline")
    bench.add_argument("--baseline-dir", default="benchmarks/baseline", metavar="DIR")
    bench.add_argument("--results-dir", default="benchmarks/results", metavar="DIR")
    gradcheck = commands.add_parser(
        "gradcheck",
        help="a hypergradient against finite differences on your config",
        description="e.g. hpo gradcheck task=polynomial space=polynomial_per_coef method=reverse",
    )
    gradcheck.add_argument(
        "overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="method=M point=center|random eps=E tol=T seed_point=N, and any hpo run override",
    )
    add_optuna_commands(commands)
    completion = commands.add_parser("completion", help='shell completion: eval "$(hpo completion bash)"')
    completion.add_argument("shell", choices=["bash"], help="the shell to complete for")
    return parser


PLOT_KINDS = "importance,parallel,slice,contour,edf"


def add_optuna_commands(commands: argparse._SubParsersAction) -> None:
    """export, plot, dashboard: runs seen through Optuna's storage, plots and dashboard."""
    export = commands.add_parser("export", help="runs as Optuna studies in an Optuna storage (SQLite, journal file)")
    export.add_argument("paths", nargs="+", metavar="RUN", help="run directories or folders holding runs")
    export.add_argument("--storage", required=True, metavar="URL", help="sqlite:///FILE.db, or journal:FILE.log")
    plot = commands.add_parser("plot", help="Optuna's plots of runs (importance, parallel, slice, contour, EDF)")
    plot.add_argument("paths", nargs="+", metavar="RUN", help="run directories or folders holding runs")
    plot.add_argument("--kind", default=PLOT_KINDS, metavar="KINDS", help=f"comma-separated, of {PLOT_KINDS}")
    dashboard = commands.add_parser("dashboard", help="optuna-dashboard on the runs (127.0.0.1 only; Ctrl-C stops)")
    dashboard.add_argument("paths", nargs="+", metavar="RUN", help="run directories or folders holding runs")
    dashboard.add_argument("--port", type=int, default=8080, help="the local port (default 8080)")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] == "run":  # Hydra parses its own command line (--help, -m, --cfg, ...)
        from hpo_cli.commands.run import hydra_run

        return hydra_run(args[1:])
    parser = make_parser()
    if not args:
        parser.print_help()
        return 0
    ns = parser.parse_args(args)
    try:
        return dispatch(ns)
    except (ConfigError, RunDirError) as exc:  # the one boundary: every subcommand's refusals
        fail(str(exc), exc.exit_code)


def dispatch(ns: argparse.Namespace) -> int:
    if ns.command == "resume":
        from hpo_cli.commands.resume import resume

        return resume(ns.run_dir, ns.overrides)
    if ns.command == "compare":
        from pathlib import Path

        from hpo_cli.commands.compare import compare

        return compare(ns.paths, None if ns.out is None else Path(ns.out))
    if ns.command == "bench":
        from hpo_cli.commands.bench import bench

        mode = "check" if ns.check else "update" if ns.update else None
        return bench(ns.suite, mode, ns.baseline_dir, ns.results_dir)
    if ns.command in ("export", "plot", "dashboard"):
        return dispatch_optuna(ns)
    if ns.command == "completion":
        from hpo_cli.commands.completion import completion

        return completion(ns.shell)
    from hpo_cli.commands.gradcheck import gradcheck

    return gradcheck(ns.overrides)


def dispatch_optuna(ns: argparse.Namespace) -> int:
    if ns.command == "export":
        from hpo_cli.commands.export import export

        return export(ns.paths, ns.storage)
    if ns.command == "plot":
        from hpo_cli.commands.plot import plot

        return plot(ns.paths, ns.kind)
    from hpo_cli.commands.dashboard import dashboard

    return dashboard(ns.paths, ns.port)


if __name__ == "__main__":
    raise SystemExit(main())
