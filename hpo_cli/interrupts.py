"""SIGTERM and SIGHUP (what ``timeout``, SLURM and ``docker stop`` send) end a run the way Ctrl-C
does: the trial in flight is abandoned (a resume runs it again), the run writes its summary
(status ``interrupted``) and exits with 128 + the signal number (143, 129; Ctrl-C: 130).

A signal is followed by SIGKILL within seconds (SLURM, ``docker stop``: 10-30 s), so the signal
path writes only the summary and best.yaml (trials.csv and plots wait for the run's next end)
and then leaves at once (:func:`leave`): the interpreter's own teardown (torch's alone takes
seconds on a loaded machine) is skipped; every run file is already fsynced."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A signal asked the run to end."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(exc: KeyboardInterrupt) -> int:
    return 128 + exc.signum if isinstance(exc, Interrupted) else 130


def leave(exc: Interrupted) -> NoReturn:
    """Exit now with the signal's exit code: logs and standard streams flushed, no teardown."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(exit_code(exc))


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
