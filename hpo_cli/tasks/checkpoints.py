"""Promotion checkpoints in the run directory: trainings in progress that any worker continues.

A multi-fidelity strategy (Hyperband, ASHA) evaluates a configuration again at a higher budget;
the task then continues its training from where the last evaluation left it instead of starting
over. With ``executor=process`` (Ray, SLURM) the next evaluation may run in another worker, so
the state lives in files under the run directory, ``checkpoints/<key>.pt``, one per
configuration (``<key>``: a hash of the task's key of the configuration, which is stored inside
and checked on load).

A file is written atomically (a temporary file, fsync, rename: a reader sees the previous
checkpoint or the new one, whole) and begins with a SHA-256 of its content: a damaged,
truncated or foreign file is refused with a warning, and the training starts from scratch —
never a crash, never garbage. The driver removes a configuration's file once the strategy stops
it for good (:meth:`CheckpointFiles.discard`) and the folder when the run ends
(:meth:`CheckpointFiles.clear`); at most ``limit`` files are kept meanwhile (the least recently
written go first), a bound for strategies that never stop a configuration early.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hpo_cli.store import atomic_write

log = logging.getLogger("hpo_cli")
MAGIC = b"hpo_cli checkpoint 1\n"
DIGEST_BYTES = 32  # SHA-256 of what follows it
SUFFIX = ".pt"
MAX_FILES = 256


class CheckpointFiles:
    """The checkpoints of one run, in ``folder`` (created on the first save)."""

    def __init__(self, folder: Path, limit: int = MAX_FILES) -> None:
        self.folder = Path(folder)
        self.limit = limit

    def path(self, key: str) -> Path:
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}{SUFFIX}"

    def save(self, key: str, state: Mapping[str, Any]) -> None:
        """Write ``state`` (tensors, numbers, strings, lists and dicts of them) for ``key``.
        A failed write (a full disk) is a warning: the next evaluation continues the previous
        checkpoint, if any, or trains from scratch (the same numbers, more epochs)."""
        import torch

        buffer = io.BytesIO()
        torch.save({"key": key, "state": dict(state)}, buffer)
        payload = buffer.getvalue()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path(key), MAGIC + hashlib.sha256(payload).digest() + payload)
        except OSError as exc:
            log.warning("could not write a checkpoint in %s (%s): its next evaluation trains more", self.folder, exc)
            return
        self._bound()

    def load(self, key: str) -> dict[str, Any] | None:
        """The state saved for ``key``; None when there is none, or (with a warning) when the
        file is damaged, truncated or holds another configuration."""
        path = self.path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            why = f"unreadable ({exc.strerror})"
        else:
            state, why = _parse(raw, key)
            if state is not None:
                return state
        log.warning("ignoring the checkpoint %s: %s; training from scratch", path, why)
        return None

    def discard(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def clear(self) -> None:
        """Remove every checkpoint (and a write a kill left half done), then the folder."""
        if not self.folder.is_dir():
            return
        for path in [*self.folder.glob(f"*{SUFFIX}"), *self.folder.glob(f".*{SUFFIX}.*.tmp")]:
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # something else lives there: leave it
            self.folder.rmdir()

    def _bound(self) -> None:
        """Keep at most ``limit`` files: the least recently written go."""
        files = list(self.folder.glob(f"*{SUFFIX}"))
        if len(files) <= self.limit:
            return
        aged = []
        for path in files:
            try:
                aged.append((path.stat().st_mtime_ns, path.name, path))
            except FileNotFoundError:  # another worker removed it meanwhile
                continue
        for _, _, path in sorted(aged)[: len(aged) - self.limit]:
            path.unlink(missing_ok=True)


def _parse(raw: bytes, key: str) -> tuple[dict[str, Any] | None, str]:
    """(the state in a file's bytes, "") or (None, why it is refused)."""
    head, digest = raw[: len(MAGIC)], raw[len(MAGIC) : len(MAGIC) + DIGEST_BYTES]
    payload = raw[len(MAGIC) + DIGEST_BYTES :]
    if head != MAGIC or hashlib.sha256(payload).digest() != digest:
        return None, "damaged or truncated (checksum mismatch)"
    import torch

    try:
        saved = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # an intact file this torch cannot read
        return None, f"unreadable ({type(exc).__name__})"
    if not isinstance(saved, dict) or saved.get("key") != key or not isinstance(saved.get("state"), dict):
        return None, "holds another configuration"
    return saved["state"], ""
