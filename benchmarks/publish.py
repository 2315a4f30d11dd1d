"""Writing a benchmark's results: benchmarks/results/NAME.{md,json}, the table on the console,
one FAILED line per failed claim, and the exit code (1 when a claim failed)."""

from __future__ import annotations

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
