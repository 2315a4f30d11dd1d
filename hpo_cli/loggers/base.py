"""The logger contract, the group the loop talks to, and building it from the ``logger`` node.

A run resumed after a kill may have stored trials that a logger never saw (the kill came between
the two): at ``open`` each logger says which trials it holds already (:meth:`TrialLogger.logged`)
and the group logs the stored ones it lacks, so every trial is logged once. A logger that raises
is reported once on the log and left out for the rest of the run: the trials matter more.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from hpo_cli.errors import ConfigError
from hpo_cli.trial import TrialRecord

log = logging.getLogger("hpo_cli")

INSTALL_HINT = "pip install 'hpo_cli[tracking]'"


@dataclass(frozen=True)
class RunContext:
    """What a logger knows of the run: its directory, summary.json's header (strategy, task,
    space, criterion, metric, direction, seed, executor) and the trials stored before this
    session (a resume)."""

    dir: Path
    header: Mapping[str, Any]
    previous: Sequence[TrialRecord] = ()

    @property
    def direction(self) -> str:
        return str(self.header.get("direction", "minimize"))

    @property
    def metric(self) -> str:
        return str(self.header.get("metric", "value"))


class TrialLogger(ABC):
    """One destination. ``open`` before the first trial, ``log_trial`` once per trial (in the
    order trials are stored), ``close`` with the final summary (its files are written)."""

    name = "logger"

    @abstractmethod
    def open(self, run: RunContext) -> None: ...

    @abstractmethod
    def logged(self) -> set[int]:
        """The trial numbers this destination holds already (after ``open``)."""

    @abstractmethod
    def log_trial(self, record: TrialRecord) -> None: ...

    def close(self, summary: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """The run ended (finished, failed or interrupted); ``summary`` is summary.json."""


@dataclass
class Loggers:
    """The loggers of a run, driven as one: the loop's :class:`~hpo_cli.loop.TrialObserver`."""

    members: list[TrialLogger] = field(default_factory=list)
    run: RunContext | None = None

    def open(self, run: RunContext) -> None:
        self.run = run
        for logger in list(self.members):
            if self._call(logger, "open", logger.open, run):
                have = logger.logged()
                for record in sorted(run.previous, key=lambda r: r.trial):
                    if record.trial not in have and not self._call(logger, "log", logger.log_trial, record):
                        break

    def trial_stored(self, record: TrialRecord) -> None:
        for logger in list(self.members):
            self._call(logger, "log", logger.log_trial, record)

    def close(self) -> None:
        from hpo_cli.store import SUMMARY, RunStore

        summary = {} if self.run is None else RunStore(self.run.dir).read_json(SUMMARY) or {}
        for logger in list(self.members):
            self._call(logger, "close", logger.close, summary)

    def _call(self, logger: TrialLogger, what: str, method: Any, argument: Any) -> bool:
        try:
            method(argument)
            return True
        except Exception as exc:  # a logger never stops the run: it is left out from here on
            log.warning("logger %s failed to %s (%s: %s); it is off for the rest of the run", logger.name, what,
                        type(exc).__name__, " ".join(str(exc).split())[:300])  # fmt: skip
            self.members.remove(logger)
            return False


def require(module: str, logger: str, hint: str = INSTALL_HINT) -> None:
    """Refuse a logger whose library is not installed, before anything runs."""
    if find_spec(module) is None:
        raise ConfigError("logger", logger, f"needs the {module} package: {hint}")


def build_loggers(node: Any) -> Loggers:
    """The group of ``cfg.logger``: every entry with a ``_target_`` is one logger (the files of
    conf/logger/ each add one entry, so ``logger=[tensorboard,mlflow]`` composes both)."""
    from omegaconf import DictConfig, OmegaConf

    if node is None:
        return Loggers()
    if not isinstance(node, DictConfig):
        raise ConfigError("logger", node, "expected a logger config: logger=NAME or logger=[NAME,NAME]")
    members: list[TrialLogger] = []
    for name, entry in node.items():
        if isinstance(entry, DictConfig) and "_target_" in entry:
            members.append(_instantiate(str(name), OmegaConf.to_container(entry, resolve=True)))
    return Loggers(members)


def loggers_named(names: Any, key: str = "hydra.sweeper.logger") -> Loggers:
    """The group of ``conf/logger/NAME.yaml`` files by name (the Hydra sweeper's ``logger`` list)."""
    import importlib.resources

    from omegaconf import OmegaConf

    if not names:
        return Loggers()
    listed = [names] if isinstance(names, str) else list(names)
    folder = importlib.resources.files("hpo_cli.conf") / "logger"
    available = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
    merged: Any = OmegaConf.create({})
    for name in listed:
        if name not in available:
            raise ConfigError(key, name, f"not a logger (they are: {', '.join(available)})")
        merged = OmegaConf.merge(merged, OmegaConf.create((folder / f"{name}.yaml").read_text()))
    return build_loggers(OmegaConf.create({"logger": merged}).logger)


def _instantiate(name: str, entry: Any) -> TrialLogger:
    from hydra.utils import instantiate

    try:
        logger = instantiate(entry)
    except ConfigError:
        raise
    except Exception as exc:  # hydra wraps import and argument errors
        while exc.__cause__ is not None and not isinstance(exc, ConfigError):
            exc = exc.__cause__  # type: ignore[assignment]
        if isinstance(exc, ConfigError):
            raise exc from None
        raise ConfigError(f"logger.{name}", entry.get("_target_"), " ".join(str(exc).split())) from None
    if not isinstance(logger, TrialLogger):
        raise ConfigError(f"logger.{name}._target_", entry.get("_target_"), "does not build a TrialLogger")
    return logger
