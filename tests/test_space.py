"""The search space: types, bounds, endpoints, conditions, vectors, grids and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import make_space

from hpo_cli.errors import ConfigError
from hpo_cli.space import CategoricalParam, FloatParam, IntParam, SearchSpace


def test_decoded_values_have_declared_types_and_bounds(mixed_space: SearchSpace) -> None:
    rng = np.random.default_rng(0)
    for u in rng.random((500, mixed_space.dim)):
        params = mixed_space.decode(u)
        assert mixed_space.contains(params), params
        assert type(params["units"]) is int and type(params["layers"]) is int
        assert type(params["batch"]) is int and params["batch"] % 32 == 0
        assert type(params["lr"]) is float and 1e-5 <= params["lr"] <= 1e-1
        assert params["optimizer"] in ("sgd", "adam", "rmsprop")
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
        assert math.isclose(params["dropout"] * 10, round(params["dropout"] * 10), abs_tol=1e-9)


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        (IntParam("k", 1, 4), [1, 2, 3, 4]),
        (IntParam("k", 0, 10, step=5), [0, 5, 10]),
        (CategoricalParam("c", ("a", 1, None)), ["a", 1, None]),
    ],
)
def test_int_and_categorical_endpoints_are_inclusive_and_uniform(param: object, expected: list) -> None:
    u = np.random.default_rng(1).random(30_000)
    counts = {repr(v): 0 for v in expected}
    for x in u:
        counts[repr(param.decode(np.array([x])))] += 1  # type: ignore[attr-defined]
    share = 1 / len(expected)
    assert all(abs(c / len(u) - share) < 0.02 for c in counts.values()), counts


def test_log_int_reaches_both_endpoints() -> None:
    p = IntParam("units", 16, 256, log=True)
    assert p.decode(np.array([0.0])) == 16 and p.decode(np.array([0.999999])) == 256
    values = {p.decode(np.array([x])) for x in np.linspace(0, 1, 5000)}
    assert values == set(range(16, 257))


def test_float_log_scale_and_unit_endpoints() -> None:
    p = FloatParam("lr", 1e-4, 1.0, log=True)
    assert p.decode(np.array([0.0])) == 1e-4 and p.decode(np.array([1.0])) == 1.0
    assert p.decode(np.array([0.5])) == pytest.approx(1e-2, rel=1e-12)
    assert p.encode(1e-3)[0] == pytest.approx(0.25)


def test_encode_inverts_decode(mixed_space: SearchSpace) -> None:
    for u in np.random.default_rng(2).random((200, mixed_space.dim)):
        params = mixed_space.decode(u)
        assert mixed_space.decode(mixed_space.encode(params)) == params


def test_vector_parameter_length_comes_from_the_task() -> None:
    space = make_space(
        {"h": {"type": "float", "low": -2.0, "high": 10.0, "size": "n_coefficients"}},
        n_coefficients=12,
    )
    assert space.dim == 12
    values = space.decode(np.linspace(0, 1, 12))["h"]
    assert isinstance(values, list) and len(values) == 12
    assert values[0] == -2.0 and values[-1] == 10.0 and all(type(v) is float for v in values)


def test_conditional_grid_enumerates_only_active_branches() -> None:
    space = make_space(
        {
            "model": {"type": "categorical", "choices": ["ridge", "lasso"]},
            "ridge_alpha": {
                "type": "float",
                "low": 1e-3,
                "high": 1.0,
                "log": True,
                "when": {"model": "ridge"},
            },
            "lasso_alpha": {
                "type": "float",
                "low": 1e-3,
                "high": 1.0,
                "log": True,
                "when": {"model": ["lasso"]},
            },
        }
    )
    points = space.grid(4)
    assert len(points) == 8
    assert all(set(p) == {"model", f"{p['model']}_alpha"} for p in points)
    ridge = [p["ridge_alpha"] for p in points if p["model"] == "ridge"]
    np.testing.assert_array_equal(ridge, np.geomspace(1e-3, 1.0, 4))


def test_int_grid_enumerates_all_values_up_to_the_resolution() -> None:
    assert IntParam("k", 1, 5).grid(10) == [1, 2, 3, 4, 5]
    assert IntParam("k", 0, 100).grid(3) == [0, 50, 100]
    assert FloatParam("d", 0.0, 0.5, step=0.1).grid(100) == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.5])


def test_contains_rejects_wrong_types_and_inactive_parameters(mixed_space: SearchSpace) -> None:
    good = mixed_space.decode(np.full(mixed_space.dim, 0.1))
    assert mixed_space.contains(good)
    assert not mixed_space.contains({**good, "units": float(good["units"])})
    assert not mixed_space.contains({**good, "optimizer": "adam"})  # momentum is then inactive
    assert not mixed_space.contains({k: v for k, v in good.items() if k != "lr"})


BAD_SPACES = [
    (
        {"a": {"type": "float", "low": 1.0, "high": 1.0}},
        "space.params.a.low=1.0: must be < high (1.0)",
    ),
    ({"a": {"type": "float", "low": 5, "high": 2}}, "space.params.a.low=5: must be < high (2)"),
    (
        {"a": {"type": "float", "low": 0.0, "high": 1.0, "log": True}},
        "space.params.a.low=0.0: log scale needs low > 0",
    ),
    (
        {"a": {"type": "int", "low": -3, "high": 9, "log": True}},
        "space.params.a.low=-3: log scale needs low > 0",
    ),
    (
        {"a": {"type": "categorical", "choices": []}},
        "space.params.a.choices=[]: must be a non-empty list",
    ),
    (
        {"a": {"type": "gaussian", "low": 0, "high": 1}},
        "space.params.a.type='gaussian': must be one of float, int, categorical",
    ),
    (
        {"a": {"low": 0, "high": 1}},
        "space.params.a.type=None: must be one of float, int, categorical",
    ),
    (
        {"a": {"type": "float", "low": 0, "high": 1, "when": {"model": "ridge"}}},
        "space.params.a.when.model='ridge': names unknown parameter 'model'",
    ),
    ({"a": {"type": "int", "low": 0.5, "high": 3}}, "space.params.a.low=0.5: must be an integer"),
    (
        {"a": {"type": "float", "low": 0, "high": 1, "size": "n_hidden"}},
        "space.params.a.size='n_hidden': not a dimension",
    ),
    (
        {"a": {"type": "float", "low": 1, "high": 9, "log": True, "step": 1}},
        "space.params.a.step=1: step cannot",
    ),
    (
        {"a": {"type": "float", "low": 0, "high": 1, "lgo": True}},
        "space.params.a.lgo=True: not a float option",
    ),
    ({}, "space.params={}: the space defines no parameters"),
]


@pytest.mark.parametrize(("raw", "message"), BAD_SPACES)
def test_invalid_spaces_name_the_key_and_value(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_space(raw)
    assert str(info.value).startswith(message)


def test_grid_refuses_vector_parameters(vector_space: SearchSpace) -> None:
    with pytest.raises(ConfigError, match=r"space.params.h.size=5: grid search cannot enumerate"):
        vector_space.grid(3)


def test_stepped_floats_are_written_without_float_noise() -> None:
    """low + k·step in decimal: 0.9, not 0.8999999999999999 (or 0.30000000000000004)."""
    tenths = FloatParam("d", 0.0, 1.0, step=0.1)
    assert tenths.grid(11) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert [tenths.decode(np.array([k / 10])) for k in range(11)] == tenths.grid(11)
    shifted = FloatParam("s", 0.1, 0.95, step=0.05)
    assert shifted.grid(100)[-3:] == [0.85, 0.9, 0.95] and shifted.decode(np.array([1.0])) == 0.95
    assert repr(FloatParam("t", 0.7, 1.0, step=0.1).grid(4)) == "[0.7, 0.8, 0.9, 1.0]"
