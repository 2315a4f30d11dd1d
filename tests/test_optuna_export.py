"""``hpo export``, ``hpo plot``, ``hpo dashboard``: runs through Optuna, read back with Optuna itself
(``optuna.load_study``) and compared trial by trial; the PNGs read back as images."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import MIXED_SPACE, VECTOR_SPACE, Result, make_space, read_trials, run_dirs

from hpo_cli.commands.export import export_runs
from hpo_cli.errors import ConfigError
from hpo_cli.report.optuna_export import open_storage
from hpo_cli.report.results import find_runs
from hpo_cli.trial import TrialRecord, TrialState

optuna = pytest.importorskip("optuna", reason="the optuna extra is not installed: pip install 'hpo_cli[optuna]'")
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: E402

SPACE = {**MIXED_SPACE, **VECTOR_SPACE}


def write_run(folder: Path, n: int = 14, seed: int = 0) -> list[TrialRecord]:
    """A run directory of a mixed space (log, step, int, categorical, conditional, a vector of 3)
    with complete, pruned and failed trials."""
    space = make_space(SPACE, n=3)
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        params = space.decode(rng.random(space.dim))
        state = TrialState.FAILED if i % 5 == 4 else TrialState.PRUNED if i % 4 == 3 else TrialState.COMPLETE
        value = None if state == TrialState.FAILED else float(rng.normal())
        metrics = {} if value is None else {"test_loss": value + 1.0, "note": "ok"}
        budget = float(1 + i % 3)
        error = "ValueError: boom" if value is None else None
        records.append(TrialRecord(i, state, params, value, metrics, budget, 0.1 * i, error, {"inner_steps": 10 * i}))
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"space": {"params": SPACE}}, sort_keys=False))
    (folder / "trials.jsonl").write_text("".join(r.to_json() + "\n" for r in records))
    summary = {"strategy": "random", "task": "synthetic", "metric": "loss", "direction": "minimize"}
    (folder / "summary.json").write_text(json.dumps(summary))
    return records


def flat(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in params.items():
        out.update({f"{k}[{i}]": x for i, x in enumerate(v)} if isinstance(v, list) else {k: v})
    return out


def test_every_trial_reads_back_from_sqlite_with_its_state_value_params_and_attrs(tmp_path: Path) -> None:
    records = write_run(tmp_path / "run")
    (run,) = find_runs([tmp_path / "run"])
    (name,) = export_runs([run], f"sqlite:///{tmp_path / 'x.db'}")
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'x.db'}")
    trials = study.get_trials(deepcopy=False)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE and len(trials) == len(records)
    assert study.user_attrs["strategy"] == "random" and study.user_attrs["metric"] == "loss"
    states = {"complete": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}
    for trial, record in zip(trials, records, strict=True):
        assert trial.number == record.trial and trial.state.name == states[record.state]
        assert trial.value == record.value
        assert trial.params == flat(record.params)  # the conditional momentum only where optimizer=sgd
        assert ("momentum" in trial.params) == (record.params["optimizer"] == "sgd")
        assert trial.user_attrs["hpo_trial"] == record.trial and trial.user_attrs["budget"] == record.budget
        assert trial.user_attrs["cost.inner_steps"] == record.cost["inner_steps"]
        assert {k: v for k, v in trial.user_attrs.items() if k.startswith("metrics.")} == {
            f"metrics.{k}": v for k, v in record.metrics.items()
        }
        assert trial.user_attrs.get("error") == record.error
        if record.value is not None:
            assert trial.intermediate_values == {int(record.budget or 0): record.value}
    d = trials[0].distributions
    assert d["lr"] == FloatDistribution(1e-5, 1e-1, log=True)
    assert d["dropout"] == FloatDistribution(0.0, 0.5, step=0.1)
    assert d["units"] == IntDistribution(16, 256, log=True) and d["batch"] == IntDistribution(32, 128, step=32)
    assert d["optimizer"] == CategoricalDistribution(["sgd", "adam", "rmsprop"])
    assert d["flag"] == CategoricalDistribution([True, False, None, 3])
    assert d["h[2]"] == FloatDistribution(-2.0, 10.0) and "h[3]" not in d


def test_a_repeated_export_replaces_the_study_and_a_journal_file_works(tmp_path: Path) -> None:
    write_run(tmp_path / "a", n=6, seed=1)
    write_run(tmp_path / "b", n=9, seed=2)
    runs = find_runs([tmp_path / "a", tmp_path / "b"])
    journal = f"journal:{tmp_path / 'studies.log'}"
    export_runs(runs, journal)
    names = export_runs(runs, journal)
    storage = open_storage(journal)
    assert sorted(optuna.get_all_study_names(storage)) == sorted(names)
    counts = [len(optuna.load_study(study_name=n, storage=storage).trials) for n in names]
    assert counts == [len(run.records) for run in runs]


@pytest.mark.parametrize(
    "url, reason",
    [("hpo.db", "expected sqlite:///FILE.db"), ("nosuchdb://x", "cannot open it"), ("journal:/no/such/dir/x.log", "")],
)
def test_a_bad_storage_is_a_config_error_naming_it(url: str, reason: str) -> None:
    with pytest.raises(ConfigError, match="--storage") as caught:
        open_storage(url)
    assert reason in caught.value.reason


# -- through the CLI, on real runs ------------------------------------------------------------


Cli = Callable[..., Result]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """Random and sobol on hartmann6 (6 parameters), 12 trials each: (cwd, runs)."""
    import subprocess

    cwd = tmp_path_factory.mktemp("optuna")
    env = {**os.environ, "HPO_RUNS_DIR": str(cwd / "runs")}
    for strategy in ("random", "sobol"):
        args = ["run", f"strategy={strategy}", "task=hartmann6", "n_trials=12"]
        proc = subprocess.run(
            [sys.executable, "-m", "hpo_cli", *args], cwd=cwd, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd, run_dirs(cwd)


@pytest.fixture
def hpo(two_runs: tuple[Path, list[Path]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``hpo ARGS`` in this process (the subcommands other than run), in the runs' folder."""
    from hpo_cli.cli import main

    monkeypatch.chdir(two_runs[0])

    def run(*args: str) -> Result:
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


def test_hpo_export_writes_one_study_per_run(two_runs: tuple[Path, list[Path]], hpo: Cli) -> None:
    cwd, runs = two_runs
    res = hpo("export", *map(str, runs), "--storage", "sqlite:///hpo.db")
    assert res.returncode == 0, res.output
    names = optuna.get_all_study_names(f"sqlite:///{cwd / 'hpo.db'}")
    assert len(names) == 2
    for run in runs:
        name = str(run.relative_to(cwd))
        assert f"as study '{name}'" in res.stdout
        trials = optuna.load_study(study_name=name, storage=f"sqlite:///{cwd / 'hpo.db'}").trials
        recorded = read_trials(run)
        assert [t.value for t in trials] == [r["value"] for r in recorded]
        assert [t.params for t in trials] == [flat(r["params"]) for r in recorded]


@pytest.mark.parametrize(
    "args, key",
    [
        (["export", "RUN", "--storage", "mysql-nope"], "--storage='mysql-nope'"),
        (["plot", "RUN", "--kind", "importance,pie"], "--kind='pie'"),
        (["export", "no/such/run", "--storage", "sqlite:///x.db"], "paths="),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    two_runs: tuple[Path, list[Path]], hpo: Cli, args: list[str], key: str
) -> None:
    _, runs = two_runs
    res = hpo(*[str(runs[0]) if a == "RUN" else a for a in args])
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.output, res.output
    assert lines[0].startswith(f"hpo: error: {key}")


def check_plots(hpo: Cli, runs: list[Path], kinds: list[str]) -> None:
    import matplotlib.image

    res = hpo("plot", *map(str, runs), "--kind", ",".join(kinds))
    assert res.returncode == 0, res.output
    for run in runs:
        for kind in kinds:
            image = matplotlib.image.imread(run / "plots" / f"{kind}.png")
            assert image.shape[0] > 300 and image.shape[1] > 500 and image[..., :3].std() > 0.05
            assert f"wrote {run / 'plots' / kind}.png" in res.stdout
        assert (run / "plots" / "history.png").is_file()  # ours stays


def test_hpo_plot_draws_the_importance_into_each_run_and_the_edf_across_runs(
    two_runs: tuple[Path, list[Path]], hpo: Cli
) -> None:
    check_plots(hpo, two_runs[1], ["importance", "edf"])


@pytest.mark.slow
def test_hpo_plot_draws_every_kind(two_runs: tuple[Path, list[Path]], hpo: Cli) -> None:
    check_plots(hpo, two_runs[1][:1], ["importance", "parallel", "slice", "contour", "edf"])


def test_hpo_dashboard_starts_optuna_dashboard_on_loopback_and_names_the_url(
    two_runs: tuple[Path, list[Path]], hpo: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in optuna-dashboard: it records its arguments and the studies it was given."""
    _, runs = two_runs
    fake = tmp_path / "bin" / "optuna-dashboard"
    fake.parent.mkdir()
    seen = tmp_path / "seen.json"
    fake.write_text(
        f"#!{sys.executable}\nimport json, sys, optuna\n"
        f"names = optuna.get_all_study_names(sys.argv[1])\n"
        f"json.dump({{'argv': sys.argv[1:], 'names': names}}, open({str(seen)!r}, 'w'))\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    res = hpo("dashboard", *map(str, runs), "--port", "8765")
    assert res.returncode == 0, res.output
    assert res.stdout.splitlines()[0].startswith("optuna-dashboard: http://127.0.0.1:8765/")
    got = json.loads(seen.read_text())
    assert got["argv"][1:] == ["--host", "127.0.0.1", "--port", "8765"] and len(got["names"]) == 2
    assert not Path(got["argv"][0].removeprefix("sqlite:///")).exists()  # the temporary export is gone


def test_hpo_dashboard_without_optuna_dashboard_says_how_to_install(
    two_runs: tuple[Path, list[Path]], hpo: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hpo_cli.commands.dashboard as dashboard

    monkeypatch.setattr(dashboard, "dashboard_binary", lambda: None)
    res = hpo("dashboard", str(two_runs[1][0]))
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "pip install 'hpo_cli[optuna]'" in lines[0], res.output
