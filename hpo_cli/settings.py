"""Top-level run settings, validated once, the budget they give the loop, and the device choice."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpo_cli.errors import ConfigError
from hpo_cli.validate import flag, is_number, non_negative_int, one_of, positive_int

DEVICES = ("cpu", "cuda", "auto")
DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class Settings:
    seed: int
    n_trials: int
    timeout_s: float | None
    batch_size: int
    device: str
    dtype: str | None
    direction: str | None
    max_failure_rate: float
    refit: bool = True

    @property
    def budget(self) -> Budget:
        return Budget(self.n_trials, self.batch_size, self.timeout_s, self.max_failure_rate)


@dataclass(frozen=True)
class Budget:
    """What bounds a run's loop: trials, batch size, wall time, tolerated failures."""

    n_trials: int
    batch_size: int = 1
    timeout_s: float | None = None
    max_failure_rate: float = 0.5


KEYS = (
    *("task", "space", "strategy", "seed", "n_trials", "timeout_s", "batch_size", "device", "dtype"),
    *("direction", "max_failure_rate", "runs_dir", "criterion", "executor", "refit", "logger"),
)


def read_settings(cfg: Mapping[str, Any]) -> Settings:
    """Validate the top-level keys of a composed config; raises ConfigError naming the key."""
    unknown = sorted(k for k in cfg if k not in KEYS and k != "hydra")
    if unknown:
        raise ConfigError(unknown[0], cfg[unknown[0]], f"not a setting of hpo run (they are: {', '.join(KEYS)})")
    return settings_of(cfg)


def settings_of(values: Mapping[str, Any], prefix: str = "") -> Settings:
    """The settings in ``values``, each checked; errors name ``prefix + key`` (the Hydra sweeper
    reads its own, ``hydra.sweeper.*``, with the same checks)."""
    timeout_s = values.get("timeout_s")
    if timeout_s is not None and (not is_number(timeout_s) or timeout_s <= 0):
        raise ConfigError(f"{prefix}timeout_s", timeout_s, "must be a positive number of seconds or null")
    rate = values.get("max_failure_rate", 0.5)
    if not is_number(rate) or not 0.0 <= rate <= 1.0:
        raise ConfigError(f"{prefix}max_failure_rate", rate, "must be a number in [0, 1]")
    return Settings(
        seed=non_negative_int(values.get("seed"), f"{prefix}seed"),
        n_trials=positive_int(values.get("n_trials"), f"{prefix}n_trials"),
        timeout_s=None if timeout_s is None else float(timeout_s),
        batch_size=positive_int(values.get("batch_size", 1), f"{prefix}batch_size"),
        device=one_of(values.get("device", "cpu"), f"{prefix}device", DEVICES),
        dtype=one_of(values.get("dtype"), f"{prefix}dtype", (*DTYPES, None)),
        direction=one_of(values.get("direction"), f"{prefix}direction", (None, "minimize", "maximize")),
        max_failure_rate=float(rate),
        refit=flag(values.get("refit", True), f"{prefix}refit"),
    )


def resolve_device(device: str) -> str:
    """ "cpu" stays "cpu" without importing torch; "cuda" must exist; "auto" picks cuda if any."""
    if device == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if available else "cpu"
    if not available:
        raise ConfigError("device", device, "no CUDA device is available here; use device=cpu or device=auto")
    return "cuda"
