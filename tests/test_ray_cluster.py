"""A real multi-node Ray cluster on this host, on loopback addresses only: a head and a second
raylet (``ray start --num-cpus=1`` each, ``--node-ip-address=127.0.0.1``), and ``hpo run
executor=ray executor.address=auto``. Trials run on both nodes (each record names its node);
a node stopped mid-run turns its trials into failed rows that are run again on the other node,
and the run completes its budget with nothing lost or recorded twice.

Each cluster has its own ports, temp dir and auth token; it is stopped by the ids of the
processes started here (never ``ray stop``, which stops every Ray of the host's user).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="needs Ray: pip install 'hpo_cli[ray]'")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = Path(__file__).with_name("ray_loopback.py")  # `ray start`, kept on 127.0.0.1
RUN = [
    "task=function", "task.fn=executor_objectives.naps", "space=branin", "strategy=random", "seed=3",
    "executor=ray", "executor.address=auto", "executor.workers=2", "executor.threads=1",
]  # fmt: skip
NODE_DEATH_ENV = {  # notice a lost node within ~2 s (Ray's defaults take ~30 s)
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    head: subprocess.Popen[bytes]
    node: subprocess.Popen[bytes]  # the second raylet's `ray start --block`
    env: dict[str, str]  # for a driver: RAY_ADDRESS is the head's

    def node_id(self, starter: subprocess.Popen[bytes]) -> str:
        """The Ray node id of the raylet that ``starter`` started."""
        for pid in group(starter.pid):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if argv and argv[0].endswith(b"/raylet"):
                return next(a.split(b"=", 1)[1].decode() for a in argv if a.startswith(b"--node_id="))
        raise AssertionError("no raylet found")


def group(pgid: int) -> list[int]:
    """The processes of process group ``pgid``."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(stat.parent.name))
    return pids


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, str(LAUNCHER), "start", *args, "--num-cpus=1", "--node-ip-address=127.0.0.1",
             "--block", "--disable-usage-stats"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    """``ray start --block`` stops its node on SIGTERM; whatever is left of its group is killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def wait_started(log: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 240
    while "Ray runtime started" not in log.read_text(errors="replace"):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.5)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    token = tmp_path / "auth_token"  # this cluster's own (Ray would take ~/.ray/auth_token)
    token.write_text(secrets.token_hex(32))
    env = {
        **os.environ, **NODE_DEATH_ENV, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1",
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),  # the actors import hpo_cli and the objective
    }  # fmt: skip
    port = free_port()
    short = Path(tempfile.mkdtemp(prefix="hpo-ray-", dir="/tmp"))  # Ray's socket paths must fit 107 bytes
    head = start(
        ["--head", f"--port={port}", "--include-dashboard=false", f"--ray-client-server-port={free_port()}",
         f"--dashboard-agent-listen-port={free_port()}", f"--temp-dir={short / 'head'}"],
        env, tmp_path / "head.log",
    )  # fmt: skip
    started = [head]
    try:
        wait_started(tmp_path / "head.log", head)
        node = start(
            [f"--address=127.0.0.1:{port}", f"--dashboard-agent-listen-port={free_port()}",
             f"--temp-dir={short / 'node'}"],
            env, tmp_path / "node.log",
        )  # fmt: skip
        started.append(node)
        wait_started(tmp_path / "node.log", node)
        # the driver: on Linux Ray turns 127.0.0.1 into the routable address unless told not to
        driver = {**env, "RAY_ADDRESS": f"127.0.0.1:{port}", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        driver["HPO_RUNS_DIR"] = str(tmp_path / "runs")
        yield Cluster(head, node, driver)
    finally:
        for proc in reversed(started):
            stop(proc)
        shutil.rmtree(short, ignore_errors=True)


def hpo_run(cluster: Cluster, cwd: Path, *overrides: str) -> subprocess.Popen[bytes]:
    with (cwd / "hpo.log").open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hpo_cli", "run", *RUN, *overrides],
            cwd=cwd, env=cluster.env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def the_run(root: Path) -> Path:
    runs = [p.parent for p in (root / "runs").glob("*/*/trials.jsonl")]
    assert len(runs) <= 1
    return runs[0] if runs else root / "none"


def rows(run_dir: Path) -> list[dict]:
    path = run_dir / "trials.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def finish(proc: subprocess.Popen[bytes], cwd: Path) -> None:
    try:
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (cwd / "hpo.log").read_text(errors="replace")[-3000:]


def test_trials_run_on_both_nodes_and_each_record_names_its_node(cluster: Cluster, tmp_path: Path) -> None:
    proc = hpo_run(cluster, tmp_path, "n_trials=6")
    finish(proc, tmp_path)
    records = rows(the_run(tmp_path))
    per_node = {}
    for r in records:
        per_node[r["worker"]["node_id"]] = per_node.get(r["worker"]["node_id"], 0) + 1
    print("trials per node:", per_node)
    nodes = {cluster.node_id(cluster.head), cluster.node_id(cluster.node)}
    assert set(per_node) == nodes and all(n >= 1 for n in per_node.values())
    assert all(r["state"] == "complete" and r["worker"]["node_ip"] == "127.0.0.1" for r in records)
    assert len(records) == 6


def test_a_node_stopped_mid_run_turns_its_trials_into_failed_and_retried_rows(cluster: Cluster, tmp_path: Path) -> None:
    head_id, node_id = cluster.node_id(cluster.head), cluster.node_id(cluster.node)
    proc = hpo_run(cluster, tmp_path, "n_trials=8")
    deadline = time.monotonic() + 240
    while not any(r["worker"]["node_id"] == node_id for r in rows(the_run(tmp_path))):  # it ran one there
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "hpo.log").read_text()[-3000:]
        time.sleep(0.2)
    time.sleep(0.5)  # its next trial is running there now
    os.killpg(cluster.node.pid, signal.SIGKILL)  # the node is gone: its raylet, workers and agents
    killed_at = time.monotonic()
    finish(proc, tmp_path)
    run_dir = the_run(tmp_path)
    records = rows(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    lost = [r for r in records if r.get("retried_as") is not None]
    retries = {r["trial"]: r for r in records if r.get("retry_of") is not None}
    print(f"run finished {time.monotonic() - killed_at:.1f} s after the kill;", summary["n_complete"], "complete")
    for r in records:
        print(r["trial"], r["state"], r["worker"]["node_id"][:8], r.get("retry_of"), r.get("retried_as"), r["error"])
    assert lost and all(r["state"] == "failed" and r["worker"]["node_id"] == node_id for r in lost)
    assert "the worker running it died" in lost[0]["error"]
    for r in lost:
        retry = retries[r["retried_as"]]
        assert retry["retry_of"] == r["trial"] and retry["params"] == r["params"] and retry["state"] == "complete"
        assert retry["worker"]["node_id"] == head_id
    complete = [r for r in records if r["state"] == "complete"]
    assert summary["n_complete"] == len(complete) == 8 and summary["n_retried"] == len(lost)
    assert len({json.dumps(r["params"], sort_keys=True) for r in complete}) == 8  # none lost, none twice
    assert sorted(r["trial"] for r in records) == list(range(8 + len(lost)))
    told = sorted(int(t) for t in (run_dir / "told.txt").read_text().split())
    assert told == sorted(r["trial"] for r in records)
