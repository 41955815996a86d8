"""Ensembles: a run's trained networks vote as one module, saved, loadable, compared with the best member."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ge_nas import load_model, rundir
from ge_nas.cli import main
from ge_nas.data import load_dataset, load_raw
from ge_nas.data.ood import ood_images
from ge_nas.network.ensemble import Ensemble
from ge_nas.scoring import auroc, scores_of_logits


def constant(logits: list[float]) -> torch.nn.Module:
    """Return a module that gives the same logits for every input."""

    class Constant(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tensor(logits).expand(len(x), -1)

    return Constant()


def test_soft_vote_is_the_mean_probability() -> None:
    members = [constant([2.0, 0.0, 0.0]), constant([0.0, 3.0, 0.0])]
    out = Ensemble(members, "soft")(torch.zeros(4, 1))
    mean = (torch.tensor([2.0, 0, 0]).softmax(0) + torch.tensor([0, 3.0, 0]).softmax(0)) / 2
    assert torch.allclose(out.softmax(dim=1), mean.expand(4, -1), atol=1e-6)


def test_hard_vote_counts_votes_and_breaks_ties_by_confidence() -> None:
    members = [constant([2.0, 0.0, 0.0]), constant([0.0, 1.0, 0.0]), constant([0.0, 1.5, 0.0])]
    assert Ensemble(members, "hard")(torch.zeros(1, 1)).argmax().item() == 1, "two votes beat one"
    tie = [constant([5.0, 0.0]), constant([0.0, 0.1])]
    assert Ensemble(tie, "hard")(torch.zeros(1, 1)).argmax().item() == 0, (
        "the surer member wins a tie"
    )
    with pytest.raises(ValueError, match="expected one of soft, hard"):
        Ensemble(tie, "mean")


@pytest.fixture
def ensemble_run(copy_run: Callable[..., Path]) -> Path:
    """Return a copy of the tiny run with two more networks trained into its front/ directory."""
    run = copy_run()
    for rank, text in ((8, "conv(8,3) relu pool | opt=adam"), (9, "conv(4,5) relu | opt=adam")):
        argv = ["train", "--phenotype", text, "--dataset", "digits", "--epochs", "1"]
        assert main([*argv, "--out", str(run / "front" / str(rank))]) == 0
    return run


@pytest.mark.parametrize("vote", ["soft", "hard"])
def test_ensemble_of_a_run_is_saved_and_loads_with_its_accuracy(
    ensemble_run: Path, tmp_path: Path, vote: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ensemble_run
    out = tmp_path / "ens"
    assert main(["ensemble", str(run), "--vote", vote, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(best)" in printed and f"ensemble ({vote})" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["members"][0] == "front/1" and metrics["members"][-2:] == ["front/8", "front/9"]
    assert metrics["vote"] == vote
    model = load_model(out)
    raw = load_raw("digits")
    x, y = torch.from_numpy(raw.x_test).float(), torch.from_numpy(raw.y_test)
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    assert acc == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    if pytest.importorskip("onnxruntime"):
        assert (out / "model.onnx").is_file()
    exported = tmp_path / "exported"
    assert main(["export", str(out), "--format", "torch", "--out", str(exported)]) == 0
    assert (exported / "ensemble.json").is_file() and load_model(exported) is not None


def test_bad_ensembles_say_what_is_wrong(
    ensemble_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ensemble_run
    members = sorted((run / "front").glob("*/model.pt"))
    assert main(["ensemble", str(run), "--members", "top:1"]) == 2
    assert "expected front or top:K with K >= 2" in capsys.readouterr().err
    assert main(["ensemble", str(run), "--members", "top:9"]) == 2
    assert f"has only {len(members)} trained networks" in capsys.readouterr().err
    meta = run / "front" / "9" / "meta.json"
    doc = json.loads(meta.read_text())
    meta.write_text(json.dumps({**doc, "input_shape": [1, 6, 6]}))
    assert main(["ensemble", str(run)]) == 2
    err = capsys.readouterr().err
    assert "front/9: its input shape is (1, 6, 6)" in err and "must take the same input" in err
    meta.write_text(json.dumps({**doc, "num_classes": 3}))
    assert main(["ensemble", str(run)]) == 2
    err = capsys.readouterr().err
    assert "front/9: its class count is 3" in err and "must take the same input" in err
    for member in members[1:]:
        shutil.rmtree(member.parent)
    assert main(["ensemble", str(run)]) == 2
    assert "needs at least 2 trained networks, found 1" in capsys.readouterr().err
    assert not (run / "ensemble").exists(), "nothing is written when a check fails"


def test_ood_scores_of_an_ensemble_are_its_mean_probability_or_mean_energy() -> None:
    a = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 3.0, 0.0], [1.0, 1.0, 4.0]])
    mean = (a.softmax(1) + b.softmax(1)) / 2
    assert torch.allclose(scores_of_logits([a, b], "msp"), mean.amax(1))
    assert torch.allclose(scores_of_logits([a], "msp"), a.softmax(1).amax(1))
    energy = (a.logsumexp(1) + b.logsumexp(1)) / 2
    assert torch.allclose(scores_of_logits([a, b], "energy"), energy)
    with pytest.raises(ValueError, match="expected one of msp, energy"):
        scores_of_logits([a], "entropy")


def test_ensemble_reports_ood_auroc_of_the_saved_module(
    ensemble_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ens"
    assert main(["ensemble", str(ensemble_run), "--ood", "noise", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test OoD AUROC" in printed and "test OoD AUROC" in printed.splitlines()[-2]
    metrics = json.loads((out / "metrics.json").read_text())
    for doc in (metrics, metrics["best_member"]):
        assert 0.0 <= doc["holdout_ood_auroc"] <= 1.0 and 0.0 <= doc["test_ood_auroc"] <= 1.0
    # the same AUROC from the saved module, fed raw test digits and the raw noise images
    config = rundir.load_run_config(ensemble_run)
    raw = load_raw("digits")
    x = torch.from_numpy(raw.x_test).float()
    noise = ood_images("noise", "digits", None, None, "test", len(x), config.split_seed)
    mean, std = load_dataset("digits").standardization.tensors()
    model = load_model(out)
    with torch.no_grad():
        inside, outside = (model(z).exp().amax(1) for z in (x, noise * std + mean))
    assert auroc(inside, outside) == pytest.approx(metrics["test_ood_auroc"], abs=1e-6)
