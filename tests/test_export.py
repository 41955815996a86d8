"""Export and reuse: the torch files reload to the recorded accuracy; ONNX matches torch or is refused."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from ge_nas import export, load_model
from ge_nas.cli.models import finalist_dir
from ge_nas.data import load_splits
from ge_nas.errors import ArchError, ConfigError
from ge_nas.export import Meta, export_onnx, export_torch
from ge_nas.metrics import Metrics
from ge_nas.train import accuracy
from ge_nas.worker import EvalTask, evaluate

# bn and dropout behave differently in training: a model left in train mode would not match.
PHENOTYPE = "conv(8,3) bn relu pool(max,2) sepconv(16,3) gelu dropout(0.2) dense(16) relu | opt=adam lr=0.01 batch=32"
META = Meta((1, 8, 8), 10)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a directory with model.pt, spec.json and metrics.json from a final (train+val) training."""
    directory = tmp_path_factory.mktemp("trained")
    outcome = evaluate(
        EvalTask(PHENOTYPE, seed=5, epochs=2, threads=1, final=True, save_dir=str(directory))
    )
    assert outcome.metrics.ok
    return directory


def test_torch_export_reloads_to_the_recorded_test_accuracy(trained: Path, tmp_path: Path) -> None:
    exported = export_torch(trained, tmp_path / "out", META)
    assert sorted(p.name for p in exported.files) == ["meta.json", "model.pt", "spec.json"]
    model = load_model(tmp_path / "out")
    assert not model.training
    splits = load_splits("digits", None, 0.2, 0, None)
    recorded = Metrics.from_json((trained / "metrics.json").read_text())
    assert accuracy(model, splits.x_test, splits.y_test) == recorded.test_accuracy
    assert (
        load_model(tmp_path / "out" / "model.pt").state_dict().keys() == model.state_dict().keys()
    )


def test_meta_round_trip_and_checks() -> None:
    assert Meta.from_json(META.to_json()) == META
    with pytest.raises(ConfigError, match="input_shape"):
        Meta.from_json(json.dumps({"input_shape": [8, 8], "num_classes": 10}))
    with pytest.raises(ConfigError, match="malformed"):
        Meta.from_json("{")


def test_saved_finalist_loads_directly(trained: Path) -> None:
    assert load_model(trained)(torch.zeros(1, 1, 8, 8)).shape == (1, 10)


def test_load_model_without_meta_says_how_to_get_one(trained: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(trained, bare)
    (bare / "meta.json").unlink()
    with pytest.raises(ConfigError, match="meta.json.*ge_nas export"):
        load_model(bare)


def test_load_model_of_a_directory_without_weights(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no model.pt"):
        load_model(tmp_path)


def test_load_model_refuses_pickled_objects(trained: Path, tmp_path: Path) -> None:
    export_torch(trained, tmp_path, META)
    torch.save({"weight": Path("x")}, tmp_path / "model.pt")  # an arbitrary object, not a tensor
    with pytest.raises(ArchError, match="cannot load the weights"):
        load_model(tmp_path)


def test_weights_of_another_network_do_not_load(trained: Path, tmp_path: Path) -> None:
    with pytest.raises(ArchError, match="cannot load the weights"):
        export_torch(trained, tmp_path, Meta((3, 8, 8), 10))


def test_onnx_export_matches_torch(trained: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    import onnxruntime

    sample = load_splits("digits", None, 0.2, 0, None).x_test[:40]
    exported = export_onnx(trained, tmp_path, META, sample)
    assert exported.max_abs_diff is not None and exported.max_abs_diff <= 1e-4
    session = onnxruntime.InferenceSession(
        str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    model = export.load_weights(trained, META)
    batch = sample[:7]  # another batch size than the export's example: the batch axis is dynamic
    (logits,) = session.run(None, {"input": batch.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(logits), model(batch), atol=1e-4)
        assert (torch.from_numpy(logits).argmax(1) == model(batch).argmax(1)).all()


def test_onnx_mismatch_fails_loudly_and_writes_nothing(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(export, "ONNX_TOLERANCE", -1.0)
    with pytest.raises(export.ExportError, match="differs from torch"):
        export_onnx(trained, tmp_path, META, torch.zeros(2, 1, 8, 8))
    assert not list(tmp_path.glob("model.onnx*"))


def test_missing_onnx_names_the_extra(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match=r"pip install 'ge_nas\[export\]'"):
        export_onnx(trained, tmp_path, META, torch.zeros(1, 1, 8, 8))


def test_finalist_dir_of_a_finished_run(run_dir: Path) -> None:
    assert finalist_dir(run_dir, 1) == run_dir / "front" / "1"
    with pytest.raises(ConfigError, match="no rank 99 on the front; ranks are 1"):
        finalist_dir(run_dir, 99)


def test_rank_without_weights_suggests_training_it(copy_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = copy_run("front/1/model.pt")
    with pytest.raises(
        ConfigError, match=rf"no trained weights.*ge_nas train --from {run} --rank 1"
    ):
        finalist_dir(run, 1)


def test_unfinished_run_has_nothing_to_export(copy_run) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="has not finished"):
        finalist_dir(copy_run("pareto.csv"), 1)
