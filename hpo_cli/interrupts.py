"""SIGTERM and SIGHUP (what ``timeout``, SLURM and ``docker stop`` send) end a run the way Ctrl-C
does: the run stops between trials, writes its summary (status ``interrupted``) and plots, and
exits with 128 + the signal number (143, 129; Ctrl-C: 130)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A signal asked the run to end."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(exc: KeyboardInterrupt) -> int:
    return 128 + exc.signum if isinstance(exc, Interrupted) else 130


def describe(exc: KeyboardInterrupt) -> str:
    return signal.Signals(exc.signum).name if isinstance(exc, Interrupted) else "Ctrl-C"


@contextmanager
def interrupt_on(signums: tuple[signal.Signals, ...] = ENDING_SIGNALS) -> Iterator[None]:
    """Within the block, the first of ``signums`` raises :class:`Interrupted`; later ones are
    ignored so that the summary is written in peace. The previous handlers come back after."""

    def handler(signum: int, frame: FrameType | None) -> None:
        for s in signums:
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    if threading.current_thread() is not threading.main_thread():  # a launcher's worker thread:
        yield  # only the main thread may install handlers; its own handlers stay in charge
        return
    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
