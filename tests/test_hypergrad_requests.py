"""Typed hypergradient requests, the one registry of methods, and inner state that lives in the
strategy (and so in its checkpoint), never in the task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import Hpo

from hpo_cli.build import compose_config, compose_study
from hpo_cli.errors import ConfigError
from hpo_cli.hypergrad.registry import METHODS, check_support, method, names
from hpo_cli.request import HypergradRequest, InnerState
from hpo_cli.runner import run_study
from hpo_cli.store import RunStore

SLOW = pytest.mark.slow
GRADIENT_STRATEGIES = [  # the stateful ones in make test, all of them in make test-slow
    "greedy",
    "rtho",
    "hoag",
    *(pytest.param(name, marks=SLOW) for name in ("reverse", "forward", "drmad", "rmad_exact")),
]


def test_the_registry_is_the_one_list_of_methods() -> None:
    assert set(METHODS) == {"reverse", "forward", "drmad", "rmad_exact", "implicit", "greedy", "rtho"}
    assert names(online=True) == ("greedy", "rtho")
    assert "drmad" in names(checkable=True) and "greedy" not in names(checkable=True)
    assert method("drmad").exact is False and method("implicit").warm
    with pytest.raises(ConfigError, match=r"strategy.method='nope': must be one of reverse, forward"):
        method("nope")


def test_support_checks_name_the_key_and_value() -> None:
    with pytest.raises(ConfigError, match=r"task.convention='torch': rmad_exact needs task.convention=maclaurin"):
        check_support(method("rmad_exact"), ["log_precision"], "torch")
    with pytest.raises(ConfigError, match=r"space.params.log_lr='log_lr': implicit differentiates only"):
        check_support(method("implicit"), ["log_precision", "log_lr"], "torch")
    check_support(method("implicit"), ["my_own_name"], "torch")  # a user's bilevel names are theirs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inner_state_round_trips_bit_exactly_through_json(dtype: type) -> None:
    rng = np.random.default_rng(0)
    state = InnerState(
        {"theta": rng.standard_normal(7).astype(dtype), "z": rng.standard_normal((3, 7)).astype(dtype)}, 12
    )
    back = InnerState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert back == state and back.arrays["theta"].dtype == dtype and back.step == 12
    assert back.arrays["z"].tobytes() == state.arrays["z"].tobytes()


def test_requests_round_trip_and_refuse_unknown_or_bad_options() -> None:
    state = InnerState({"theta": np.arange(3.0)}, 4)
    request = HypergradRequest("greedy", steps=5, state=state)
    assert HypergradRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request
    assert request.stateful and not HypergradRequest("reverse").stateful
    with pytest.raises(ConfigError, match=r"strategy.options.trunc=3: not an option of method reverse \(its options"):
        HypergradRequest.of("reverse", {"trunc": 3})
    with pytest.raises(ConfigError, match=r"strategy.options.steps=50: not an option of method reverse"):
        HypergradRequest.of("reverse", {"steps": 50})  # greedy's: refused, not ignored
    with pytest.raises(ConfigError, match=r"strategy.options.skip=1.5: must be a fraction in \[0, 1\)"):
        HypergradRequest("drmad", skip=1.5)
    with pytest.raises(ConfigError, match=r"strategy.options.anchors=0: must be a positive integer"):
        HypergradRequest("drmad", anchors=0)
    with pytest.raises(ConfigError, match=r"strategy.options.clip=-1: must be a positive number or null"):
        HypergradRequest("drmad", clip=-1)
    assert dict(HypergradRequest("drmad", clip=None).options)["clip"] is None  # null: an unclipped adjoint


def test_a_request_holds_its_method_s_options_at_the_registry_s_defaults() -> None:
    request = HypergradRequest.of("reverse", {"truncate": 5})
    assert dict(request.options) == {"truncate": 5, "tape": "auto", "memory_mb": 1024.0}
    assert dict(HypergradRequest("implicit").options) == method("implicit").defaults
    assert all(len({o.name for o in spec.options}) == len(spec.options) for spec in METHODS.values())


def test_requests_of_earlier_checkpoints_read_back() -> None:
    """Before the registry held the options, a request was one flat field per option of every
    method: such a checkpoint still resumes, with this method's options only."""
    flat = {"method": "greedy", "truncate": None, "tape": "auto", "memory_mb": 1024.0, "skip": 0.0, "stride": 1}
    flat |= {"fraction_bits": 44, "tol": 1e-10, "warm_start": True, "steps": 7, "state": None}
    assert HypergradRequest.from_dict(flat) == HypergradRequest("greedy", steps=7)


def test_the_task_keeps_no_state_between_evaluations() -> None:
    """The same request twice gives the same answer: online training continues only from the
    state the request carries."""
    study = compose_study(["task=polynomial", "space=polynomial_per_coef", "strategy=greedy"])
    (s,) = study.strategy.ask(1)
    assert s.request is not None and s.request.state is None
    first, again = (study.task.evaluate(s.params, None, s.request) for _ in range(2))
    assert first.value == again.value and first.gradient == again.gradient and first.carry == again.carry
    assert first.carry is not None and first.carry.step == 10  # strategy.options.steps
    moved = study.task.evaluate(s.params, None, s.request.with_state(first.carry))
    assert moved.carry is not None and moved.carry.step == 20 and moved.value != first.value


@pytest.mark.parametrize("strategy", GRADIENT_STRATEGIES)
def test_every_gradient_strategy_resumes_to_the_uninterrupted_trials(strategy: str, tmp_path: Path) -> None:
    name = "rmad" if strategy == "rmad_exact" else strategy
    extra = ["strategy.method=rmad_exact", "task.convention=maclaurin"] if strategy == "rmad_exact" else []
    overrides = ["task=polynomial", "space=polynomial_per_coef", f"strategy={name}", "task.inner_steps=40", *extra]

    def run(n_trials: int, store: RunStore, resume: bool = False) -> None:
        cfg = compose_config([*overrides, f"n_trials={n_trials}"])
        run_study(compose_study([*overrides, f"n_trials={n_trials}"]), cfg, store, resume=resume)

    straight, resumed = RunStore(tmp_path / "straight"), RunStore(tmp_path / "resumed")
    run(8, straight)
    run(3, resumed)
    run(8, resumed, resume=True)
    assert [(r.params, r.value, r.gradient) for r in resumed.read_trials()] == [
        (r.params, r.value, r.gradient) for r in straight.read_trials()
    ]


def test_gradcheck_of_exact_reversal_on_the_torch_convention_is_one_line(hpo: Hpo) -> None:
    res = hpo("gradcheck", "task=polynomial", "space=polynomial_shared", "method=rmad_exact")
    assert res.returncode == 2 and "Traceback" not in res.output
    assert res.stderr.strip().startswith("hpo: error: task.convention='torch': rmad_exact needs task.convention=")
    ok = hpo(
        "gradcheck", "task=polynomial", "space=polynomial_shared", "method=rmad_exact", "task.convention=maclaurin"
    )
    assert ok.returncode == 0 and "PASS" in ok.stdout, ok.output


def test_the_checkpoint_holds_the_inner_state_once_not_per_trial(tmp_path: Path) -> None:
    overrides = ["task=polynomial", "space=polynomial_per_coef", "strategy=rtho", "n_trials=6"]
    store = RunStore(tmp_path)
    run_study(compose_study(overrides), compose_config(overrides), store)
    text = (tmp_path / "strategy_state.json").read_text()
    assert text.count('"b64"') == 4  # θ, velocity and rtho's two tangent matrices, once
    checkpoint = store.read_checkpoint()
    assert checkpoint is not None and checkpoint[0] == 6 and checkpoint[1]["extra"]["inner"]["step"] == 60
