"""Run directories that cannot be corrupted: one writer, refused commands write nothing, damaged
files are refused (only a torn last line is set aside), signals and full disks end a run cleanly."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import Hpo, count_lines, read_summary, read_trials
from test_cli import write_user_project

from hpo_cli.build import compose_config, compose_study
from hpo_cli.errors import DiskFullError, RunDirError
from hpo_cli.runner import run_study
from hpo_cli.store import STRATEGY_STATE, TORN, RunStore
from hpo_cli.trial import TrialRecord


def user_run(tmp_path: Path, name: str, n_trials: int = 12, *extra: str) -> list[str]:
    return [
        "run",
        "task=function",
        "task.fn=my_objective.f",
        "space=my_space",
        "strategy=random",
        f"n_trials={n_trials}",
        "seed=5",
        f"hydra.run.dir={tmp_path / 'runs' / name}",
        *extra,
    ]


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` with the sha256 of its bytes (the lock file names its holder)."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.name != ".lock"]
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def values(run: Path) -> list[tuple[object, object]]:
    return [(t["params"], t["value"]) for t in read_trials(run)]


@pytest.fixture
def finished(hpo: Hpo, tmp_path: Path) -> Path:
    """A finished 12-trial run of the user's function (and the project it needs)."""
    write_user_project(tmp_path, sleep_s=0.0)
    assert hpo(*user_run(tmp_path, "straight")).returncode == 0
    return tmp_path / "runs" / "straight"


def test_a_second_writer_is_refused_naming_the_holder(hpo: Hpo, finished: Path, tmp_path: Path) -> None:
    before = fingerprint(finished)
    with RunStore(finished).exclusive():
        for args in (["resume", str(finished)], user_run(tmp_path, "straight")):
            res = hpo(*args)
            assert res.returncode == 2, res.output
            assert f"is in use by pid {os.getpid()} on host {socket.gethostname()}" in res.stderr
            assert len(res.stderr.strip().splitlines()) == 1
    assert fingerprint(finished) == before


def test_hpo_run_into_an_existing_run_changes_nothing_there(hpo: Hpo, finished: Path, tmp_path: Path) -> None:
    before = fingerprint(finished)
    res = hpo(*user_run(tmp_path, "straight", 12, "strategy=sobol", "seed=9"))
    assert res.returncode == 2 and "already holds a run: continue it with hpo resume" in res.stderr
    assert fingerprint(finished) == before  # .hydra/ and hpo.log included
    assert hpo("resume", str(finished), "n_trials=14").returncode == 0


def test_resume_below_the_recorded_trials_is_refused(hpo: Hpo, finished: Path) -> None:
    res = hpo("resume", str(finished), "n_trials=5")
    assert res.returncode == 2
    assert res.stderr.strip() == "hpo: error: n_trials=5: the run already holds 12 trials: ask for as many or more"


@pytest.mark.parametrize(
    ("line", "damage", "message"),
    [
        (3, "{not json\n", "trials.jsonl:4: damaged line"),
        (5, '{"trial": 5, "state": "complete"}\n', "trials.jsonl:6: damaged line (missing field 'params')"),
        (2, None, "trials.jsonl:3: trial 1 is recorded twice"),
    ],
    ids=["bad json", "missing field", "duplicate"],
)
def test_a_damaged_middle_line_is_refused_and_nothing_is_dropped(
    hpo: Hpo, finished: Path, line: int, damage: str | None, message: str
) -> None:
    lines = (finished / "trials.jsonl").read_text().splitlines(keepends=True)
    lines.insert(line, damage if damage is not None else lines[1])
    (finished / "trials.jsonl").write_text("".join(lines))
    before = fingerprint(finished)
    res = hpo("resume", str(finished), "n_trials=20")
    assert res.returncode == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert fingerprint(finished) == before


def test_a_torn_last_line_is_set_aside_and_the_run_resumes_exactly(hpo: Hpo, finished: Path, tmp_path: Path) -> None:
    assert hpo(*user_run(tmp_path, "short", 7)).returncode == 0
    short = tmp_path / "runs" / "short"
    with (short / "trials.jsonl").open("a") as f:
        f.write('{"trial": 7, "state": "compl')  # a kill in the middle of a write
    res = hpo("resume", str(short), "n_trials=12")
    assert res.returncode == 0, res.output
    assert "set aside a torn last line" in res.output
    assert (short / TORN).read_text() == '{"trial": 7, "state": "compl\n'
    assert values(short) == values(finished)


@pytest.mark.parametrize("damage", ["edited", "garbage"])
def test_a_damaged_checkpoint_is_never_used_the_trials_are_replayed(
    hpo: Hpo, finished: Path, tmp_path: Path, damage: str
) -> None:
    assert hpo(*user_run(tmp_path, "short", 7)).returncode == 0
    short = tmp_path / "runs" / "short"
    checkpoint = short / STRATEGY_STATE
    if damage == "edited":
        saved = json.loads(checkpoint.read_text())
        saved["state"]["rng"]["state"]["state"] += 1  # the next draws would differ: must not be used
        checkpoint.write_text(json.dumps(saved))
    else:
        checkpoint.write_text("{ truncated")
    res = hpo("resume", str(short), "n_trials=12")
    assert res.returncode == 0, res.output
    assert "replaying the" in res.output
    assert values(short) == values(finished)


@pytest.mark.parametrize("name", ["summary.json", ".hydra/config.yaml"])
def test_damaged_run_files_are_one_line_errors(hpo: Hpo, finished: Path, name: str) -> None:
    (finished / name).write_text("{ [ not: valid")
    res = hpo("resume", str(finished), "n_trials=20")
    assert res.returncode == 2, res.output
    assert res.stderr.startswith("hpo: error: ") and len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.output


SLOW_WHEN_MARKED = """import os, time


def f(params):
    time.sleep(60 if os.path.exists("slow") else 0.01)
    return (params['x'] - 1.0) ** 2 + (params['y'] + 2.0) ** 2
"""


@pytest.mark.parametrize(
    "sig",
    [signal.SIGTERM, pytest.param(signal.SIGHUP, marks=pytest.mark.slow)],  # SIGHUP: the same path (make test-slow)
    ids=["SIGTERM", "SIGHUP"],
)
def test_a_signal_mid_trial_ends_the_run_at_once_and_resume_reruns_that_trial(
    hpo: Hpo, finished: Path, tmp_path: Path, sig: int
) -> None:
    """The trial in flight sleeps 60 s: the run does not wait for it. The summary says
    "interrupted" when the process ends, seconds after the signal; trials.csv and the plots wait
    for the run's next end; the resumed run evaluates the abandoned trial again."""
    (tmp_path / "my_objective.py").write_text(SLOW_WHEN_MARKED)
    env = {**os.environ, "HPO_RUNS_DIR": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "runs" / "signalled"
    argv = [sys.executable, "-m", "hpo_cli", *user_run(tmp_path, "signalled")]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while count_lines(run / "trials.jsonl") < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        (tmp_path / "slow").touch()  # the next trial sleeps 60 s
        time.sleep(1.0)
        signalled = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(timeout=50) == 128 + sig
        assert time.monotonic() - signalled < 50  # far less than the 60 s trial
    finally:
        proc.kill()
    summary = read_summary(run)
    assert summary["status"] == "interrupted" and signal.Signals(sig).name in summary["message"]
    assert summary["n_complete"] == len(read_trials(run)) >= 3 and (run / "best.yaml").is_file()
    assert not (run / "plots").exists() and not (run / "trials.csv").exists()
    (tmp_path / "slow").unlink()
    assert hpo("resume", str(run)).returncode == 0
    assert values(run) == values(finished)
    assert (run / "plots" / "history.png").is_file() and (run / "trials.csv").is_file()


def test_a_full_disk_fails_the_run_and_resume_continues_once_space_is_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = ["task=ridge", "strategy=random", "n_trials=8", "seed=2"]
    cfg = compose_config(overrides)
    straight = RunStore(tmp_path / "straight")
    run_study(compose_study(overrides), cfg, straight)
    append = RunStore.append_trials

    def fill_up(store: RunStore, records: list[TrialRecord]) -> None:
        if any(record.trial == 5 for record in records):
            raise OSError(errno.ENOSPC, "No space left on device", str(store.trials_path))
        append(store, records)

    full = RunStore(tmp_path / "full")
    monkeypatch.setattr(RunStore, "append_trials", fill_up)
    with pytest.raises(DiskFullError, match=r"disk full writing .*; free some space, then: hpo resume"):
        run_study(compose_study(overrides), cfg, full)
    summary = full.read_json("summary.json")
    assert summary is not None and summary["status"] == "failed" and len(full.read_trials()) == 5
    monkeypatch.setattr(RunStore, "append_trials", append)
    assert run_study(compose_study(overrides), cfg, full, resume=True) == "finished"
    assert [(r.params, r.value) for r in full.read_trials()] == [(r.params, r.value) for r in straight.read_trials()]


FULL_DISK_RUN = [
    "task=function", "task.fn=executor_objectives.slow_square", "space=branin", "strategy=random", "n_trials=12",
    "seed=2",
]  # fmt: skip
ASYNC_POOL = ["executor=process", "executor.workers=3"]
FULL_DISK_EXECUTORS = {  # the executor, and which append meets the full disk
    "serial": ([], 5),  # batches of one: the records file is torn
    "process-journal": (ASYNC_POOL, 3),  # asynchronous: appends alternate told.txt, trials.jsonl
    "process-records": (ASYNC_POOL, 4),
    "process-batches": ([*ASYNC_POOL, "executor.asynchronous=false", "batch_size=3"], 3),
}


@pytest.mark.parametrize(
    "executor",
    [e if e in ("serial", "process-journal") else pytest.param(e, marks=pytest.mark.slow) for e in FULL_DISK_EXECUTORS],
)
def test_a_disk_that_fills_mid_line_under_any_executor_leaves_a_run_that_resumes(
    executor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The append that meets the full disk writes half a line (as a short write does); the
    journal and the records stay consistent, so hpo resume continues to the uninterrupted trials."""
    pool, full_at = FULL_DISK_EXECUTORS[executor]
    overrides = [*FULL_DISK_RUN, *pool]
    cfg = compose_config(overrides)
    straight = RunStore(tmp_path / "straight")
    run_study(compose_study([*FULL_DISK_RUN]), compose_config([*FULL_DISK_RUN]), straight)
    summary = straight.read_json("summary.json") or {}
    assert summary["device"] == "cpu" and summary["dtype"] is None  # resolved device; null: the task's own
    append, appends = RunStore._append, []

    def fill_up(store: RunStore, path: Path, text: str) -> None:
        appends.append(path.name)
        if len(appends) == full_at:
            last = text.rstrip("\n").rfind("\n") + 1  # where the last line starts
            with path.open("a") as f:
                f.write(text[: last + (len(text) - last) // 2])  # ends inside the last line
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        append(store, path, text)

    full = RunStore(tmp_path / "full")
    monkeypatch.setattr(RunStore, "_append", fill_up)
    with pytest.raises(DiskFullError, match=r"disk full writing .*; free some space, then: hpo resume"):
        run_study(compose_study(overrides), cfg, full)
    assert not full.trials_path.read_bytes().endswith(b"\n") or not (full.dir / "told.txt").read_bytes().endswith(
        b"\n"
    )  # a torn last line
    monkeypatch.setattr(RunStore, "_append", append)
    assert run_study(compose_study(overrides), cfg, full, resume=True) == "finished"
    done = sorted((r.trial, r.params, r.value) for r in full.read_trials())
    assert done == sorted((r.trial, r.params, r.value) for r in straight.read_trials())
    told = full.read_told()
    assert told is None or sorted(told) == [r.trial for r in sorted(full.read_trials(), key=lambda r: r.trial)]


def test_a_refused_resume_leaves_the_status_as_it_was_and_does_not_suggest_itself(hpo: Hpo, tmp_path: Path) -> None:
    write_user_project(tmp_path)
    run = tmp_path / "runs" / "refused"
    args = user_run(tmp_path, "refused", 12, "executor=process", "executor.workers=2", "n_trials=6")
    assert hpo(*args).returncode == 0
    journal = (run / "told.txt").read_text().split()
    journal[2] = "99"  # tells a trial the strategy never suggested
    (run / "told.txt").write_text("".join(f"{n}\n" for n in journal))
    (run / "trials.jsonl").write_text("".join((run / "trials.jsonl").read_text().splitlines(keepends=True)[:2]))
    before = (run / "summary.json").read_bytes()
    res = hpo("resume", str(run))
    assert res.returncode == 2 and "tells trial 99" in res.stderr and "Traceback" not in res.stderr
    assert "hpo resume" not in res.stderr.replace(f"hpo resume {run}", "")  # no hint to run it again
    assert (run / "summary.json").read_bytes() == before


def test_atomic_writes_use_unique_temporary_names(tmp_path: Path) -> None:
    store, errors = RunStore(tmp_path), []

    def write_many(tag: int) -> None:
        try:
            for i in range(200):
                store.write_json("summary.json", {"writer": tag, "i": i})
        except OSError as exc:  # a shared temporary name makes one writer's rename fail
            errors.append(exc)

    threads = [threading.Thread(target=write_many, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and json.loads((tmp_path / "summary.json").read_text())["i"] == 199
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_lock_is_released_when_its_holder_ends(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    with store.exclusive(), pytest.raises(RunDirError, match="in use by pid"), RunStore(tmp_path).exclusive():
        pass
    with RunStore(tmp_path).exclusive():
        pass


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("task=nope", "Could not find 'task/nope' (available: bilevel, branin,"),
        ("nokey=1", "Could not override 'nokey'. To append to your config use +nokey=1"),
        ("task=[", "override 'task=[': no viable alternative at input '['"),
    ],
)
def test_hydras_own_errors_are_one_line_and_exit_2(hpo: Hpo, override: str, expected: str) -> None:
    res = hpo("run", override)
    assert res.returncode == 2 and expected in res.stderr, res.output
    assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("hpo: error: ")


@pytest.mark.parametrize(
    ("files", "args", "expected"),
    [
        (
            {"conf/space/bad.yaml": "params:\n  x: {type: float, low: -1 high: 1\n"},
            ["run", "space=bad", "task=function", "task.fn=builtins.abs"],
            "conf/space/bad.yaml:2: YAML syntax error: expected ',' or '}', but got ':'",
        ),
        (
            {
                "broken.py": "def f(p:\n    return 1\n",
                "conf/space/s.yaml": "params:\n  x: {type: float, low: 0, high: 1}\n",
            },
            ["run", "task=function", "task.fn=broken.f", "space=s"],
            "SyntaxError: '(' was never closed (broken.py:1)",
        ),
        ({"afile": ""}, ["run", "task=ridge", "n_trials=2", "runs_dir=afile"], "afile/"),
        ({}, ["run", "task=ridge", "hydra.run.dir=/proc/no/such/dir"], "/proc/no: No such file or directory"),
        (
            {},
            ["run", "task=linear", "+space.params.extra={type: float, low: 0, high: 1, when: {model: rigde}}"],
            "space.params.extra.when.model='rigde': 'model' never takes this value",
        ),
        (
            {"afile": "", "r/trials.jsonl": "", "r/summary.json": '{"task": "t", "strategy": "s", "best": null}'},
            ["compare", "r", "--out", "afile"],
            "--out='afile': File exists",
        ),
        ({}, ["run", "--shell-completion"], 'shell completion: eval "$(hpo completion bash)"'),
        ({}, ["gradcheck", "eps=abc"], "eps='abc': must be a positive float"),
        ({}, ["gradcheck", "tol=-1"], "tol='-1': must be a positive float"),
        ({}, ["run", "+foo=1"], "foo=1: not a setting of hpo run"),
        ({}, ["run", "task.seed=-1"], "task.seed=-1: must be a non-negative integer"),
    ],
    ids=[
        *("yaml syntax", "module syntax", "runs_dir is a file", "unwritable", "impossible when", "compare out"),
        *("shell completion", "gradcheck eps", "gradcheck tol", "unknown setting", "task seed"),
    ],
)
def test_more_bad_input_is_one_line_and_exit_2(
    hpo_refusal: Hpo, tmp_path: Path, files: dict[str, str], args: list[str], expected: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    res = hpo_refusal(*args)
    assert res.returncode == 2, res.output
    assert expected in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "Traceback" not in res.output


def test_best_yaml_hint_reproduces_the_recorded_value(hpo: Hpo, tmp_path: Path) -> None:
    assert hpo("run", "task=ridge", "strategy=random", "n_trials=6", "seed=3", "task.val_fraction=0.3").returncode == 0
    (run,) = sorted((tmp_path / "runs").glob("20*/*/best.yaml"))
    hint = next(line for line in run.read_text().splitlines() if "strategy=fixed" in line)
    command = hint.lstrip("# ").split()
    assert command[:2] == ["hpo", "run"] and "seed=3" in command and "task.val_fraction=0.3" in command
    assert hpo(*command[1:]).returncode == 0
    rerun = sorted((tmp_path / "runs").glob("20*/*/summary.json"))[-1]
    assert read_summary(rerun.parent)["best"]["value"] == read_summary(run.parent)["best"]["value"]


@pytest.mark.parametrize("name", ["summary.json", "trials.jsonl"])
def test_compare_refuses_a_damaged_run_in_one_line(hpo: Hpo, finished: Path, name: str) -> None:
    lines = (finished / name).read_text().splitlines(keepends=True)
    lines[1] = "{damaged\n"
    (finished / name).write_text("".join(lines))
    res = hpo("compare", str(finished), "--out", str(finished.parent / "cmp"))
    assert res.returncode == 2 and f"{name}" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_signal_handlers_are_only_installed_by_the_main_thread() -> None:
    """A launcher that runs jobs in a worker thread must not crash on signal.signal."""
    from hpo_cli.interrupts import interrupt_on

    before = signal.getsignal(signal.SIGTERM)
    ran: list[bool] = []

    def job() -> None:
        with interrupt_on():
            ran.append(signal.getsignal(signal.SIGTERM) == before)

    worker = threading.Thread(target=job)
    worker.start()
    worker.join()
    with interrupt_on():
        installed = signal.getsignal(signal.SIGTERM) != before
    assert ran == [True] and installed and signal.getsignal(signal.SIGTERM) == before
