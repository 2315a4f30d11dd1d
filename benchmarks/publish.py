"""Writing a benchmark's results: benchmarks/results/NAME.{md,json}, the table on the console,
one FAILED line per failed claim, and the exit code (1 when a claim failed)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def publish(name: str, text: str, data: dict[str, Any], failed: list[str]) -> int:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps({**data, "failed": failed}, indent=2, default=str) + "\n")
    print(text)
    for line in failed:
        print("FAILED:", line)
    return 1 if failed else 0


def seeded_arguments(doc: str | None) -> argparse.Namespace:
    """The options of a benchmark over seeds (``--seeds N``, ``--threads T``, overrides after
    ``--``), parsed; torch's thread count is set from ``--threads``."""
    import torch

    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0] if doc else None)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("overrides", nargs="*", help="hpo run overrides for every run (after --)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args
