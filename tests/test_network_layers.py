"""Tests for ge_nas.network.layers: Param checking, the registry, and builders' shape inference."""

from __future__ import annotations

import pytest
import torch

from ge_nas.arch import LAYERS, Param
from ge_nas.errors import ArchError
from ge_nas.network.layers import BUILDERS, same_conv

COUNT = Param("count", int, 3, 1, 10)
RATE = Param("rate", float, 0.5, 0.0, 1.0)
MODE = Param("mode", str, "a", choices=("a", "b"))


@pytest.mark.parametrize(
    ("param", "value", "expected"),
    [
        (COUNT, 4, 4),
        (COUNT, 4.0, 4),
        (COUNT, 1, 1),
        (COUNT, 10, 10),
        (RATE, 0, 0.0),
        (RATE, 1, 1.0),
        (RATE, 0.25, 0.25),
        (MODE, "b", "b"),
    ],
)
def test_param_check_accepts_and_converts(param: Param, value: object, expected: object) -> None:
    result = param.check(value, "here")  # type: ignore[arg-type]
    assert result == expected
    assert type(result) is param.kind


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        (COUNT, 4.5, "here: count must be an integer, got 4.5"),
        (COUNT, 0, "here: count must be in [1, 10], got 0"),
        (COUNT, 11, "here: count must be in [1, 10], got 11"),
        (COUNT, "x", "here: count must be a number, got 'x'"),
        (RATE, 1.5, "here: rate must be in [0, 1], got 1.5"),
        (RATE, -0.1, "here: rate must be in [0, 1], got -0.1"),
        (MODE, "c", "here: mode must be one of a, b, got 'c'"),
        (MODE, 1, "here: mode must be one of a, b, got 1"),
    ],
)
def test_param_check_rejects(param: Param, value: object, message: str) -> None:
    with pytest.raises(ArchError) as info:
        param.check(value, "here")  # type: ignore[arg-type]
    assert str(info.value) == message


def test_param_check_rejects_infinity_as_arch_error() -> None:
    with pytest.raises(ArchError, match="count"):
        COUNT.check(float("inf"), "here")


def test_param_describe() -> None:
    assert COUNT.describe() == "count: int 1..10, default 3"
    assert MODE.describe() == "mode: a|b, default a"
    assert Param("n", int, None, 1, 4).describe() == "n: int 1..4, required"


def test_registry_names_and_params_are_consistent() -> None:
    assert {
        "conv",
        "sepconv",
        "res",
        "pool",
        "gap",
        "flatten",
        "dense",
        "bn",
        "dropout",
        "relu",
    } <= set(LAYERS)
    for name, kind in LAYERS.items():
        assert kind.name == name
        assert kind.doc
        for param in kind.params:
            param.describe()  # every range and choice list is printable
            if param.default is not None:
                assert param.check(param.default, name) == param.default


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        LAYERS["x"] = LAYERS["relu"]  # type: ignore[index]


def _run(
    kind: str, args: dict[str, object], shape: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Return (shape the builder predicts, shape the module really produces) for a batch of 2."""
    module, predicted = BUILDERS[kind](args, shape)  # type: ignore[arg-type]
    x = torch.randn(2, *shape)
    out = x if module is None else module.eval()(x)
    return predicted, tuple(out.shape[1:])


@pytest.mark.parametrize("kind", ["conv", "sepconv", "res"])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize(("h", "w"), [(7, 7), (8, 8), (8, 5)])
def test_conv_shape_prediction_matches_module(
    kind: str, kernel: int, stride: int, h: int, w: int
) -> None:
    predicted, actual = _run(kind, {"filters": 5, "kernel": kernel, "stride": stride}, (3, h, w))
    assert predicted == actual
    assert predicted == (5, -(-h // stride), -(-w // stride))  # ceil(size / stride): "same" padding


@pytest.mark.parametrize(
    ("kernel", "stride", "padded"),
    [(3, 1, False), (5, 1, False), (4, 2, False), (2, 1, True), (5, 2, True)],
)
def test_same_conv_pads_asymmetrically_only_when_needed(
    kernel: int, stride: int, padded: bool
) -> None:
    # total padding (out - 1) * stride + kernel - 8: an odd total needs a ZeroPad2d in front
    module = same_conv((3, 8, 8), 4, kernel, stride)
    assert isinstance(module, torch.nn.Sequential) is padded
    assert module(torch.randn(2, 3, 8, 8)).shape == (2, 4, -(-8 // stride), -(-8 // stride))


@pytest.mark.parametrize(
    ("pool", "size", "shape", "expected"),
    [
        ("max", 2, (3, 8, 8), (3, 4, 4)),
        ("avg", 3, (3, 8, 8), (3, 2, 2)),
        ("max", 2, (3, 2, 2), (3, 1, 1)),
        ("max", 4, (3, 3, 3), (3, 3, 3)),  # smaller than the window: skipped
        ("avg", 2, (3, 1, 1), (3, 1, 1)),
        ("max", 2, (3, 8, 1), (3, 8, 1)),
    ],
)
def test_pool_shape(
    pool: str, size: int, shape: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    predicted, actual = _run("pool", {"kind": pool, "size": size}, shape)
    assert predicted == actual == expected


def test_pool_is_skipped_below_window() -> None:
    module, shape = BUILDERS["pool"]({"kind": "max", "size": 4}, (3, 3, 3))
    assert module is None and shape == (3, 3, 3)
    assert isinstance(
        BUILDERS["pool"]({"kind": "avg", "size": 2}, (3, 4, 4))[0], torch.nn.AvgPool2d
    )
    assert isinstance(
        BUILDERS["pool"]({"kind": "max", "size": 2}, (3, 4, 4))[0], torch.nn.MaxPool2d
    )


@pytest.mark.parametrize(
    ("kind", "args", "shape", "expected"),
    [
        ("gap", {}, (6, 5, 5), (6,)),
        ("flatten", {}, (6, 5, 4), (120,)),
        ("flatten", {}, (7,), (7,)),
        ("dense", {"units": 9}, (7,), (9,)),
        ("bn", {}, (6, 5, 5), (6, 5, 5)),
        ("bn", {}, (7,), (7,)),
        ("dropout", {"p": 0.3}, (7,), (7,)),
        ("relu", {}, (6, 5, 5), (6, 5, 5)),
    ],
)
def test_other_builders_shape(
    kind: str, args: dict[str, object], shape: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    predicted, actual = _run(kind, args, shape)
    assert predicted == actual == expected


def test_flatten_of_flat_vector_adds_no_module() -> None:
    assert BUILDERS["flatten"]({}, (7,))[0] is None


def test_dropout_uses_its_probability() -> None:
    module, _ = BUILDERS["dropout"]({"p": 0.3}, (7,))
    assert isinstance(module, torch.nn.Dropout) and module.p == 0.3


def test_leaky_slope() -> None:
    module, _ = BUILDERS["leaky"]({}, (4,))
    assert isinstance(module, torch.nn.LeakyReLU) and module.negative_slope == 0.1


def test_residual_shortcut_projects_only_when_needed() -> None:
    same, _ = BUILDERS["res"]({"filters": 3, "kernel": 3, "stride": 1}, (3, 8, 8))
    wider, _ = BUILDERS["res"]({"filters": 5, "kernel": 3, "stride": 1}, (3, 8, 8))
    strided, _ = BUILDERS["res"]({"filters": 3, "kernel": 3, "stride": 2}, (3, 8, 8))
    assert isinstance(same.shortcut, torch.nn.Identity)  # type: ignore[union-attr]
    assert not isinstance(wider.shortcut, torch.nn.Identity)  # type: ignore[union-attr]
    assert not isinstance(strided.shortcut, torch.nn.Identity)  # type: ignore[union-attr]


def test_residual_output_is_non_negative() -> None:
    module, _ = BUILDERS["res"]({"filters": 4, "kernel": 3, "stride": 1}, (3, 8, 8))
    assert module is not None
    assert (module.eval()(torch.randn(2, 3, 8, 8)) >= 0).all()
