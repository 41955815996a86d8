"""Physical pruning: masked units leave the weights, the batch norms and the next layer's inputs; logits stay."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from ge_nas.arch import parse_arch
from ge_nas.errors import ArchError
from ge_nas.network import build_model, count_params
from ge_nas.network.build import build_with_slots
from ge_nas.network.prune import mask_model, prunable_layers, prune, pruned_spec, trunk_modules

SHAPE, CLASSES = (1, 12, 12), 5
NETWORKS = [
    "conv(8,3) bn relu pool(max,2) conv(6,5) bn relu flatten dense(10) relu dropout(0.2) dense(7) bn relu | opt=adam",
    "conv(8,2) relu sepconv(12,3) bn relu gap dense(9) relu | opt=adam",
    "conv(6,3) bn relu conv(5,3,2) elu dense(11) | opt=adam",
    "conv(4,3) relu res(8,3) conv(6,3) relu pool(avg,2) dense(5) | opt=adam",
]


def trained_like(text: str, seed: int) -> tuple[object, torch.nn.Sequential]:
    """Return a spec and its network with random weights and batch-norm statistics (as after training)."""
    torch.manual_seed(seed)
    spec = parse_arch(text)
    model = build_model(spec, SHAPE, CLASSES)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    return spec, model.eval()


def random_masks(spec, rng: random.Random) -> dict[int, list[bool]]:  # type: ignore[no-untyped-def]
    masks = {}
    for i, units in prunable_layers(spec).items():
        mask = [rng.random() < 0.5 for _ in range(units)]
        mask[rng.randrange(units)] = True
        masks[i] = mask
    return masks


@pytest.mark.parametrize("text", NETWORKS)
@pytest.mark.parametrize("seed", range(3))
def test_pruned_logits_match_the_masked_network(text: str, seed: int) -> None:
    spec, model = trained_like(text, seed)
    masks = random_masks(spec, random.Random(seed))
    new_spec, pruned = prune(spec, model, SHAPE, CLASSES, masks)
    masked = mask_model(spec, model, SHAPE, CLASSES, masks).eval()
    x = torch.randn(16, *SHAPE)
    with torch.no_grad():
        assert torch.allclose(pruned.eval()(x), masked(x), atol=1e-5)
    assert count_params(pruned) == count_params(build_model(new_spec, SHAPE, CLASSES))
    if any(not all(m) for m in masks.values()):
        assert count_params(pruned) < count_params(model)


def test_a_mask_of_all_ones_changes_nothing() -> None:
    spec, model = trained_like(NETWORKS[0], 0)
    masks = {i: [True] * n for i, n in prunable_layers(spec).items()}
    new_spec, pruned = prune(spec, model, SHAPE, CLASSES, masks)
    x = torch.randn(8, *SHAPE)
    with torch.no_grad():
        assert new_spec == spec and torch.equal(pruned.eval()(x), model(x))


def test_the_pruned_spec_is_an_ordinary_spec_with_the_kept_widths() -> None:
    spec = parse_arch(NETWORKS[0])
    masks = {0: [True, False] * 4, 8: [True] * 3 + [False] * 7}
    assert pruned_spec(spec, masks).canonical().startswith("conv(4,3,1) bn relu")
    assert "dense(3)" in pruned_spec(spec, masks).canonical()
    assert parse_arch(pruned_spec(spec, masks).canonical()) == pruned_spec(spec, masks)


def test_which_layers_are_prunable() -> None:
    assert prunable_layers(parse_arch(NETWORKS[0])) == {0: 8, 4: 6, 8: 10, 11: 7}
    assert prunable_layers(parse_arch(NETWORKS[3])) == {3: 6, 6: 5}, "not before a residual block"


def test_bad_masks_say_what_is_wrong() -> None:
    spec = parse_arch(NETWORKS[3])
    with pytest.raises(ArchError, match=r"layer 1 \(conv\(4,3,1\)\) cannot be pruned; prunable"):
        pruned_spec(spec, {0: [True] * 4})
    with pytest.raises(ArchError, match="has 2 bits; the layer has 6 units"):
        pruned_spec(spec, {3: [True, False]})
    with pytest.raises(ArchError, match="keeps no unit"):
        pruned_spec(spec, {3: [False] * 6})


def test_the_trunk_is_every_module_before_the_first_masked_layers_weights() -> None:
    spec = parse_arch("conv(4,3) bn relu pool(max,2) conv(6,3) relu dense(5) relu | opt=adam")
    model, _ = build_with_slots(spec, (1, 8, 8), 3)
    conv, dense = [True, False, True, True, True, False], [True] * 5
    assert trunk_modules(spec, (1, 8, 8), 3, {4: conv, 6: dense}) == 4  # up to the second conv
    assert isinstance(model[trunk_modules(spec, (1, 8, 8), 3, {6: dense})], nn.Linear)
    assert isinstance(model[trunk_modules(spec, (1, 8, 8), 3, {6: dense}) - 1], nn.Sequential)
    assert trunk_modules(spec, (1, 8, 8), 3, {0: [True] * 4}) == 0
    assert trunk_modules(spec, (1, 8, 8), 3, {}) == 0
