"""Data sets read from disk or bundled with installed packages (never downloaded)."""
