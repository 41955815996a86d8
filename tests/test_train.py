"""Tests for ge_nas.train: real training on a tiny separable problem, determinism, failures."""

from __future__ import annotations

import itertools
import time

import pytest
import torch
from torch import nn

from ge_nas.arch import parse_arch
from ge_nas.errors import ConfigError
from ge_nas.metrics import FAILED, OK, TIMEOUT
from ge_nas.train import (
    TrainingTimeout,
    accuracy,
    augment,
    crop_padding,
    make_optimizer,
    make_schedule,
    place_model,
    random_crop,
    resolve_device,
    slow_bf16,
    time_limit,
    train_model,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def separable(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return 2-D points labelled by the side of the line x0 + x1 = 0, with a margin."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    x += 0.5 * torch.sign(x.sum(dim=1, keepdim=True))  # push points away from the boundary
    return x, (x.sum(dim=1) > 0).long()


def hparams(text: str = "") -> dict[str, object]:
    return parse_arch(f"relu | {text}").hparam_map()


def fresh_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2))


def test_learns_a_separable_problem() -> None:
    x, y = separable()
    model = fresh_model()
    before = accuracy(model, x, y)
    status, error, epochs = train_model(model, hparams("lr=0.05 batch=32"), x, y, epochs=10, seed=1)
    assert (status, error, epochs) == (OK, "", 10)
    assert accuracy(model, x, y) >= 0.97 > before
    xt, yt = separable(seed=5)
    assert accuracy(model, xt, yt) >= 0.95


def test_same_seed_gives_same_weights() -> None:
    x, y = separable()
    states = []
    for _ in range(2):
        model = fresh_model()
        train_model(model, hparams("lr=0.05 batch=16 opt=sgd"), x, y, epochs=3, seed=7)
        states.append(model.state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_different_seed_gives_different_weights() -> None:
    x, y = separable()
    a, b = fresh_model(), fresh_model()
    train_model(a, hparams("batch=16"), x, y, epochs=2, seed=1)
    train_model(b, hparams("batch=16"), x, y, epochs=2, seed=2)
    assert not torch.equal(a[0].weight, b[0].weight)


def test_nan_inputs_fail() -> None:
    x, y = separable(64)
    x[5, 0] = float("nan")
    model = fresh_model()
    before = [p.clone() for p in model.parameters()]
    status, error, epochs = train_model(model, hparams("batch=64"), x, y, epochs=3, seed=0)
    assert status == FAILED and epochs == 0
    assert error == "loss became nan at epoch 1 step 1"
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))


def test_diverging_loss_fails() -> None:
    x, y = separable(64)
    x *= 1e30
    status, error, _ = train_model(
        fresh_model(), hparams("lr=10 opt=sgd sched=none batch=8"), x, y, epochs=20, seed=0
    )
    assert status == FAILED
    assert "loss became" in error


def test_timeout_with_injected_clock() -> None:
    x, y = separable(64)
    ticks = itertools.count()  # every call is one second later
    status, error, epochs = train_model(
        fresh_model(),
        hparams("batch=16"),
        x,
        y,
        epochs=5,
        seed=0,
        timeout_s=2.5,
        clock=lambda: float(next(ticks)),
    )
    assert status == TIMEOUT
    assert error == "training exceeded 2.5 s in epoch 1"
    assert epochs == 0


def test_generous_timeout_is_not_hit() -> None:
    x, y = separable(64)
    ticks = itertools.count()
    status, _, epochs = train_model(
        fresh_model(),
        hparams("batch=16"),
        x,
        y,
        epochs=2,
        seed=0,
        timeout_s=100.0,
        clock=lambda: float(next(ticks)),
    )
    assert (status, epochs) == (OK, 2)


@pytest.mark.parametrize("opt", ["adam", "adamw", "sgd", "rmsprop"])
@pytest.mark.parametrize("sched", ["none", "cosine", "onecycle"])
def test_every_optimizer_and_schedule_trains(opt: str, sched: str) -> None:
    x, y = separable(128)
    lr = 0.01 if opt == "rmsprop" else 0.05
    model = fresh_model()
    status, _, _ = train_model(
        model, hparams(f"opt={opt} sched={sched} lr={lr} batch=16"), x, y, epochs=8, seed=0
    )
    assert status == OK
    assert accuracy(model, x, y) >= 0.9


@pytest.mark.parametrize(
    ("opt", "cls"),
    [
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("sgd", torch.optim.SGD),
        ("rmsprop", torch.optim.RMSprop),
    ],
)
def test_make_optimizer_type_and_settings(opt: str, cls: type) -> None:
    optimizer = make_optimizer(nn.Linear(2, 2), hparams(f"opt={opt} lr=0.02 wd=0.001"))
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.02 and group["weight_decay"] == 0.001


def test_sgd_momentum_and_nesterov() -> None:
    sgd = make_optimizer(nn.Linear(2, 2), hparams("opt=sgd momentum=0.5")).param_groups[0]
    assert sgd["momentum"] == 0.5 and sgd["nesterov"] is True
    plain = make_optimizer(nn.Linear(2, 2), hparams("opt=sgd momentum=0")).param_groups[0]
    assert plain["momentum"] == 0.0 and plain["nesterov"] is False


def lrs(name: str, total: int, lr: float = 0.1) -> list[float]:
    model = nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    schedule = make_schedule(optimizer, name, lr, total)
    values = []
    for _ in range(total):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return values + [optimizer.param_groups[0]["lr"]]


def test_schedule_none_is_constant() -> None:
    assert lrs("none", 10) == [0.1] * 11


def test_schedule_cosine_decays_to_zero() -> None:
    values = lrs("cosine", 10)
    assert values[0] == pytest.approx(0.1)
    assert values[5] == pytest.approx(0.05)
    assert values[-1] == pytest.approx(0.0, abs=1e-12)
    assert values == sorted(values, reverse=True)


def test_schedule_onecycle_peaks_at_lr() -> None:
    values = lrs("onecycle", 20)
    assert max(values) == pytest.approx(0.1)
    assert values[0] == pytest.approx(0.1 / 25)  # torch's default div_factor
    assert values[-2] < 1e-5  # the last step trains at the final, smallest rate


@pytest.mark.parametrize("name", ["none", "cosine", "onecycle"])
def test_schedule_survives_one_step(name: str) -> None:
    assert len(lrs(name, 1)) == 2


def test_accuracy_counts_correct_fraction() -> None:
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))  # predicts the larger coordinate
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    assert accuracy(model, x, torch.tensor([0, 1, 1, 0])) == 0.5
    assert accuracy(model, x, torch.tensor([0, 1, 0, 1])) == 1.0


def test_accuracy_on_empty_set_is_zero() -> None:
    assert accuracy(nn.Linear(2, 2), torch.empty(0, 2), torch.empty(0, dtype=torch.long)) == 0.0


def test_accuracy_over_several_eval_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    from ge_nas import train

    monkeypatch.setattr(train, "EVAL_BATCH", 3)
    x, y = separable(10)
    model = fresh_model()
    expected = float((model.eval()(x).argmax(1) == y).float().mean())
    assert accuracy(model, x, y) == pytest.approx(expected)


def test_accuracy_leaves_model_in_eval_mode() -> None:
    model = fresh_model().train()
    accuracy(model, *separable(8))
    assert not model.training


def test_batch_larger_than_data_uses_all_data() -> None:
    x, y = separable(10)
    status, _, epochs = train_model(fresh_model(), hparams("batch=4096"), x, y, epochs=2, seed=0)
    assert (status, epochs) == (OK, 2)


def test_label_smoothing_is_accepted() -> None:
    x, y = separable(64)
    status, _, _ = train_model(fresh_model(), hparams("ls=0.2 batch=16"), x, y, epochs=1, seed=0)
    assert status == OK


def images(n: int = 16, c: int = 1, side: int = 8) -> torch.Tensor:
    return torch.arange(n * c * side * side, dtype=torch.float32).view(n, c, side, side)


@pytest.mark.parametrize("kind", ["none", "crop", "flip", "cropflip"])
def test_augment_keeps_shape_dtype_and_device(kind: str) -> None:
    x = images(c=3)
    out = augment(x, kind, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device


@pytest.mark.parametrize("kind", ["crop", "flip", "cropflip"])
def test_augment_is_seeded(kind: str) -> None:
    x = images(n=64)
    a, b, c = (augment(x, kind, torch.Generator().manual_seed(s)) for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, x)


def test_augment_leaves_flat_inputs_and_none_alone() -> None:
    flat = torch.randn(8, 5)
    assert augment(flat, "cropflip", torch.Generator()) is flat
    x = images()
    assert augment(x, "none", torch.Generator()) is x


def test_flip_mirrors_some_images_and_keeps_the_others() -> None:
    x = images(n=64)
    out = augment(x, "flip", torch.Generator().manual_seed(0))
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 10 < sum(mirrored) < 54


def test_crop_shifts_each_image_by_at_most_the_padding() -> None:
    x = images(n=64) + 1.0  # no zeros inside, so zeros mark the padding
    out = random_crop(x, 2, torch.Generator().manual_seed(0))
    for o, i in zip(out, x):
        shifts = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(o, shifted(i, dy, dx))
        ]
        assert len(shifts) == 1
    assert not torch.equal(out, x)


def shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Return image moved by (dy, dx) pixels with zeros coming in."""
    padded = torch.nn.functional.pad(image, (2, 2, 2, 2))
    h, w = image.shape[-2:]
    return padded[:, 2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w]


def test_crop_padding_by_image_size() -> None:
    assert [crop_padding(s) for s in (8, 28, 32, 64)] == [1, 2, 4, 4]


def test_training_with_augmentation_is_deterministic() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 2, (64,))

    def trained() -> nn.Module:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2))
        assert train_model(model, hparams("aug=cropflip batch=16"), x, y, epochs=2, seed=3)[0] == OK
        return model

    a, b = trained(), trained()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_bf16_autocast_trains_on_cpu() -> None:
    x, y = separable()
    model = fresh_model()
    status, _, epochs = train_model(
        model, hparams("lr=0.05 batch=32"), x, y, epochs=5, seed=1, bf16=True
    )
    assert (status, epochs) == (OK, 5)
    assert accuracy(model, x, y) >= 0.9
    assert all(
        p.dtype == torch.float32 for p in model.parameters()
    )  # autocast keeps float32 weights


def test_bf16_autocast_runs_a_conv_net() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2)
    )
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 2, (32,))
    assert train_model(model, hparams("batch=16"), x, y, epochs=1, seed=0, bf16=True)[0] == OK


def test_auto_device_is_the_cpu_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_device_here() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_is_a_config_error(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=f"--device {name}: CUDA is not available"):
        resolve_device(name)


def test_cuda_device_number_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_device("auto") == torch.device("cuda")
    with pytest.raises(ConfigError, match="--device cuda:2: this machine has 2 GPU"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "mps", ""])
def test_unknown_device_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="--device: unknown device"):
        resolve_device(name)


def test_place_model_makes_conv_weights_channels_last() -> None:
    model = place_model(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2)), torch.device("cpu")
    )
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not model[0].weight.is_contiguous()


def test_time_limit_stops_a_forward_pass_between_layers() -> None:
    slow = torch.nn.Sequential(
        *[torch.nn.Sequential(torch.nn.Identity(), _Sleep(0.05)) for _ in range(200)]
    )
    start = time.monotonic()
    with pytest.raises(TrainingTimeout):
        with time_limit(0.3):
            slow(torch.zeros(1))  # 10 s of layers, one step
    assert time.monotonic() - start < 2.0


def test_a_step_longer_than_the_timeout_is_stopped_inside_it() -> None:
    model = torch.nn.Sequential(
        torch.nn.Flatten(), *[_Sleep(0.05) for _ in range(100)], torch.nn.LazyLinear(2)
    )
    x, y = separable(8)
    start = time.monotonic()
    status, error, epochs = train_model(
        model, hparams("batch=8"), x, y, epochs=3, seed=0, timeout_s=0.5
    )
    assert (status, epochs) == (TIMEOUT, 0) and "in epoch 1" in error
    assert time.monotonic() - start < 3.0


class _Sleep(torch.nn.Module):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return x


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "warned"),
    [(False, False, True), (True, False, False), (False, True, False)],
)
def test_slow_bf16_warns_only_on_a_cpu_without_native_bfloat16(
    monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool, warned: bool
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    warning = slow_bf16(torch.device("cpu"))
    assert (warning is not None) == warned
    assert warning is None or "--bf16" in warning


def test_slow_bf16_says_nothing_on_a_cpu_it_cannot_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    assert slow_bf16(torch.device("cpu")) is None
