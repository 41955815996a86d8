"""Export and reuse: saved models take raw input at the recorded accuracy; ONNX matches torch or is refused."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ge_nas import export, load_model
from ge_nas.cli.models import finalist_dir
from ge_nas.data import load_dataset, load_raw, load_splits
from ge_nas.errors import ArchError, ConfigError
from ge_nas.export import Meta, export_onnx, export_torch
from ge_nas.metrics import Metrics
from ge_nas.train import accuracy
from ge_nas.worker import EvalTask, evaluate

# bn and dropout behave differently in training: a model left in train mode would not match.
PHENOTYPE = "conv(8,3) bn relu pool(max,2) sepconv(16,3) gelu dropout(0.2) dense(16) relu | opt=adam lr=0.01 batch=32"
META = Meta((1, 8, 8), 10, load_dataset("digits").standardization)
OLD_META = Meta((1, 8, 8), 10)  # as written before meta.json recorded the standardisation


def raw_digits_test() -> tuple[torch.Tensor, torch.Tensor]:
    """Return the digits test images as sklearn gives them (0..16, as float32) and their labels."""
    raw = load_raw("digits")
    return torch.from_numpy(raw.x_test.astype("float32")), torch.from_numpy(raw.y_test)


def recorded_test_accuracy(directory: Path) -> float | None:
    return Metrics.from_json((directory / "metrics.json").read_text()).test_accuracy


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
    x, y = raw_digits_test()
    assert accuracy(model, x, y) == recorded_test_accuracy(trained)
    assert (
        load_model(tmp_path / "out" / "model.pt").state_dict().keys() == model.state_dict().keys()
    )


def test_saved_model_takes_raw_digits_at_the_measured_accuracy(trained: Path) -> None:
    model = load_model(trained)
    x, y = raw_digits_test()
    splits = load_splits("digits", None, 0.2, 0, None)
    measured = accuracy(model.network, splits.x_test, splits.y_test)
    assert accuracy(model, x, y) == measured == recorded_test_accuracy(trained)
    with torch.no_grad():  # the network sees bit for bit what it saw when it was scored
        assert torch.equal(model.standardize(x), splits.x_test)
    assert torch.equal(torch.from_numpy(load_raw("digits").y_test), splits.y_test)


def test_meta_json_records_the_standardisation_and_the_raw_input(trained: Path) -> None:
    doc = json.loads((trained / "meta.json").read_text())
    stats = load_dataset("digits").standardization
    assert doc["input_mean"] == list(stats.mean) and doc["input_std"] == list(stats.std)
    assert doc["input"] == "pixel values 0..16 as sklearn's load_digits gives them"
    assert 0 < doc["input_mean"][0] < 16 and 0 < doc["input_std"][0] < 16  # raw units, not 0..1


def test_old_meta_json_without_standardisation_loads_the_bare_network_with_a_warning(
    trained: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = tmp_path / "old"
    shutil.copytree(trained, old)
    (old / "meta.json").write_text(json.dumps({"input_shape": [1, 8, 8], "num_classes": 10}))
    with caplog.at_level(logging.WARNING, logger="ge_nas.export"):
        model = load_model(old)
    assert "expects input standardised" in caplog.text and str(old / "meta.json") in caplog.text
    splits = load_splits("digits", None, 0.2, 0, None)
    assert accuracy(model, splits.x_test, splits.y_test) == recorded_test_accuracy(trained)
    assert model.state_dict().keys() == load_model(trained).network.state_dict().keys()


def test_meta_round_trip_and_checks() -> None:
    assert Meta.from_json(META.to_json()) == META
    assert Meta.from_json(OLD_META.to_json()) == OLD_META
    view = Meta((1, 8, 8), 3, META.standardization, (2, 5, 9))
    assert Meta.from_json(view.to_json()) == view
    assert json.loads(view.to_json())["classes"] == [2, 5, 9]  # output i means label classes[i]
    assert "classes" not in json.loads(META.to_json())  # no view: output i is label i
    with pytest.raises(ConfigError, match="input_shape"):
        Meta.from_json(json.dumps({"input_shape": [8, 8], "num_classes": 10}))
    with pytest.raises(ConfigError, match="malformed"):
        Meta.from_json("{")


@pytest.mark.parametrize(
    "change,message",
    [
        ({"input_mean": [1.0, 2.0]}, "with 1 finite values"),
        ({"input_std": [0.0]}, r"std > 0"),
        ({"input_std": ["x"]}, "malformed input_mean"),
        ({"input": None}, "expected input as a string"),
    ],
)
def test_meta_with_bad_standardisation_is_refused(change: dict[str, object], message: str) -> None:
    doc = json.loads(META.to_json()) | change
    with pytest.raises(ConfigError, match=message):
        Meta.from_json(json.dumps(doc), "x/meta.json")


@pytest.mark.parametrize("classes", [[0, 1], [0, 1, 1], [2, 1, 0], [0, 1, -2], [0, "1", 2], "012"])
def test_meta_with_bad_classes_is_refused(classes: object) -> None:
    doc = json.loads(Meta((1, 8, 8), 3, META.standardization).to_json()) | {"classes": classes}
    with pytest.raises(ConfigError, match=r"x/meta.json: expected classes as 3 ascending distinct"):
        Meta.from_json(json.dumps(doc), "x/meta.json")


def test_a_class_view_model_takes_the_views_raw_images_and_records_its_classes(
    tmp_path: Path,
) -> None:
    task = EvalTask(PHENOTYPE, seed=5, epochs=1, threads=1, final=True, save_dir=str(tmp_path))
    assert evaluate(replace(task, classes="3,5-7")).metrics.ok
    doc = json.loads((tmp_path / "meta.json").read_text())
    assert doc["classes"] == [3, 5, 6, 7] and doc["num_classes"] == 4
    stats = load_dataset("digits", classes="3,5-7").standardization
    assert doc["input_mean"] == list(stats.mean)  # the view's own training images
    model = load_model(tmp_path)
    raw = load_raw("digits", classes="3,5-7")
    x, y = torch.from_numpy(raw.x_test.astype("float32")), torch.from_numpy(raw.y_test)
    assert model(x[:2]).shape == (2, 4)
    assert accuracy(model, x, y) == recorded_test_accuracy(tmp_path)


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

    sample = raw_digits_test()[0][:40]
    exported = export_onnx(trained, tmp_path, META, sample)
    assert exported.max_abs_diff is not None and exported.max_abs_diff <= 1e-4
    session = onnxruntime.InferenceSession(
        str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    model = load_model(trained)
    batch = sample[:7]  # another batch size than the export's example: the batch axis is dynamic
    (logits,) = session.run(None, {"input": batch.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(logits), model(batch), atol=1e-4)
        assert (torch.from_numpy(logits).argmax(1) == model(batch).argmax(1)).all()


def test_onnx_export_takes_raw_digits_at_the_measured_accuracy(
    trained: Path, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    import onnxruntime

    x, y = raw_digits_test()
    export_onnx(trained, tmp_path, META, x[:64])
    session = onnxruntime.InferenceSession(
        str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (logits,) = session.run(None, {"input": x.numpy()})
    correct = int((torch.from_numpy(logits).argmax(1) == y).sum())
    assert correct / len(y) == recorded_test_accuracy(trained)
    assert Meta.from_json((tmp_path / "meta.json").read_text()) == META


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
