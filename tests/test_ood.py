"""The ood_auroc objective: --ood SPECs, OoD images in the run's shape and units, workers, runs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from data_files import make_parts, write_idx_set
from test_search_evolution import GRAMMAR

from ge_nas import rundir
from ge_nas.cli import main
from ge_nas.config import OodSpec, RunConfig, parse_ood
from ge_nas.data import load_dataset, load_raw
from ge_nas.data.ood import convert_images, ood_images, raw_range
from ge_nas.data.standardization import Standardization
from ge_nas.errors import ConfigError
from ge_nas.fidelity import fidelity_key
from ge_nas.metrics import FAILED, OK, Metrics
from ge_nas.objectives import OBJECTIVE_WEIGHTS, fitness_values
from ge_nas.search.evaluator import task_for
from ge_nas.worker import EvalTask, evaluate

HELD_OUT = "digits:classes=8,9"
OBJECTIVES = ("val_accuracy", "params", "ood_auroc")


def images(
    ood: str, part: str = "train", count: int = 1000, seed: int = 0, **run: object
) -> torch.Tensor:
    """Return OoD images for a digits run on classes 0-7 (or the run given)."""
    settings: dict[str, object] = {"dataset": "digits", "data_dir": None, "classes": "0-7"}
    settings.update(run)
    return ood_images(ood, settings["dataset"], settings["data_dir"], settings["classes"],  # type: ignore[arg-type]
                      part, count, seed)  # fmt: skip


# --- SPEC -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "parsed", "text"),
    [
        ("digits:classes=9,8", OodSpec("dataset", "digits", "8,9"), "digits:classes=8,9"),
        ("fashion-mnist:classes=5-9", OodSpec("dataset", "fashion-mnist", "5-9"), None),
        ("digits:classes=9", OodSpec("dataset", "digits", "9"), None),  # one class is enough
        ("mnist", OodSpec("dataset", "mnist"), None),
        ("npz:data/x.npz", OodSpec("npz", "data/x.npz"), None),
        ("NOISE", OodSpec("noise"), "noise"),
    ],
)
def test_ood_specs_parse_to_a_canonical_text(spec: str, parsed: OodSpec, text: str | None) -> None:
    assert parse_ood(spec) == parsed
    assert parsed.text() == (text or spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "--ood: no out-of-distribution images given"),
        ("npz:", "--ood 'npz:': npz: without a path"),
        (":classes=1", "--ood ':classes=1': no data set name before ':'"),
        (
            "digits:colours=1",
            "--ood 'digits:colours=1': 'colours=1' after the data set is not classes=LIST",
        ),
        ("digits:classes", "'classes' after the data set is not classes=LIST"),
        (
            "digits:classes=x",
            "--ood 'digits:classes=x': classes 'x': 'x' is neither a label nor a range",
        ),
        ("digits:classes=9-8", "classes '9-8': the range '9-8' runs backwards"),
        ("digits:classes=", "classes '': no classes given"),
    ],
)
def test_a_bad_spec_says_what_was_given_and_the_forms_expected(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_ood(spec)
    assert message in str(info.value) and "\n" not in str(info.value)
    if "classes '" not in message:
        assert "expected DATASET:classes=LIST" in str(info.value) and "noise" in str(info.value)


def test_the_config_ties_ood_to_the_objective_and_checks_the_score() -> None:
    config = RunConfig(GRAMMAR, objectives=OBJECTIVES, ood="digits:classes=9,8", classes="0-7")
    assert (config.ood, config.ood_score) == (HELD_OUT, "msp")
    with pytest.raises(ConfigError, match="--objectives ood_auroc needs --ood SPEC"):
        RunConfig(GRAMMAR, objectives=OBJECTIVES)
    with pytest.raises(
        ConfigError, match="ood_auroc is not among --objectives val_accuracy,params"
    ):
        RunConfig(GRAMMAR, ood="noise")
    with pytest.raises(ConfigError, match="--ood-score: unknown value 'entropy'.*msp, energy"):
        RunConfig(GRAMMAR, objectives=OBJECTIVES, ood="noise", ood_score="entropy")


def test_ood_auroc_is_a_fraction_to_maximise_and_a_failure_gets_zero() -> None:
    assert OBJECTIVE_WEIGHTS["ood_auroc"] == 1.0
    assert fitness_values(Metrics(OK, 0.9, ood_auroc=0.75), OBJECTIVES[::2]) == (0.9, 0.75)
    assert fitness_values(Metrics(FAILED, ood_auroc=0.75), ("ood_auroc",)) == (0.0,)
    assert fitness_values(Metrics(OK, 0.9), ("ood_auroc",)) == (0.0,)


# --- the images ---------------------------------------------------------------------


def test_held_out_classes_come_from_the_training_part_standardised_like_the_run() -> None:
    x = images(HELD_OUT, count=10_000)
    raw = load_raw("digits")
    run = load_dataset("digits", classes="0-7")
    held = np.isin(raw.y_train, [8, 9])
    expected = run.standardization.apply_(torch.from_numpy(raw.x_train[held]).float())
    assert torch.equal(x, expected)  # all of them, in order: never a test image
    test = images(HELD_OUT, "test", count=10_000)
    in_test = np.isin(raw.y_test, [8, 9])
    assert torch.equal(
        test, run.standardization.apply_(torch.from_numpy(raw.x_test[in_test]).float())
    )


def test_every_network_of_a_run_meets_the_same_seeded_images() -> None:
    first = images(HELD_OUT, count=50, seed=3)
    ood_images.cache_clear()
    assert torch.equal(first, images(HELD_OUT, count=50, seed=3))  # another process, same images
    assert len(first) == 50 and not torch.equal(first, images(HELD_OUT, count=50, seed=4))
    noise = images("noise", count=20, seed=3)
    assert torch.equal(noise, images("noise", count=20, seed=3)) and noise.shape == (20, 1, 8, 8)


def test_noise_is_uniform_over_the_run_s_raw_range() -> None:
    run = load_dataset("digits", classes="0-7")
    x = images("noise", count=500)
    mean, std = run.standardization.tensors()
    raw = x * std + mean
    assert 0 <= float(raw.min()) < 1 and 15 < float(raw.max()) <= 16 + 1e-4
    assert raw_range(run.x_train, run.standardization) == pytest.approx((0.0, 16.0), abs=1e-4)


def test_conversion_repeats_or_averages_channels_resizes_and_maps_the_range() -> None:
    unit = Standardization((0.0,), (1.0,), "raw")
    grey = np.full((2, 1, 4, 4), 255, dtype=np.uint8)
    rgb = convert_images(
        grey, (0, 255), (3, 8, 8), (0, 1), Standardization((0.5,) * 3, (0.5,) * 3, ""), "x"
    )
    assert rgb.shape == (2, 3, 8, 8) and torch.allclose(rgb, torch.ones_like(rgb))
    colour = np.zeros((1, 3, 16, 16), dtype=np.float32)
    colour[:, 0] = 3.0  # red only: grey is the mean, 1
    out = convert_images(colour, (0, 3), (1, 8, 8), (0, 16), unit, "x")
    assert out.shape == (1, 1, 8, 8) and torch.allclose(out, torch.full_like(out, 16 / 3))
    ramp = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)  # resized, values stay within range
    resized = convert_images(ramp, (0, 15), (1, 2, 2), (0, 1), unit, "x")
    assert resized.shape == (1, 1, 2, 2) and 0 <= float(resized.min()) < float(resized.max()) <= 1


def test_another_data_set_is_brought_to_the_run_s_shape_and_range(tmp_path: Path) -> None:
    parts = make_parts(n_train=30, n_test=10, h=6, w=4)  # uint8 0..255, 6x4
    write_idx_set(tmp_path / "mnist", parts)
    x = images("mnist", count=20, data_dir=str(tmp_path))
    run = load_dataset("digits", classes="0-7")
    assert x.shape == (20, 1, 8, 8)
    raw = x * run.standardization.tensors()[1] + run.standardization.tensors()[0]
    assert -1e-4 <= float(raw.min()) and float(raw.max()) <= 16 + 1e-4  # 0..255 became 0..16
    assert images("mnist", "test", count=100, data_dir=str(tmp_path)).shape == (10, 1, 8, 8)


def test_an_npz_of_rgb_images_becomes_grey_and_small(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "o.npz", x=rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8))  # NHWC
    x = images(f"npz:{tmp_path / 'o.npz'}", count=5)
    assert x.shape == (5, 1, 8, 8) and torch.isfinite(x).all()
    relative = images("npz:o.npz", count=5, data_dir=str(tmp_path))  # found under --data-dir
    assert torch.equal(relative, x)


@pytest.mark.parametrize(
    ("ood", "classes", "message"),
    [
        (
            "digits:classes=7-9",
            "0-7",
            "--ood 'digits:classes=7-9': classes 7 are also trained on (--classes 0-7); "
            "held-out classes must be unseen: give --classes 0-6 (without 7,8,9)",
        ),
        (
            HELD_OUT,
            None,
            "--ood 'digits:classes=8,9': the run trains on every class of digits, classes 8,9 "
            "too; add --classes 0-7",
        ),
        (
            "digits",
            "0-7",
            "is the run's own data set, and the run trains on its classes 0-7; "
            "hold classes out instead, e.g. --ood digits:classes=8,9",
        ),  # fmt: skip
        ("digits:classes=12", "0-7", "--ood 'digits:classes=12': digits has no label 12"),
        ("cifar", "0-7", "--ood 'cifar': unknown data set 'cifar'"),
        ("npz:nowhere.npz", "0-7", "--ood 'npz:nowhere.npz': no such file (looked at nowhere.npz)"),
    ],
)
def test_ood_images_that_cannot_be_had_are_one_line_errors(
    ood: str, classes: str | None, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        images(ood, classes=classes)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (
            np.zeros((4, 1, 64), np.float32),
            "images of shape (1, 1, 64) cannot be resized to the run's input (1, 8, 8)",
        ),
        (
            np.zeros((4, 2, 8, 8), np.float32),
            "images with 2 channels cannot be brought to the run's 1",
        ),
        (np.zeros((4, 64), np.float32), "expected images shaped (N, H, W)"),
    ],
)
def test_shapes_that_cannot_take_the_input_shape_are_refused(
    x: np.ndarray, message: str, tmp_path: Path
) -> None:
    np.savez(tmp_path / "o.npz", x=x)
    with pytest.raises(ConfigError, match="--ood 'npz:") as info:
        images(f"npz:{tmp_path / 'o.npz'}")
    assert message in str(info.value)


def test_an_npz_without_images_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "o.npz", y=np.zeros(3))
    with pytest.raises(
        ConfigError, match=r"has no array x \(found y\); expected an .npz with an array x"
    ):
        images(f"npz:{tmp_path / 'o.npz'}")


# --- tasks, workers, archive keys -------------------------------------------------


def test_archive_keys_name_the_ood_images_and_score() -> None:
    base = RunConfig(GRAMMAR, objectives=OBJECTIVES, ood=HELD_OUT, classes="0-7")
    keys = {
        fidelity_key(c)
        for c in (base, replace(base, ood="noise"), replace(base, ood_score="energy"))
    }
    assert len(keys) == 3
    assert fidelity_key(base).endswith("|measured=ood_auroc@digits:classes=8,9@msp")
    final = fidelity_key(base, final=True)
    assert final.endswith("|measured=test_ood_auroc@digits:classes=8,9@msp")
    assert final != fidelity_key(replace(base, ood="noise"), final=True)


def test_tasks_carry_the_spec_and_only_finalists_see_the_test_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = RunConfig(GRAMMAR, objectives=OBJECTIVES, ood=HELD_OUT, ood_score="energy",
                       classes="0-7", train_subset=0.3, device="cpu")  # fmt: skip
    net = "conv(8,3) relu pool(max,2) flatten | opt=adam lr=0.01 batch=32"
    search = task_for(config, net, "k", epochs=1, threads=1)
    assert (search.ood, search.ood_score) == (HELD_OUT, "energy")
    parts: list[str] = []

    def spy(*args: object) -> torch.Tensor:
        parts.append(str(args[4]))
        return ood_images(*args)  # type: ignore[arg-type]

    monkeypatch.setattr("ge_nas.worker.ood_images", spy)
    m = evaluate(search).metrics
    assert m.ok and 0 <= (m.ood_auroc or -1) <= 1 and m.test_ood_auroc is None
    final = evaluate(replace(search, final=True, holdout=0.5, train_subset=None)).metrics
    assert final.ok and final.ood_auroc is None and 0 <= (final.test_ood_auroc or -1) <= 1
    assert parts == ["train", "test"]  # the search never meets the test part


def test_a_task_without_ood_measures_none() -> None:
    m = evaluate(EvalTask("flatten | opt=adam", 0, train_subset=0.2, epochs=1)).metrics
    assert m.ok and m.ood_auroc is None and m.test_ood_auroc is None


# --- the command line -------------------------------------------------------------

TINY = ["run", "--grammar", "grammars/cnn_small.bnf", "--population", "2", "--generations", "1",
        "--epochs", "1", "--train-subset", "0.2", "--final-epochs", "1", "--finalists", "1",
        "--workers", "1"]  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ood", "digits:classes=7-9", "--classes", "0-7"], "classes 7 are also trained on"),
        (["--ood", HELD_OUT], "add --classes 0-7"),
        (["--ood", "nope", "--classes", "0-7"], "--ood 'nope': unknown data set 'nope'"),
        (["--ood", "noise", "--ood-score", "max"], "--ood-score: unknown value 'max'"),
        (["--ood", "npz:missing.npz"], "--ood 'npz:missing.npz': no such file"),
    ],
)
def test_a_bad_ood_is_one_line_and_writes_nothing(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "r"
    argv = [*TINY, "--objectives", ",".join(OBJECTIVES), *flags, "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.slow
def test_a_run_with_held_out_classes_reports_ood_auroc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    out = tmp_path / "run"
    argv = [*TINY, "--dataset", "digits", "--classes", "0-7", "--objectives",
            ",".join(OBJECTIVES), "--ood", HELD_OUT, "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = rundir.read_pareto(out)
    assert rows and all(0 <= float(r["ood_auroc"]) <= 1 for r in rows)
    finals = [r for r in rows if r["test_fidelity"] == "final"]
    assert len(finals) == 1 and 0 <= float(finals[0]["test_ood_auroc"]) <= 1
    assert main(["report", str(out)]) == 0
    assert "test OoD AUROC" in (out / "report.html").read_text(encoding="utf-8")
