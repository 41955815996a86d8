"""The frozen-feature cache: what a network's frozen first modules compute, computed once per worker.

A prefix of modules that does not train (a transfer network's frozen backbone
blocks, a pruned network's unpruned trunk) stays in eval mode, so it maps the
same images to the same features every time, as long as nothing random
reaches it: no augmentation (augmentation works on the input images, so
`aug` other than none turns the cache off for that phenotype) and no
trainable layer in front of it (a transfer network's channel adapter). Such a
network trains its remaining modules on the cached features of the training
images, and is scored on those of the validation and test images; batches,
shuffling and dropout draw the same random numbers as without the cache, so
the two give the same network up to float rounding.

Each worker process owns one FeatureCache (the executor's worker loop makes
it and hands it to every evaluation). Its entries are keyed by what computes
the features (the backbone's or base model's weights hash and the prefix
length), the images (data set, view, split, subset, part) and how (device,
bfloat16 autocast); it holds at most `--feature-cache-mb`, evicting the least
recently used entry first, and refuses an entry larger than that (that part
then runs uncached). What each evaluation did with it travels back as a
CacheNote; the run prints a line per new entry and a summary (CacheTally).
"""

from __future__ import annotations

import collections
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from ge_nas.arch import Value
from ge_nas.network.build import TransferNet
from ge_nas.train import EVAL_BATCH, autocast

MB = 1 << 20
PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class FeatureKey:
    """What identifies one entry: the prefix's weights and length, the images, and how they were computed."""

    network: str  # e.g. "backbone 1a2b3c4d5e6f7a8b, modules 1-4"
    data: str  # the data set, view, split and subset the images come from
    part: str  # one of PARTS
    device: str
    bf16: bool = False  # computed under bfloat16 autocast, as training sees them

    def text(self) -> str:
        """Return the key in words, for the run's output."""
        how = f"{self.device}{', bf16' if self.bf16 else ''}"
        return f"{self.network} | {self.data} | {self.part} ({how})"


@dataclass(frozen=True)
class CacheNote:
    """What one evaluation did with its worker's cache (plain data: it travels back with the metrics)."""

    hits: int = 0
    made: tuple[tuple[str, int], ...] = ()  # (key text, bytes) of the entries it added
    refused: tuple[tuple[str, int], ...] = ()  # (key text, bytes) of entries over the cap
    evicted: int = 0
    held_bytes: int = 0  # what the cache holds after the evaluation
    cap_bytes: int = 0
    bypass: str = ""  # why this phenotype did not use it ('' if it did, or had nothing frozen)

    @property
    def used(self) -> bool:
        """True when the evaluation read or wrote an entry."""
        return bool(self.hits or self.made)


class FeatureCache:
    """Features by FeatureKey; never more than cap_mb in all, the least recently used evicted first."""

    def __init__(self, cap_mb: float) -> None:
        self.cap_bytes = int(cap_mb * MB)
        self._entries: OrderedDict[FeatureKey, torch.Tensor] = OrderedDict()
        self.held_bytes = 0  # what the entries take, kept as they come and go
        self._note = CacheNote(cap_bytes=self.cap_bytes)

    def fetch(
        self, key: FeatureKey, compute: Callable[[], torch.Tensor], size: Callable[[], int]
    ) -> torch.Tensor | None:
        """Return key's features: cached, or computed and kept, or None when their size is over the cap.

        size() gives the bytes compute() would return, and is called on a miss only.
        """
        if key in self._entries:
            self._entries.move_to_end(key)
            self._note = replace(self._note, hits=self._note.hits + 1)
            return self._entries[key]
        nbytes = size()
        if nbytes > self.cap_bytes:
            self._note = replace(self._note, refused=(*self._note.refused, (key.text(), nbytes)))
            return None
        evicted = 0
        while self._entries and self.held_bytes + nbytes > self.cap_bytes:
            self.held_bytes -= _nbytes(self._entries.popitem(last=False)[1])
            evicted += 1
        features = compute()
        self._entries[key] = features
        self.held_bytes += _nbytes(features)
        made = (*self._note.made, (key.text(), _nbytes(features)))
        self._note = replace(self._note, made=made, evicted=self._note.evicted + evicted)
        return features

    def bypass(self, reason: str) -> None:
        """Note why the current evaluation does not use the cache."""
        self._note = replace(self._note, bypass=reason)

    def take_note(self) -> CacheNote:
        """Return what happened since the last call, and start a new note."""
        note = replace(self._note, held_bytes=self.held_bytes)
        self._note = CacheNote(cap_bytes=self.cap_bytes)
        return note


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


# --- one evaluation's inputs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """What one part of the data goes through: network maps x to logits.

    Uncached: the whole network on the images. Cached: the modules after the
    frozen prefix (sharing the whole network's modules) on its features.
    """

    network: nn.Module
    x: torch.Tensor


def frozen_stop(model: nn.Module, aug: Value) -> tuple[int, str]:
    """Return how many first modules of model are a cacheable frozen prefix (0: none), and why not.

    The prefix is the frozen modules of a TransferNet when they start at the
    input and no augmentation reaches them.
    """
    if not isinstance(model, TransferNet) or not model.frozen_modules:
        return 0, ""
    if model.frozen_modules.start != 0:
        return 0, "a trainable adapter is in front of the frozen modules"
    if aug not in ("none", None):
        return 0, f"augmentation (aug={aug}) reaches the frozen modules"
    return model.frozen_modules.stop, ""


def cached_inputs(
    cache: FeatureCache,
    model: TransferNet,
    images: dict[str, torch.Tensor],
    keys: dict[str, FeatureKey],
) -> dict[str, Inputs]:
    """Return each part's Inputs: the cached features of keys[part] where the cap allows, else its images.

    model's frozen modules start at the input (see frozen_stop). Training
    features (keys' bf16) are computed under bfloat16 autocast, as the
    uncached training loop would compute them.
    """
    prefix, rest = model.frozen_part(), model.unfrozen_part()
    inputs = {part: Inputs(model, x) for part, x in images.items()}
    for part, key in keys.items():
        features = _fetch(cache, prefix, key, images[part])
        if features is not None:
            inputs[part] = Inputs(rest, features)
    return inputs


def _fetch(
    cache: FeatureCache, prefix: nn.Module, key: FeatureKey, x: torch.Tensor
) -> torch.Tensor | None:
    """Return prefix's features of x from the cache (computed on a miss), or None (refused, or no images)."""
    if len(x) == 0:
        return None
    features = cache.fetch(
        key,
        lambda: compute_features(prefix, x, key.bf16),
        lambda: len(x) * _nbytes(compute_features(prefix, x[:1], key.bf16)),
    )
    return features if features is not None and len(features) == len(x) else None


@torch.no_grad()
def compute_features(prefix: nn.Module, x: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    """Return prefix's outputs on x in eval mode, computed in batches of EVAL_BATCH."""
    prefix.eval()
    with autocast(x.device, bf16):
        return torch.cat([prefix(x[i : i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])


# --- the run's report --------------------------------------------------------------------------------


@dataclass
class CacheTally:
    """The workers' cache notes added up in the main process: lines for the run's output."""

    hits: int = 0
    made: int = 0
    made_bytes: int = 0
    refused: int = 0
    evicted: int = 0
    used: int = 0  # evaluations that read or wrote an entry
    bypassed: collections.Counter[str] = field(default_factory=collections.Counter)
    held: dict[str, int] = field(default_factory=dict)  # worker -> bytes held after its last note

    def add(self, worker: str, note: CacheNote) -> list[str]:
        """Count one evaluation's note; return a line per entry it made or refused."""
        self.hits += note.hits
        self.made += len(note.made)
        self.made_bytes += sum(n for _, n in note.made)
        self.refused += len(note.refused)
        self.evicted += note.evicted
        self.used += note.used
        if note.bypass:
            self.bypassed[note.bypass] += 1
        self.held[worker] = note.held_bytes
        cap = f"{_mb(note.held_bytes)} of {_mb(note.cap_bytes)} MB held"
        lines = [
            f"feature cache [{worker}]: + {text}: {_mb(n)} MB ({cap})" for text, n in note.made
        ]
        return lines + [
            f"feature cache [{worker}]: refused {text}: {_mb(n)} MB is over the "
            f"{_mb(note.cap_bytes)} MB cap (--feature-cache-mb); that part runs uncached"
            for text, n in note.refused
        ]

    def summary(self) -> str | None:
        """Return one line on what the cache did in the run, or None when it did nothing."""
        if not (self.used or self.refused or self.bypassed):
            return None
        off = "; ".join(f"{n} evaluation(s): {why}" for why, n in self.bypassed.items())
        return (
            f"feature cache: {self.used} evaluation(s) used it, {self.hits} hit(s), "
            f"{self.made} entr{'y' if self.made == 1 else 'ies'} made ({_mb(self.made_bytes)} MB), "
            f"{self.evicted} evicted, {self.refused} refused; "
            f"held at the end {_mb(sum(self.held.values()))} MB over {len(self.held)} worker(s)"
            + (f"; not used by {off}" if off else "")
        )


def _mb(n: int) -> str:
    return f"{n / MB:.1f}"
