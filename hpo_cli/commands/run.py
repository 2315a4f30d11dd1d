"""The Hydra application behind ``hpo run`` (single runs and ``-m`` multiruns)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig

from hpo_cli.build import CONFIG_PACKAGE, register_resolvers, user_config_dir
from hpo_cli.errors import ConfigError, ResumeError, fail


def _discard_if_unused(run_dir: Path) -> None:
    """Remove a run directory that holds nothing but Hydra's own files (the config was refused)."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {"hpo.log", ".hydra"}:
        shutil.rmtree(run_dir, ignore_errors=True)
        if run_dir.parent.is_dir() and not any(run_dir.parent.iterdir()):
            run_dir.parent.rmdir()  # the day's folder, when this was its only run


def _job(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from hpo_cli.build import RunNames, build_study
    from hpo_cli.runner import run_study

    hc = HydraConfig.get()
    choices = hc.runtime.choices
    names = RunNames(str(choices.get("strategy")), str(choices.get("task")), str(choices.get("space")))
    run_dir = Path(hc.runtime.output_dir)
    try:
        status = run_study(build_study(cfg, names), cfg, run_dir)
    except (ConfigError, ResumeError) as exc:
        _discard_if_unused(run_dir)
        fail(str(exc))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    if status == "failed" and hc.mode != RunMode.MULTIRUN:
        raise SystemExit(1)


def hydra_run(args: list[str]) -> int:
    """Run the Hydra app with ``args`` as its command line (``hpo run ARGS``)."""
    import hydra

    register_resolvers()
    user_conf = user_config_dir()
    if user_conf is not None and not _has_config_dir(args):
        args = ["--config-dir", str(user_conf), *args]
    main = hydra.main(version_base="1.3", config_path=CONFIG_PACKAGE, config_name="config")(_job)
    saved = sys.argv
    sys.argv = ["hpo run", *args]
    try:
        main()
    finally:
        sys.argv = saved
    return 0


def _has_config_dir(args: list[str]) -> bool:
    return any(a in ("-cd", "--config-dir") or a.startswith("--config-dir=") for a in args)
