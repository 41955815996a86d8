"""Out-of-distribution images for the ood_auroc objective, in a run's input shape and units.

A `--ood` SPEC (parsed by `ge_nas.config.parse_ood`) names where they come from:

- `DATASET:classes=LIST`: those classes of a data set. When DATASET is the run's
  own, the run's `--classes` must leave them out, so no network ever trains on them.
- `DATASET`: every image of another data set.
- `npz:PATH`: an .npz archive with an array `x` of images (or a data set's
  `x_train` and `x_test`), in the npz data reader's layouts.
- `noise`: seeded uniform noise over the run's raw value range.

Images that do not match the run's are converted: grey to RGB by repeating the
channel, RGB to grey by averaging; another height and width by bilinear
resizing (antialiased); values mapped linearly from the source's raw range (its
training images' least and greatest value) onto the run's; then standardised
with the run's training statistics, as the run's own images are.

The search scores with the training part of the source (held-out classes are in
no training split, so they are unseen); only finalists use its test part.
Images are chosen with a generator seeded by the split seed, so every network
of a run meets the same ones; each process loads them once (`ood_images`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from ge_nas.config import OodSpec, RunConfig, classes_text, parse_classes, parse_ood
from ge_nas.data.datasets import NPZ_PREFIX, canonical_name, load_dataset, load_raw
from ge_nas.data.npz import to_nchw
from ge_nas.data.standardization import Standardization
from ge_nas.errors import ConfigError, DatasetError

PARTS = ("train", "test")  # the search scores with the source's training part, finalists its test
ValueRange = tuple[float, float]


def check_ood(config: RunConfig, count: int) -> None:
    """Raise ConfigError unless the run's --ood images can be had (nothing to check without --ood).

    count is the number of validation images they are scored against.
    """
    if config.ood is None:
        return
    for part in PARTS:
        ood_images(config.ood, config.dataset, config.data_dir, config.classes, part, count,
                   config.split_seed)  # fmt: skip


@functools.lru_cache(maxsize=4)
def ood_images(
    ood: str,
    dataset: str,
    data_dir: str | None,
    classes: str | None,
    part: str,
    count: int,
    seed: int,
) -> torch.Tensor:
    """Return count (or all, if fewer) out-of-distribution images, standardised for a run (cached).

    The run is dataset (in data_dir, in the class view classes); part is "train"
    (the search) or "test" (finalists); the images are chosen, and noise drawn,
    with a generator seeded by seed. The result is float32 (n, C, H, W) in the
    run's input shape and standardised units.

    Raises:
        ConfigError: the SPEC is malformed, names an unknown data set or a missing file,
            names classes the run trains on, or its images cannot take the run's input shape.
    """
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; expected one of {', '.join(PARTS)}")
    spec = parse_ood(ood)
    run = load_dataset(dataset, data_dir, classes=classes)
    target = raw_range(run.x_train, run.standardization)
    generator = torch.Generator().manual_seed(seed + PARTS.index(part))
    if spec.kind == "noise":
        x = torch.rand((count, *run.input_shape), generator=generator)
        x = x * (target[1] - target[0]) + target[0]
        return run.standardization.apply_(x)
    images, source = _source_images(spec, ood, dataset, data_dir, classes, part)
    rows = torch.randperm(len(images), generator=generator)[:count].sort().values.numpy()
    return convert_images(images[rows], source, run.input_shape, target, run.standardization,
                          f"--ood {ood!r}")  # fmt: skip


def raw_range(x: torch.Tensor, standardization: Standardization) -> ValueRange:
    """Return the least and greatest raw value of standardised images x (N, C, H, W)."""
    mean, std = standardization.tensors()
    low = x.amin(dim=(0, 2, 3)).view(mean.shape) * std + mean
    high = x.amax(dim=(0, 2, 3)).view(mean.shape) * std + mean
    return float(low.min()), float(high.max())


def convert_images(
    x: np.ndarray,
    source: ValueRange,
    shape: tuple[int, int, int],
    target: ValueRange,
    standardization: Standardization,
    what: str,
) -> torch.Tensor:
    """Return raw images x (N, C, H, W) in shape (C, H, W), mapped from the source to the target range, standardised.

    Grey becomes RGB by repeating the channel, RGB grey by averaging; another
    height and width is reached by antialiased bilinear resizing; values map
    linearly from the source's raw range onto the target's. what names the
    images in messages.

    Raises:
        ConfigError: the channels are neither alike nor grey and RGB, or one of the
            shapes is 1-D (height or width 1) and they differ.
    """
    images = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    channels, height, width = shape
    have = int(images.shape[1])
    if have != channels:
        if (have, channels) == (1, 3):
            images = images.expand(-1, 3, -1, -1)
        elif (have, channels) == (3, 1):
            images = images.mean(dim=1, keepdim=True)
        else:
            raise ConfigError(
                f"{what}: images with {have} channels cannot be brought to the run's {channels}; "
                "expected the same channels, or grey (1) and RGB (3) either way"
            )
    size = (int(images.shape[2]), int(images.shape[3]))
    if size != (height, width):
        if 1 in (*size, height, width):
            raise ConfigError(
                f"{what}: images of shape {tuple(images.shape[1:])} cannot be resized to the run's "
                f"input {shape}: one of them is 1-D (height or width 1); expected images of "
                f"shape {shape}, or 2-D images both"
            )
        images = functional.interpolate(
            images, size=(height, width), mode="bilinear", align_corners=False, antialias=True
        )
    low, high = source
    scale = (target[1] - target[0]) / (high - low) if high > low else 0.0
    images = (images - low) * scale + target[0]
    return standardization.apply_(images.contiguous())


def _source_images(
    spec: OodSpec,
    ood: str,
    dataset: str,
    data_dir: str | None,
    classes: str | None,
    part: str,
) -> tuple[np.ndarray, ValueRange]:
    """Return a part's raw images (N, C, H, W) of a data set or npz SPEC and the source's raw range."""
    if spec.kind == "npz":
        _check_not_own_npz(spec, ood, dataset, data_dir)
        return _npz_images(spec.name, ood, data_dir, part)
    name = _canonical(spec.name, ood)
    try:
        arrays = load_raw(name, data_dir)
    except DatasetError as exc:
        raise DatasetError(f"--ood {ood!r}: {exc}") from None
    source = (float(arrays.x_train.min()), float(arrays.x_train.max()))
    x, y = (arrays.x_train, arrays.y_train) if part == "train" else (arrays.x_test, arrays.y_test)
    own = name == _canonical(dataset, ood)
    if spec.classes is None:
        if own:
            raise ConfigError(_own_data_set(ood, name, classes, arrays.num_classes))
        return x, source
    labels = _held_out(spec.classes, ood, name, arrays.num_classes)
    if own:
        _check_not_trained(labels, ood, name, classes, arrays.num_classes)
    rows = np.isin(y, np.asarray(labels))
    if not rows.any():
        raise ConfigError(
            f"--ood {ood!r}: {name} has no {'training' if part == 'train' else 'test'} images of "
            "these classes; expected classes with images in both parts"
        )
    return x[rows], source


def _canonical(name: str, ood: str) -> str:
    try:
        return canonical_name(name)
    except DatasetError as exc:
        raise DatasetError(f"--ood {ood!r}: {exc}") from None


def _held_out(spec: str, ood: str, name: str, num_classes: int) -> tuple[int, ...]:
    """Return the labels of an --ood class list, checked against the data set's."""
    ranges = parse_classes(spec, flag=f"--ood {ood!r}: classes", least=1)
    if ranges[-1][1] >= num_classes:
        raise ConfigError(
            f"--ood {ood!r}: {name} has no label {max(ranges[-1][0], num_classes)}; "
            f"the data set has labels 0-{num_classes - 1}"
        )
    return tuple(label for low, high in ranges for label in range(low, high + 1))


def _check_not_trained(
    held: tuple[int, ...], ood: str, name: str, classes: str | None, num_classes: int
) -> None:
    """Raise ConfigError when the run's class view trains on some of the held-out classes."""
    rest = [label for label in range(num_classes) if label not in held]
    suggestion = _suggest(rest)
    if classes is None:
        raise ConfigError(
            f"--ood {ood!r}: the run trains on every class of {name}, classes "
            f"{_text(held)} too; add --classes {suggestion} (the classes without them)"
        )
    trained = [label for low, high in parse_classes(classes) for label in range(low, high + 1)]
    overlap = sorted(set(trained) & set(held))
    if overlap:
        keep = [label for label in trained if label not in held]
        better = _suggest(keep) if len(keep) >= 2 else suggestion
        raise ConfigError(
            f"--ood {ood!r}: classes {_text(overlap)} are also trained on (--classes {classes}); "
            f"held-out classes must be unseen: give --classes {better} (without {_text(held)})"
        )


def _own_data_set(ood: str, name: str, classes: str | None, num_classes: int) -> str:
    """Return the message for --ood naming the run's own data set without held-out classes."""
    trained = (
        [label for low, high in parse_classes(classes) for label in range(low, high + 1)]
        if classes is not None
        else list(range(num_classes - 1))
    )
    rest = [label for label in range(num_classes) if label not in trained]
    example = f"--ood {name}:classes={_suggest(rest)}"
    if classes is None:
        example += f" with --classes {_suggest(trained)}"
    return (
        f"--ood {ood!r} is the run's own data set, and the run trains on "
        f"{'its classes' if classes is None else f'its classes {classes}'}; "
        f"hold classes out instead, e.g. {example}"
    )


def _suggest(labels: list[int]) -> str:
    return classes_text(tuple((label, label) for label in labels)) if labels else "?"


def _text(labels: list[int] | tuple[int, ...]) -> str:
    return ",".join(map(str, labels))


def _npz_path(raw: str, data_dir: str | None) -> Path | None:
    """Return the file an npz path names (a relative one is also tried under data_dir), or None."""
    path = Path(raw).expanduser()
    tried = [path] + ([Path(data_dir) / path] if data_dir and not path.is_absolute() else [])
    return next((p for p in tried if p.is_file()), None)


def _check_not_own_npz(spec: OodSpec, ood: str, dataset: str, data_dir: str | None) -> None:
    if dataset[: len(NPZ_PREFIX)].lower() != NPZ_PREFIX:
        return
    own = _npz_path(dataset[len(NPZ_PREFIX) :], data_dir)
    mine = _npz_path(spec.name, data_dir)
    if own is not None and mine is not None and own.resolve() == mine.resolve():
        raise ConfigError(
            f"--ood {ood!r} is the run's own data set, and the run trains on its classes; "
            "expected images of something else"
        )


def _npz_images(
    raw: str, ood: str, data_dir: str | None, part: str
) -> tuple[np.ndarray, ValueRange]:
    """Return a part's images of an OoD .npz (x, or x_train / x_test) and its raw range."""
    path = _npz_path(raw, data_dir)
    if path is None:
        looked = raw + (f" and {Path(data_dir) / raw}" if data_dir else "")
        raise DatasetError(
            f"--ood {ood!r}: no such file (looked at {looked}); "
            "expected an .npz with an array x of images"
        )
    try:
        with np.load(path, allow_pickle=False) as loaded:
            keys = ("x",) if "x" in loaded.files else ("x_train", "x_test")
            if not set(keys) <= set(loaded.files):
                raise DatasetError(
                    f"--ood {ood!r}: {path} has no array x (found "
                    f"{', '.join(loaded.files) or 'none'}); expected an .npz with an array x of images"
                )
            train = loaded[keys[0]]
            x = train if part == "train" or len(keys) == 1 else loaded[keys[1]]
    except DatasetError:
        raise
    except Exception as exc:  # zip, format and pickle errors: all mean a file we cannot use
        raise DatasetError(
            f"--ood {ood!r}: {path} is not a readable .npz archive ({type(exc).__name__}: {exc})"
        ) from exc
    train, x = to_nchw(train, f"--ood {ood!r}: {path}"), to_nchw(x, f"--ood {ood!r}: {path}")
    for images in (train, x):
        if len(images) == 0 or 0 in images.shape[1:]:
            raise DatasetError(f"--ood {ood!r}: {path} holds no images (shape {images.shape})")
        if images.dtype.kind == "f" and not np.isfinite(images).all():
            raise DatasetError(
                f"--ood {ood!r}: {path} holds NaN or infinite values; expected finite numbers"
            )
    return x, (float(train.min()), float(train.max()))
