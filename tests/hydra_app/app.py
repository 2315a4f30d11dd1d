"""A small Hydra app for tests of ``hydra/sweeper=hpo``: a deterministic objective of its config.

    python app.py                         # one job: prints and returns the objective
    python app.py -m hydra/sweeper=hpo 'x1=interval(-5, 10)' 'x2=interval(0, 15)' \\
        'k=int(interval(0, 3))' 'opt=choice(sgd, adam, rmsprop)'

``returns=dict`` makes the job return ``{"loss": ..., "acc": ...}``; ``raise_above`` and
``nan_above`` make jobs whose x1 exceeds them raise ValueError or return NaN; the environment
variable HYDRA_APP_SLEEP_S makes each job sleep first (to kill a sweep midway).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

HERE = str(Path(__file__).resolve().parent)


@hydra.main(version_base=None, config_path=".", config_name="config")
def main(cfg: DictConfig) -> Any:
    if HERE not in sys.path:  # a launcher's worker (submitit) unpickles this function elsewhere
        sys.path.insert(0, HERE)
    from objective import f

    time.sleep(float(cfg.sleep_s))
    if cfg.raise_above is not None and cfg.x1 > cfg.raise_above:
        raise ValueError(f"x1={cfg.x1} > raise_above={cfg.raise_above}")
    if cfg.nan_above is not None and cfg.x1 > cfg.nan_above:
        return math.nan
    value = f({"x1": cfg.x1, "x2": cfg.x2, "k": cfg.k, "opt": cfg.opt})
    print(f"value={value!r}")
    if cfg.returns == "dict":
        return {"loss": value, "acc": 1 / (1 + value)}
    if cfg.returns != "float":
        raise ValueError(f"returns={cfg.returns!r}: must be float or dict")
    return value


if __name__ == "__main__":
    main()
