"""Progress display: a rich live bar on a terminal, plain log lines otherwise (CI, pipes)."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

from hpo_cli.trial import TrialRecord

log = logging.getLogger("hpo_cli")
PLAIN_EVERY_S = 2.0


def format_value(x: Any, digits: int = 6, missing: str = "-") -> str:
    """A number for people: ``digits`` significant digits; None and NaN print as ``missing``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return missing
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def format_params(params: Mapping[str, Any], width: int = 80) -> str:
    parts = []
    for k, v in params.items():
        if isinstance(v, list):
            shown = ", ".join(format_value(x) for x in v[:4]) + (", …" if len(v) > 4 else "")
            parts.append(f"{k}=[{shown}]")
        else:
            parts.append(f"{k}={format_value(v)}")
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def use_live_display() -> bool:
    return sys.stdout.isatty() and not os.environ.get("CI")


class PlainProgress:
    """One log line per new best, per failure, and at most every few seconds otherwise."""

    def __init__(self, total: int, done: int = 0) -> None:
        self.total, self.done = total, done
        self.started = time.monotonic()
        self._last_line = -float("inf")
        self._best_trial: int | None = None

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def trial_done(self, record: TrialRecord, best: TrialRecord | None) -> None:
        self.done += 1
        now = time.monotonic()
        improved = best is not None and best.trial != self._best_trial
        if record.state == "failed":
            log.warning("trial %d failed: %s", record.trial, record.error)
        elif improved or now - self._last_line >= PLAIN_EVERY_S or self.done >= self.total:
            log.info(self._line(record, best, now))
            self._last_line = now
        self._best_trial = None if best is None else best.trial

    def _line(self, record: TrialRecord, best: TrialRecord | None, now: float) -> str:
        best_text = "-" if best is None else f"{format_value(best.value)} (trial {best.trial})"
        return (
            f"trial {record.trial} [{self.done}/{self.total}] value={format_value(record.value)} "
            f"best={best_text} elapsed={now - self.started:.1f}s"
        )


class LiveBar:
    """A rich progress bar: a bold title, done/total, elapsed time and one line of text."""

    def __init__(self, title: str, total: int, done: int = 0) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn(f"[bold]{title}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
        )
        self._task = self._bar.add_task("", total=total, completed=done)

    def __enter__(self) -> LiveBar:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def update(self, done: int, text: str) -> None:
        self._bar.update(self._task, completed=done, description=text)


class LiveProgress(PlainProgress):
    """A rich progress bar with the best value so far; failures are printed above it."""

    def __init__(self, total: int, done: int = 0) -> None:
        super().__init__(total, done)
        self._bar = LiveBar("trials", total, done)

    def __enter__(self) -> LiveProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__()

    def trial_done(self, record: TrialRecord, best: TrialRecord | None) -> None:
        self.done += 1
        if record.state == "failed":
            log.warning("trial %d failed: %s", record.trial, record.error)
        best_text = "best: -" if best is None else f"best: {format_value(best.value)} (trial {best.trial})"
        self._bar.update(self.done, best_text)


def make_progress(total: int, done: int = 0) -> PlainProgress:
    return LiveProgress(total, done) if use_live_display() else PlainProgress(total, done)
