"""``hpo export RUN... --storage URL``: each run as an Optuna study in an Optuna storage
(``sqlite:///FILE.db`` or a journal file), for ``optuna-dashboard``, ``optuna.load_study`` and
Optuna's own tools. A study already there under a run's name is replaced (an export is
repeatable); the mapping is :mod:`hpo_cli.report.optuna_export`."""

from __future__ import annotations

from collections.abc import Sequence

from hpo_cli.errors import ConfigError
from hpo_cli.report.results import Run, find_runs


def runs_of(paths: Sequence[str]) -> list[Run]:
    """The run directories given (or below the folders given); a ConfigError when none."""
    runs = find_runs(paths)
    if not runs:
        raise ConfigError("paths", list(paths), "no run directories found (looked for summary.json)")
    return runs


def export_runs(runs: Sequence[Run], storage_url: str) -> list[str]:
    """Write each run as a study into the storage; the study names, in order."""
    from hpo_cli.report.optuna_export import open_storage, study_name, to_study

    storage = open_storage(storage_url)
    names = [study_name(run) for run in runs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError("paths", duplicated[0], "given twice")
    for run, name in zip(runs, names, strict=True):
        to_study(run, storage, name)
    return names


def export(paths: Sequence[str], storage_url: str) -> int:
    runs = runs_of(paths)
    names = export_runs(runs, storage_url)
    for run, name in zip(runs, names, strict=True):
        print(f"exported {len(run.records)} trials of {run.path} as study {name!r}")
    print(
        f"storage: {storage_url}  (optuna-dashboard {storage_url}, or optuna.load_study(study_name=..., storage=...))"
    )
    return 0
