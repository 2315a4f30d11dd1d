"""``hydra/sweeper=hpo``: hpo_cli's strategies as a Hydra 1.3 sweeper.

Hydra imports every module under ``hydra_plugins`` whenever any Hydra app starts, and any
error other than an ImportError there breaks every Hydra app of the environment. So this module
imports nothing but Hydra and the standard library, evaluates its annotations at once (no
``from __future__ import annotations``: Hydra runs it before it is in ``sys.modules``, where
dataclasses would look its annotations up), and turns an error while registering into a
warning: a broken hpo_cli never breaks another Hydra app. The work happens in
:mod:`hpo_cli.sweeper`, imported when a sweep starts.

    python train.py -m hydra/sweeper=hpo hydra.sweeper.strategy=gp_bo hydra.sweeper.n_trials=40 \\
        'optimizer.lr=tag(log, interval(1e-5, 1e-1))' 'model.width=int(range(32, 513))'
"""

import json
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, NoReturn, Optional

from hydra.plugins.sweeper import Sweeper

__all__ = ["HpoSweeper", "HpoSweeperConf"]


@dataclass
class HpoSweeperConf:
    """``hydra.sweeper.*``: see the README's section for Hydra users."""

    _target_: str = "hydra_plugins.hpo_sweeper.hpo_sweeper.HpoSweeper"
    strategy: str = "tpe"  # any black-box strategy of hpo_cli (conf/strategy/NAME.yaml)
    strategy_params: Dict[str, Any] = field(default_factory=dict)  # its options, e.g. {n_startup_trials: 5}
    n_trials: int = 20
    batch_size: int = 1  # jobs per launch (the launcher runs them in parallel)
    direction: str = "minimize"
    metric: Optional[str] = None  # the key of the objective when the job returns a mapping
    seed: int = 0
    seed_key: Optional[str] = "seed"  # each job gets ++seed=<per-trial seed>; null: none
    budget_key: Optional[str] = None  # multi-fidelity strategies: the override that takes the budget (e.g. epochs)
    params: Dict[str, Any] = field(default_factory=dict)  # {key: grammar}, e.g. {lr: "tag(log, interval(1e-5, 1))"}
    space: Optional[str] = None  # or/and one of hpo_cli's space YAML files
    max_failure_rate: float = 0.5
    timeout_s: Optional[float] = None
    resume: bool = False  # continue the sweep in hydra.sweep.dir
    logger: List[str] = field(default_factory=list)  # hpo_cli's loggers, e.g. [tensorboard, mlflow] (conf/logger/)


class HpoSweeper(Sweeper):
    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.options = options
        self.hydra_context: Any = None
        self.config: Any = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        try:  # each job timed on its own (a broken hpo_cli is reported by sweep(), in one line)
            from hpo_cli.sweeper.timing import TimedTask

            task_function = TimedTask(task_function)
        except Exception:  # the sweep stops with hpo_cli's own error, before any job runs
            pass
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: List[str]) -> Any:
        from omegaconf import OmegaConf

        try:
            from hpo_cli.errors import ConfigError, RunDirError
            from hpo_cli.sweeper.sweep import run_sweep
        except Exception as exc:  # hpo_cli itself is broken or missing: one line, no traceback
            _refuse(f"cannot load hpo_cli ({type(exc).__name__}: {exc})", 2)
        plain = OmegaConf.to_container(self.config.hydra.sweeper, resolve=True)
        assert isinstance(plain, dict)
        options = {str(k): v for k, v in plain.items() if k != "_target_"}
        sweep_dir = Path(self.config.hydra.sweep.dir)
        launcher = str(self.config.hydra.launcher.get("_target_", "launcher")).rsplit(".", 1)[-1]
        try:
            status = run_sweep(
                options, arguments, self._launch, launcher, sweep_dir, str(self.config.hydra.job.name),
                validate=self._validate, save_config=lambda: OmegaConf.save(self.config, sweep_dir / "multirun.yaml"),
            )  # fmt: skip
        except (ConfigError, RunDirError) as exc:
            _refuse(str(exc), exc.exit_code)
        except Exception as exc:  # the launcher broke: the trials so far are kept, the sweep can resume
            _refuse(f"the launcher failed ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); "
                    f"continue with hydra.sweeper.resume=true hydra.sweep.dir={sweep_dir}", 1)  # fmt: skip
        if status == "failed":
            summary = json.loads((sweep_dir / "summary.json").read_text())
            _refuse(f"the sweep failed: {summary.get('message')}", 1)
        return status

    def _validate(self, batch: Any) -> None:
        """Refuse, before anything runs, job overrides the app cannot compose (a key it lacks)."""
        from hydra.errors import HydraException

        from hpo_cli.errors import ConfigError

        try:
            self.validate_batch_is_legal(batch)
        except HydraException as exc:
            reason = f"the app cannot compose them: {' '.join(str(exc).split())[:300]}"
            raise ConfigError("the job overrides", " ".join(batch[0]), reason) from None

    def _launch(self, batch: Any, first_job: int) -> Any:
        """One batch of jobs, numbered from ``first_job`` (a trial number: never 0 again on resume)."""
        self._validate(batch)
        return self.launcher.launch(batch, initial_job_idx=first_job)


def _refuse(message: str, code: int) -> NoReturn:
    print(f"hpo sweeper: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _register() -> None:
    try:
        from hydra.core.config_store import ConfigStore
        from omegaconf import OmegaConf

        node = OmegaConf.structured(HpoSweeperConf)
        for open_ended in ("strategy_params", "params"):  # new keys without '+': strategy_params.gamma=5
            OmegaConf.set_struct(node[open_ended], False)
        ConfigStore.instance().store(group="hydra/sweeper", name="hpo", node=node, provider="hpo_cli")
    except Exception as exc:  # never break the other Hydra apps of this environment
        warnings.warn(f"hydra/sweeper=hpo is unavailable: {type(exc).__name__}: {exc}", stacklevel=1)


_register()
