"""``hpo dashboard RUN... [--port N]``: the runs exported to a temporary SQLite file, shown by
``optuna-dashboard`` (the ``optuna`` extra) on 127.0.0.1 only, until Ctrl-C; the file is
removed afterwards. Without optuna-dashboard: one line naming the install, exit 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from hpo_cli.commands.export import export_runs, runs_of
from hpo_cli.errors import ConfigError, fail

HOST = "127.0.0.1"  # never another interface: the dashboard has no authentication
INSTALL = "pip install 'hpo_cli[optuna]' (or pip install optuna-dashboard)"


def dashboard_binary() -> str | None:
    """optuna-dashboard on PATH, or beside this Python (a virtual environment not activated)."""
    found = shutil.which("optuna-dashboard")
    if found:
        return found
    beside = Path(sys.executable).parent / "optuna-dashboard"
    return str(beside) if beside.is_file() else None


def dashboard(paths: Sequence[str], port: int) -> int:
    if not 0 < port < 65536:
        raise ConfigError("--port", port, "must be in 1..65535")
    binary = dashboard_binary()
    if binary is None:
        fail(f"optuna-dashboard is not installed: {INSTALL}")
    runs = runs_of(paths)
    with tempfile.TemporaryDirectory(prefix="hpo-dashboard-") as folder:
        storage = f"sqlite:///{Path(folder) / 'studies.db'}"
        names = export_runs(runs, storage)
        print(f"optuna-dashboard: http://{HOST}:{port}/ ({len(names)} studies; Ctrl-C stops it)", flush=True)
        process = subprocess.Popen([binary, storage, "--host", HOST, "--port", str(port)])
        try:
            return process.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
