"""Tests for ge_nas.network.build: shapes, the classifier head, parameter and FLOP counts, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ge_nas.arch import LAYERS, parse_arch
from ge_nas.errors import ArchError
from ge_nas.network import build
from ge_nas.network.build import Size, build_model, count_params, measure


def modules_of(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def run(
    text: str, shape: tuple[int, int, int], classes: int = 10
) -> tuple[nn.Sequential, torch.Tensor]:
    model = build_model(parse_arch(text), shape, classes).eval()
    return model, model(torch.randn(2, *shape))


@pytest.mark.parametrize(("size", "features"), [(8, 8 * 2 * 2), (28, 8 * 7 * 7)])
def test_flatten_keeps_positions(size: int, features: int) -> None:
    model, out = run("conv(8) pool pool flatten", (1, size, size))
    assert out.shape == (2, 10)
    assert model[-1].in_features == features
    assert not modules_of(model, nn.AdaptiveAvgPool2d)


@pytest.mark.parametrize(("size", "pools"), [(8, 3), (28, 4)])
def test_pooling_is_skipped_when_map_is_smaller_than_window(size: int, pools: int) -> None:
    # 8 -> 4 -> 2 -> 1 -> (skip); 28 -> 14 -> 7 -> 3 -> 1
    model, out = run("conv(8) pool pool pool pool", (3, size, size))
    assert out.shape == (2, 10)
    assert len(modules_of(model, nn.MaxPool2d)) == pools


def test_pool_larger_than_input_is_skipped() -> None:
    model, out = run("pool(avg, 8) flatten", (2, 5, 5))
    assert not modules_of(model, nn.AvgPool2d)
    assert model[-1].in_features == 2 * 5 * 5 and out.shape == (2, 10)


@pytest.mark.parametrize("size", [8, 28])
def test_global_pooling_before_dense(size: int) -> None:
    model, out = run("conv(6) dense(5) relu", (1, size, size), classes=3)
    assert out.shape == (2, 3)
    assert isinstance(model[1][0], nn.AdaptiveAvgPool2d)
    assert isinstance(model[2], nn.Linear) and model[2].in_features == 6
    assert model[-1].in_features == 5 and model[-1].out_features == 3


@pytest.mark.parametrize("size", [8, 28])
def test_global_pooling_before_head(size: int) -> None:
    model, out = run("conv(6) relu", (1, size, size), classes=4)
    assert out.shape == (2, 4)
    assert isinstance(model[-2][0], nn.AdaptiveAvgPool2d)
    assert model[-1].in_features == 6


def test_flat_network_gets_no_global_pooling() -> None:
    model, out = run("flatten dense(7)", (1, 4, 4), classes=2)
    assert not modules_of(model, nn.AdaptiveAvgPool2d)
    assert [m.in_features for m in modules_of(model, nn.Linear)] == [16, 7]
    assert out.shape == (2, 2)


def test_strided_conv_shapes() -> None:
    model, _ = run("conv(4, 3, 2) conv(4, 3, 2) flatten", (1, 28, 28))
    assert model[-1].in_features == 4 * 7 * 7


def test_param_count_by_hand() -> None:
    spec = parse_arch("conv(4, 3) bn relu dense(5)")
    conv = 4 * 1 * 3 * 3 + 4
    bn = 2 * 4
    dense = 4 * 5 + 5  # after global pooling: 4 features
    head = 5 * 3 + 3
    assert count_params(build_model(spec, (1, 8, 8), 3)) == conv + bn + dense + head == 91
    assert measure(spec, (1, 8, 8), 3).params == 91


def test_param_count_by_hand_with_flatten() -> None:
    spec = parse_arch("conv(2, 3) pool(max, 2) flatten dense(6)")
    conv = 2 * 9 + 2
    dense = (2 * 4 * 4) * 6 + 6
    head = 6 * 10 + 10
    assert count_params(build_model(spec, (1, 8, 8), 10)) == conv + dense + head == 288
    assert measure(spec, (1, 8, 8), 10).params == 288


def test_count_params_skips_frozen() -> None:
    model = nn.Linear(3, 2)
    model.bias.requires_grad_(False)
    assert count_params(model) == 6


def test_flops_are_twice_the_macs() -> None:
    conv_macs = (4 * 8 * 8) * (2 * 3 * 3)  # output elements x (in channels x kernel area)
    head_macs = (4 * 8 * 8) * 3
    size = measure(parse_arch("conv(4, 3) flatten"), (2, 8, 8), 3)
    assert size == Size(params=4 * 2 * 9 + 4 + 256 * 3 + 3, flops=2 * (conv_macs + head_macs))
    assert size.flops == 10752


def test_flops_with_stride_and_dense() -> None:
    conv_macs = (4 * 4 * 4) * 9  # stride 2: 8x8 -> 4x4
    dense_macs, head_macs = 4 * 5, 5 * 3
    assert measure(parse_arch("conv(4, 3, 2) dense(5)"), (1, 8, 8), 3).flops == 2 * (
        conv_macs + dense_macs + head_macs
    )


def test_flops_grow_with_input_size() -> None:
    spec = parse_arch("conv(4)")
    small, large = measure(spec, (1, 8, 8), 3), measure(spec, (1, 28, 28), 3)
    assert small.params == large.params
    assert large.flops > small.flops


def test_measure_allocates_no_real_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[nn.Module] = []

    def spy(*args: object) -> nn.Sequential:
        model = build_model(*args)  # type: ignore[arg-type]
        built.append(model)
        return model

    monkeypatch.setattr(build, "build_model", spy)
    measure(parse_arch("conv(4) bn dense(5)"), (1, 8, 8), 3)
    (model,) = built
    tensors = [*model.parameters(), *model.buffers()]
    assert tensors and all(t.is_meta for t in tensors)


def test_measure_of_a_huge_network_is_free() -> None:
    # ~8.6e9 weights (34 GB as float32): only possible if nothing is allocated
    units = 65536
    size = measure(
        parse_arch(f"flatten dense({units}) dense({units}) dense({units})"), (1, 2, 2), 10
    )
    expected = (4 * units + units) + 2 * (units * units + units) + (units * 10 + 10)
    assert size.params == expected
    assert size.flops == 2 * (4 * units + 2 * units * units + units * 10)


@pytest.mark.parametrize(
    ("text", "index"),
    [
        ("dense(4) conv(4)", 2),
        ("flatten conv(4)", 2),
        ("conv(4) gap relu pool", 4),
        ("dense(3) res(4)", 2),
        ("flatten sepconv(2)", 2),
        ("gap gap", 2),
    ],
)
def test_map_layer_after_flat_vector_is_an_error(text: str, index: int) -> None:
    spec = parse_arch(text)
    with pytest.raises(
        ArchError, match=rf"layer {index} .* needs a feature map \(C,H,W\) but gets a flat vector"
    ):
        build_model(spec, (1, 8, 8), 10)
    with pytest.raises(ArchError, match=f"layer {index}"):
        measure(spec, (1, 8, 8), 10)


def _sample_layer(name: str) -> str:
    required = [p for p in LAYERS[name].params if p.default is None and not p.optional]
    return f"{name}({', '.join('4' for _ in required)})" if required else name


def test_a_keep_mask_builds_the_layer_with_its_kept_units() -> None:
    masked = parse_arch("conv(6,3,keep=b101100) relu dense(5,keep=b00011)")
    plain = parse_arch("conv(3,3) relu dense(2)")
    assert measure(masked, (1, 8, 8), 10) == measure(plain, (1, 8, 8), 10)
    assert count_params(build_model(masked, (1, 8, 8), 10)) == measure(plain, (1, 8, 8), 10).params


@pytest.mark.parametrize("name", sorted(set(LAYERS) - {"backbone"}))  # see test_transfer.py
def test_every_layer_kind_builds_and_runs(name: str) -> None:
    text = f"conv(4) {_sample_layer(name)}"
    spec = parse_arch(text)
    model, out = run(text, (3, 8, 8))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    model.train()(torch.randn(2, 3, 8, 8)).sum().backward()
    assert measure(spec, (3, 8, 8), 10).params == count_params(model)


@pytest.mark.parametrize(
    "name", sorted(n for n, k in LAYERS.items() if not k.needs_map and n != "backbone")
)
def test_every_flat_layer_kind_runs_on_vectors(name: str) -> None:
    model, out = run(f"flatten {_sample_layer(name)}", (3, 8, 8))
    assert out.shape == (2, 10)


def test_even_kernel_builds_and_measures() -> None:
    spec = parse_arch("conv(4, 2) flatten")
    model, out = run("conv(4, 2) flatten", (1, 8, 8))
    assert measure(spec, (1, 8, 8), 10).params == count_params(model)
