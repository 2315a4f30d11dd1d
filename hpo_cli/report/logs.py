"""Console logging that cooperates with the rich live display."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


class ConsoleHandler(logging.Handler):
    """Writes to whatever ``sys.stdout`` is at emit time, so lines printed while the rich
    progress bar is live appear above it instead of tearing it. Warnings get a prefix."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.WARNING:
                text = f"{record.levelname.lower()}: {text}"
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
        except Exception:  # logging must never break the run
            self.handleError(record)


FILE_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


def configure_resume_logging(log_file: Path) -> None:
    """Outside Hydra (``hpo resume``): console lines plus appending to the run's log file."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    console = ConsoleHandler()
    console.setFormatter(logging.Formatter("%(message)s"))
    to_file = logging.FileHandler(log_file, encoding="utf-8", delay=True)
    to_file.setFormatter(logging.Formatter(FILE_FORMAT))
    root.handlers[:] = [console, to_file]
