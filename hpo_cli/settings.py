"""Top-level run settings, validated once, and the device choice."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpo_cli.errors import ConfigError

DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class Settings:
    seed: int
    n_trials: int
    timeout_s: float | None
    batch_size: int
    device: str
    direction: str | None
    max_failure_rate: float


def read_settings(cfg: Mapping[str, Any]) -> Settings:
    """Validate the top-level keys of a composed config; raises ConfigError naming the key."""
    seed = cfg.get("seed")
    if not _is_int(seed) or seed < 0:
        raise ConfigError("seed", seed, "must be a non-negative integer")
    n_trials = cfg.get("n_trials")
    if not _is_int(n_trials) or n_trials <= 0:
        raise ConfigError("n_trials", n_trials, "must be a positive integer")
    timeout_s = cfg.get("timeout_s")
    if timeout_s is not None and (not _is_number(timeout_s) or timeout_s <= 0):
        raise ConfigError("timeout_s", timeout_s, "must be a positive number of seconds or null")
    batch_size = cfg.get("batch_size", 1)
    if not _is_int(batch_size) or batch_size <= 0:
        raise ConfigError("batch_size", batch_size, "must be a positive integer")
    device = cfg.get("device", "cpu")
    if device not in DEVICES:
        raise ConfigError("device", device, f"must be one of {', '.join(DEVICES)}")
    direction = cfg.get("direction")
    if direction not in (None, "minimize", "maximize"):
        raise ConfigError("direction", direction, "must be minimize, maximize or null (the task's)")
    rate = cfg.get("max_failure_rate", 0.5)
    if not _is_number(rate) or not 0.0 <= rate <= 1.0:
        raise ConfigError("max_failure_rate", rate, "must be a number in [0, 1]")
    return Settings(
        int(seed),
        int(n_trials),
        None if timeout_s is None else float(timeout_s),
        int(batch_size),
        str(device),
        direction,
        float(rate),
    )


def resolve_device(device: str) -> str:
    """"cpu" stays "cpu" without importing torch; "cuda" must exist; "auto" picks cuda if any."""
    if device == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if available else "cpu"
    if not available:
        raise ConfigError(
            "device", device, "no CUDA device is available here; use device=cpu or device=auto"
        )
    return "cuda"


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)
