"""The Hydra application behind ``hpo run`` (single runs and ``-m`` multiruns)."""

from __future__ import annotations

import shutil
import sys
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from hpo_cli.errors import ConfigError, ResumeError

CONFIG_PACKAGE = "pkg://hpo_cli.conf"


def now_ms(fmt: str) -> str:
    """``strftime(fmt)`` followed by ``-mmm`` milliseconds, so runs started in the same second
    get different directories."""
    now = datetime.now()
    return f"{now.strftime(fmt)}-{now.microsecond // 1000:03d}"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("now_ms"):
        OmegaConf.register_new_resolver("now_ms", now_ms, use_cache=True)


def fail(message: str, code: int = 2) -> None:
    """One line on stderr, no traceback."""
    print(f"hpo: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _discard_if_unused(run_dir: Path) -> None:
    """Remove a run directory that holds nothing but Hydra's own files (the config was refused)."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {"hpo.log", ".hydra"}:
        shutil.rmtree(run_dir, ignore_errors=True)
        if run_dir.parent.is_dir() and not any(run_dir.parent.iterdir()):
            run_dir.parent.rmdir()  # the day's folder, when this was its only run


def _job(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from hpo_cli.run import RunNames, run_study

    hc = HydraConfig.get()
    choices = hc.runtime.choices
    names = RunNames(str(choices.get("strategy")), str(choices.get("task")), str(choices.get("space")))
    run_dir = Path(hc.runtime.output_dir)
    try:
        status = run_study(cfg, run_dir, names)
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


def user_config_dir() -> Path | None:
    """./conf of the current directory, when it exists and is not hpo_cli's own."""
    path = Path.cwd() / "conf"
    return path if path.is_dir() and not _is_package_conf(path) else None


def _is_package_conf(path: Path) -> bool:

    import hpo_cli.conf

    return path.resolve() == Path(hpo_cli.conf.__file__).resolve().parent


def _has_config_dir(args: list[str]) -> bool:
    return any(a in ("-cd", "--config-dir") or a.startswith("--config-dir=") for a in args)
