"""``hpo resume RUN_DIR [n_trials=N] [timeout_s=S]``: continue an interrupted run in place."""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hpo_cli.build import BUDGET_KEYS, RunNames, build_study, config_fingerprint, register_resolvers
from hpo_cli.errors import ConfigError, ResumeError, RunDirError, fail
from hpo_cli.interrupts import Interrupted, exit_code, interrupt_on, leave
from hpo_cli.report.logs import configure_resume_logging
from hpo_cli.runner import run_study
from hpo_cli.store import NOT_WRITABLE, SUMMARY, RunStore, not_writable

CONFIG = Path(".hydra") / "config.yaml"


def resume(run_dir: str, overrides: list[str]) -> int:
    """Exit code: 0 finished, 1 failed, 2 refused, 130 interrupted."""
    directory = Path(run_dir)
    if not (directory / SUMMARY).is_file():
        fail(f"{directory}: not a run directory (it needs .hydra/config.yaml and summary.json)")
    store = RunStore(directory)
    try:
        with store.exclusive():
            cfg, names = _load_run(directory)
            _apply_budget_overrides(cfg, overrides)
            study = build_study(cfg, names)
            configure_resume_logging(directory / "hpo.log")
            with interrupt_on():
                status = run_study(study, cfg, store, resume=True)
    except (ConfigError, RunDirError) as exc:
        fail(str(exc), exc.exit_code)
    except OSError as exc:  # the folder (not its lock file) is read-only
        if exc.errno not in NOT_WRITABLE:
            raise
        refusal = not_writable(exc.filename or directory, exc)
        fail(str(refusal), refusal.exit_code)
    except Interrupted as exc:
        leave(exc)
    except KeyboardInterrupt as exc:
        return exit_code(exc)
    return 1 if status == "failed" else 0


def _load_run(directory: Path) -> tuple[DictConfig, RunNames]:
    register_resolvers()
    config_path = directory / CONFIG
    summary = RunStore(directory).read_json(SUMMARY) if directory.is_dir() else None
    if not config_path.is_file() or summary is None:
        raise ResumeError(f"{directory}: not a run directory (it needs .hydra/config.yaml and summary.json)")
    try:
        cfg = OmegaConf.load(config_path)
        names = RunNames(str(summary["strategy"]), str(summary["task"]), str(summary["space"]))
    except (yaml.YAMLError, OmegaConfBaseException, KeyError) as exc:
        raise RunDirError(f"{directory}: damaged run files ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(cfg, DictConfig) or config_fingerprint(cfg) != summary.get("config_sha256"):
        raise ResumeError(
            f"refusing to resume {directory}: {CONFIG} differs from the config the run started "
            "with (only n_trials and timeout_s may change; start a new run instead)"
        )
    return cfg, names


def _apply_budget_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError("override", item, "expected key=value (n_trials=N or timeout_s=S)")
        if key not in BUDGET_KEYS:
            raise ResumeError(
                f"refusing to resume: {key!r} cannot change in a resumed run (only "
                f"{', '.join(BUDGET_KEYS)} can); start a new run with hpo run instead"
            )
        cfg[key] = yaml.safe_load(text)
