"""The `run` command end to end, and its bad-input paths (one line, exit 2, no traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ge_nas import rundir
from ge_nas.arch import ArchSpec
from ge_nas.archive import Archive
from ge_nas.cli import main
from ge_nas.config import load_toml, make_config
from ge_nas.network.build import build_model

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
