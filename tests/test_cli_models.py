"""The report, export, train and show commands, end to end on a real tiny run."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from rich.console import Console
from test_archive import damage

from ge_nas import load_model, rundir
from ge_nas.arch import parse_arch
from ge_nas.archive import Archive
from ge_nas.cli import build_parser, main
from ge_nas.cli.models import _train_task
from ge_nas.data import load_dataset, load_raw
from ge_nas.fidelity import fidelity_key
from ge_nas.metrics import Metrics
from ge_nas.rundir import load_run_config
from ge_nas.train import accuracy

GRAMMAR = "grammars/cnn_small.bnf"


def command(*argv: str) -> tuple[int, str]:
    """Run one command's handler; return its exit code and what it printed."""
    args = build_parser().parse_args(list(argv))
    args.command_line = "python -m ge_nas " + " ".join(argv)
    out = io.StringIO()
    code = args.func(args, Console(file=out, width=200))
    return code, out.getvalue()


def raw_digits_test() -> tuple[torch.Tensor, torch.Tensor]:
    """Return the digits test images as sklearn gives them (as float32) and their labels."""
    raw = load_raw("digits")
    return torch.from_numpy(raw.x_test.astype("float32")), torch.from_numpy(raw.y_test)


def error_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run main; check for exit code 2 and return the error text."""
    assert main(list(argv)) == 2
    return " ".join(capsys.readouterr().err.split())  # undo the console's line wrapping


def test_report_prints_the_front_and_writes_files(copy_run) -> None:  # type: ignore[no-untyped-def]
    path = copy_run()
    code, text = command("report", str(path))
    assert code == 0 and "Pareto front" in text
    for row in rundir.read_pareto(path):
        assert row["phenotype"].split(" | ")[0] in text
    for name in ("pareto.png", "history.png", "report.html"):
        assert (path / name).is_file() and str(path / name) in text


def test_report_of_a_partial_run_says_what_is_missing(copy_run) -> None:  # type: ignore[no-untyped-def]
    code, text = command("report", str(copy_run(rundir.PARETO, rundir.GENERATIONS)))
    assert code == 0 and "Non-dominated networks so far" in text
    assert "pareto.csv is missing" in text and "generations.jsonl is missing" in text


def test_report_of_a_non_run_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = error_of(capsys, "report", str(tmp_path))
    assert "not a run directory (no config.toml)" in err and "Traceback" not in err


def test_export_torch_loads_back_to_the_recorded_accuracy(copy_run) -> None:  # type: ignore[no-untyped-def]
    path = copy_run()
    code, text = command("export", str(path), "--rank", "1", "--format", "torch")
    assert code == 0 and str(path / "export" / "rank1") in text
    model = load_model(path / "export" / "rank1")
    recorded = Metrics.from_json((path / "front" / "1" / "metrics.json").read_text())
    assert accuracy(model, *raw_digits_test()) == recorded.test_accuracy
    assert float(rundir.read_pareto(path)[0]["test_accuracy"]) == pytest.approx(
        recorded.test_accuracy, abs=1e-6
    )


def test_export_onnx_reports_the_difference(copy_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("onnxruntime")
    code, text = command(
        "export", str(copy_run()), "--format", "onnx", "--out", str(tmp_path / "onnx")
    )
    assert code == 0 and "onnxruntime matches torch on 64 raw test images: max abs diff" in text
    assert (tmp_path / "onnx" / "model.onnx").stat().st_size > 500


def test_export_of_a_rank_without_weights_suggests_train(
    copy_run, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    path = copy_run("front")
    err = error_of(capsys, "export", str(path), "--rank", "1", "--format", "torch")
    assert (
        "no trained weights" in err
        and f"ge_nas train --from {path} --rank 1 --out {path / 'front' / '1'}" in err
    )


def test_what_train_saved_exports_and_a_non_finalist_can_be_trained_into_the_run(
    copy_run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    run = copy_run("front")
    assert (
        command("train", "--from", str(run), "--rank", "1", "--out", str(run / "front" / "1"))[0]
        == 0
    )
    code, text = command("export", str(run), "--rank", "1", "--format", "torch")
    assert code == 0 and load_model(run / "export" / "rank1") is not None
    code, text = command(
        "export", str(run / "front" / "1"), "--format", "onnx", "--out", str(tmp_path / "o")
    )
    assert code == 0 and "onnxruntime matches torch on 64 random inputs in the raw range" in text


def test_train_and_export_refuse_an_out_dir_holding_a_users_files(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "thesis.tex").write_text("mine")
    err = error_of(capsys, "train", "--phenotype", "conv(8,3) relu", "--out", str(tmp_path))
    assert "not empty" in err and "thesis.tex" in err
    err = error_of(
        capsys, "export", str(run_dir / "front" / "1"), "--format", "torch", "--out", str(tmp_path)
    )
    assert "not empty" in err and (tmp_path / "thesis.tex").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_train_from_a_run_reproduces_the_finalist(run_dir: Path, tmp_path: Path) -> None:
    code, text = command(
        "train", "--from", str(run_dir), "--rank", "1", "--out", str(tmp_path / "t")
    )
    recorded = Metrics.from_json((run_dir / "front" / "1" / "metrics.json").read_text())
    saved = Metrics.from_json((tmp_path / "t" / "metrics.json").read_text())
    assert code == 0 and f"test accuracy {recorded.test_accuracy:.4f}" in text
    assert saved.test_accuracy == recorded.test_accuracy and saved.params == recorded.params
    ours, theirs = (
        torch.load(d / "model.pt", weights_only=True)
        for d in (tmp_path / "t", run_dir / "front" / "1")
    )
    assert ours.keys() == theirs.keys() and all(
        torch.allclose(ours[k].float(), theirs[k].float(), atol=1e-5) for k in ours
    )
    assert str(tmp_path / "t") in text and load_model(tmp_path / "t") is not None


def test_train_a_phenotype(tmp_path: Path) -> None:
    code, text = command(
        "train",
        "--phenotype",
        "conv(8,3) relu pool(max,2) | opt=adam lr=0.01 batch=32",
        "--epochs",
        "2",
        "--out",
        str(tmp_path),
    )
    saved = Metrics.from_json((tmp_path / "metrics.json").read_text())
    assert code == 0 and f"test accuracy {saved.test_accuracy:.4f}" in text and "params 170" in text
    assert "takes raw float32 images (N, C, H, W): pixel values 0..16 as sklearn's" in text
    stats = load_dataset("digits").standardization
    assert json.loads((tmp_path / "meta.json").read_text()) == {
        "input_shape": [1, 8, 8],
        "num_classes": 10,
        "input_mean": list(stats.mean),
        "input_std": list(stats.std),
        "input": "pixel values 0..16 as sklearn's load_digits gives them",
    }
    assert accuracy(load_model(tmp_path), *raw_digits_test()) == saved.test_accuracy


def test_train_a_genome_maps_it_with_the_grammar(run_dir: Path, tmp_path: Path) -> None:
    row = rundir.read_pareto(run_dir)[0]
    genome = row["genome"].replace(" ", ",")
    code, text = command(
        "train", "--genome", genome, "--grammar", GRAMMAR, "--epochs", "1", "--out", str(tmp_path)
    )
    assert code == 0 and " ".join(f"training {row['phenotype']}:".split()) in " ".join(text.split())


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--phenotype", "conv(8,3) relu pool(max,2 | opt=adam"], "phenotype 1:"),
        (["--phenotype", "dense(8) conv(8,3)"], "needs a feature map"),
        (["--genome", "1,2,x", "--grammar", GRAMMAR], "expected non-negative integers"),
        (["--genome", "1,2"], "--genome needs --grammar"),
        (["--genome", "0", "--grammar", GRAMMAR], "genome does not map to a network"),
        (["--from", "RUN", "--rank", "99"], "no rank 99 on the front"),
        (["--from", "RUN"], "--from needs --rank"),
        (["--phenotype", "conv(8,3) relu", "--device", "gpu"], "--device: unknown device 'gpu'"),
        pytest.param(
            ["--phenotype", "conv(8,3) relu", "--device", "cuda"],
            "CUDA is not available",
            marks=pytest.mark.skipif(
                torch.cuda.is_available(), reason="needs a machine without a GPU"
            ),
        ),
    ],
)
def test_train_bad_input_is_one_clear_error(
    run_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    err = error_of(capsys, "train", *[str(run_dir) if a == "RUN" else a for a in argv])
    assert err.startswith("error:") and expected in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("flags", "device", "bf16"), [([], "auto", False), (["--device", "cpu", "--bf16"], "cpu", True)]
)
def test_train_passes_device_and_bf16_on(flags: list[str], device: str, bf16: bool) -> None:
    args = build_parser().parse_args(["train", "--phenotype", "conv(8,3) relu", *flags])
    task = _train_task(args, parse_arch("conv(8,3) relu"), None)
    assert (task.device, task.bf16) == (device, bf16)


def test_show_a_finished_run(copy_run) -> None:  # type: ignore[no-untyped-def]
    run = copy_run()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code, text = command("show", str(run))
    assert code == 0 and "finished" in text and "generation 1/1 done" in text
    finalists = len(list((run / "front").iterdir()))
    assert f"finalists retrained: {finalists}" in text and "best so far  0." in text
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    # read-only: SQLite's read-only WAL reader may leave an empty -wal and its -shm index, nothing else
    assert {
        k: v for k, v in after.items() if k not in ("archive.sqlite-shm", "archive.sqlite-wal")
    } == before
    assert after.get("archive.sqlite-wal", b"") == b""


def test_best_so_far_is_the_most_accurate_search_evaluation(copy_run) -> None:  # type: ignore[no-untyped-def]
    run = copy_run()
    with Archive(run / rundir.ARCHIVE) as archive:
        best = max(
            (r for r in archive.records(fidelity_key(load_run_config(run))) if r.metrics.ok),
            key=lambda r: r.metrics.val_accuracy,
        )
    code, text = command("show", str(run))
    assert f"{best.metrics.val_accuracy:.4f} with {best.metrics.params:,} params" in text
    assert " ".join(best.phenotype.split()) in " ".join(text.split())


def test_show_a_run_still_going(copy_run) -> None:  # type: ignore[no-untyped-def]
    code, text = command("show", str(copy_run(rundir.PARETO, rundir.GENERATIONS)))
    assert code == 0 and "running, or stopped before the end" in text
    assert (
        "the initial population is not finished yet" in text
        and "generations.jsonl is missing" in text
    )


def test_show_of_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "not a run directory (no such directory)" in error_of(
        capsys, "show", str(tmp_path / "none")
    )


def test_show_notes_a_damaged_archive_in_one_line(copy_run) -> None:  # type: ignore[no-untyped-def]
    run = copy_run()
    damage(run / rundir.ARCHIVE)
    code, text = command("show", str(run))
    assert code == 0 and "evaluations  none yet" in text and "Traceback" not in text
    assert (
        "archive.sqlite: a damaged SQLite database (database disk image is malformed)"
        in " ".join(text.split())
    )


# --- data views ----------------------------------------------------------------------


def test_train_from_a_view_run_keeps_its_view(view_run_dir: Path, tmp_path: Path) -> None:
    code, text = command(
        "train", "--from", str(view_run_dir), "--rank", "1", "--out", str(tmp_path / "t")
    )
    assert code == 0 and "epochs on 100 samples" in text  # the finalists keep to 20 shots a class
    assert "its outputs 0..4 are the data set's classes 0, 1, 2, 3, 4" in " ".join(text.split())
    meta = json.loads((tmp_path / "t" / "meta.json").read_text())
    assert meta["classes"] == [0, 1, 2, 3, 4]
    recorded = Metrics.from_json((view_run_dir / "front" / "1" / "metrics.json").read_text())
    saved = Metrics.from_json((tmp_path / "t" / "metrics.json").read_text())
    assert saved.test_accuracy == recorded.test_accuracy  # the run's finalist, reproduced


def test_train_a_phenotype_on_a_view(tmp_path: Path) -> None:
    code, text = command(
        "train", "--phenotype", "conv(8,3) relu pool(max,2) | opt=adam lr=0.01 batch=32",
        "--classes", "2,4,6", "--shots", "10", "--val-shots", "2", "--epochs", "1",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0 and "epochs on 30 samples" in text
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["num_classes"] == 3 and meta["classes"] == [2, 4, 6]
    assert load_model(tmp_path)(torch.zeros(1, 1, 8, 8)).shape == (1, 3)


def test_train_takes_the_runs_view_only_on_the_runs_data_set(view_run_dir: Path) -> None:
    run = load_run_config(view_run_dir)
    spec = parse_arch("conv(8,3) relu")

    def view(*flags: str) -> tuple[str | None, int | None, int | None]:
        args = build_parser().parse_args(["train", "--phenotype", "conv(8,3) relu", *flags])
        task = _train_task(args, spec, run)
        return task.classes, task.shots, task.val_shots

    assert view() == ("0-4", 20, None)
    assert view("--shots", "7", "--val-shots", "3") == ("0-4", 7, 3)
    assert view("--dataset", "mnist") == (None, None, None)
    assert view("--dataset", "mnist", "--classes", "1,2") == ("1,2", None, None)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--val-shots", "2"], "--val-shots 2 goes with --shots K"),
        (["--shots", "0"], "--shots must be a positive integer, got 0"),
        (["--classes", "0-10"], "digits has no label 10; the data set has labels 0-9"),
        (["--classes", "1"], "--classes '1' keeps 1 class; expected at least 2"),
        (["--shots", "500"], "--shots 500: too few training images: class 0 has"),
    ],
)
def test_train_with_a_view_that_cannot_work_is_one_clear_error(
    flags: list[str], expected: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = error_of(capsys, "train", "--phenotype", "conv(8,3) relu", *flags, "--out", str(tmp_path))
    assert err.startswith("error:") and expected in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_export_of_a_view_run_keeps_its_classes(view_run_dir: Path, tmp_path: Path) -> None:
    code, text = command(
        "export", str(view_run_dir), "--format", "torch", "--out", str(tmp_path / "t")
    )
    assert code == 0 and "its outputs 0..4 are the data set's classes" in " ".join(text.split())
    assert json.loads((tmp_path / "t" / "meta.json").read_text())["classes"] == [0, 1, 2, 3, 4]
    pytest.importorskip("onnxruntime")
    code, text = command(
        "export", str(view_run_dir), "--format", "onnx", "--out", str(tmp_path / "o")
    )
    assert code == 0 and "onnxruntime matches torch on 64 raw test images" in text
