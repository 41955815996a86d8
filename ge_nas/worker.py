"""Phenotype -> Metrics on a worker.

Only plain data (an `EvalTask`: canonical phenotype text and settings) travels
to a worker; the worker loads the data set once per process, builds, trains
and scores the network, and sends `Metrics` back. Every expected failure
(a shape that cannot work, over budget, NaN loss, timeout, a crash inside
training) comes back as Metrics with a status, never as an exception.

Under pruning (`ge_nas prune`: the task names a base model), a phenotype's
keep masks say which units of the base model stay: the worker loads the base
once per process, removes the other units from its trained weights
(network/prune.py), fine-tunes the smaller network for the task's epochs (0:
not at all), scores it, and saves it with its plain spec (`dense(37)`).
With `freeze_trunk` (or 0 epochs) the layers before the first mask stay as
the base has them.

A worker may hand `evaluate` its FeatureCache (ge_nas.feature_cache): a
network whose first modules are frozen (backbone blocks, a frozen trunk) then
trains the rest on their cached features and is scored on them, and the
Outcome carries a note of what the cache did.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from ge_nas.arch import ArchSpec, parse_arch
from ge_nas.config import field_default
from ge_nas.data import Splits, load_splits
from ge_nas.data.datasets import final_splits
from ge_nas.data.ood import ood_images
from ge_nas.errors import ArchError, ConfigError, GeNasError
from ge_nas.export import BaseModel, Meta, load_backbone, load_base, save_model
from ge_nas.feature_cache import (
    CacheNote,
    FeatureCache,
    FeatureKey,
    Inputs,
    cached_inputs,
    frozen_stop,
)
from ge_nas.metrics import FAILED, INVALID, OK, OVER_BUDGET, Metrics
from ge_nas.network.build import Backbone, TransferNet, build_model, measure, transfer_plan
from ge_nas.network.prune import prune, split_masks, trunk_modules
from ge_nas.scoring import LATENCY_BATCH, auroc, latency_ms, ood_scores, robustness
from ge_nas.train import accuracy, accuracy_and_loss, place_model, resolve_device, train_model

log = logging.getLogger(__name__)

PRUNED_FROM = "pruned_from.json"  # beside a pruned network's files: its base model and masks


@dataclass(frozen=True)
class EvalTask:
    """Everything a worker needs to evaluate one phenotype (plain data only); defaults are RunConfig's."""

    phenotype: str
    seed: int
    dataset: str = field_default("dataset")
    data_dir: str | None = None
    val_fraction: float = field_default("val_fraction")
    split_seed: int = field_default("split_seed")
    train_subset: float | None = None
    classes: str | None = None  # data view: these classes only, relabelled 0..n-1
    shots: int | None = None  # data view: training images per class
    val_shots: int | None = None  # data view: validation images per class (with shots)
    epochs: int = field_default("epochs")
    timeout_s: float | None = None
    max_params: int = 0  # 0: no limit
    max_flops: int = 0
    threads: int = 1
    final: bool = False  # train on train + validation data (finalists)
    holdout: float = (
        0.0  # final: share of the validation split held out to score it (its val_accuracy)
    )
    save_dir: str | None = (
        None  # write model.pt (state dict) and spec.json here when training succeeds
    )
    device: str = field_default("device")
    bf16: bool = False  # bfloat16 autocast while training
    measure_latency: bool = False  # CPU ms per batch of LATENCY_BATCH validation images
    measure_robustness: bool = (
        False  # validation accuracy under Gaussian input noise of noise_sigma
    )
    noise_sigma: float = field_default("noise_sigma")
    # out-of-distribution images (--ood SPEC): the search scores validation images against them
    # (ood_auroc), a finalist its test images (test_ood_auroc); None: neither
    ood: str | None = None
    ood_score: str = field_default("ood_score")
    score_test: bool = True  # test accuracy too (reported only, never used for selection)
    backbone: str | None = None  # a ge_nas model directory that backbone layers take blocks from
    backbone_digest: str = ""  # its weights file's digest: the worker refuses a changed file
    # ge_nas prune: the trained model whose pruned copies the phenotype's keep masks describe,
    # and the hash its model.pt must have (RunConfig's prune_base, prune_base_sha)
    prune_base: str | None = None
    prune_base_sha: str | None = None
    freeze_trunk: bool = field_default("freeze_trunk")  # pruning: fine-tune after the trunk only


@dataclass(frozen=True)
class Outcome:
    """Metrics with where and when they were produced, and what the worker's feature cache did."""

    metrics: Metrics
    worker: str
    started: float
    ended: float
    cache: CacheNote | None = None


def derive_seed(run_seed: int, phenotype_hash: str) -> int:
    """Return an evaluation seed that depends only on the run seed and the phenotype."""
    digest = hashlib.sha256(f"{run_seed}:{phenotype_hash}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@lru_cache(maxsize=2)
def splits_on(splits: Splits, device: torch.device) -> Splits:
    """Return the splits on device, moved there once per process (on the CPU: the splits themselves)."""
    if device.type == "cpu":
        return splits
    moved = {
        name: getattr(splits, name).to(device)
        for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    }
    return replace(splits, **moved)


def evaluate(task: EvalTask, cache: FeatureCache | None = None) -> Outcome:
    """Evaluate one phenotype; the entry point of every worker (cache: the worker's, None for none)."""
    started = time.time()
    metrics = train_phenotype(task, cache)
    note = cache.take_note() if cache is not None else None
    return Outcome(metrics, f"{socket.gethostname()}:{os.getpid()}", started, time.time(), note)


def train_phenotype(task: EvalTask, cache: FeatureCache | None = None) -> Metrics:
    """Build, budget-check, train and score one phenotype (and save it to task.save_dir when it trained).

    With a cache, a frozen first part of the network (transfer: frozen backbone blocks; pruning
    with a frozen trunk: the unpruned trunk) runs once per data part (ge_nas.feature_cache).
    """
    torch.set_num_threads(task.threads)
    try:
        spec = parse_arch(task.phenotype)
        splits = task_splits(task)
        backbone = _backbone(task) if spec.backbone is not None else None
        size = measure(spec, splits.input_shape, splits.num_classes, backbone)
    except ArchError as exc:
        return Metrics(INVALID, error=str(exc), reason=exc.reason)
    except ConfigError as exc:  # the backbone cannot be read (the run checked it when it started)
        return Metrics(FAILED, error=str(exc))
    base = Metrics(OK, params=size.params, flops=size.flops)
    over = _over_budget(task, size.params, size.flops)
    if over:
        return base.with_error(OVER_BUDGET, over)
    try:
        start = initial_network(task, spec, splits, backbone)
    except ArchError as exc:
        return base.with_error(INVALID, str(exc), exc.reason)
    except GeNasError as exc:  # the base model is missing or changed: not this phenotype's fault
        return base.with_error(FAILED, str(exc))
    try:
        return _train_and_score(task, start, splits, base, cache)
    except Exception as exc:  # a crash inside training is this individual's failure, not the run's
        log.debug("training failed", exc_info=True)
        return base.with_error(FAILED, f"{type(exc).__name__}: {exc}")


def task_splits(task: EvalTask) -> Splits:
    """Return the splits a task trains and validates on, in its data view (cached per process)."""
    return load_splits(
        task.dataset, task.data_dir, task.val_fraction, task.split_seed, task.train_subset,
        task.classes, task.shots, task.val_shots,
    )  # fmt: skip


def _backbone(task: EvalTask) -> Backbone | None:
    """Return the task's backbone (loaded once per process), or None when the run has none."""
    if task.backbone is None:
        return None
    return load_backbone(task.backbone, task.backbone_digest)


def _over_budget(task: EvalTask, params: int, flops: int) -> str:
    if task.max_params and params > task.max_params:
        return f"{params:,} parameters exceed --max-params {task.max_params}"
    if task.max_flops and flops > task.max_flops:
        return f"{flops:,} FLOPs exceed --max-flops {task.max_flops}"
    return ""


@dataclass(frozen=True)
class Start:
    """The network a task trains from, and the spec it is saved with (a pruned one's plain spec)."""

    spec: ArchSpec
    network: nn.Module
    pruned_from: dict[str, str] | None = None  # pruning: base directory, its hash, the masks
    frozen_from: str = ""  # whose weights its frozen modules hold: 'backbone <hash>', 'base <hash>'


def initial_network(
    task: EvalTask, spec: ArchSpec, splits: Splits, backbone: Backbone | None = None
) -> Start:
    """Return a new network of spec (seeded), or under pruning the base model pruned by spec's keep masks.

    A transfer network (a backbone layer) starts from the backbone's blocks and is
    saved with them expanded into ordinary layers, so load_model needs no backbone.

    Raises:
        ArchError: keep masks without a base model, layers other than the base model's, a mask
            on a layer that cannot be pruned, or data of another shape than the base model's.
        GeNasError: the base model is missing, unreadable or changed.
    """
    shape, classes = splits.input_shape, splits.num_classes
    torch.manual_seed(task.seed)
    unpruned, masks = split_masks(spec)
    if task.prune_base is None:
        if masks:
            raise ArchError(
                "keep masks prune a trained network: search them with `ge_nas prune MODEL_DIR`, "
                "or train the network without them",
                reason="keep masks need a base model (ge_nas prune)",
            )
        network = build_model(spec, shape, classes, backbone)
        if spec.backbone is None or backbone is None:
            return Start(spec, network)
        expanded = transfer_plan(spec, backbone, shape).spec
        return Start(expanded, network, frozen_from=f"backbone {backbone.digest}")
    base = base_model(task.prune_base, task.prune_base_sha)
    if (base.meta.input_shape, base.meta.num_classes) != (shape, classes):
        raise ArchError(
            f"the data gives inputs {shape} and {classes} classes; the base model "
            f"{task.prune_base} takes {base.meta.input_shape} and {base.meta.num_classes}"
        )
    if unpruned.layers != base.spec.layers:
        raise ArchError(
            f"the layers {' '.join(x.text() for x in unpruned.layers)!r} are not the base model's "
            f"{' '.join(x.text() for x in base.spec.layers)!r}: a pruning grammar may change the "
            "masks and the hyperparameters only",
            reason="layers differ from the base model's",
        )
    pruned, network = prune(unpruned, base.network, shape, classes, masks)
    origin = {"base": task.prune_base, "base_sha": base.sha, "phenotype": spec.canonical()}
    if not (task.freeze_trunk or task.epochs == 0):
        return Start(pruned, network, origin)
    trunk = range(trunk_modules(unpruned, shape, classes, masks))
    return Start(pruned, TransferNet(*network, frozen=trunk), origin, f"base {base.sha}")


@lru_cache(maxsize=2)
def base_model(directory: str, sha: str | None) -> BaseModel:
    """Return the base model of a pruning run, loaded once per process; never train it.

    Raises:
        ConfigError: it is missing, unreadable, or its model.pt no longer has the hash sha.
    """
    base = load_base(Path(directory))
    if sha is not None and base.sha != sha:
        raise ConfigError(
            f"{directory}: model.pt has changed since the pruning run started (its SHA-256 "
            f"begins {base.sha}, the run's base {sha}); restore it, or start a new `ge_nas prune`"
        )
    return base


def _train_and_score(
    task: EvalTask, start: Start, splits: Splits, base: Metrics, cache: FeatureCache | None
) -> Metrics:
    device = resolve_device(task.device)
    splits = splits_on(splits, device)
    model = place_model(start.network, device)
    if task.final:  # train + validation; a held-out slice of validation scores it
        splits = final_splits(splits, task.holdout, task.split_seed)
    begun = time.perf_counter()  # the features a cache computes count as training time
    inputs = _inputs(task, start, model, splits, cache)
    status, error, epochs = OK, "", 0
    if _trains(task, start):
        train = inputs["train"]
        status, error, epochs = train_model(
            train.network, start.spec.hparam_map(), train.x, splits.y_train, epochs=task.epochs,
            seed=task.seed, timeout_s=task.timeout_s, bf16=task.bf16,
        )  # fmt: skip
    trained = replace(base, train_seconds=time.perf_counter() - begun, epochs=epochs)
    if status != OK:
        return trained.with_error(status, error)
    metrics = _score(task, model, splits, trained, inputs)
    if task.save_dir is not None:
        _save(task, start, model, splits, metrics)
    return metrics


def _trains(task: EvalTask, start: Start) -> bool:
    """Return whether the task trains its network (a pruned copy may go unchanged: 0 epochs)."""
    return task.epochs > 0 or start.pruned_from is None


def _inputs(
    task: EvalTask, start: Start, model: nn.Module, splits: Splits, cache: FeatureCache | None
) -> dict[str, Inputs]:
    """Return what each part of the data goes through: the cached features of a frozen prefix, or the images.

    The parts are train, val, test and, with an OoD objective, ood (the OoD images it scores).
    """
    images = {"train": splits.x_train, "val": splits.x_val, "test": splits.x_test}
    if task.ood is not None:
        images["ood"] = _ood_images(task, splits)
    stop, why = frozen_stop(model, start.spec.hparam_map().get("aug", "none"))
    if cache is None or not cache.cap_bytes or not stop or not start.frozen_from:
        if cache is not None and why:
            cache.bypass(why)
        return {part: Inputs(model, x) for part, x in images.items()}
    assert isinstance(model, TransferNet)  # frozen_stop found frozen modules
    network, data = f"{start.frozen_from}, modules 1-{stop}", data_key(task)
    parts = ["train"] * _trains(task, start) + ["val"] + ["test"] * task.score_test
    parts += ["ood"] * (task.ood is not None)
    keys = {
        part: FeatureKey(
            network, data, _part_name(task, part), str(images[part].device),
            task.bf16 and part == "train",
        )
        for part in parts
    }  # fmt: skip
    return cached_inputs(cache, model, images, keys)


def _part_name(task: EvalTask, part: str) -> str:
    """Return a part's name in its cache key: the OoD images say where they come from."""
    if part != "ood":
        return part
    return f"ood {task.ood} ({'test' if task.final else 'train'} part)"


def data_key(task: EvalTask) -> str:
    """Return what identifies the images of a task's splits: data set, view, split and subset."""
    fields = {
        "data_dir": task.data_dir, "classes": task.classes, "shots": task.shots,
        "val_shots": task.val_shots, "val_fraction": task.val_fraction,
        "split_seed": task.split_seed, "subset": task.train_subset,
    }  # fmt: skip
    named = [f"{name}={value}" for name, value in fields.items() if value is not None]
    final = [f"final holdout={task.holdout}"] if task.final else []
    return " ".join([task.dataset, *named, *final])


def _save(task: EvalTask, start: Start, model: nn.Module, splits: Splits, metrics: Metrics) -> None:
    """Save the trained network with start.spec (a transfer network's backbone expanded, a pruned one's plain spec)."""
    assert task.save_dir is not None
    meta = Meta(splits.input_shape, splits.num_classes, splits.standardization, splits.classes)
    save_model(Path(task.save_dir), model.cpu(), start.spec, metrics, meta)
    if start.pruned_from is not None:
        path = Path(task.save_dir) / PRUNED_FROM
        path.write_text(json.dumps(start.pruned_from, indent=2) + "\n", encoding="utf-8")


def _score(
    task: EvalTask, model: nn.Module, splits: Splits, trained: Metrics, inputs: dict[str, Inputs]
) -> Metrics:
    """Return trained with the accuracies and the objectives the task asks for.

    Accuracies and OoD AUROC come from inputs (cached features where there are some);
    robustness and latency run the whole model on images.
    """
    val, val_loss = accuracy_and_loss(inputs["val"].network, inputs["val"].x, splits.y_val)
    test = None
    if task.score_test:
        test = accuracy(inputs["test"].network, inputs["test"].x, splits.y_test)
    robust = None
    if task.measure_robustness:  # the same noise for every network of a run: seeded by the split
        robust = robustness(
            model, splits.x_val, splits.y_val, sigma=task.noise_sigma, seed=task.split_seed
        )
    latency = latency_ms(model, _latency_batch(splits)) if task.measure_latency else None
    ood = _ood_auroc(task, inputs)
    return replace(
        trained,
        val_accuracy=val,
        val_loss=val_loss,
        chance=majority_share(splits.y_val),
        test_accuracy=test,
        robustness=robust,
        latency_ms=latency,
        ood_auroc=None if task.final else ood,
        test_ood_auroc=ood if task.final else None,
    )


def majority_share(labels: torch.Tensor) -> float | None:
    """Return the most frequent label's share of labels (None for no labels)."""
    if not len(labels):
        return None
    return float(torch.bincount(labels.long()).max()) / len(labels)


def _ood_images(task: EvalTask, splits: Splits) -> torch.Tensor:
    """Return the OoD images a task scores against, as many as its in-distribution ones.

    They come from the source's training part during a search and from its test
    part for finalists; both are the same for every network of a run.
    """
    part, x_in = ("test", splits.x_test) if task.final else ("train", splits.x_val)
    x_out = ood_images(task.ood or "", task.dataset, task.data_dir, task.classes, part,
                       len(x_in), task.split_seed)  # fmt: skip
    return x_out.to(x_in.device)


def _ood_auroc(task: EvalTask, inputs: dict[str, Inputs]) -> float | None:
    """Return the OoD AUROC the task asks for: a search's of validation images, a finalist's of test ones."""
    if task.ood is None:
        return None
    inside, outside = inputs["test" if task.final else "val"], inputs["ood"]
    return auroc(
        ood_scores(inside.network, inside.x, task.ood_score),
        ood_scores(outside.network, outside.x, task.ood_score),
    )


def _latency_batch(splits: Splits) -> torch.Tensor:
    x = splits.x_val if len(splits.y_val) else splits.x_train
    return x[:LATENCY_BATCH]
