"""``hpo``: the command-line entry point. Thin by design: heavy imports happen per command."""

from __future__ import annotations

import sys

USAGE = """\
usage: hpo <command> [arguments]

Hyperparameter optimization experiments from the command line.

commands:
  run [OVERRIDES]         run a study, e.g. hpo run strategy=sobol task=ridge n_trials=64
                          hpo run -m strategy=grid,random seed=0,1,2   (Hydra multirun)
                          hpo run --help     config groups and options
                          hpo run --cfg job  the composed config
  resume RUN_DIR [n_trials=N] [timeout_s=S]
                          continue an interrupted run where it stopped
  compare PATH... [--out DIR]
                          runs or multirun folders side by side: table, CSV, markdown, plots
  bench SUITE [--check | --update]
                          a benchmark suite (benchmarks/SUITE.yaml) against its stored baseline
  gradcheck [method=M] [point=center|random] [OVERRIDES]


                          a hypergradient against finite differences on your config, e.g.
                          hpo gradcheck task=polynomial space=polynomial_per_coef method=reverse

Runs are written to runs/<date>/<time>_<strategy>_<task>/ (trials.jsonl, summary.json,
best.yaml, plots/). Documentation: README.md.
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    command, rest = args[0], args[1:]
    if command in ("-V", "--version"):
        from importlib.metadata import version

        print(f"hpo_cli {version('hpo_cli')}")
        return 0
    if command == "run":
        from hpo_cli.app import hydra_run

        return hydra_run(rest)
    if command == "resume":
        if len(rest) < 1 or rest[0].startswith("-"):
            print("usage: hpo resume RUN_DIR [n_trials=N] [timeout_s=S]", file=sys.stderr)
            return 2
        from hpo_cli.resume import resume

        return resume(rest[0], rest[1:])
    if command == "compare":
        from hpo_cli.compare import main as compare_main

        return compare_main(rest)
    if command == "bench":
        from hpo_cli.bench import main as bench_main

        return bench_main(rest)
    if command == "gradcheck":
        from hpo_cli.gradcheck import gradcheck

        return gradcheck(rest)
    print(f"hpo: error: unknown command {command!r}\n\n{USAGE}", file=sys.stderr, end="")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
