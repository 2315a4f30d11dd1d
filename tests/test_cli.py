"""The real `hpo` command: run directories, multirun, determinism, errors, resume."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import Hpo, read_summary, read_trials, run_dirs

TRIAL_KEYS = {"trial", "state", "params", "value", "metrics", "budget", "seconds", "error"}
SUMMARY_KEYS = {
    "strategy",
    "task",
    "space",
    "seed",
    "direction",
    "status",
    "n_trials",
    "n_complete",
    "n_failed",
    "best",
    "wall_seconds",
    "cost",
    "versions",
}


def write_user_project(root: Path, sleep_s: float = 0.0, hold_after: int | None = None) -> None:
    """A user's objective module and space file, as the README shows them. ``hold_after=N``: from
    its (N+1)-th call in a process, the objective waits while ``root/hold`` exists (up to 120 s),
    so a signal finds the run in flight however slowly the test polls."""
    hold = (
        ""
        if hold_after is None
        else (
            "    global CALLS\n    CALLS += 1\n"
            f"    while CALLS > {hold_after} and os.path.exists({str(root / 'hold')!r})"
            " and time.monotonic() < CALLS_T0 + 120:\n"
            "        time.sleep(0.05)\n"
        )
    )
    (root / "my_objective.py").write_text(
        "import os\nimport time\n\nCALLS = 0\nCALLS_T0 = time.monotonic()\n\n\ndef f(params):\n"
        f"{hold}"
        f"    time.sleep({sleep_s})\n"
        "    return (params['x'] - 1.0) ** 2 + (params['y'] + 2.0) ** 2\n"
    )
    (root / "conf" / "space").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "space" / "my_space.yaml").write_text(
        "params:\n  x: {type: float, low: -5.0, high: 5.0}\n  y: {type: float, low: -5.0, high: 5.0}\n"
    )


def test_help_is_fast_and_does_not_import_torch() -> None:
    code = (
        "import sys, hpo_cli.cli as c\n"
        "try:\n    c.main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "assert 'torch' not in sys.modules and 'hydra' not in sys.modules, 'heavy import'\nprint('LIGHT')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for command in ("run", "resume", "compare", "bench", "gradcheck"):
        assert command in out.stdout
    assert "LIGHT" in out.stdout and "\n\n\n" not in out.stdout


@pytest.mark.parametrize("strategy", [[], ["strategy=tpe"], ["strategy=random"]])
def test_a_function_task_run_does_not_import_torch_or_scipy_stats(tmp_path: Path, strategy: list[str]) -> None:
    """The driver of ``hpo run task=function`` (its default criterion, the default Sobol strategy
    and TPE) never loads torch, nor scipy.stats (a second at start-up)."""
    write_user_project(tmp_path)
    argv = ["run", "task=function", "task.fn=my_objective.f", "space=my_space", "n_trials=3", *strategy]
    code = (
        f"import sys\nfrom hpo_cli.cli import main\ntry:\n    main({argv!r})\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'scipy.stats' not in sys.modules, 'scipy.stats was imported'\nprint('LIGHT')"
    )
    env = {**os.environ, "HPO_RUNS_DIR": str(tmp_path / "runs")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert "LIGHT" in out.stdout, out.stderr[-2000:]


@pytest.mark.parametrize("command", ["resume", "compare", "bench", "gradcheck"])
def test_every_subcommand_has_its_own_help(hpo_refusal: Hpo, command: str) -> None:
    res = hpo_refusal(command, "--help")
    assert res.returncode == 0 and f"usage: hpo {command}" in res.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["compare"], "the following arguments are required: PATH"),
        (["bench", "quick", "--check", "--update"], "not allowed with argument"),
        (["resume"], "resume: the following arguments are required: RUN_DIR"),
    ],
)
def test_bad_command_lines_are_one_line_errors(hpo_refusal: Hpo, args: list[str], expected: str) -> None:
    res = hpo_refusal(*args)
    assert res.returncode == 2 and expected in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert res.stderr.startswith("hpo: error: ")


def test_version(hpo_refusal: Hpo) -> None:
    res = hpo_refusal("--version")
    assert res.returncode == 0 and res.stdout.startswith("hpo_cli ")


def test_a_run_writes_the_documented_run_directory(hpo: Hpo, tmp_path: Path) -> None:
    res = hpo("run", "strategy=sobol", "task=ridge", "n_trials=16", "seed=1")
    assert res.returncode == 0, res.output
    (run,) = run_dirs(tmp_path)
    assert run.parent.name == time.strftime("%Y-%m-%d")
    assert run.name.endswith("_sobol_ridge") and len(run.name.split("_")[0]) == len("10-31-07-123")
    trials = read_trials(run)
    assert len(trials) == 16 and all(set(t) >= TRIAL_KEYS for t in trials)
    summary = read_summary(run)
    assert set(summary) >= SUMMARY_KEYS
    assert summary["status"] == "finished" and summary["n_complete"] == 16
    assert (summary["strategy"], summary["task"], summary["space"]) == ("sobol", "ridge", "ridge")
    best = min(trials, key=lambda t: t["value"])
    assert summary["best"]["trial"] == best["trial"] and summary["best"]["value"] == best["value"]
    assert "test_mse" in summary["best"]["metrics"]
    assert summary["cost"]["evaluations"] == 16
    assert yaml.safe_load((run / "best.yaml").read_text()) == best["params"]
    assert (run / "plots" / "history.png").stat().st_size > 10_000
    assert (run / ".hydra" / "config.yaml").is_file() and (run / "hpo.log").is_file()
    assert "best val_mse" in res.stdout


def test_grid_over_25_ridge_alphas_reproduces_a_direct_scikit_learn_loop(hpo: Hpo, tmp_path: Path) -> None:
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_squared_error
    from test_tasks import independent_diabetes_split

    res = hpo("run", "strategy=grid", "task=ridge", "strategy.resolution=25", "n_trials=100", "seed=2")
    assert res.returncode == 0, res.output
    trials = read_trials(run_dirs(tmp_path)[0])
    alphas = np.geomspace(1e-4, 1e4, 25)
    assert [t["params"]["alpha"] for t in trials] == list(alphas)
    Xtr, ytr, Xva, yva, _, _ = independent_diabetes_split(seed=2)
    direct = [mean_squared_error(yva, Ridge(alpha=a).fit(Xtr, ytr).predict(Xva)) for a in alphas]
    assert [t["value"] for t in trials] == direct
    summary = read_summary(run_dirs(tmp_path)[0])
    assert summary["best"]["params"]["alpha"] == alphas[int(np.argmin(direct))]
    assert summary["message"] == "the grid is exhausted (25 points)"


def test_same_seed_and_config_give_identical_trials(hpo: Hpo, tmp_path: Path) -> None:
    for _ in range(2):
        assert hpo("run", "strategy=random", "task=linear", "n_trials=12", "seed=5", "batch_size=4").returncode == 0
    a, b = (read_trials(d) for d in run_dirs(tmp_path))
    assert [(t["params"], t["value"]) for t in a] == [(t["params"], t["value"]) for t in b]
    assert {t["params"]["model"] for t in a} == {"ridge", "lasso"}


@pytest.mark.slow
def test_runs_started_in_the_same_second_do_not_collide(tmp_path: Path) -> None:
    env = {**os.environ, "HPO_RUNS_DIR": str(tmp_path / "runs")}
    cmd = [sys.executable, "-m", "hpo_cli", "run", "task=ridge", "n_trials=4"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL) for _ in range(3)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    assert len(run_dirs(tmp_path)) == 3


def test_multirun_writes_one_numbered_folder_per_job(hpo: Hpo, tmp_path: Path) -> None:
    res = hpo("run", "-m", "strategy=grid,random", "task=ridge", "seed=0,1", "n_trials=4")
    assert res.returncode == 0, res.output
    (sweep,) = (tmp_path / "runs" / "multirun").glob("*/*")
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]
    assert (sweep / "multirun.yaml").is_file()
    jobs = [read_summary(sweep / str(i)) for i in range(4)]
    assert [(j["strategy"], j["seed"]) for j in jobs] == [
        ("grid", 0),
        ("grid", 1),
        ("random", 0),
        ("random", 1),
    ]
    assert all((sweep / str(i) / "trials.csv").is_file() for i in range(4))
    assert not any((sweep / str(i) / "plots").exists() for i in range(4))  # a job's fixed cost: no history plot


def test_hydra_flags_keep_working(hpo_refusal: Hpo) -> None:
    res = hpo_refusal("run", "--cfg", "job", "strategy=lhs", "task=lasso")
    assert res.returncode == 0
    cfg = yaml.safe_load(res.stdout)
    assert cfg["strategy"]["_target_"].endswith("LatinHypercubeStrategy")
    assert cfg["space"]["params"]["alpha"]["high"] == 100.0
    helped = hpo_refusal("run", "--help")
    assert (
        "strategy: asha, cmaes, drmad, evolution, fixed, forward, gp_bo, greedy, grid, halton, hammersley, hoag, "
        "hyperband, lhs, nelder_mead, poisson_disk, pso, random, reverse, rmad, rtho, sobol, successive_halving, tpe"
    ) in helped.stdout
    assert (
        "task: bilevel, branin, digits, function, hartmann6, hypercleaning, lasso, levy, linear, mnist, polynomial, "
        "ridge, rosenbrock, softmax"
    ) in helped.stdout


def test_user_objective_and_space_from_the_current_directory(hpo: Hpo, tmp_path: Path) -> None:
    write_user_project(tmp_path)
    res = hpo(
        "run",
        "task=function",
        "task.fn=my_objective.f",
        "space=my_space",
        "strategy=sobol",
        "n_trials=64",
    )
    assert res.returncode == 0, res.output
    summary = read_summary(run_dirs(tmp_path)[0])
    assert summary["task"] == "function" and summary["best"]["value"] < 0.5
    assert run_dirs(tmp_path)[0].name.endswith("_sobol_function")


def test_best_yaml_re_evaluates_with_the_fixed_strategy(hpo: Hpo, tmp_path: Path) -> None:
    assert hpo("run", "strategy=random", "task=polynomial", "space=polynomial_per_coef", "n_trials=8").returncode == 0
    first = run_dirs(tmp_path)[0]
    res = hpo(
        "run",
        "strategy=fixed",
        "task=polynomial",
        "space=polynomial_per_coef",
        f"strategy.params_file={first / 'best.yaml'}",
    )
    assert res.returncode == 0, res.output
    again = read_summary(run_dirs(tmp_path)[1])
    assert again["best"]["value"] == read_summary(first)["best"]["value"] and again["n_complete"] == 1


BAD_INPUTS = [
    (["n_trials=0"], "n_trials=0: must be a positive integer"),
    (["n_trials=-3"], "n_trials=-3: must be a positive integer"),
    (["device=tpu"], "device='tpu': must be one of cpu, cuda, auto"),
    (["batch_size=0"], "batch_size=0: must be a positive integer"),
    (
        ["space.params.alpha.low=10", "space.params.alpha.high=1"],
        "space.params.alpha.low=10: must be < high (1)",
    ),
    (["space.params.alpha.low=0"], "space.params.alpha.low=0: log scale needs low > 0"),
    (
        ["space.params.alpha.type=normal"],
        "space.params.alpha.type='normal': must be one of float, int, categorical",
    ),
    (
        ["task=linear", "space.params.model.choices=[]"],
        "space.params.model.choices=[]: must be a non-empty list",
    ),
    (
        ["strategy=grid", "strategy.resolution=0"],
        "strategy.resolution=0: must be a positive integer",
    ),
    (["task=function"], "task.fn=None: set it to your objective"),
    (["strategy=gp_bo", "strategy.acquisition=qei"], "strategy.acquisition='qei': must be one of ei, pi, lcb, ucb"),
    (["strategy=evolution", "strategy.elite=30"], "strategy.elite=30: must be in [0, population=20)"),
    (["strategy=cmaes", "task=branin", "strategy.sigma0=2"], "strategy.sigma0=2: must be in (0, 1]"),
    # checked up front, not inside every trial
    (["task=polynomial", "criterion=cv", "criterion.k=100000"], "criterion.k=100000: exceeds the 40 examples to split"),
    (
        ["task=polynomial", "criterion=elbo", "criterion.init_log_variance=nan"],
        "criterion.init_log_variance=nan: must be a finite number",
    ),
    # the key as the user wrote it, not the Python class's complaint
    (["strategy=hoag", "task=polynomial", "+strategy.lr=1"], "strategy.lr=1: not an option of this strategy (curv"),
    (["strategy=tpe", "+strategy.gama=0.2"], "strategy.gama=0.2: not an option of this strategy (bandwidth,"),
    (["strategy=fixed", "strategy.params={beta: 1}"], "strategy.params.beta=1: not a parameter of the space (alpha)"),
    (
        ["strategy=hoag", "task=branin"],
        "task='branin': has no default space for gradient strategies (conf/space/<task>_gradient.yaml): they need a "
        "differentiable task (bilevel, digits, hypercleaning, mnist, polynomial, ridge, softmax)",
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_gets_one_error_line_and_exit_code_2(
    hpo_refusal: Hpo, tmp_path: Path, args: list[str], message: str
) -> None:
    res = hpo_refusal("run", "task=ridge", *args)
    assert res.returncode == 2
    assert res.stderr.strip() == f"hpo: error: {message}" or res.stderr.startswith(f"hpo: error: {message}")
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not list((tmp_path / "runs").glob("20*/*")), "a refused config leaves no run directory behind"


def test_condition_naming_an_unknown_parameter_is_refused(hpo_refusal: Hpo, tmp_path: Path) -> None:
    (tmp_path / "conf" / "space").mkdir(parents=True)
    (tmp_path / "conf" / "space" / "bad.yaml").write_text(
        "params:\n  alpha: {type: float, low: 1.0, high: 2.0, when: {modle: ridge}}\n"
    )
    res = hpo_refusal("run", "task=ridge", "space=bad")
    assert res.returncode == 2
    assert res.stderr.startswith("hpo: error: space.params.alpha.when.modle='ridge': names unknown parameter")


def test_a_space_file_whose_params_is_a_list_is_one_line_and_leaves_no_folder(hpo_refusal: Hpo, tmp_path: Path) -> None:
    (tmp_path / "conf" / "space").mkdir(parents=True)
    (tmp_path / "conf" / "space" / "listed.yaml").write_text("params:\n  - alpha\n")
    res = hpo_refusal("run", "task=ridge", "space=listed")
    assert res.returncode == 2 and "Traceback" not in res.output
    assert res.stderr.strip() == (
        "hpo: error: space.params=['alpha']: expected a mapping {name: {type: ..., ...}}, one entry per parameter"
    )
    assert not list((tmp_path / "runs").glob("*/*")), "a refused config leaves no run directory behind"


@pytest.mark.parametrize("read_only", ["folder and files", "folder"])
def test_resume_of_a_folder_it_cannot_write_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], read_only: str
) -> None:
    """A read-only run folder, simulated (the tests may run as root, whom permissions do not
    stop): its lock file cannot be opened for writing, or only its new files cannot be made."""
    import errno
    import tempfile

    import hpo_cli.store
    from hpo_cli.build import compose_config, compose_study
    from hpo_cli.commands.resume import resume
    from hpo_cli.runner import run_study
    from hpo_cli.store import RunStore

    overrides = ["task=polynomial", "strategy=random", "n_trials=2"]
    run = tmp_path / "run"
    run_study(compose_study(overrides), compose_config(overrides), RunStore(run))

    def kept() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name not in (".lock", "hpo.log")}

    before = kept()
    capsys.readouterr()

    def denied(*_: object, **__: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", str(run / "x"))

    real_open = os.open
    if read_only == "folder and files":
        monkeypatch.setattr(
            hpo_cli.store.os, "open", lambda p, *a: denied() if str(p).endswith(".lock") else real_open(p, *a)
        )
    else:
        monkeypatch.setattr(hpo_cli.store.tempfile, "mkstemp", denied)
        assert hpo_cli.store.tempfile is tempfile
    with pytest.raises(SystemExit) as exited:
        resume(str(run), ["n_trials=4"])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hpo: error: ") and "Traceback" not in err[0]
    assert err[0].endswith(": cannot write here (Permission denied): a run is continued where it was written")
    assert kept() == before


@pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import torch; assert not torch.cuda.is_available()"]).returncode != 0,
    reason="a CUDA device is present",
)
def test_cuda_without_a_gpu_is_a_clear_error(hpo: Hpo) -> None:
    res = hpo("run", "task=ridge", "device=cuda")
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "hpo: error: device='cuda': no CUDA device is available here; use device=cpu or device=auto"
    )


def run_and_signal(tmp_path: Path, args: list[str], after_trials: int, sig: int) -> Path:
    """Start `hpo ARGS`, send it ``sig`` once ``after_trials`` trials are stored; the run dir."""
    env = {**os.environ, "HPO_RUNS_DIR": str(tmp_path / "runs")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpo_cli", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Ctrl-C as in a terminal: a suite started in the background (`make test &`, nohup) passes
        # SIGINT on ignored, and a Python started that way never turns it into KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        dirs = run_dirs(tmp_path)
        trials = dirs[0] / "trials.jsonl" if dirs else None
        if trials is not None and trials.exists() and len(trials.read_text().splitlines()) >= after_trials:
            proc.send_signal(sig)
            proc.wait(timeout=180)
            assert proc.returncode == (-sig if sig == signal.SIGKILL else 130 if sig == signal.SIGINT else 128 + sig)
            return dirs[0]
        time.sleep(0.01)
    proc.kill()
    pytest.fail("the run did not get far enough to be signalled")


@pytest.mark.slow
@pytest.mark.parametrize(("strategy", "batch"), [("tpe", "3")])  # every strategy: tests/test_fault_injection.py
def test_a_killed_run_resumes_to_the_same_result(hpo: Hpo, tmp_path: Path, strategy: str, batch: str) -> None:
    write_user_project(tmp_path, sleep_s=0.05, hold_after=14)  # held until killed, however slow the test
    (tmp_path / "hold").touch()
    args = [
        "run",
        "task=function",
        "task.fn=my_objective.f",
        "space=my_space",
        f"strategy={strategy}",
        "n_trials=40",
        "seed=3",
        f"batch_size={batch}",
        *(["strategy.n_startup_trials=4"] if strategy == "tpe" else []),  # killed with its estimators at work
    ]
    killed = run_and_signal(tmp_path, args, 8, signal.SIGKILL)
    assert 8 <= len(read_trials(killed)) < 40 and read_summary(killed)["status"] == "running"
    (tmp_path / "hold").unlink()
    res = hpo("resume", str(killed))
    assert res.returncode == 0, res.output
    assert hpo(*args).returncode == 0
    uninterrupted = next(d for d in run_dirs(tmp_path) if d != killed)
    resumed, straight = read_trials(killed), read_trials(uninterrupted)
    assert len(resumed) == 40 and [t["trial"] for t in resumed] == list(range(40))
    assert [(t["params"], t["value"]) for t in resumed] == [(t["params"], t["value"]) for t in straight]
    a, b = read_summary(killed), read_summary(uninterrupted)
    assert a["status"] == "finished" and a["sessions"] == 2 and a["best"] == b["best"]


def test_ctrl_c_writes_an_interrupted_summary_and_resume_finishes(hpo: Hpo, tmp_path: Path) -> None:
    write_user_project(tmp_path, sleep_s=0.05, hold_after=8)  # held at trial 9 until Ctrl-C
    (tmp_path / "hold").touch()
    args = [
        "run",
        "task=function",
        "task.fn=my_objective.f",
        "space=my_space",
        "strategy=random",
        "n_trials=60",
    ]
    run = run_and_signal(tmp_path, args, 5, signal.SIGINT)
    summary = read_summary(run)
    assert summary["status"] == "interrupted" and 5 <= summary["n_complete"] == len(read_trials(run)) <= 8
    assert (run / "best.yaml").is_file()
    (tmp_path / "hold").unlink()
    assert hpo("resume", str(run)).returncode == 0
    assert read_summary(run)["status"] == "finished" and len(read_trials(run)) == 60


def test_resume_refuses_a_changed_config(hpo: Hpo, hpo_refusal: Hpo, tmp_path: Path) -> None:
    assert hpo("run", "task=ridge", "n_trials=4").returncode == 0
    run = run_dirs(tmp_path)[0]
    res = hpo_refusal("resume", str(run), "seed=1")
    assert res.returncode == 2
    assert "refusing to resume: 'seed' cannot change in a resumed run" in res.stderr
    config = run / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("seed: 0", "seed: 9"))
    res = hpo_refusal("resume", str(run))
    assert res.returncode == 2 and "differs from the config the run started with" in res.stderr
    assert hpo_refusal("resume", str(tmp_path)).returncode == 2


def test_resume_with_a_larger_budget_continues_the_sequence(hpo: Hpo, tmp_path: Path) -> None:
    assert hpo("run", "task=ridge", "strategy=sobol", "n_trials=8").returncode == 0
    run = run_dirs(tmp_path)[0]
    assert hpo("resume", str(run), "n_trials=16").returncode == 0
    assert hpo("run", "task=ridge", "strategy=sobol", "n_trials=16").returncode == 0
    straight = run_dirs(tmp_path)[1]
    assert [t["params"] for t in read_trials(run)] == [t["params"] for t in read_trials(straight)]
    assert read_summary(run)["n_trials"] == 16


def test_a_run_where_every_trial_fails_exits_non_zero(hpo: Hpo, tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text("def f(params):\n    raise RuntimeError('boom')\n")
    (tmp_path / "conf" / "space").mkdir(parents=True)
    (tmp_path / "conf" / "space" / "one.yaml").write_text("params:\n  x: {type: int, low: 0, high: 3}\n")
    res = hpo("run", "task=function", "task.fn=boom.f", "space=one", "n_trials=20")
    assert res.returncode == 1
    summary = read_summary(run_dirs(tmp_path)[0])
    assert summary["status"] == "failed" and summary["n_failed"] == 5 and summary["best"] is None
    assert "RuntimeError: boom" in summary["message"]
    assert "warning: trial 0 failed: RuntimeError: boom" in res.stdout


COMPLETE = """
eval "$(hpo completion bash)"
complete_line() {
    COMP_LINE="$1"; COMP_POINT=${#1}; COMP_WORDS=($1); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    _hpo_complete; echo "${COMPREPLY[*]}"
}
"""


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hpo re", "resume"),
        ("hpo run task=ri", "ridge"),  # bash splits at '=': the reply is the rest of the word
        ("hpo run strategy=hy", "hyperband"),
        ("hpo gradcheck space=polynomial_p", "polynomial_per_coef"),
        ("hpo bench q", "quick"),
        ("hpo completion b", "bash"),
        ("hpo exp", "export"),
    ],
)
def test_bash_completion_of_subcommands_and_overrides(tmp_path: Path, line: str, expected: str) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    script = COMPLETE + f"complete_line {shlex.quote(line)}\n"
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == expected, out.stdout + out.stderr
