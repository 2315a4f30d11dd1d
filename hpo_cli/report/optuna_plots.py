"""``hpo plot``: Optuna's matplotlib plots of runs exported as in-memory studies.

Parameter importance (Optuna's fANOVA evaluator), parallel coordinates, slices, contours and the
empirical distribution function of the values (EDF, one line per run: across runs when several
are given), written as PNGs into each run's ``plots/``. Spaces with many parameters are cut to
the most important ones (``MAX_PARAMS``; contours: ``MAX_CONTOUR``) so a figure stays readable.
Our own plots stay where Optuna has none (best-so-far history, hypergradient trajectories).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hpo_cli.report.optuna_export import import_optuna, to_study
from hpo_cli.report.results import Run

KINDS = ("importance", "parallel", "slice", "contour", "edf")
MAX_PARAMS = 8  # parallel coordinates, slices, importance bars
MAX_CONTOUR = 4  # a contour plot is a grid of every pair
MAX_CANDIDATES = 64  # beyond this many flat parameters, only the first are ranked


def plot_runs(runs: Sequence[Run], kinds: Sequence[str]) -> list[Path]:
    """Every plot of ``kinds`` for every run; returns the files written. A plot a run cannot
    have (too few complete trials, a single parameter for contours) is skipped with a line."""
    import matplotlib

    matplotlib.use("Agg")
    import_optuna()
    studies = [(run, to_study(run, name=f"{run.summary.get('strategy', 'run')} ({run.path.name})")) for run in runs]
    written = []
    for run, study in studies:
        params = ranked_params(study)
        for kind in kinds:
            path = run.path / "plots" / f"{kind}.png"
            if kind == "contour" and len(params) < 2:
                print(f"skipped {path.name} for {run.path}: a contour plot needs two parameters that every trial has")
                continue
            draw = _drawer(kind, params, [s for _, s in studies])
            if _save(draw, study, path, run):
                written.append(path)
    return written


def _drawer(kind: str, params: list[str], studies: list[Any]) -> Callable[[Any], Any]:
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization import matplotlib as vm

    if kind == "importance":
        return lambda s: vm.plot_param_importances(s, evaluator=FanovaImportanceEvaluator(seed=0), params=params)
    if kind == "parallel":
        return lambda s: vm.plot_parallel_coordinate(s, params=params)
    if kind == "slice":
        return lambda s: vm.plot_slice(s, params=params)
    if kind == "contour":
        return lambda s: vm.plot_contour(s, params=params[:MAX_CONTOUR])
    return lambda s: _distinct_colours(vm.plot_edf(studies))


def _distinct_colours(ax: Any) -> Any:
    """Optuna shades its EDF lines from one colour map: a qualitative one tells runs apart."""
    import matplotlib

    colours = [matplotlib.colormaps["tab10"](i) for i in range(10)]
    for i, line in enumerate(ax.get_lines()):
        line.set_color(colours[i % len(colours)])
        line.set_linestyle(("-", "--", ":", "-.")[(i // len(colours)) % 4])
    if ax.get_legend() is not None:
        ax.legend(loc="best", fontsize=8)
    return ax


def _save(draw: Callable[[Any], Any], study: Any, path: Path, run: Run) -> bool:
    import matplotlib.pyplot as plt
    import numpy as np

    try:
        axes = draw(study)
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        print(f"skipped {path.name} for {run.path}: {' '.join(str(exc).split())[:200]}")
        plt.close("all")
        return False
    figure = np.asarray(axes).flat[0].figure
    if not figure.axes or not any(ax.has_data() for ax in figure.axes):
        print(f"skipped {path.name} for {run.path}: too few complete trials to draw it")
        plt.close(figure)
        return False
    grid = np.asarray(axes).size
    if grid > 1:  # a grid (slices, contours): room for each panel; tight_layout would break the colour bar
        columns = np.asarray(axes).shape[-1]
        rows = grid // columns
        figure.set_size_inches(3.2 * columns + 1.5, 2.8 * rows + 0.8)
    else:
        figure.set_size_inches(8.0, 5.0)
        figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return True


def ranked_params(study: Any) -> list[str]:
    """The parameters every complete trial has, the most important first (fANOVA), at most
    ``MAX_PARAMS``; in declared order where importance cannot be computed (or two at most)."""
    optuna = import_optuna()
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    names = [n for n in complete[0].params if all(n in t.params for t in complete)][:MAX_CANDIDATES]
    if len(names) <= 2 or len(complete) < 2:
        return names
    try:
        importance = optuna.importance.get_param_importances(
            study, evaluator=FanovaImportanceEvaluator(seed=0), params=names
        )
    except (ValueError, RuntimeError):
        return names[:MAX_PARAMS]
    return list(importance)[:MAX_PARAMS]
