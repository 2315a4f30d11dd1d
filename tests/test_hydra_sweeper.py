"""``hydra/sweeper=hpo`` end to end, on the small Hydra app of tests/hydra_app.

The app's objective (tests/hydra_app/objective.py) is also a plain function, so a sweep of the
app and ``hpo run task=function`` on the same space and seed must give the same trials. Each
sweep runs the app as a subprocess in a temporary directory; the grammar is tested in-process.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import Result, count_lines, kill_when
from hydra.core.override_parser.overrides_parser import OverridesParser

from hpo_cli.errors import ConfigError
from hpo_cli.space import CategoricalParam, FloatParam, IntParam
from hpo_cli.sweeper.grammar import as_override, parse_params

APP_DIR = Path(__file__).resolve().parent / "hydra_app"
APP = APP_DIR / "app.py"

N_TRIALS, BATCH, SEED = 8, 2, 3
SPACE = ["x1=interval(-5, 10)", "x2=interval(0, 15)", "k=int(interval(0, 3))", "opt=choice(sgd, adam, rmsprop)"]
SPACE_YAML = (  # the same space as hpo_cli's space file, in the same order
    "params:\n"
    "  x1: {type: float, low: -5.0, high: 10.0}\n"
    "  x2: {type: float, low: 0.0, high: 15.0}\n"
    "  k: {type: int, low: 0, high: 3}\n"
    "  opt: {type: categorical, choices: [sgd, adam, rmsprop]}\n"
)
# strategy -> (its sweeper overrides, the same for hpo run); TPE leaves its startup design at trial 4
STRATEGIES = {
    "random": ([], []),
    "tpe": (["hydra.sweeper.strategy_params.n_startup_trials=4"], ["strategy.n_startup_trials=4"]),  # no '+' needed
}


def _load_objective() -> Any:
    spec = importlib.util.spec_from_file_location("hydra_app_objective", APP_DIR / "objective.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


objective = _load_objective()


def env_of(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
    for name in ("HYDRA_FULL_ERROR", "HYDRA_APP_SLEEP_S"):
        if name not in extra:
            env.pop(name, None)
    return env


def run_app(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
    """``python tests/hydra_app/app.py ARGS`` in ``cwd``."""
    proc = subprocess.run(
        [sys.executable, str(APP), *args],
        cwd=cwd,
        env=env or env_of(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def sweep_args(strategy: str, sweep_dir: Path, *extra: str, seed: int = SEED) -> list[str]:
    return [
        "-m",
        "hydra/sweeper=hpo",
        f"hydra.sweeper.strategy={strategy}",
        *STRATEGIES[strategy][0],
        f"hydra.sweeper.n_trials={N_TRIALS}",
        f"hydra.sweeper.batch_size={BATCH}",
        f"hydra.sweeper.seed={seed}",
        *SPACE,
        f"hydra.sweep.dir={sweep_dir}",
        *extra,
    ]


def read_trials(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]


def read_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


def trials_of(run_dir: Path) -> list[tuple[int, str, dict[str, Any], float | None]]:
    """(trial, state, params, value), in trial order."""
    return sorted((t["trial"], t["state"], t["params"], t["value"]) for t in read_trials(run_dir))


def job_folders(sweep_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())


def one_line_error(res: Result) -> str:
    """The refusal's single stderr line (no traceback anywhere)."""
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.output
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.output, res.output
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The uninterrupted sweep of each strategy with Hydra's basic launcher (run once per module)."""
    done: dict[str, Path] = {}

    def get(strategy: str) -> Path:
        if strategy not in done:
            root = tmp_path_factory.mktemp(f"reference-{strategy}")
            res = run_app(*sweep_args(strategy, root / "sweep"), cwd=root)
            assert res.returncode == 0, res.output
            done[strategy] = root / "sweep"
        return done[strategy]

    return get


# -- 1. the same trials as hpo run ---------------------------------------------------------


@pytest.mark.parametrize("strategy", ["random", pytest.param("tpe", marks=pytest.mark.slow)])
def test_a_sweep_gives_the_trials_of_hpo_run_on_the_same_function(
    reference: Callable[[str], Path], tmp_path: Path, strategy: str
) -> None:
    swept = trials_of(reference(strategy))
    (tmp_path / "conf" / "space").mkdir(parents=True)
    (tmp_path / "conf" / "space" / "hydra_app.yaml").write_text(SPACE_YAML)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpo_cli",
            "run",
            "task=function",
            "task.fn=objective.f",
            "space=hydra_app",
            f"strategy={strategy}",
            *STRATEGIES[strategy][1],
            f"n_trials={N_TRIALS}",
            f"seed={SEED}",
            f"batch_size={BATCH}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        env=env_of(PYTHONPATH=str(APP_DIR), HPO_RUNS_DIR=str(tmp_path / "runs")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert swept == trials_of(tmp_path / "run")
    assert [t[0] for t in swept] == list(range(N_TRIALS)) and {t[1] for t in swept} == {"complete"}
    for _, _, params, value in swept:  # the jobs got ints as ints, strings as strings, floats exactly
        assert isinstance(params["k"], int) and isinstance(params["opt"], str)
        assert value == objective.f(params)
    assert len({t[2]["opt"] for t in swept}) > 1 and len({t[2]["k"] for t in swept}) > 1


# -- 2. other launchers ----------------------------------------------------------------------


@pytest.mark.slow
def test_the_joblib_launcher_gives_the_trials_of_the_basic_launcher(
    reference: Callable[[str], Path], tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    res = run_app(*sweep_args("random", sweep, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"), cwd=tmp_path)
    assert res.returncode == 0, res.output
    assert trials_of(sweep) == trials_of(reference("random"))
    assert read_summary(sweep)["executor"]["launcher"] == "JoblibLauncher"
    assert job_folders(sweep) == list(range(N_TRIALS))


@pytest.mark.slow
def test_the_submitit_local_launcher_gives_the_trials_of_the_basic_launcher(
    reference: Callable[[str], Path], tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    res = run_app(*sweep_args("random", sweep, "hydra/launcher=submitit_local"), cwd=tmp_path, timeout=240)
    assert res.returncode == 0, res.output
    assert trials_of(sweep) == trials_of(reference("random"))
    assert read_summary(sweep)["executor"]["launcher"] == "LocalLauncher"
    assert job_folders(sweep) == list(range(N_TRIALS))


# -- 3. and 4. the plugin next to plain runs ---------------------------------------------------


def test_info_plugins_lists_the_sweeper_and_plain_runs_and_basic_sweeps_still_run(tmp_path: Path) -> None:
    info = run_app("--info", "plugins", cwd=tmp_path)
    assert info.returncode == 0 and "HpoSweeper" in info.stdout, info.output
    plain = run_app(cwd=tmp_path)
    assert plain.returncode == 0, plain.output
    assert f"value={objective.f({'x1': 0.0, 'x2': 0.0, 'k': 1, 'opt': 'sgd'})!r}" in plain.stdout
    basic = run_app("-m", "x1=1.5,2.5", f"hydra.sweep.dir={tmp_path / 'basic'}", cwd=tmp_path)  # Hydra's own sweeper
    assert basic.returncode == 0, basic.output
    assert job_folders(tmp_path / "basic") == [0, 1] and not (tmp_path / "basic" / "trials.jsonl").exists()


def test_a_broken_hpo_cli_breaks_neither_plain_runs_nor_the_plugin_list_and_a_sweep_stops_in_one_line(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken"
    (broken / "hpo_cli").mkdir(parents=True)
    (broken / "hpo_cli" / "__init__.py").write_text("raise RuntimeError('hpo_cli is broken on purpose')\n")
    env = env_of(PYTHONPATH=str(broken))
    plain = run_app(cwd=tmp_path, env=env)
    assert plain.returncode == 0 and "value=" in plain.stdout, plain.output
    assert "Traceback" not in plain.output
    info = run_app("--info", "plugins", cwd=tmp_path, env=env)
    assert info.returncode == 0 and "HpoSweeper" in info.stdout, info.output
    res = run_app(
        "-m", "hydra/sweeper=hpo", "x1=interval(-5, 10)", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path, env=env
    )
    line = one_line_error(res)
    assert "hpo_cli" in line and "broken on purpose" in line  # the broken package was the one imported
    assert not (tmp_path / "sweep" / "trials.jsonl").exists()


# -- 5. failed trials and mappings -----------------------------------------------------------------


def test_jobs_that_raise_or_return_nan_are_failed_trials_and_the_sweep_goes_on(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    res = run_app(
        *sweep_args("random", sweep, "hydra.sweeper.max_failure_rate=1.0", "raise_above=6", "nan_above=2", seed=0),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.output
    rows = read_trials(sweep)
    assert [r["trial"] for r in rows] == list(range(N_TRIALS))
    kinds = set()
    for r in rows:
        x1 = r["params"]["x1"]
        if x1 > 6:
            kinds.add("raised")
            assert r["state"] == "failed" and r["value"] is None
            assert "ValueError" in r["error"] and "raise_above" in r["error"], r
        elif x1 > 2:
            kinds.add("nan")
            assert r["state"] == "failed" and r["value"] is None
            assert "nan" in r["error"].lower(), r
        else:
            kinds.add("complete")
            assert r["state"] == "complete" and r["value"] == objective.f(r["params"]) and r["error"] is None
    assert kinds == {"raised", "nan", "complete"}  # the seed gives each kind of trial
    summary = read_summary(sweep)
    assert summary["status"] == "finished"
    assert summary["n_failed"] == sum(r["state"] == "failed" for r in rows)
    assert summary["n_complete"] + summary["n_failed"] == N_TRIALS


def test_a_mapping_return_with_hydra_sweeper_metric(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    res = run_app(
        "-m", "hydra/sweeper=hpo", "hydra.sweeper.strategy=random", "hydra.sweeper.n_trials=3",
        "hydra.sweeper.metric=loss", "returns=dict", "x1=interval(-5, 10)", f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.output
    rows = read_trials(sweep)
    assert len(rows) == 3 and {r["state"] for r in rows} == {"complete"}
    for r in rows:
        loss = objective.f({"x1": r["params"]["x1"], "x2": 0.0, "k": 1, "opt": "sgd"})
        assert r["value"] == r["metrics"]["loss"] == loss
        assert r["metrics"]["acc"] == 1 / (1 + loss)
    assert read_summary(sweep)["metric"] == "loss"


@pytest.mark.slow
def test_a_mapping_return_without_hydra_sweeper_metric_fails_its_trials_with_a_clear_error(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    res = run_app(
        "-m", "hydra/sweeper=hpo", "hydra.sweeper.strategy=random", "hydra.sweeper.n_trials=2",
        "hydra.sweeper.max_failure_rate=1.0", "returns=dict", "x1=interval(-5, 10)", f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )  # fmt: skip
    assert "Traceback" not in res.output
    rows = read_trials(sweep)
    assert len(rows) == 2 and {r["state"] for r in rows} == {"failed"}
    for r in rows:
        assert "hydra.sweeper.metric" in r["error"] and "loss" in r["error"] and "acc" in r["error"], r
    assert read_summary(sweep)["status"] == "failed"


# -- 6. job numbers ----------------------------------------------------------------------------------


def test_job_folders_are_trial_numbers_and_hold_each_trial_s_overrides(reference: Callable[[str], Path]) -> None:
    sweep = reference("random")
    assert job_folders(sweep) == list(range(N_TRIALS))
    for trial, _, params, _ in trials_of(sweep):
        assert_job_folder_holds(sweep, trial, params)


def assert_job_folder_holds(sweep: Path, trial: int, params: dict[str, Any]) -> None:
    folder = sweep / str(trial)
    overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text())
    assert [as_override(k, v) for k, v in params.items()] == [o for o in overrides if not o.startswith("++seed=")]
    assert yaml.safe_load((folder / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["num"] == trial


# -- 7. resume ----------------------------------------------------------------------------------------


def kill_after(args: list[str], trials: Path, after: int, delay: float, cwd: Path, sleep_s: float) -> bool:
    """Run the app with ARGS, each job sleeping ``sleep_s``; SIGKILL it ``delay`` s after
    ``after`` trials are stored. False when it finished first."""
    return kill_when(
        [sys.executable, str(APP), *args], trials, after, delay, cwd, env_of(HYDRA_APP_SLEEP_S=str(sleep_s))
    )


@pytest.mark.slow
def test_a_killed_sweep_resumes_to_the_uninterrupted_trials_and_job_numbers(
    reference: Callable[[str], Path], tmp_path: Path
) -> None:
    straight = reference("tpe")
    sweep = tmp_path / "sweep"
    args = sweep_args("tpe", sweep)
    # killed in the middle of the third batch (its first job sleeping), after two batches were stored
    assert kill_after(args, sweep / "trials.jsonl", after=4, delay=0.3, cwd=tmp_path, sleep_s=0.4)
    done = count_lines(sweep / "trials.jsonl")
    assert 0 < done < N_TRIALS
    assert read_summary(sweep)["status"] == "running"
    kept = {i: (sweep / str(i) / ".hydra" / "overrides.yaml").stat().st_mtime_ns for i in range(done)}

    res = run_app(*args, "hydra.sweeper.resume=true", cwd=tmp_path)
    assert res.returncode == 0, res.output
    rows = read_trials(sweep)
    assert sorted(r["trial"] for r in rows) == list(range(N_TRIALS))  # each trial once, none lost, none added
    assert trials_of(sweep) == trials_of(straight)
    summary, expected = read_summary(sweep), read_summary(straight)
    assert summary["status"] == "finished" and summary["sessions"] == 2
    assert summary["best"]["trial"] == expected["best"]["trial"]
    assert summary["best"]["value"] == expected["best"]["value"]
    assert summary["best"]["params"] == expected["best"]["params"]
    assert yaml.safe_load((sweep / "best.yaml").read_text()) == yaml.safe_load((straight / "best.yaml").read_text())
    # job folders continue the killed sweep's numbering: the earlier ones are left alone, each
    # folder holds its own trial
    assert f"#{done} : " in res.stdout and "#0 : " not in res.stdout
    assert job_folders(sweep) == list(range(N_TRIALS))
    assert {i: (sweep / str(i) / ".hydra" / "overrides.yaml").stat().st_mtime_ns for i in range(done)} == kept
    for trial, _, params, _ in trials_of(sweep):
        assert_job_folder_holds(sweep, trial, params)


@pytest.fixture
def finished_sweep(reference: Callable[[str], Path], tmp_path: Path) -> Iterator[Path]:
    """A copy of the finished TPE sweep."""
    sweep = tmp_path / "sweep"
    shutil.copytree(reference("tpe"), sweep)
    yield sweep


@pytest.mark.slow
def test_a_resume_with_a_changed_sweep_is_refused_in_one_line(finished_sweep: Path, tmp_path: Path) -> None:
    before = (finished_sweep / "trials.jsonl").read_bytes()
    res = run_app(*sweep_args("tpe", finished_sweep, "hydra.sweeper.resume=true", seed=SEED + 1), cwd=tmp_path)
    line = one_line_error(res)
    assert "resume" in line and "changed" in line and str(finished_sweep) in line
    assert (finished_sweep / "trials.jsonl").read_bytes() == before
    assert read_summary(finished_sweep)["seed"] == SEED


def test_a_second_sweep_into_a_sweep_directory_needs_resume(finished_sweep: Path, tmp_path: Path) -> None:
    before = (finished_sweep / "trials.jsonl").read_bytes()
    line = one_line_error(run_app(*sweep_args("tpe", finished_sweep), cwd=tmp_path))
    assert "already holds a sweep" in line and "hydra.sweeper.resume=true" in line
    assert (finished_sweep / "trials.jsonl").read_bytes() == before


def test_a_refused_resume_leaves_the_sweep_s_multirun_yaml_alone(finished_sweep: Path, tmp_path: Path) -> None:
    before = (finished_sweep / "multirun.yaml").read_text()
    res = run_app(*sweep_args("tpe", finished_sweep, "hydra.sweeper.resume=true", seed=SEED + 1), cwd=tmp_path)
    assert res.returncode == 2
    assert (finished_sweep / "multirun.yaml").read_text() == before


# -- 8. the grammar, in-process ------------------------------------------------------------------------


def all_values(param: Any) -> list[Any]:
    """Every value an int or categorical parameter allows, in order."""
    if isinstance(param, IntParam):
        return param.grid(10**6)
    assert isinstance(param, CategoricalParam)
    return list(param.choices)


# grammar -> (parameter type, attributes, values it allows (ints and categoricals: all of them), values it refuses)
GRAMMAR = [
    ("interval(-5, 10)", FloatParam, {"low": -5.0, "high": 10.0, "log": False}, [-5.0, 10.0], [-5.000001, 10.000001]),
    ("interval(0.5, 1.5)", FloatParam, {"low": 0.5, "high": 1.5, "log": False}, [0.5, 1.5], [0.49, 1.51]),
    ("tag(log, interval(1e-5, 1e-1))", FloatParam, {"low": 1e-5, "high": 0.1, "log": True}, [1e-5, 0.1], [1e-6, 0.2]),
    ("int(interval(1, 4))", IntParam, {"low": 1, "high": 4, "log": False, "step": 1}, [1, 2, 3, 4], [0, 5]),
    ("tag(log, int(interval(1, 64)))", IntParam, {"low": 1, "high": 64, "log": True}, list(range(1, 65)), [0, 65]),
    ("range(1, 4)", IntParam, {"low": 1, "high": 3, "step": 1}, [1, 2, 3], [0, 4]),
    ("int(range(1, 4))", IntParam, {"low": 1, "high": 3, "step": 1}, [1, 2, 3], [4]),
    ("range(1, 10, 3)", IntParam, {"low": 1, "high": 7, "step": 3}, [1, 4, 7], [2, 10]),
    ("range(10, 1, -3)", IntParam, {"low": 4, "high": 10, "step": 3}, [4, 7, 10], [1, 3]),
    ("range(0, 1, 0.25)", CategoricalParam, {}, [0.0, 0.25, 0.5, 0.75], [1.0]),
    ("range(1.0, 4.0)", CategoricalParam, {}, [1.0, 2.0, 3.0], [4.0]),
    ("choice(sgd, adam)", CategoricalParam, {}, ["sgd", "adam"], ["rmsprop"]),
    ("sgd,adam", CategoricalParam, {}, ["sgd", "adam"], []),
    ("choice(1, 2.5, true, abc)", CategoricalParam, {}, [1, 2.5, True, "abc"], ["1", 2, "true"]),
]


@pytest.mark.parametrize(("text", "kind", "attributes", "allowed", "refused"), GRAMMAR, ids=[g[0] for g in GRAMMAR])
def test_each_grammar_form_becomes_its_parameter(
    text: str, kind: type, attributes: dict[str, Any], allowed: list[Any], refused: list[Any]
) -> None:
    space, fixed = parse_params({"lr": text})
    assert fixed == {}
    (param,) = space.params
    assert type(param) is kind and param.name == "lr"
    assert {name: getattr(param, name) for name in attributes} == attributes
    if kind is FloatParam:  # both bounds can be drawn
        assert param.decode([0.0]) == allowed[0] and param.decode([1.0]) == allowed[-1]
    else:
        got = all_values(param)
        assert got == allowed and [type(v) for v in got] == [type(v) for v in allowed]
    assert all(param.contains(v) for v in allowed)
    assert not any(param.contains(v) for v in refused)


def test_a_plain_value_is_a_fixed_override_and_nested_keys_are_flattened() -> None:
    space, fixed = parse_params(
        {"optimizer": {"lr": "tag(log, interval(1e-5, 1e-1))", "name": "adam"}, "epochs": 3, "k": "int(interval(1, 4))"}
    )
    assert [p.name for p in space.params] == ["optimizer.lr", "k"]
    assert fixed == {"optimizer.name": "adam", "epochs": "3"}


@pytest.mark.parametrize(
    "text",
    [
        "shuffle(1, 2, 3)",
        "shuffle(range(1, 4))",
        "tag(log, choice(1, 2))",
        "tag(log, range(1, 4))",
        "tag(foo, interval(0, 1))",
        "range(4, 1)",
        "range(1, 1)",
        "range(1, 4, 0)",
        "range(0, 1, -0.5)",
        "interval(5, 1)",
        "tag(log, interval(0, 1))",
        "choice([1, 2], [3])",
        "glob(a*)",
        "interval(1",
        "choice(a, b",
    ],
)
def test_grammar_without_meaning_for_a_search_is_a_config_error_naming_the_key(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_params({"optimizer": {"lr": text}, "k": "int(interval(1, 4))"})
    assert info.value.key.startswith("hydra.sweeper.params.optimizer.lr"), info.value.key
    assert len(str(info.value).splitlines()) == 1


def test_params_without_any_search_form_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no parameter to search"):
        parse_params({"epochs": 3, "name": "adam"})


def hydra_value(override: str) -> Any:
    return OverridesParser.create().parse_override(override).value()


@pytest.mark.parametrize("value", [0, 3, -7, 10**20])
def test_as_override_renders_ints_as_int_literals(value: int) -> None:
    assert as_override("k", value) == f"k={value}"
    got = hydra_value(as_override("k", value))
    assert got == value and type(got) is int


@pytest.mark.parametrize(
    "value", [0.1, 1 / 3, 2.0, -0.0, 1e-5, 1e300, 5e-324, 0.30000000000000004, 2.718281828459045, math.inf, -math.inf]
)
def test_as_override_renders_floats_exactly(value: float) -> None:
    rendered = as_override("lr", value)
    assert float(rendered.split("=", 1)[1]) == value
    got = hydra_value(rendered)
    assert type(got) is float and got == value and math.copysign(1, got) == math.copysign(1, value)


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("sgd", "opt=sgd"),
        ("a.b/c-d", "opt=a.b/c-d"),
        ("hello world", "opt='hello world'"),
        ("1.5", "opt='1.5'"),
        ("10", "opt='10'"),
        ("true", "opt='true'"),
        ("null", "opt='null'"),
        ("nan", "opt='nan'"),
        ("a=b", "opt='a=b'"),
        ("x,y", "opt='x,y'"),
        ("", "opt=''"),
        ('say "hi"', "opt='say \"hi\"'"),
        (True, "opt=true"),
        (False, "opt=false"),
        (None, "opt=null"),
    ],
)
def test_as_override_quotes_the_strings_hydra_would_read_otherwise(value: Any, rendered: str) -> None:
    assert as_override("opt", value) == rendered
    got = hydra_value(rendered)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("value", ["it's", "a\\"])
def test_as_override_escapes_quotes_and_backslashes(value: str) -> None:
    assert hydra_value(as_override("opt", value)) == value


@pytest.mark.parametrize(
    "text",
    [
        "range(0, 1, 0.25)",
        "range(1, 0, -0.25)",
        "range(0.1, 0.7, 0.2)",
        "range(0, 1, 0.1)",
        "range(0, 1.1, 0.1)",
    ],
)
def test_a_float_range_is_a_categorical_of_the_values_hydra_lists(text: str) -> None:
    space, _ = parse_params({"x": text})
    (param,) = space.params
    assert isinstance(param, CategoricalParam)
    assert list(param.choices) == list(OverridesParser.create().parse_override(f"x={text}").value().range())


# -- 9. bad sweeper config ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("hydra.sweeper.strategy=nope", "hydra.sweeper.strategy='nope': not an option (they are: asha, cmaes,"),
        ("hydra.sweeper.direction=up", "hydra.sweeper.direction='up': must be one of"),
        ("nokey=interval(0, 1)", "nokey"),
        ("hydra.sweeper.params.nokey='interval(0, 1)'", "nokey"),
        ("hydra.sweeper.space=broken.yaml", "hydra.sweeper.space='broken.yaml': YAML syntax error (line 3)"),
    ],
)
def test_a_bad_sweeper_config_is_refused_in_one_line_naming_the_key(tmp_path: Path, override: str, named: str) -> None:
    (tmp_path / "broken.yaml").write_text("params:\n  x2: {type: float, low: 0.0, high: [\n")
    res = run_app(
        "-m", "hydra/sweeper=hpo", "hydra.sweeper.n_trials=2", "x1=interval(-5, 10)", override,
        f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path,
    )  # fmt: skip
    line = one_line_error(res)
    assert line.startswith("hpo sweeper: error: ") and named in line, line
    assert not (tmp_path / "sweep").exists(), "nothing was launched, nothing written"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"space": "listed.yaml"}, "hydra.sweeper.space.params=['x2']: expected a mapping"),
        ({"resume": True}, "hydra.sweeper.resume=True: {sweep} holds no sweep to continue"),
        ({"strategy_params": {"gama": 0.2}}, "hydra.sweeper.strategy_params.gama=0.2: not an option of tpe"),
        ({"strategy": "drmad"}, "task='app': strategy 'drmad' needs a differentiable task"),  # rmad's _target_ came
        ({"seed": -1}, "hydra.sweeper.seed=-1: must be a non-negative integer"),
        ({"n_trials": 0}, "hydra.sweeper.n_trials=0: must be a positive integer"),
    ],
)
def test_sweeper_refusals_come_before_anything_is_launched_or_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], message: str
) -> None:
    """run_sweep in-process (the plugin prints a ConfigError as one line, exit 2: tested above)."""
    from omegaconf import OmegaConf

    from hpo_cli.sweeper.sweep import run_sweep
    from hydra_plugins.hpo_sweeper.hpo_sweeper import HpoSweeperConf

    monkeypatch.chdir(tmp_path)
    (tmp_path / "listed.yaml").write_text("params:\n  - x2\n")
    defaults = OmegaConf.to_container(OmegaConf.structured(HpoSweeperConf))
    assert isinstance(defaults, dict)
    defaults.pop("_target_")
    sweep = tmp_path / "sweep"

    def never(*_: Any) -> Any:
        raise AssertionError("nothing may be launched, validated or saved")

    with pytest.raises(ConfigError) as refused:
        run_sweep({**defaults, **options}, ["x1=interval(-5, 10)"], never, "basic", sweep, "app", never, never)
    assert str(refused.value).startswith(message.format(sweep=sweep)), str(refused.value)
    assert not sweep.exists()


def test_the_strategy_group_is_composed_by_hydra_with_its_inherited_defaults() -> None:
    from hpo_cli.build import compose_config
    from hpo_cli.sweeper.sweep import strategy_config

    drmad = strategy_config("drmad", {})
    assert drmad == compose_config(["strategy=drmad"]).strategy  # what hpo run composes
    assert drmad["_target_"] == compose_config(["strategy=rmad"]).strategy["_target_"] and drmad["method"] == "drmad"
    tpe = strategy_config("tpe", {"gamma": 0.3, "n_startup_trials": 4})
    assert (tpe["gamma"], tpe["n_startup_trials"], tpe["max_good"]) == (0.3, 4, 25)


def test_each_trial_records_its_own_job_s_seconds_not_the_batch_s() -> None:
    """Jobs run in a TimedTask (the sweeper wraps the app's task function); a batch of a fast and
    a slow job gives each its own duration."""
    from hydra.core.utils import JobReturn, JobStatus

    from hpo_cli.executors.base import Job
    from hpo_cli.sweeper.launched import LauncherExecutor
    from hpo_cli.sweeper.timing import TimedTask
    from hpo_cli.trial import Suggestion

    def app(delay: float) -> float:
        time.sleep(delay)
        if delay > 0.2:
            raise ValueError("slow and failing")
        return delay

    def launch(batch: Any, first: int) -> list[JobReturn]:
        timed, returns = TimedTask(app), []
        for overrides in batch:
            returned = JobReturn()
            try:
                returned.return_value = timed(float(overrides[0].split("=")[1]))
                returned.status = JobStatus.COMPLETED
            except ValueError as exc:
                returned.return_value, returned.status = exc, JobStatus.FAILED
            returns.append(returned)
        time.sleep(0.5)  # the launcher's own overhead: in no job's seconds
        return returns

    executor = LauncherExecutor(launch, [], None, None, None, 3, "test")
    for number, delay in enumerate((0.0, 0.1, 0.3)):
        executor.submit(Job(number, Suggestion(number, {"delay": delay}, np.zeros(1)), 0), app)
    outcomes = executor.wait()
    seconds = [outcome.record.seconds for _, outcome in outcomes]
    assert [outcome.record.state for _, outcome in outcomes] == ["complete", "complete", "failed"]
    assert seconds[0] < 0.1 <= seconds[1] < 0.3 <= seconds[2] < 0.5, seconds  # the batch took over 0.9 s


@pytest.mark.slow
def test_a_sweep_refused_for_a_bad_key_leaves_its_directory_reusable(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    common = ["-m", "hydra/sweeper=hpo", "hydra.sweeper.n_trials=2", "x1=interval(-5, 10)", f"hydra.sweep.dir={sweep}"]
    assert run_app(*common, "nokey=interval(0, 1)", cwd=tmp_path).returncode == 2
    res = run_app(*common, cwd=tmp_path)
    assert res.returncode == 0, res.output


# -- 10. multi-fidelity: the budget goes to the job through budget_key ---------------------------------


@pytest.mark.slow
def test_hyperband_sends_each_trial_s_budget_to_its_job_through_budget_key(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    common = ["-m", "hydra/sweeper=hpo", "hydra.sweeper.strategy=hyperband", "hydra.sweeper.n_trials=20",
              "hydra.sweeper.batch_size=4", "x1=interval(-5, 10)", "x2=interval(0, 15)",
              f"hydra.sweep.dir={sweep}"]  # fmt: skip
    assert "hydra.sweeper.budget_key" in one_line_error(run_app(*common, cwd=tmp_path))
    budgets = "hydra.sweeper.strategy_params={min_budget: 1, max_budget: 9, eta: 3}"  # a dict, no '+' needed
    res = run_app(*common, "hydra.sweeper.budget_key=k", budgets, cwd=tmp_path)
    assert res.returncode == 0, res.output
    trials = read_trials(sweep)
    assert {t["budget"] for t in trials} == {1.0, 3.0, 9.0} and any(t["state"] == "pruned" for t in trials)
    for t in trials:
        overrides = yaml.safe_load((sweep / str(t["trial"]) / ".hydra" / "overrides.yaml").read_text())
        assert f"++k={int(t['budget'])}" in overrides  # an int literal: the app's objective takes an int k
        expected = objective.f({**t["params"], "k": int(t["budget"]), "opt": "sgd"})
        assert t["value"] == pytest.approx(expected, rel=1e-12)
