"""Runs as Optuna studies: our records mapped onto Optuna's trials, for its storage
(``hpo export``), its dashboard (``hpo dashboard``) and its plots (``hpo plot``).

The mapping: each run is one study named after its directory, with the run's direction; each of
our trials one Optuna trial, numbered in our trial order, in the state it ended in (complete,
pruned, failed), with its value, its parameters and their distributions taken from the run's
space (``.hydra/config.yaml``): floats (log, step), ints, categoricals; a conditional parameter
is present in the trials where it was active and absent elsewhere; a vector parameter
(``size: N``) becomes N scalar parameters ``name[i]``. Metrics, cost, budget, seconds and the
error become user attributes (``metrics.NAME``, ``cost.NAME``, …, as in trials.csv); a
multi-fidelity trial's value is also its intermediate value at its budget. Where the space cannot
be read (a run of another tool's config), each distribution spans the values the trials took.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo_cli.report.results import Run
from hpo_cli.space import SearchSpace
from hpo_cli.space.params import CategoricalParam, FloatParam, IntParam, Param
from hpo_cli.trial import TrialRecord

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

INSTALL_HINT = "pip install 'hpo_cli[optuna]'"
PRIMITIVE = (bool, int, float, str, type(None))


def import_optuna() -> Any:
    """optuna, quiet (no experimental warnings, no per-trial log lines); a one-line error when missing."""
    from hpo_cli.errors import ConfigError

    try:
        import optuna
    except ImportError:
        raise ConfigError("optuna", None, f"not installed: {INSTALL_HINT}") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def study_name(run: Run) -> str:
    """The run directory, relative to the current one where it lies below it."""
    try:
        return str(run.path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(run.path)


def to_study(run: Run, storage: Any = None, name: str | None = None) -> optuna.Study:
    """The run as a study in ``storage`` (None: in memory); a study of that name is replaced."""
    optuna = import_optuna()
    name = name or study_name(run)
    if storage is not None and name in optuna.get_all_study_names(storage):
        optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(storage=storage, study_name=name, direction=run.direction)
    for key in ("strategy", "task", "space", "criterion", "metric", "seed"):
        if run.summary.get(key) is not None:
            study.set_user_attr(key, run.summary[key])
    study.set_user_attr("run_dir", str(run.path))
    distributions = run_distributions(run)
    study.add_trials([to_trial(r, distributions) for r in run.records])
    return study


def to_trial(record: TrialRecord, distributions: Mapping[str, BaseDistribution]) -> optuna.trial.FrozenTrial:
    optuna = import_optuna()
    from optuna.trial import TrialState

    state = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(str(record.state), TrialState.FAIL)
    params = {k: _primitive(v) for k, v in flat_values(record.params).items()}
    attrs: dict[str, Any] = {"hpo_trial": record.trial, "seconds": record.seconds}
    attrs.update({f"metrics.{k}": v for k, v in record.metrics.items()})
    attrs.update({f"cost.{k}": v for k, v in record.cost.items()})
    if record.budget is not None:
        attrs["budget"] = record.budget
    if record.error:
        attrs["error"] = record.error
    value = record.value if state != TrialState.FAIL and record.value is not None else None
    steps = {} if record.budget is None or value is None else {int(record.budget): float(value)}
    return optuna.trial.create_trial(
        state=state,
        value=value,  # a pruned trial keeps the value it reached at its budget
        params=params,
        distributions={k: distributions[k] for k in params},
        user_attrs=attrs,
        intermediate_values=steps,
    )


def flat_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """Vectors as ``name[i]``; an inactive parameter is absent (None is a categorical choice)."""
    flat: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, list | tuple):
            flat.update({f"{name}[{i}]": v for i, v in enumerate(value)})
        else:
            flat[name] = value
    return flat


def run_distributions(run: Run) -> dict[str, BaseDistribution]:
    """Each flat parameter's distribution: from the run's space, widened to the values the
    trials took (a parameter the space does not hold: from those values alone)."""
    space = read_space(run)
    observed: dict[str, list[Any]] = {}
    for record in run.records:
        for name, value in flat_values(record.params).items():
            observed.setdefault(name, []).append(value)
    distributions = {}
    for name, values in observed.items():
        base = name.split("[", 1)[0]
        param = None if space is None or base not in space.names else space[base]
        distributions[name] = fitted(param, values)
    return distributions


def fitted(param: Param | None, values: Sequence[Any]) -> BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if isinstance(param, CategoricalParam) or any(not _is_number(v) for v in values):
        choices = list(param.choices) if isinstance(param, CategoricalParam) else []
        merged = list(dict.fromkeys(_primitive(v) for v in [*choices, *values]))
        return CategoricalDistribution(merged)
    low, high = min(values), max(values)
    if isinstance(param, IntParam | FloatParam):
        low, high = min(low, param.low), max(high, param.high)
    if all(isinstance(v, int) for v in values) and not isinstance(param, FloatParam):
        return _int_distribution(param if isinstance(param, IntParam) else None, values, int(low), int(high))
    log = bool(getattr(param, "log", False)) and low > 0
    step: float | None = param.step if isinstance(param, FloatParam) and not log else None
    if step is not None and not all(_on_grid(v, low, step) for v in [*values, high]):
        step = None
    return FloatDistribution(float(low), float(high), log=log, step=step)


def _int_distribution(param: IntParam | None, values: Sequence[int], low: int, high: int) -> BaseDistribution:
    from optuna.distributions import IntDistribution

    step = 1 if param is None else param.step
    if any((v - low) % step for v in [*values, high]):
        step = 1
    log = param is not None and param.log and low >= 1 and step == 1
    return IntDistribution(low, high, log=log, step=step)


def read_space(run: Run) -> SearchSpace | None:
    """The run's space (``space.params`` of ``.hydra/config.yaml``), vector sizes taken from its
    trials; None where the config holds none or does not parse."""
    from omegaconf import DictConfig, OmegaConf

    from hpo_cli.space import parse_space

    path = run.path / ".hydra" / "config.yaml"
    try:
        config = OmegaConf.load(path)
        node = config.get("space") if isinstance(config, DictConfig) else None
        raw = OmegaConf.to_container(node.params, resolve=True) if isinstance(node, DictConfig) else None
        if not isinstance(raw, dict):
            return None
        spec = {str(k): v for k, v in raw.items()}
        return parse_space(spec, _sizes(spec, run.records))
    except Exception:  # another tool's config, an interpolation of Hydra's runtime: fall back on the values
        return None


def _sizes(raw: Mapping[str, Any], records: Sequence[TrialRecord]) -> dict[str, int]:
    """The task's vector lengths (``size: n_train``), read off the recorded values."""
    sizes = {}
    for name, spec in raw.items():
        size = spec.get("size") if isinstance(spec, Mapping) else None
        if isinstance(size, str):
            value = next((r.params[name] for r in records if isinstance(r.params.get(name), list)), None)
            if value is not None:
                sizes[size] = len(value)
    return sizes


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _on_grid(value: float, low: float, step: float) -> bool:
    k = (value - low) / step
    return abs(k - round(k)) < 1e-6


def _primitive(value: Any) -> Any:
    """Optuna's categorical choices are None, bool, int, float or str: anything else as text."""
    return value if isinstance(value, PRIMITIVE) else str(value)


def open_storage(url: str) -> Any:
    """An Optuna storage: ``sqlite:///FILE.db`` (or another SQLAlchemy URL), or a journal file
    (``journal:FILE``, or a path ending in .log/.jsonl); a ConfigError naming ``--storage``."""
    from hpo_cli.errors import ConfigError

    optuna = import_optuna()
    journal = url.removeprefix("journal:") if url.startswith("journal:") else None
    if journal is None and "://" not in url and url.endswith((".log", ".jsonl", ".journal")):
        journal = url
    try:
        if journal is not None:
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            if not journal or not Path(journal).expanduser().parent.is_dir():
                raise ConfigError("--storage", url, "the journal file's folder does not exist")
            return JournalStorage(JournalFileBackend(os.fspath(Path(journal).expanduser())))
        if "://" not in url:
            raise ConfigError(
                "--storage",
                url,
                "expected sqlite:///FILE.db (or another database URL) or a journal file journal:FILE.log",
            )
        return optuna.storages.RDBStorage(url)
    except ConfigError:
        raise
    except Exception as exc:  # SQLAlchemy: unknown dialect, a folder that does not exist, a locked file
        raise ConfigError(
            "--storage", url, f"cannot open it ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from None
