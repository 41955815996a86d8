"""The ensemble command: a run's trained networks voting as one, against its best member.

python -m ge_nas ensemble runs/RUN [--members front|top:K] [--vote soft|hard] [--out DIR]

Members are the run's trained networks (front/<rank>/: the finalists, and any
front member trained into the run with `ge_nas train --from RUN --rank N --out
RUN/front/N`). They are scored on the held-out slice of the validation split
that no finalist trained on (the run's --final-holdout; under --shots the whole
validation split) and on the test set. The best member is the one the
held-out slice chooses; `top:K` takes the K best by held-out accuracy. The
test set is reported, never used to choose. With out-of-distribution images
(the run's --ood, or --ood SPEC here) each member and the ensemble also get an
OoD AUROC: the held-out slice against images from the OoD source's training
part, the test set against its test part. The ensemble's score is the largest
mean softmax probability of its members (msp) or their mean energy, whatever
the vote. The ensemble is saved as one
module (model.pt with ensemble.json and meta.json, which ge_nas.load_model
opens, and model.onnx when onnx is installed), taking raw input like any
exported model.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from torch import nn

from ge_nas import rundir
from ge_nas.arch import ArchSpec
from ge_nas.config import OOD_SCORES, RunConfig
from ge_nas.data import load_splits
from ge_nas.data.datasets import Splits, final_splits
from ge_nas.data.ood import ood_images
from ge_nas.errors import ConfigError
from ge_nas.export import (
    ENSEMBLE,
    META,
    MODEL,
    ONNX,
    SPEC,
    Meta,
    export_onnx,
    load_weights,
    save_ensemble,
)
from ge_nas.network import count_params
from ge_nas.network.ensemble import VOTES, Ensemble, combine
from ge_nas.scoring import auroc, scores_of_logits
from ge_nas.train import predict_logits

ENSEMBLE_FILES = (MODEL, ENSEMBLE, META, ONNX, ONNX + ".tmp", "metrics.json")
ONNX_SAMPLES = 64


def add_ensemble_arguments(p: argparse.ArgumentParser) -> None:
    """Add the arguments of `ensemble`."""
    p.add_argument("run", metavar="RUN_DIR", help="a finished run directory")
    p.add_argument(
        "--members",
        default="front",
        help="front (every trained network of the run) or top:K (the K best on the held-out slice); default front",
    )
    p.add_argument(
        "--vote",
        choices=VOTES,
        default="soft",
        help="soft (mean probability, default) or hard (majority)",
    )
    p.add_argument(
        "--ood",
        metavar="SPEC",
        help="out-of-distribution images to score against, as run's --ood (default: the run's, if any)",
    )
    p.add_argument("--ood-score", choices=OOD_SCORES, help="msp or energy (default: the run's)")
    p.add_argument("--out", help="where to save the ensemble (default RUN_DIR/ensemble)")
    p.set_defaults(func=command_ensemble)


@dataclass(frozen=True)
class Member:
    """One trained network of the run and its scores."""

    name: str  # front/<rank>
    spec: ArchSpec
    network: nn.Module
    holdout_logits: torch.Tensor  # on the held-out slice, kept so the ensemble's vote reuses them
    test_logits: torch.Tensor
    scores: Scores
    ood_logits: tuple[torch.Tensor, torch.Tensor] | None  # on the OoD images (held-out, test parts)

    @property
    def params(self) -> int:
        return count_params(self.network)


@dataclass(frozen=True)
class OodImages:
    """Out-of-distribution images to score the held-out slice and the test set against."""

    holdout: torch.Tensor  # from the OoD source's training part
    test: torch.Tensor  # from its test part
    score: str  # msp or energy


@dataclass(frozen=True)
class Scores:
    """Accuracy and OoD AUROC (None without OoD images) on the held-out slice and the test set."""

    holdout: float
    test: float
    holdout_auroc: float | None = None
    test_auroc: float | None = None


def _scores(
    holdout: list[torch.Tensor],
    test: list[torch.Tensor],
    ood_logits: list[tuple[torch.Tensor, torch.Tensor]] | None,
    vote: str,
    held: Splits,
    splits: Splits,
    ood: OodImages | None,
) -> Scores:
    """Return the scores of one network's (one-element lists) or an ensemble's logits."""
    accuracy = Scores(
        _accuracy(combine(holdout, vote), held.y_val), _accuracy(combine(test, vote), splits.y_test)
    )
    if ood is None or ood_logits is None:
        return accuracy
    aurocs = [
        auroc(scores_of_logits(inside, ood.score), scores_of_logits(outside, ood.score))
        for inside, outside in (
            (holdout, [h for h, _ in ood_logits]),
            (test, [t for _, t in ood_logits]),
        )
    ]
    return replace(accuracy, holdout_auroc=aurocs[0], test_auroc=aurocs[1])


def command_ensemble(args: argparse.Namespace, console: Console) -> int:
    """Score the ensemble of a run's trained networks against its best member; save it as one module."""
    run = Path(args.run)
    config = rundir.load_run_config(run)
    count = _member_count(args.members)
    out = Path(args.out) if args.out else run / "ensemble"
    rundir.check_empty_dir(out, allowed=ENSEMBLE_FILES)
    directories = trained_members(run)
    if count is not None and count > len(directories):
        raise ConfigError(
            f"--members top:{count}: {run} has only {len(directories)} trained networks"
        )
    meta = _common_meta(directories)
    held, test = _scoring_splits(config)
    ood = _ood_images(config, args.ood, args.ood_score, held, test)
    members = [_scored(d, run, meta, held, test, ood) for d in directories]
    if count is not None:
        members = sorted(members, key=lambda m: -m.scores.holdout)[:count]
    ensemble = Ensemble([m.network for m in members], args.vote).eval()
    scores = _scores(  # from the members' logits, computed once
        [m.holdout_logits for m in members],
        [m.test_logits for m in members],
        [m.ood_logits for m in members if m.ood_logits is not None] or None,
        args.vote,
        held,
        test,
        ood,
    )
    best = max(members, key=lambda m: m.scores.holdout)
    console.print(_table(members, scores, best, args.vote, config))
    console.print(_gains(len(members), args.vote, best, scores), highlight=False)
    _save(out, ensemble, members, meta, scores, best, test)
    console.print(
        f"saved to {escape(str(out))}; load it with ge_nas.load_model({str(out)!r})",
        highlight=False,
    )
    return 0


def _member_count(text: str) -> int | None:
    """Return K of 'top:K' (None for 'front'), or raise ConfigError."""
    if text == "front":
        return None
    head, _, k = text.partition(":")
    if head != "top" or not k.isdigit() or int(k) < 2:
        raise ConfigError(f"--members {text!r}: expected front or top:K with K >= 2 (e.g. top:3)")
    return int(k)


def trained_members(run: Path) -> list[Path]:
    """Return the run's trained model directories (front/<rank> with weights), by rank; at least two.

    Raises:
        ConfigError: fewer than two trained networks.
    """
    front = run / "front"
    found = sorted(
        (d for d in front.iterdir() if d.name.isdigit() and (d / MODEL).is_file()),
        key=lambda d: int(d.name),
    ) if front.is_dir() else []  # fmt: skip
    if len(found) < 2:
        raise ConfigError(
            f"{run}: an ensemble needs at least 2 trained networks, found {len(found)} in front/; "
            f"train another front member into the run: python -m ge_nas train --from {run} --rank N --out {front}/N"
        )
    return found


def _common_meta(directories: list[Path]) -> Meta:
    """Return the members' shared meta.json, or raise ConfigError naming the member that differs."""
    metas = [
        Meta.from_json((d / META).read_text(encoding="utf-8"), str(d / META)) for d in directories
    ]
    first = metas[0]
    for directory, meta in zip(directories[1:], metas[1:]):
        for what, ours, theirs in (
            ("input shape", meta.input_shape, first.input_shape),
            ("class count", meta.num_classes, first.num_classes),
            ("classes", meta.classes, first.classes),
            ("input standardisation", meta.standardization, first.standardization),
        ):
            if ours != theirs:
                raise ConfigError(
                    f"{directory}: its {what} is {ours}, but {directories[0]}'s is {theirs}; "
                    "ensemble members must take the same input and give the same classes"
                )
    return first


def _scoring_splits(config: RunConfig) -> tuple[Splits, Splits]:
    """Return (splits whose validation part is the held-out slice, the run's splits for the test set)."""
    c = config
    splits = load_splits(
        c.dataset, c.data_dir, c.val_fraction, c.split_seed, None, c.classes, c.shots, c.val_shots
    )
    return final_splits(splits, c.final_holdout, c.split_seed), splits


def _ood_images(
    config: RunConfig, spec: str | None, score: str | None, held: Splits, test: Splits
) -> OodImages | None:
    """Return the OoD images to score against (--ood, else the run's), or None without any."""
    spec = spec or config.ood
    if spec is None:
        return None
    c = config
    holdout, test_images = (
        ood_images(spec, c.dataset, c.data_dir, c.classes, part, count, c.split_seed)
        for part, count in (("train", len(held.y_val)), ("test", len(test.y_test)))
    )
    return OodImages(holdout, test_images, score or c.ood_score)


def _scored(
    directory: Path, run: Path, meta: Meta, held: Splits, test: Splits, ood: OodImages | None
) -> Member:
    network = load_weights(directory, meta)
    holdout_logits, test_logits = (
        predict_logits(network, held.x_val),
        predict_logits(network, test.x_test),
    )
    ood_logits = (
        None
        if ood is None
        else (predict_logits(network, ood.holdout), predict_logits(network, ood.test))
    )
    return Member(
        str(directory.relative_to(run)),
        ArchSpec.from_json((directory / SPEC).read_text(encoding="utf-8")),
        network,
        holdout_logits,
        test_logits,
        _scores(
            [holdout_logits], [test_logits], ood_logits and [ood_logits], "soft", held, test, ood
        ),
        ood_logits,
    )


def _gains(count: int, vote: str, best: Member, scores: Scores) -> str:
    """Return the line that says what the ensemble gains over its best member."""
    line = (
        f"ensemble of {count} ({vote} vote) against the best member ({best.name}, chosen on the "
        f"held-out slice): {scores.holdout - best.scores.holdout:+.4f} held-out, "
        f"{scores.test - best.scores.test:+.4f} test accuracy"
    )
    if scores.holdout_auroc is None or scores.test_auroc is None:
        return line
    b = best.scores
    assert b.holdout_auroc is not None and b.test_auroc is not None
    return (
        f"{line}; {scores.holdout_auroc - b.holdout_auroc:+.4f} held-out, "
        f"{scores.test_auroc - b.test_auroc:+.4f} test OoD AUROC"
    )


def _score_fields(scores: Scores) -> dict[str, float]:
    """Return the metrics.json fields of scores (the OoD ones only when measured)."""
    fields = {"holdout_accuracy": scores.holdout, "test_accuracy": scores.test}
    if scores.holdout_auroc is not None and scores.test_auroc is not None:
        fields |= {"holdout_ood_auroc": scores.holdout_auroc, "test_ood_auroc": scores.test_auroc}
    return fields


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Return the share of rows whose largest logit is the label (0 for no rows)."""
    return float((logits.argmax(dim=1) == y).float().mean()) if len(y) else 0.0


def _table(
    members: list[Member], scores: Scores, best: Member, vote: str, config: RunConfig
) -> Table:
    honest = config.final_holdout > 0 or config.shots is not None
    table = Table(
        title="Ensemble against its members"
        + (
            ""
            if honest
            else " (no held-out slice: --final-holdout 0, held-out figures were trained on)"
        ),
        title_justify="left",
    )
    heads = ["member", "params", "held-out acc", "test acc"]
    if scores.holdout_auroc is not None:
        heads += ["held-out OoD AUROC", "test OoD AUROC"]
    for head in heads:
        table.add_column(head, justify="left" if head == "member" else "right")
    rows = [(m.name + (" (best)" if m is best else ""), m.params, m.scores) for m in members]
    rows.append((f"ensemble ({vote})", sum(m.params for m in members), scores))
    for name, params, s in rows:
        cells = [f"{s.holdout:.4f}", f"{s.test:.4f}"]
        if s.holdout_auroc is not None and s.test_auroc is not None:
            cells += [f"{s.holdout_auroc:.4f}", f"{s.test_auroc:.4f}"]
        table.add_row(name, f"{params:,}", *cells)
    return table


def _save(
    out: Path,
    ensemble: Ensemble,
    members: list[Member],
    meta: Meta,
    scores: Scores,
    best: Member,
    test: Splits,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    save_ensemble(out, ensemble, [m.spec for m in members], meta, [m.name for m in members])
    doc = {
        "members": [m.name for m in members],
        "vote": ensemble.vote,
        **_score_fields(scores),
        "best_member": {"name": best.name, **_score_fields(best.scores)},
        "params": sum(m.params for m in members),
    }
    (out / "metrics.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return
    x = test.x_test[:ONNX_SAMPLES]  # standardised: back to raw test images, as the model takes them
    if meta.standardization is not None:
        mean, std = meta.standardization.tensors()
        x = x * std + mean
    export_onnx(out, out, meta, x)


PARSERS = {"ensemble": add_ensemble_arguments}
