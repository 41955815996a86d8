"""The `run` command end to end, and its bad-input paths (one line, exit 2, no traceback)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import torch
from test_archive import damage

from ge_nas import load_model, rundir
from ge_nas.arch import ArchSpec
from ge_nas.archive import Archive
from ge_nas.cli import main
from ge_nas.config import load_toml, make_config
from ge_nas.data import load_raw
from ge_nas.metrics import Metrics
from ge_nas.network.build import build_model
from ge_nas.train import accuracy

GRAMMAR = "grammars/cnn_small.bnf"

FAST = [
    "--epochs",
    "1",
    "--train-subset",
    "0.3",
    "--final-epochs",
    "1",
    "--finalists",
    "1",
    "--workers",
    "1",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("run") / "out"
    argv = [
        "run",
        "--grammar",
        "grammars/cnn_small.bnf",
        "--population",
        "6",
        "--generations",
        "2",
        "--seed",
        "1",
        "--out",
        str(out),
        *FAST,
    ]
    return out, str(main(argv))


def test_run_writes_a_front(tiny_run: tuple[Path, str]) -> None:
    out, code = tiny_run
    assert code == "0"
    rows = rundir.read_pareto(out)
    assert rows and rows[0]["rank"] == "1"
    assert set(rundir.PARETO_COLUMNS) <= set(rows[0])
    assert [float(r["val_accuracy"]) for r in rows] == sorted(
        (float(r["val_accuracy"]) for r in rows), reverse=True
    )
    assert rows[0]["test_fidelity"] == "final" and all(r["status"] == "ok" for r in rows)


def test_run_writes_one_line_per_generation(tiny_run: tuple[Path, str]) -> None:
    lines = [json.loads(x) for x in (tiny_run[0] / rundir.GENERATIONS).read_text().splitlines()]
    assert [x["generation"] for x in lines] == [0, 1, 2]
    assert {
        "evaluations",
        "invalid",
        "cached",
        "best_accuracy",
        "median_accuracy",
        "front_size",
        "seconds",
    } <= set(lines[0])


def test_config_toml_is_the_whole_configuration(tiny_run: tuple[Path, str]) -> None:
    config = make_config(load_toml(tiny_run[0] / rundir.CONFIG), {})
    assert (config.population, config.generations, config.seed, config.epochs) == (6, 2, 1, 1)
    assert config.command.startswith("python -m ge_nas run --grammar grammars/cnn_small.bnf")


def test_best_model_loads_and_matches_the_front(tiny_run: tuple[Path, str]) -> None:
    out = tiny_run[0]
    spec = ArchSpec.from_json((out / "best" / "spec.json").read_text())
    assert spec.canonical() == rundir.read_pareto(out)[0]["phenotype"]
    model = build_model(spec, (1, 8, 8), 10)
    model.load_state_dict(torch.load(out / "best" / "model.pt", weights_only=True))
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_archive_never_holds_a_phenotype_twice_per_fidelity(tiny_run: tuple[Path, str]) -> None:
    with Archive(tiny_run[0] / rundir.ARCHIVE) as archive:
        keys = [(r.phenotype_hash, r.fidelity) for r in archive.records()]
    assert keys and len(keys) == len(set(keys))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--grammar", "missing.bnf"], "missing.bnf"),
        (
            ["run", "--grammar", "grammars/cnn_small.bnf", "--dataset", "nope"],
            "unknown data set 'nope'",
        ),
        (
            ["run", "--grammar", "grammars/cnn_small.bnf", "--population", "0"],
            "--population must be a positive integer",
        ),
        (
            ["run", "--grammar", "grammars/cnn_small.bnf", "--generations", "-2"],
            "--generations must be a positive integer",
        ),
        (["run"], "--grammar is required"),
        (
            [
                "run",
                "--grammar",
                "tests/grammars/tiny_cnn.bnf",
                "--objectives",
                "val_accuracy,size",
            ],
            "unknown value 'size'",
        ),
    ],
)
def test_bad_input_is_one_clear_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_grammar_syntax_error_names_file_line_and_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.bnf"
    bad.write_text('<net> ::= <layer> " | opt=adam"\n<layer> := conv(8)\n')
    assert main(["run", "--grammar", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2:9:" in err and "::=" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists(), "nothing is written for a run that cannot start"


def test_existing_run_directory_is_refused(
    tiny_run: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--grammar", "grammars/cnn_small.bnf", "--out", str(tiny_run[0])]) == 2
    assert "already holds a run" in capsys.readouterr().err


TINY = [
    "run",
    "--grammar",
    "tests/grammars/tiny_cnn.bnf",
    "--population",
    "2",
    "--generations",
    "1",
]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-depth", "1"], "depth"),
        (["--codon-size", "1"], "codon"),
        (["--workers", "64"], "more worker processes than the"),
        (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler"),
    ],
)
def test_a_run_that_cannot_start_writes_nothing(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("distributed") if "dask" in flags else None
    out = tmp_path / "r"
    assert main([*TINY, *FAST, *flags, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists(), "a corrected retry must find no half-made run directory"


def test_an_out_dir_holding_a_users_files_is_refused_untouched(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "pareto.csv").write_text("mine")
    (tmp_path / "generations.jsonl").write_text("mine\n")
    assert main([*TINY, *FAST, "--out", str(tmp_path)]) == 2
    assert "not empty and is not a ge_nas run" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generations.jsonl", "pareto.csv"]
    assert (tmp_path / "pareto.csv").read_text() == "mine"


def test_more_workers_than_cores_only_with_oversubscribe() -> None:
    from ge_nas.config import RunConfig
    from ge_nas.errors import ConfigError

    with pytest.raises(ConfigError, match="--oversubscribe"):
        RunConfig(grammar="g.bnf", workers=3).check_workers(cores=2)
    RunConfig(grammar="g.bnf", workers=3, oversubscribe=True).check_workers(cores=2)


def test_without_finalists_the_summary_names_no_best_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = [*TINY, "--epochs", "1", "--train-subset", "0.2", "--workers", "1", "--finalists", "0"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "best model:" not in out and "no model was retrained (--finalists 0)" in out


def test_screening_retrains_the_best_candidates_and_archives_their_epoch(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "r"
    argv = [*TINY, "--population", "6", *FAST, "--screen", "3", "--out", str(out)]
    assert main(argv) == 0
    rows = rundir.read_pareto(out)
    trained = [r for r in rows if r["test_fidelity"] == "final"]
    assert len(trained) == 1 and (out / "front" / trained[0]["rank"] / "model.pt").exists()
    assert (out / "best" / "model.pt").exists() and len(list((out / "front").iterdir())) == 1
    assert {r["on_front"] for r in rows} <= {"0", "1"}
    with Archive(out / rundir.ARCHIVE) as archive:
        screened = [r for r in archive.records() if "|screen" in r.fidelity]
    assert len(screened) == 3 and all(r.metrics.test_accuracy is None for r in screened)


def test_a_single_objective_run_does_not_call_its_table_a_pareto_front(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = [*TINY, *FAST, "--objective", "accuracy", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Best networks by validation accuracy" in out and "Pareto front" not in out


def test_a_search_on_validation_loss_with_the_transfer_gas_settings(tmp_path: Path) -> None:
    out = tmp_path / "r"
    argv = [*TINY, *FAST, "--objective", "loss", "--tournament-size", "2"]
    assert main([*argv, "--crossover", "two-point", "--out", str(out)]) == 0
    rows = rundir.read_pareto(out)
    losses = [float(r["val_loss"]) for r in rows]
    assert rows and losses == sorted(losses), "ranked by validation loss, lowest first"


def test_an_unknown_crossover_is_refused_before_anything_is_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "r"
    assert main([*TINY, *FAST, "--crossover", "two-points", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--crossover: unknown value 'two-points' (did you mean 'two-point'?)" in err
    assert not out.exists()


def test_interrupt_says_how_to_resume(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("ge_nas.cli.run.run_search", interrupted)
    out = tmp_path / "r"
    assert main([*TINY, *FAST, "--out", str(out)]) == 130
    assert f"continue with: python -m ge_nas resume {out}" in capsys.readouterr().out


def test_output_to_a_pipe_is_not_wrapped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / ("a-long-directory-name-" * 4) / "run"
    assert main([*TINY, *FAST, "--finalists", "0", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("run directory: ") and line.endswith(str(out)) for line in lines)


def test_config_toml_records_versions(tiny_run: tuple[Path, str]) -> None:
    import importlib.metadata

    written_by = rundir.read_written_by(tiny_run[0])
    assert written_by["ge_nas"] == importlib.metadata.version("ge_nas")
    assert written_by["torch"] == importlib.metadata.version("torch")


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("ge_nas 0.")


def test_archive_that_is_not_one_is_refused_before_anything_is_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    mine = tmp_path / "mine.db"
    with sqlite3.connect(mine) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    db.close()
    before = mine.read_bytes()
    argv = ["run", "--grammar", GRAMMAR, "--archive", str(mine), "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "an SQLite database with tables users, not a ge_nas archive; ge_nas will not" in err
    assert mine.read_bytes() == before and not (tmp_path / "r").exists()


def test_resume_with_a_damaged_archive_is_one_line(
    copy_run, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    run = copy_run()
    damage(run / rundir.ARCHIVE)
    assert main(["resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "archive.sqlite: a damaged SQLite database" in err


def test_run_without_a_valid_network_stops_with_exit_1_naming_the_grammar_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    grammar = tmp_path / "bogus.bnf"
    grammar.write_text("<net> ::= bogus(<n>) relu\n<n> ::= 1 | 2\n")
    out = tmp_path / "r"
    assert main(["run", "--grammar", str(grammar), "--population", "3", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "no valid network in the initial generation: all 3 individuals are invalid" in err
    assert f"3 x unknown layer 'bogus' ({grammar}:1: <net> ::= bogus(<n>) relu)" in err
    [line] = [json.loads(x) for x in (out / rundir.GENERATIONS).read_text().splitlines()]
    assert line["invalid"] == 3 and line["invalid_reasons"] == {"unknown layer 'bogus'": 3}
    with Archive(out / rundir.ARCHIVE) as archive:
        assert {r.metrics.reason for r in archive.records()} == {"unknown layer 'bogus'"}


# --- data views ----------------------------------------------------------------------


def test_a_few_shot_run_on_a_class_view_saves_models_of_its_classes(view_run_dir: Path) -> None:
    config = make_config(load_toml(view_run_dir / rundir.CONFIG), {})  # what resume reads
    assert (config.classes, config.shots, config.val_shots) == ("0-4", 20, None)
    meta = json.loads((view_run_dir / "best" / "meta.json").read_text())
    assert meta["num_classes"] == 5 and meta["classes"] == [0, 1, 2, 3, 4]
    model = load_model(view_run_dir / "best")
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 5)
    raw = load_raw("digits", classes="0-4")  # the view's raw test images reproduce the score
    x, y = torch.from_numpy(raw.x_test.astype("float32")), torch.from_numpy(raw.y_test)
    recorded = Metrics.from_json((view_run_dir / "best" / "metrics.json").read_text())
    assert accuracy(model, x, y) == recorded.test_accuracy
    with Archive(view_run_dir / rundir.ARCHIVE) as archive:
        keys = {r.fidelity for r in archive.records()}
    assert keys and all("|classes=0-4|shots=20" in key for key in keys)


def test_show_names_the_data_view(view_run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(view_run_dir)]) == 0
    assert "digits, classes 0-4, 20 shots per class" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--classes", "0-12"],
            "--classes '0-12': digits has no label 10; the data set has labels 0-9",
        ),
        (["--classes", "3"], "--classes '3' keeps 1 class; expected at least 2"),
        (["--classes", "0-3,x"], "'x' is neither a label nor a range LOW-HIGH"),
        (
            ["--classes", "0-4", "--shots", "200"],
            "--shots 200: too few training images: class 0 has",
        ),
        (["--shots", "5", "--train-subset", "0.3"], "--train-subset 0.3 and --shots 5 conflict"),
        (["--val-shots", "2"], "--val-shots 2 goes with --shots K"),
    ],
)
def test_a_data_view_that_cannot_work_is_one_line_and_writes_nothing(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "r"
    assert main([*TINY, "--workers", "1", *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists(), "a corrected retry must find no half-made run directory"
