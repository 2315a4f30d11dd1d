"""The Hydra application behind ``hpo run`` (single runs and ``-m`` multiruns)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from hpo_cli.build import (
    CONFIG_PACKAGE,
    method_option_overrides,
    missing_gradient_space,
    register_resolvers,
    unknown_task_option,
    user_config_dir,
)
from hpo_cli.errors import ConfigError, RunDirError, fail


def _discard_if_unused(run_dir: Path) -> None:
    """Remove a run directory that holds nothing but Hydra's own files (the config was refused)."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {"hpo.log", ".lock"}:
        shutil.rmtree(run_dir, ignore_errors=True)
        if run_dir.parent.is_dir() and not any(run_dir.parent.iterdir()):
            run_dir.parent.rmdir()  # the day's folder, when this was its only run


def _job(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from hpo_cli.build import RunNames, build_study
    from hpo_cli.interrupts import Interrupted, exit_code, interrupt_on, leave
    from hpo_cli.runner import run_study
    from hpo_cli.store import RunStore

    hc = HydraConfig.get()
    choices = hc.runtime.choices
    names = RunNames(str(choices.get("strategy")), str(choices.get("task")), str(choices.get("space")))
    run_dir = Path(hc.runtime.output_dir)
    files = {  # what Hydra would write itself (hydra.output_subdir is null), once no check refuses
        "config.yaml": OmegaConf.to_yaml(cfg),
        "hydra.yaml": OmegaConf.to_yaml({"hydra": hc}),
        "overrides.yaml": OmegaConf.to_yaml(list(hc.overrides.task)),
    }
    store = RunStore(run_dir)
    try:
        with store.exclusive():
            if store.holds_run():  # before building: a refused run writes nothing, not even a log line
                raise RunDirError(f"{run_dir} already holds a run: continue it with hpo resume {run_dir}")
            with interrupt_on():
                multirun = hc.mode == RunMode.MULTIRUN  # its jobs leave the history plot to hpo compare
                status = run_study(build_study(cfg, names), cfg, store, config_files=files, history_plot=not multirun)
    except (ConfigError, RunDirError) as exc:
        _discard_if_unused(run_dir)
        fail(str(exc), exc.exit_code)
    except Interrupted as exc:
        leave(exc)
    except KeyboardInterrupt as exc:
        raise SystemExit(exit_code(exc)) from None
    if status == "failed" and hc.mode != RunMode.MULTIRUN:
        raise SystemExit(1)


def hydra_run(args: list[str]) -> int:
    """Run the Hydra app with ``args`` as its command line (``hpo run ARGS``)."""
    import hydra

    completing = [a for a in args if a.split("=")[0] in ("-sc", "--shell-completion")]
    if completing and not any(a.startswith("query=") for a in args):  # Hydra's install script calls `hpo -sc`
        fail('shell completion: eval "$(hpo completion bash)" (it completes subcommands and hpo run overrides)')
    register_resolvers()
    user_conf = user_config_dir()
    if user_conf is not None and not _has_config_dir(args):
        args = ["--config-dir", str(user_conf), *args]
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    main = hydra.main(version_base="1.3", config_path=CONFIG_PACKAGE, config_name="config")(_job)
    saved_argv, saved_full_error = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = ["hpo run", *method_option_overrides(args)]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing: one line here
    try:
        main()
    except (HydraException, OmegaConfBaseException) as exc:
        fail(hydra_message(exc))
    except yaml.MarkedYAMLError as exc:  # a config file of the user's that does not parse
        mark = exc.problem_mark
        where = f"{mark.name}:{mark.line + 1}" if mark is not None else "a config file"
        fail(f"{where}: YAML syntax error: {exc.problem}")
    except OSError as exc:  # Hydra creating the run directory: runs_dir is a file, not writable, ...
        fail(f"{exc.filename}: {exc.strerror}")
    finally:
        sys.argv = saved_argv
        if saved_full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_full_error
    return 0


NOISE = ("Config search path", "provider=", "Set the environment variable", "full_key:", "object_type=", "See https")


def hydra_message(exc: BaseException) -> str:
    """Hydra's own message as one line: an unknown option keeps the list of options."""
    from hydra.errors import OverrideParseException

    refusal = missing_gradient_space(exc) or unknown_task_option(exc)
    if refusal is not None:
        return str(refusal)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(NOISE)]
    if isinstance(exc, OverrideParseException):
        lines = [f"override {exc.override!r}:", *lines]
    if not lines:
        return type(exc).__name__
    for i, line in enumerate(lines):
        if line.startswith("Available options in"):
            return f"{' '.join(lines[:i])} (available: {', '.join(lines[i + 1 :])})"
    return " ".join(lines[:3])


def _has_config_dir(args: list[str]) -> bool:
    return any(a in ("-cd", "--config-dir") or a.startswith("--config-dir=") for a in args)
