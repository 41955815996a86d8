"""Trained networks out of a run: a torch state dict with its spec, or ONNX checked by onnxruntime.

A torch export is a directory of three plain files: `model.pt` (the trained
network's state dict), `spec.json` (the ArchSpec) and `meta.json` (input shape,
class count, the per-channel mean and std the data set was standardised
with, and under a class view the original label of each output), so `load_model(dir)` rebuilds the network without the data set and puts
a `Standardize` in front of it: the loaded model, like the ONNX export, takes
raw input as the data set's files give it. Weights are read with
`torch.load(..., weights_only=True)`; nothing else is ever unpickled.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import pickle
import shutil
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ge_nas.arch import ArchSpec
from ge_nas.arch.blocks import blocks
from ge_nas.data import Standardization, Standardize
from ge_nas.errors import ArchError, ConfigError, ExportError
from ge_nas.fidelity import backbone_digest, file_digest, weights_file
from ge_nas.metrics import Metrics
from ge_nas.network.build import Backbone, build_model
from ge_nas.network.ensemble import VOTES, Ensemble

log = logging.getLogger(__name__)

MODEL = "model.pt"
SPEC = "spec.json"
ENSEMBLE = "ensemble.json"  # instead of spec.json: the members' specs and the vote
META = "meta.json"
ONNX = "model.onnx"
FORMATS = ("torch", "onnx")
ONNX_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Meta:
    """What a saved state dict needs besides its spec to become a network that takes raw input.

    standardization None (a meta.json written before ge_nas recorded it): the
    network takes standardised input. classes: under a class view (`--classes`),
    the data set's original label of each output (output i means class classes[i]);
    None: output i is label i.
    """

    input_shape: tuple[int, int, int]
    num_classes: int
    standardization: Standardization | None = None
    classes: tuple[int, ...] | None = None

    def to_json(self) -> str:
        """Return meta.json's text."""
        doc: dict[str, Any] = {
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
        }
        s = self.standardization
        if s is not None:
            doc |= {"input_mean": list(s.mean), "input_std": list(s.std), "input": s.raw}
        if self.classes is not None:
            doc["classes"] = list(self.classes)
        return json.dumps(doc) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "meta.json") -> Meta:
        """Read meta.json's text, checking its values."""
        try:
            doc = json.loads(text)
            shape = tuple(int(v) for v in doc["input_shape"])
            classes = int(doc["num_classes"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{source}: malformed: {exc}") from None
        if len(shape) != 3 or min(shape) < 1 or classes < 1:
            raise ConfigError(
                f"{source}: expected input_shape [C, H, W] and num_classes >= 1, got {doc}"
            )
        standardization = _standardization(doc, shape[0], source)
        labels = _classes(doc, classes, source)
        return cls((shape[0], shape[1], shape[2]), classes, standardization, labels)


def _classes(doc: dict[str, Any], num_classes: int, source: str) -> tuple[int, ...] | None:
    """Return meta.json's classes (each output's original label), or None when it has none."""
    if "classes" not in doc:
        return None
    labels = doc["classes"]
    if (
        not isinstance(labels, list)
        or len(labels) != num_classes
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in labels)
        or labels != sorted(set(labels))
    ):
        raise ConfigError(
            f"{source}: expected classes as {num_classes} ascending distinct labels >= 0 "
            f"(the original label of each output), got {labels!r}"
        )
    return tuple(labels)


def _standardization(doc: dict[str, Any], channels: int, source: str) -> Standardization | None:
    """Return meta.json's input_mean, input_std and input, or None when it has none of them."""
    keys = ("input_mean", "input_std", "input")
    if not any(k in doc for k in keys):
        return None
    try:
        mean, std = (tuple(float(v) for v in doc[k]) for k in keys[:2])
        raw = doc["input"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{source}: malformed input_mean, input_std or input: {exc}") from None
    finite = all(math.isfinite(v) for v in mean + std)
    if len(mean) != channels or len(std) != channels or not finite or min(std) <= 0:
        raise ConfigError(
            f"{source}: expected input_mean and input_std with {channels} finite values "
            f"(one per channel; std > 0), got {doc['input_mean']} and {doc['input_std']}"
        )
    if not isinstance(raw, str):
        raise ConfigError(f"{source}: expected input as a string, got {raw!r}")
    return Standardization(mean, std, raw)


@dataclass(frozen=True)
class Exported:
    """Where an export went and how closely it matches torch."""

    directory: Path
    files: tuple[Path, ...]
    max_abs_diff: float | None = None  # ONNX against torch on the sample inputs


def write_meta(directory: Path, meta: Meta) -> Path:
    """Write meta.json into directory and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / META
    path.write_text(meta.to_json(), encoding="utf-8")
    return path


def _model_dir(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    directory = path.parent if path.is_file() else path
    if not (directory / MODEL).is_file():
        raise ConfigError(
            f"{path}: no {MODEL} here; expected a directory written by `ge_nas export --format torch` or `ge_nas train`"
        )
    return directory


def load_weights(directory: Path, meta: Meta) -> nn.Module:
    """Rebuild the network of directory's spec.json (or ensemble.json) and load its model.pt (eval mode)."""
    if (directory / ENSEMBLE).is_file():
        specs, vote = read_ensemble(directory / ENSEMBLE)
        members = [build_model(spec, meta.input_shape, meta.num_classes) for spec in specs]
        model: nn.Module = Ensemble(members, vote)
    else:
        model = build_model(
            ArchSpec.from_json(_read(directory / SPEC)), meta.input_shape, meta.num_classes
        )
    try:
        state = torch.load(directory / MODEL, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        OSError,
        ValueError,
        pickle.UnpicklingError,
    ) as exc:  # weights_only refuses any other pickle
        raise ArchError(
            f"{directory / MODEL}: cannot load the weights into the spec's network: {exc}"
        ) from None
    _check_state(state, model.state_dict(), directory / MODEL)
    model.load_state_dict(state)
    return model.eval()


def _check_state(state: object, expected: dict[str, torch.Tensor], path: Path) -> None:
    """Raise ArchError, on one line, naming the keys of state that do not fit expected (a few of each)."""
    if not isinstance(state, dict):
        raise ArchError(f"{path}: expected a state dict (a mapping of names to tensors)")
    missing = [k for k in expected if k not in state]
    unexpected = [str(k) for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if isinstance(state.get(k), torch.Tensor) and state[k].shape != v.shape
    ]
    problems = [
        f"{what} {_few(keys)}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape of", shapes))
        if keys
    ]
    if problems:
        raise ArchError(
            f"{path}: cannot load the weights: its state dict does not fit the spec's network: "
            + "; ".join(problems)
        )


def _few(items: list[str], shown: int = 4) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def load_model(path: str | os.PathLike[str]) -> nn.Module:
    """Return the saved network at path (a directory or its model.pt) in eval mode.

    The model takes raw float32 images (N, C, H, W) as the data set's files give
    them (meta.json's "input") and standardises them itself. Its children are
    `standardize` and `network` (the trained network, model.pt's state dict).
    A meta.json without input_mean and input_std gives the bare network, which
    takes standardised input (a warning says so).

    Raises:
        ConfigError: a file is missing or malformed.
        ArchError: the spec or the weights do not make a network.
    """
    directory = _model_dir(path)
    meta_path = directory / META
    if not meta_path.is_file():
        raise ConfigError(
            f"{directory}: no {META} (input shape and class count); write one with "
            "`python -m ge_nas export RUN_DIR --rank N --format torch`"
        )
    meta = Meta.from_json(_read(meta_path), str(meta_path))
    if meta.standardization is None:
        log.warning(
            "%s has no input_mean/input_std: the model expects input standardised per channel "
            "with its training set's mean and std, not raw data; re-export it with "
            "`python -m ge_nas export RUN_DIR --rank N --format torch` to record them",
            meta_path,
        )
    return raw_input_model(load_weights(directory, meta), meta)


def read_ensemble(path: Path) -> tuple[list[ArchSpec], str]:
    """Return the members' specs and the vote of an ensemble.json.

    Raises:
        ConfigError: the file is not an ensemble ge_nas wrote.
    """
    try:
        doc = json.loads(_read(path))
        vote, members = doc["vote"], doc["members"]
        if vote not in VOTES or not isinstance(members, list) or not members:
            raise ValueError(f"expected a vote in {VOTES} and a non-empty list of members")
        return [ArchSpec.from_json(json.dumps(member)) for member in members], vote
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not an ensemble ge_nas wrote ({exc})") from None


def save_ensemble(
    directory: Path, ensemble: Ensemble, specs: list[ArchSpec], meta: Meta, sources: list[str]
) -> None:
    """Write model.pt (the ensemble's state dict), ensemble.json and meta.json: load_model reads them."""
    write_meta(directory, meta)
    torch.save(ensemble.state_dict(), directory / MODEL)
    doc = {
        "vote": ensemble.vote,
        "members": [json.loads(spec.to_json()) for spec in specs],
        "sources": sources,
    }
    (directory / ENSEMBLE).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def raw_input_model(network: nn.Module, meta: Meta) -> nn.Module:
    """Return network behind a Standardize of meta's statistics (network itself without them), in eval mode."""
    if meta.standardization is None:
        return network.eval()
    steps = OrderedDict(standardize=Standardize(meta.standardization), network=network)
    return nn.Sequential(steps).eval()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing") from None


def export_torch(source: Path, out: Path, meta: Meta) -> Exported:
    """Copy source's model.pt and spec.json to out with a meta.json, checking that they load."""
    load_weights(source, meta)
    out.mkdir(parents=True, exist_ok=True)
    files = [
        Path(shutil.copyfile(source / name, out / name)) for name in (MODEL, _spec_file(source))
    ]
    files.append(write_meta(out, meta))
    return Exported(out, tuple(files))


def export_onnx(source: Path, out: Path, meta: Meta, sample: torch.Tensor) -> Exported:
    """Write model.onnx (dynamic batch; raw input, as load_model's) and check it against torch on sample.

    sample: raw images (N, C, H, W) float32, as the data set's files give them.

    Raises:
        ConfigError: onnx or onnxruntime is not installed.
        ExportError: the largest absolute difference of the logits exceeds ONNX_TOLERANCE.
    """
    _require_onnx()
    model = raw_input_model(load_weights(source, meta), meta)
    out.mkdir(parents=True, exist_ok=True)
    target, tmp = out / ONNX, out / (ONNX + ".tmp")
    _write_onnx(model, tmp, sample[:1])
    diff = onnx_difference(tmp, model, sample)
    if not diff <= ONNX_TOLERANCE:  # also catches NaN
        tmp.unlink(missing_ok=True)
        raise ExportError(
            f"ONNX model differs from torch by {diff:.3g} (> {ONNX_TOLERANCE:g}) on {len(sample)} sample inputs; not written"
        )
    os.replace(tmp, target)
    spec = _spec_file(source)
    if source.resolve() != out.resolve():
        shutil.copyfile(source / spec, out / spec)
    files = (target, out / spec, write_meta(out, meta))
    return Exported(out, files, diff)


def _spec_file(directory: Path) -> str:
    """Return the name of what describes directory's network: ensemble.json or spec.json."""
    return ENSEMBLE if (directory / ENSEMBLE).is_file() else SPEC


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ConfigError(
            "ONNX export needs onnx and onnxruntime: pip install 'ge_nas[export]'"
        ) from None


def _write_onnx(model: nn.Module, path: Path, example: torch.Tensor) -> None:
    import onnx

    # The TorchScript exporter needs no onnxscript; torch >= 2.9 warns that it is deprecated.
    legacy: dict[str, Any] = (
        {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            **legacy,
        )
    onnx.checker.check_model(str(path))


def onnx_difference(path: Path, model: nn.Module, sample: torch.Tensor) -> float:
    """Return the largest absolute difference between onnxruntime's and torch's logits on sample."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = sample.detach().to(torch.float32).contiguous()
    (ours,) = session.run(["logits"], {"input": x.numpy()})
    with torch.no_grad():
        theirs = model(x).numpy()
    return float(abs(ours - theirs).max()) if theirs.size else 0.0


def save_model(
    directory: Path, model: nn.Module, spec: ArchSpec, metrics: Metrics, meta: Meta
) -> None:
    """Write model.pt (the state dict), spec.json, meta.json and metrics.json: ge_nas.load_model reads them."""
    write_meta(directory, meta)
    torch.save(model.state_dict(), directory / "model.pt")
    (directory / "spec.json").write_text(spec.to_json() + "\n", encoding="utf-8")
    (directory / "metrics.json").write_text(metrics.to_json() + "\n", encoding="utf-8")


@lru_cache(maxsize=2)
def load_backbone(path: str, digest: str = "") -> Backbone:
    """Return the backbone network of a ge_nas model directory, its trained weights loaded (cached per process).

    digest, when given, must be the weights file's (ge_nas.fidelity.backbone_digest):
    a backbone that changed since the run started is refused.

    Raises:
        ConfigError: a file is missing, unreadable, corrupt or changed; the network
            has no blocks or is itself a transfer network. The message is one line.
    """
    weights = weights_file(path)
    directory = weights.parent
    found = backbone_digest(path)
    if digest and found != digest:
        raise ConfigError(
            f"--backbone {path}: {weights} changed since the run started (sha256 {found}, "
            f"expected {digest})"
        )
    try:
        spec = ArchSpec.from_json(_read(directory / SPEC))
        meta_path = directory / META
        meta = Meta.from_json(_read(meta_path), str(meta_path))
        network = load_weights(directory, meta)
        count = len(blocks(spec))
    except (ConfigError, ArchError) as exc:
        raise ConfigError(f"--backbone {path}: {_first_line(exc)}") from None
    if count == 0:
        raise ConfigError(
            f"--backbone {path}: its network has no weighted layer (conv, sepconv, res, dense), "
            "so no block to keep"
        )
    assert isinstance(network, nn.Sequential)  # what build_model returns
    return Backbone(spec, meta.input_shape, network, found)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().split("\n")[0]


def weights_sha(directory: Path) -> str:
    """Return the first 16 hex digits of the SHA-256 of directory's model.pt (a base model's identity)."""
    try:
        return file_digest(directory / MODEL)
    except OSError as exc:
        raise ConfigError(f"{directory / MODEL}: cannot read the weights: {exc.strerror}") from None


@dataclass(frozen=True)
class BaseModel:
    """A trained network that `ge_nas prune` prunes: its spec, meta, network (eval mode) and weights hash."""

    spec: ArchSpec
    meta: Meta
    network: nn.Sequential
    sha: str


def load_base(directory: Path) -> BaseModel:
    """Return the single trained network saved in directory (model.pt, spec.json, meta.json).

    Raises:
        ConfigError: a file is missing, or the directory holds an ensemble.
        ArchError: the spec or the weights do not make a network.
    """
    if (directory / ENSEMBLE).is_file():
        raise ConfigError(
            f"{directory}: an ensemble (ensemble.json) cannot be pruned; give one of its members' "
            "model directories"
        )
    for name in (MODEL, SPEC, META):
        if not (directory / name).is_file():
            raise ConfigError(
                f"{directory}: no {name}; expected a model directory with trained weights "
                "(model.pt, spec.json, meta.json): front/N or best/ of a run, or what `ge_nas train` saved"
            )
    meta = Meta.from_json(_read(directory / META), str(directory / META))
    spec = ArchSpec.from_json(_read(directory / SPEC))
    network = load_weights(directory, meta)
    assert isinstance(network, nn.Sequential)
    return BaseModel(spec, meta, network, weights_sha(directory))
