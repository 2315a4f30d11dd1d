"""The only wiring: a composed config becomes a :class:`Study` (settings, task, space, strategy,
direction). ``hpo run``, ``hpo resume``, ``hpo gradcheck``, ``hpo bench``, the in-process Python
API (:func:`hpo_cli.runner.run_in_memory`) and the tests all call :func:`build_study`.

Composition (``compose_config``) turns ``hpo run`` overrides into the config outside Hydra's
``@main``; the resolvers and ``./conf`` search path are the same as the app's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hpo_cli.errors import ConfigError
from hpo_cli.loggers.base import Loggers, build_loggers
from hpo_cli.options import gradient_space_task, no_gradient_space, tasks_with_option
from hpo_cli.settings import Budget, Settings, read_settings, resolve_device
from hpo_cli.space import SearchSpace, parse_space
from hpo_cli.store import CHECKPOINTS
from hpo_cli.strategies.base import Strategy
from hpo_cli.tasks.base import Task
from hpo_cli.validate import non_negative_int

if TYPE_CHECKING:
    from hpo_cli.executors.base import Executor
    from hpo_cli.tasks.criteria.base import Criterion

log = logging.getLogger("hpo_cli")
CONFIG_PACKAGE = "pkg://hpo_cli.conf"
# Keys a resumed run may change: they extend or shorten the budget, not the experiment.
BUDGET_KEYS = ("n_trials", "timeout_s")
NOT_FINGERPRINTED = (*BUDGET_KEYS, "runs_dir", "logger")  # loggers observe a run, they do not change it


@dataclass(frozen=True)
class RunNames:
    """The config-group choices that name a run (``hydra.runtime.choices``)."""

    strategy: str
    task: str
    space: str
    criterion: str = "holdout"


@dataclass(frozen=True)
class Study:
    """Everything one run needs, built and validated; ``settings.device`` is resolved."""

    settings: Settings
    task: Task
    space: SearchSpace
    strategy: Strategy
    direction: str
    names: RunNames
    metric: str  # what a trial's value is
    criterion: str  # the model-selection criterion in words ("none": the task has none)
    executor: Executor  # where trials run
    loggers: Loggers = field(default_factory=Loggers)  # observers of each trial (logger=)

    @property
    def budget(self) -> Budget:
        return self.settings.budget


def build_study(cfg: DictConfig, names: RunNames | None = None) -> Study:
    """The study of a composed config; raises ConfigError (one line) on bad input."""
    names = names or names_of(cfg)
    cfg, settings, task, space, run = with_the_run_of_a_given_point(cfg)
    if run is not None:
        names = dataclasses.replace(names, task=run.get("task", names.task), space=run.get("space", names.space))
    loggers = build_loggers(cfg.get("logger"))
    executor = lambda: build_executor(cfg.get("executor"), cfg, settings.device)  # noqa: E731 - built last, after every check
    return assemble_study(settings, task, space, cfg.strategy, executor, names, loggers)


def assemble_study(
    settings: Settings,
    task: Task,
    space: SearchSpace,
    strategy_cfg: DictConfig,
    executor: Callable[[], Executor],
    names: RunNames,
    loggers: Loggers | None = None,
) -> Study:
    """The study of built parts: the strategy built and checked against the task, the metric
    and direction the task gives this space, then the ``executor``. Every front door ends here
    (``hpo run``, ``hpo resume``, the Python API, the Hydra sweeper)."""
    strategy = build_strategy(strategy_cfg, space, settings, task.fidelity)
    strategy.check_task(task)
    metric, direction = task.objective_for(space.names)
    direction = settings.direction or direction
    criterion = task.criterion_text()
    return Study(settings, task, space, strategy, direction, names, metric, criterion, executor(), loggers or Loggers())


def build_executor(executor_cfg: DictConfig | None, cfg: DictConfig, device: str | None = None) -> Executor:
    """Where trials run (``executor=NAME``; serial when the config has none). Workers build the
    task from ``cfg``, resolved, without Hydra's own node, on ``device`` (the driver's resolved
    device: ``device=auto`` means the same in every worker, and a GPU per worker where it is cuda)."""
    from hpo_cli.executors.base import Executor
    from hpo_cli.executors.serial import SerialExecutor

    if executor_cfg is None:
        return SerialExecutor()
    executor = _instantiate(executor_cfg, "executor")
    if not isinstance(executor, Executor):
        raise ConfigError("executor._target_", executor_cfg.get("_target_"), "does not build an Executor")
    recipe = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(recipe, dict)
    if device is not None:
        recipe["device"] = device
    executor.bind({str(k): v for k, v in recipe.items() if k != "hydra"})
    return executor


def names_of(cfg: DictConfig) -> RunNames:
    """Names for a config composed outside Hydra's app: the task's and strategy's targets."""

    def short(node: Any) -> str:
        target = str(node.get("_target_", "?")) if isinstance(node, DictConfig) else "?"
        return target.rsplit(".", 1)[-1]

    return RunNames(short(cfg.get("strategy")), short(cfg.get("task")), "space")


def build_task(
    task_cfg: DictConfig, settings: Settings, criterion: Criterion | None = None, run_dir: Path | None = None
) -> Task:
    """The task; ``settings.dtype`` None leaves each task its own default precision; a task
    that trains a model takes the ``criterion`` (None: hold-out). With ``run_dir`` (a worker's
    task) it keeps its promotion checkpoints in the run's ``checkpoints/`` (the driver's task
    is attached by the loop)."""
    if "seed" in task_cfg:  # the data split's seed (task.seed=${seed} unless set)
        non_negative_int(task_cfg.seed, "task.seed")
    runtime: dict[str, Any] = {"device": settings.device}
    if settings.dtype is not None:
        runtime["dtype"] = settings.dtype
    if criterion is not None:
        runtime["criterion"] = criterion
    task = _instantiate(task_cfg, "task", **runtime)
    if not isinstance(task, Task):
        raise ConfigError("task._target_", task_cfg.get("_target_"), "does not build a hpo_cli Task")
    if criterion is not None and task.criterion is None and criterion.name != "holdout":
        raise ConfigError(
            "criterion", criterion.name, f"task {task.name} trains no model to select: it takes no criterion"
        )
    if run_dir is not None:
        task.attach(Path(run_dir) / CHECKPOINTS)
    return task


def build_criterion(criterion_cfg: DictConfig | None) -> Criterion | None:
    """The model-selection criterion (``criterion=NAME``); None when the config has none."""
    from hpo_cli.tasks.criteria.base import Criterion

    if criterion_cfg is None:
        return None
    criterion = _instantiate(criterion_cfg, "criterion")
    if not isinstance(criterion, Criterion):
        raise ConfigError("criterion._target_", criterion_cfg.get("_target_"), "does not build a Criterion")
    return criterion


def build_space(space_cfg: DictConfig, task: Task, key: str = "space") -> SearchSpace:
    """The space of a space file's config (``params`` only); errors name ``key`` (the sweeper's
    is ``hydra.sweeper.space``)."""
    raw = OmegaConf.to_container(space_cfg, resolve=True)
    if not isinstance(raw, dict):
        raise ConfigError(key, raw, "a space file is a mapping holding 'params'")
    unknown = sorted(set(raw) - {"params"})
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", raw[unknown[0]], "a space file holds only 'params'")
    space = parse_space(raw.get("params"), task.dimensions(), prefix=f"{key}.params")
    task.check_space(space.names)
    return space


# What a run's configuration fixes about the value of a point (besides the strategy).
RUN_KEYS = ("task", "space", "criterion", "dtype", "seed")


def task_and_space(cfg: DictConfig) -> tuple[Settings, Task, SearchSpace]:
    """The settings (device resolved), the task and the space of a composed config."""
    settings = read_settings(cfg)
    settings = dataclasses.replace(settings, device=resolve_device(settings.device))
    task = build_task(cfg.task, settings, build_criterion(cfg.get("criterion")))
    return settings, task, build_space(cfg.space, task)


def with_the_run_of_a_given_point(
    cfg: DictConfig,
) -> tuple[DictConfig, Settings, Task, SearchSpace, dict[str, Any] | None]:
    """The config, settings, task and space of the study, and the summary of the run whose
    configuration they come from ({} when it has none), or None: the configured ones.

    ``strategy=fixed strategy.params_file=RUN/best.yaml`` re-evaluates a run's best point: when
    the point is not in the configured space (e.g. no ``space=`` named: the task's default) but
    RUN's own configuration holds it (``RUN/.hydra/config.yaml``), the run's task, space,
    criterion, dtype and seed (RUN_KEYS) replace the configured ones — the task as the run
    composed it, with what ``conf/task_space/`` set for its space (``lr_stages``,
    ``inner_steps``) — so the value is the one the run reported. A named space that holds the
    point keeps the configured task as given."""
    settings, task, space = task_and_space(cfg)
    params, run_cfg = point_and_run_config(cfg.strategy)
    if params is None or run_cfg is None or space.contains(params):
        return cfg, settings, task, space, None
    adopted = cfg.copy()
    for key in RUN_KEYS:
        if key in run_cfg:
            adopted[key] = run_cfg[key]
    try:
        run_settings, run_task, run_space = task_and_space(adopted)
    except ConfigError:
        return cfg, settings, task, space, None  # the strategy names what does not fit
    if not run_space.contains(params):
        return cfg, settings, task, space, None
    run_dir = Path(str(cfg.strategy.params_file)).expanduser().parent
    log.info("strategy.params_file: re-evaluated under the task, space and seed of %s (%s)", run_dir, RUN_CONFIG)
    return adopted, run_settings, run_task, run_space, run_summary(run_dir)


def run_summary(run_dir: Path) -> dict[str, Any]:
    """A run's summary.json, or {} when it has none (yet) or it does not parse."""
    try:
        loaded = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


RUN_CONFIG = ".hydra/config.yaml"


def point_and_run_config(strategy_cfg: DictConfig) -> tuple[dict[str, Any] | None, DictConfig | None]:
    """The point of a given-point strategy's ``params_file`` and the composed config of the run
    that wrote it (``RUN/.hydra/config.yaml`` beside it); None for what is not there."""
    params_file = strategy_cfg.get("params_file") if _evaluates_a_given_point(strategy_cfg) else None
    if not params_file:
        return None, None
    path = Path(str(params_file)).expanduser()
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
        run_config = path.parent / RUN_CONFIG
        run_cfg = OmegaConf.load(run_config) if run_config.is_file() else None
    except (OSError, yaml.YAMLError, OmegaConfBaseException):
        return None, None  # the strategy reports a missing or bad file itself
    if not isinstance(params, dict):
        return None, None
    return params, run_cfg if isinstance(run_cfg, DictConfig) else None


def _evaluates_a_given_point(strategy_cfg: DictConfig) -> bool:
    """Whether the strategy's class declares that it evaluates a point given in its config."""
    from hydra.utils import get_object

    try:
        target = get_object(str(strategy_cfg.get("_target_")))
    except Exception:
        return False
    return isinstance(target, type) and issubclass(target, Strategy) and target.given_point


def build_strategy(
    strategy_cfg: DictConfig,
    space: SearchSpace,
    settings: Settings,
    fidelity: tuple[float, float] | None = None,
) -> Strategy:
    """The strategy; ``fidelity`` (the task's budget range) goes to those that take it."""
    strategy = _instantiate(
        strategy_cfg,
        "strategy",
        space=space,
        seed=settings.seed,
        n_trials=settings.n_trials,
        fidelity=fidelity,
    )
    if not isinstance(strategy, Strategy):
        raise ConfigError("strategy._target_", strategy_cfg.get("_target_"), "does not build a Strategy")
    return strategy


def _instantiate(node: DictConfig, group: str, **runtime: Any) -> Any:
    """Hydra's instantiate, with the usual mistakes turned into one-line ConfigErrors."""
    from hydra.utils import instantiate

    if "_target_" not in node:
        raise ConfigError(f"{group}._target_", None, f"a {group} config needs a _target_")
    try:
        factory = instantiate(node, _convert_="all")
    except Exception as exc:  # hydra wraps import and argument errors
        raise ConfigError(f"{group}._target_", node.get("_target_"), _root_message(exc)) from None
    if not callable(factory) or isinstance(factory, Task | Strategy):
        return factory
    _refuse_unknown_options(node, group, factory, runtime)
    try:
        return factory(**_accepted(factory, runtime))
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:  # a knob the constructor rejects without naming it
        raise ConfigError(group, node.get("_target_"), " ".join(str(exc).split())) from None
    except (ImportError, SyntaxError) as exc:  # a user's module named by the config (task.fn, task.build)
        where = f" ({Path(exc.filename).name}:{exc.lineno})" if isinstance(exc, SyntaxError) and exc.filename else ""
        raise ConfigError(group, node.get("_target_"), f"{type(exc).__name__}: {exc.msg}{where}") from None


HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")


def _refuse_unknown_options(node: DictConfig, group: str, factory: Any, runtime: dict[str, Any]) -> None:
    """A key of ``node`` that the factory does not take is named as ``GROUP.KEY`` (not as the
    class's TypeError), with the options it does take."""
    try:
        parameters = inspect.signature(getattr(factory, "func", factory)).parameters.values()
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    taken = {p.name for p in parameters}
    unknown = [str(k) for k in node if str(k) not in (*HYDRA_KEYS, *taken)]
    if unknown:
        known = sorted(taken - set(runtime))
        raise ConfigError(
            f"{group}.{unknown[0]}", node.get(unknown[0]), f"not an option of this {group} ({', '.join(known)})"
        )


def _accepted(factory: Any, runtime: dict[str, Any]) -> dict[str, Any]:
    """The run-time keywords (device, dtype, seed, ...) that the factory takes; a user's class
    need not take them all."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return runtime
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return runtime
    names = {p.name for p in parameters}
    return {k: v for k, v in runtime.items() if k in names}


def _root_message(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return " ".join(str(exc).split())


def config_fingerprint(cfg: DictConfig) -> str:
    """sha256 of the resolved config, budget keys and the output folder left out."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    kept = {k: v for k, v in plain.items() if k not in NOT_FINGERPRINTED}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


# -- composition ------------------------------------------------------------------------


def now_ms(fmt: str) -> str:
    """``strftime(fmt)`` followed by ``-mmm`` milliseconds, so runs started in the same second
    get different directories."""
    now = datetime.now()
    return f"{now.strftime(fmt)}-{now.microsecond // 1000:03d}"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("now_ms"):
        OmegaConf.register_new_resolver("now_ms", now_ms, use_cache=True)


def user_config_dir() -> Path | None:
    """./conf of the current directory, when it exists and is not hpo_cli's own."""
    path = Path.cwd() / "conf"
    return path if path.is_dir() and not _is_package_conf(path) else None


def _is_package_conf(path: Path) -> bool:
    import hpo_cli.conf

    return path.resolve() == Path(hpo_cli.conf.__file__).resolve().parent


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The composed config of ``hpo run OVERRIDES`` (./conf joins the search path as there).

    Hydra's errors (an unknown option, a bad override) become one-line ConfigErrors.
    """
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_resolvers()
    extra = user_config_dir()
    search = [f"hydra.searchpath=[file://{extra}]"] if extra else []
    try:
        with initialize_config_module("hpo_cli.conf", version_base="1.3"):
            return compose("config", overrides=[*search, *method_option_overrides(overrides)])
    except (HydraException, OmegaConfBaseException) as exc:
        refusal = missing_gradient_space(exc) or unknown_task_option(exc)
        if refusal is not None:
            raise refusal from None
        raise ConfigError("overrides", list(overrides), _first_line(exc)) from None


METHOD_OPTION = re.compile(r"^strategy\.options\.\w+=")


def method_option_overrides(overrides: Sequence[str]) -> list[str]:
    """``strategy.options.K=V`` as ``++strategy.options.K=V``: a hypergradient method's options are
    checked by the registry (which names an option of another method), not by Hydra's schema."""
    return [f"++{o}" if METHOD_OPTION.match(o) else o for o in overrides]


def missing_gradient_space(exc: BaseException) -> ConfigError | None:
    """The refusal of a gradient strategy on a task without a default gradient space, when
    ``exc`` is Hydra's missing ``space/<task>_gradient`` config; else None."""
    from hydra.errors import MissingConfigException

    if not isinstance(exc, MissingConfigException):
        return None
    task = gradient_space_task(exc.missing_cfg_file)
    return None if task is None else no_gradient_space(task)


UNKNOWN_TASK_OPTION = re.compile(r"Could not override 'task\.(\w+)'.*use \+task\.\w+=(.*)$", re.DOTALL)


def unknown_task_option(exc: BaseException) -> ConfigError | None:
    """Hydra's refusal of ``task.KEY=VALUE`` for a key the chosen task's file lacks, as one line
    naming the tasks that take it, when some packaged task does (e.g. ``task.label_noise`` on
    task=softmax: an option of task=hypercleaning); else None (Hydra's own message stands)."""
    match = UNKNOWN_TASK_OPTION.search(str(exc).strip())
    if match is None:
        return None
    key, text = match.group(1), match.group(2).strip()
    owners = tasks_with_option(key)
    if not owners:
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    where = ", ".join(f"task={name}" for name in owners)
    return ConfigError(f"task.{key}", value, f"not an option of this task (an option of {where})")


def compose_group(group: str, option: str) -> DictConfig:
    """``GROUP=OPTION`` of hpo_cli's configs, composed by Hydra (so its defaults list is
    followed: ``strategy=drmad`` inherits rmad's ``_target_``), without Hydra's global state:
    this works inside a running Hydra app (the sweeper). An unknown option names ``group``."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.errors import HydraException
    from hydra.types import RunMode

    from hpo_cli.options import options

    known = options(group)
    if option not in known:
        raise ConfigError(group, option, f"not an option (they are: {', '.join(known)})")
    register_resolvers()
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(CONFIG_PACKAGE))
    try:
        cfg = loader.load_configuration("config", overrides=[f"{group}={option}"], run_mode=RunMode.RUN)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(group, option, _first_line(exc)) from None
    node = cfg.get(group)
    assert isinstance(node, DictConfig)
    return node


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def compose_study(overrides: Sequence[str]) -> Study:
    """:func:`build_study` of :func:`compose_config`: the study ``hpo run OVERRIDES`` runs."""
    return build_study(compose_config(overrides))
