"""``hpo plot RUN... [--kind importance,parallel,slice,contour,edf]``: Optuna's plots of each
run, as PNGs in its ``plots/`` (:mod:`hpo_cli.report.optuna_plots`)."""

from __future__ import annotations

from collections.abc import Sequence

from hpo_cli.commands.export import runs_of
from hpo_cli.errors import ConfigError


def parse_kinds(text: str) -> list[str]:
    from hpo_cli.report.optuna_plots import KINDS

    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ConfigError("--kind", unknown[0] if unknown else text, f"not a plot kind (they are: {','.join(KINDS)})")
    return list(dict.fromkeys(kinds))


def plot(paths: Sequence[str], kinds_text: str) -> int:
    kinds = parse_kinds(kinds_text)
    runs = runs_of(paths)
    from hpo_cli.report.optuna_export import import_optuna
    from hpo_cli.report.optuna_plots import plot_runs

    import_optuna()
    written = plot_runs(runs, kinds)
    for path in written:
        print(f"wrote {path}")
    return 0 if written else 1
