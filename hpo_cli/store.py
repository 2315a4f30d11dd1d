"""The run directory is the database.

Files (their names are part of the interface):

* ``trials.jsonl``: one JSON object per finished trial, appended, flushed and fsynced; the
  records of results that arrived together are written and fsynced together (a group commit),
  before any of them is reported, so a killed run loses at most the trials in flight;
* ``summary.json``: the run's status and best trial, rewritten atomically;
* ``best.yaml``: the best parameters;
* ``strategy_state.json``: the strategy's last checkpoint (see :mod:`hpo_cli.loop`), with a
  checksum of its content: a damaged or hand-edited checkpoint is never used (the trials are
  replayed instead);
* ``told.txt``: with an asynchronous executor, the trial numbers in the order their results
  were told to the strategy, one per line (appended and fsynced once per batch of results that
  arrived together, before the strategy is told any of them and before their records), so a
  resume replays the strategy through the same interleaving of asks and tells;
* ``best_model.npz``: the weights the best trial trained, for tasks that train a model
  (``numpy.load`` reads it: ``theta`` or scikit-learn's ``coef``/``intercept``, and ``meta``, a
  JSON string naming the trial, its parameters, the model's shape and whether training those
  parameters again from θ0 reproduces it); written atomically before the trial's record, so it
  always belongs to a recorded trial or to one that is evaluated again on resume;
* ``plots/history.png``: best value so far against trial number;
* ``checkpoints/``: the promotion checkpoints of tasks that continue a configuration's training
  at a higher budget (:mod:`hpo_cli.tasks.checkpoints`), written by whichever worker trained it,
  each file atomically and with a checksum; a configuration's file goes once the strategy stops
  it for good, the folder once the run ends;
* ``.lock``: held (``flock``) by the one process writing the run; the kernel releases it when
  that process dies, so a killed run can be resumed at once.

Damage is refused, never truncated away: only a torn *last* line of ``trials.jsonl`` or
``told.txt`` (a kill or a full disk in the middle of a write) is set aside, into ``<name>.torn``,
with a warning; the two stay consistent (a journaled trial whose record was torn off is evaluated
again, a recorded one whose journal line was torn off is told from its record). Any other bad
line, or a JSON file that does not parse, stops with one line naming the file and line.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import logging
import math
import os
import socket
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from hpo_cli.errors import RunDirError
from hpo_cli.trial import TrainedModel, TrialRecord, json_default

TRIALS = "trials.jsonl"
SUMMARY = "summary.json"
BEST = "best.yaml"
BEST_MODEL = "best_model.npz"
STRATEGY_STATE = "strategy_state.json"
LOCK = ".lock"
CONFIG_DIR = ".hydra"  # the composed config (config.yaml) and, for hpo run, Hydra's own
TORN = "trials.jsonl.torn"
TOLD = "told.txt"
CHECKPOINTS = "checkpoints"  # a folder: promotion checkpoints (hpo_cli.tasks.checkpoints)

log = logging.getLogger("hpo_cli")
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)  # a read-only folder or file system


def finite_or_none(x: Any) -> Any:
    """JSON has no NaN/inf: such floats are stored as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Mapping):
        return {k: finite_or_none(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite_or_none(v) for v in x]
    return x


def to_json(obj: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    """JSON text of ``obj`` with non-finite floats as null; the walk replacing them runs only
    when there is one (a checkpoint of a long run is large: the common case stays one pass)."""
    options: dict[str, Any] = {"indent": indent, "sort_keys": sort_keys, "default": json_default}
    try:
        return json.dumps(obj, allow_nan=False, **options)
    except ValueError:
        return json.dumps(finite_or_none(obj), **options)


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._failed_appends: dict[str, OSError] = {}  # file name -> why appending to it failed

    @property
    def trials_path(self) -> Path:
        return self.dir / TRIALS

    def holds_run(self) -> bool:
        """True when a run was started here (its summary or trials exist)."""
        return holds_run(self.dir)

    def append_trial(self, record: TrialRecord) -> None:
        self.append_trials([record])

    def append_trials(self, records: Sequence[TrialRecord]) -> None:
        """Append ``records`` to trials.jsonl durably: one write and one fsync for all of them
        (a group commit: results that arrive together are made durable together)."""
        if records:
            self._append(self.trials_path, "".join(record.to_json() + "\n" for record in records))

    def append_told(self, *trials: int) -> None:
        """Journal that the results of ``trials`` are told to the strategy, in this order
        (asynchronous runs): one write and one fsync for all of them."""
        if trials:
            self._append(self.dir / TOLD, "".join(f"{int(trial)}\n" for trial in trials))

    def _append(self, path: Path, text: str) -> None:
        """Append ``text`` to ``path``, flushed and fsynced. After a failed append (a full disk)
        the file may end in a torn line: nothing more is appended to it in this process (a line
        glued to a torn one would damage the file for good); the next session sets it aside."""
        failed = self._failed_appends.get(path.name)
        if failed is not None:
            raise OSError(failed.errno, failed.strerror, str(path))
        try:
            with path.open("ab") as f:
                f.write(text.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            self._failed_appends[path.name] = exc
            raise

    def read_told(self, repair: bool = False) -> list[int] | None:
        """The journal of told trials in order; None when the run has none (a batch run). A torn
        last line is ignored (with ``repair`` set aside); any other damage raises RunDirError."""
        path = self.dir / TOLD
        if not path.exists():
            return None
        data = path.read_bytes()
        lines = data.splitlines(keepends=True)
        torn = bool(lines) and not lines[-1].endswith(b"\n")
        order: list[int] = []
        for number, raw in enumerate(lines[:-1] if torn else lines, 1):
            text = raw.decode("utf-8", errors="replace").strip()
            if not text.isdigit():
                raise RunDirError(f"{path}:{number}: damaged line {text[:40]!r}; refusing to read the run")
            order.append(int(text))
        if len(set(order)) != len(order):
            raise RunDirError(f"{path}: a trial is listed twice; refusing to read the run")
        if torn and repair:
            self._set_aside(path, lines[-1], len(data) - len(lines[-1]))
        return order

    def read_trials(self, repair: bool = False) -> list[TrialRecord]:
        """All trials, in file order. A torn last line (a kill mid-write) is ignored, and with
        ``repair`` moved to ``trials.jsonl.torn`` so that appending can go on. Any other damage
        raises :class:`RunDirError` naming the line."""
        if not self.trials_path.exists():
            return []
        data = self.trials_path.read_bytes()
        lines = data.splitlines(keepends=True)
        torn = bool(lines) and not lines[-1].endswith(b"\n")
        records = [self._parse_trial(raw, number) for number, raw in enumerate(lines[:-1] if torn else lines, 1)]
        seen: set[int] = set()
        for number, record in enumerate(records, 1):
            if record.trial in seen:
                raise RunDirError(f"{self.trials_path}:{number}: trial {record.trial} is recorded twice")
            seen.add(record.trial)
        if torn and repair:
            self._set_aside(self.trials_path, lines[-1], len(data) - len(lines[-1]))
        return records

    def _parse_trial(self, raw: bytes, number: int) -> TrialRecord:
        try:
            return TrialRecord.from_json(raw.decode("utf-8"))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            reason = f"missing field {exc}" if isinstance(exc, KeyError) else " ".join(str(exc).split())[:120]
            raise RunDirError(
                f"{self.trials_path}:{number}: damaged line ({reason}); refusing to read the run "
                "(repair or remove that line by hand)"
            ) from None

    def _set_aside(self, path: Path, torn: bytes, good_end: int) -> None:
        """Move a torn last line of ``path`` to ``<path>.torn`` (appended: nothing is ever deleted)."""
        aside = path.with_name(path.name + ".torn")
        with aside.open("ab") as side:
            side.write(torn + b"\n")
            side.flush()
            os.fsync(side.fileno())
        with path.open("r+b") as f:
            f.truncate(good_end)
            os.fsync(f.fileno())
        log.warning("set aside a torn last line of %s (a kill mid-write) in %s", path, aside)

    def write_json(self, name: str, obj: Mapping[str, Any], indent: int | None = 2) -> None:
        """``indent=None``: one line, and json's C encoder (several times faster on big states)."""
        self._atomic_write(name, to_json(obj, indent=indent) + "\n")

    def read_json(self, name: str) -> dict[str, Any] | None:
        """The JSON object in ``name``, None when the file does not exist; damage raises."""
        path = self.dir / name
        if not path.exists():
            return None
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RunDirError(f"{path}: damaged ({' '.join(str(exc).split())}); refusing to use it") from None
        if not isinstance(result, dict):
            raise RunDirError(f"{path}: damaged (not a JSON object); refusing to use it")
        return result

    def write_checkpoint(self, told: int, state: Mapping[str, Any]) -> None:
        """The strategy's state after ``told`` trials, with a checksum of both."""
        body = {"told": told, "state": dict(state)}
        self.write_json(STRATEGY_STATE, {**body, "sha256": _digest(body)}, indent=None)

    def read_checkpoint(self) -> tuple[int, dict[str, Any]] | None:
        """(told, state) of a checkpoint whose checksum matches; None (with a warning) when
        there is none, or it is damaged or was edited: the caller then replays the trials."""
        try:
            saved = self.read_json(STRATEGY_STATE)
        except RunDirError as exc:
            log.warning("%s; replaying the recorded trials instead", exc)
            return None
        if saved is None:
            return None
        body = {"told": saved.get("told"), "state": saved.get("state")}
        if saved.get("sha256") != _digest(body) or not isinstance(body["told"], int):
            log.warning(
                "%s: checksum mismatch (damaged or edited); replaying the recorded trials instead", STRATEGY_STATE
            )
            return None
        return body["told"], dict(body["state"] or {})

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the run directory's lock: one writer at a time. Raises RunDirError naming the
        holder's pid and host when another process has it."""
        try:
            fd = os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno not in NOT_WRITABLE:
                raise
            raise not_writable(self.dir, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunDirError(
                f"{self.dir} is in use by {holder}: one writer per run directory (wait for it to end, "
                "or start a new run)"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}".encode(), 0)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def write_text(self, name: str, text: str) -> None:
        """Write ``name`` (a path relative to the run directory) atomically."""
        (self.dir / name).parent.mkdir(parents=True, exist_ok=True)
        self._atomic_write(name, text)

    def read_overrides(self) -> list[str]:
        """The command-line overrides the run started with (``.hydra/overrides.yaml``), or []."""
        path = self.dir / CONFIG_DIR / "overrides.yaml"
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else []
        except yaml.YAMLError:
            return []
        return [str(o) for o in loaded] if isinstance(loaded, list) else []

    def write_best(self, params: Mapping[str, Any], comment_lines: Iterable[str]) -> None:
        header = "".join(f"# {line}\n" for line in comment_lines)
        body = yaml.safe_dump(finite_or_none(dict(params)), sort_keys=False, default_flow_style=None)
        self._atomic_write(BEST, header + body)

    def write_model(self, record: TrialRecord, model: TrainedModel) -> None:
        """``best_model.npz``: ``model``'s arrays and its meta, with the trial's number, params
        and value (atomically: a kill leaves the previous file or the new one, whole)."""
        import numpy as np

        meta = {
            **dict(model.meta),
            "trial": record.trial,
            "params": record.params,
            "value": record.value,
            "from_scratch": model.from_scratch,
        }
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {k: np.asarray(v) for k, v in model.arrays.items()}
        np.savez(buffer, meta=np.array(to_json(meta)), **arrays)
        self._atomic_write(BEST_MODEL, buffer.getvalue())

    def _atomic_write(self, name: str, content: str | bytes) -> None:
        atomic_write(self.dir / name, content)


def atomic_write(target: Path, content: str | bytes) -> None:
    """Write a temporary file of a unique name (``.<name>.*.tmp``) beside ``target``, fsync it,
    then rename it over ``target``: a reader sees the old file or the new one, whole."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_model(path: Path) -> TrainedModel:
    """The model saved by :meth:`RunStore.write_model`; a ValueError naming the file when it is
    missing or damaged (never a partial model)."""
    import zipfile

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != "meta"}
            meta = json.loads(str(data["meta"]))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path}: not a readable saved model ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict) or not arrays:
        raise ValueError(f"{path}: not a saved model (no weights or no meta)")
    return TrainedModel(arrays, meta, bool(meta.get("from_scratch", True)))


def not_writable(path: Path | str, exc: OSError) -> RunDirError:
    """The one-line refusal of a run folder this process cannot write."""
    return RunDirError(f"{path}: cannot write here ({exc.strerror}): a run is continued where it was written")


def holds_run(run_dir: Path) -> bool:
    """True when a run was started in ``run_dir`` (its summary or trials exist); creates nothing."""
    return (run_dir / SUMMARY).exists() or (run_dir / TRIALS).exists()


def _digest(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(to_json(body, sort_keys=True).encode()).hexdigest()


def best_trial(records: Sequence[TrialRecord], direction: str) -> TrialRecord | None:
    """The complete trial with the best value (the earliest one on ties)."""
    complete = [r for r in records if r.state == "complete" and r.value is not None]
    if not complete:
        return None
    sign = 1.0 if direction == "minimize" else -1.0
    return min(complete, key=lambda r: (sign * float(r.value), r.trial))  # type: ignore[arg-type]
