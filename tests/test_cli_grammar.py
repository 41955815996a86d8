"""`grammar check | sample | map` through the real command line."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from ge_nas.arch import parse_arch
from ge_nas.cli import main

ROOT = Path(__file__).parent.parent
GRAMMARS = Path(__file__).parent / "grammars"
CNN = str(ROOT / "grammars" / "cnn_small.bnf")
EXPR = str(GRAMMARS / "expr.bnf")


def run(
    capsys: pytest.CaptureFixture[str],
    *argv: str,
    stdin: str = "",
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> tuple[int, str, str]:
    """Run the CLI; return (exit code, stdout, stderr)."""
    if monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_a_good_grammar(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "grammar", "check", CNN)
    assert code == 0
    assert re.match(rf"{re.escape(CNN)}: ok: \d+ rules, start <net>, least tree depth \d+", out)


def test_check_reports_every_error_with_file_and_line(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(GRAMMARS / "lint_nonterminating.bnf")
    code, out, _ = run(capsys, "grammar", "check", path)
    lines = out.splitlines()
    assert code == 2
    assert [line.split(": ")[1] for line in lines[:3]] == [
        f"{path}:5:1",
        f"{path}:6:1",
        f"{path}:7:1",
    ]
    assert sum(line.startswith(f"warning: {path}:4:") for line in lines) == 2
    assert lines[-1] == f"{path}: 3 error(s); the grammar cannot be used"


def test_check_shows_syntax_errors_with_a_caret(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(GRAMMARS / "syntax_head_typo.bnf")
    code, out, _ = run(capsys, "grammar", "check", path)
    assert code == 2
    assert out.splitlines()[:3] == [
        f"error: {path}:4:9: expected '::=' after <layer>",
        "    <layer> := conv",
        "            ^",
    ]


def test_check_prints_warnings_of_a_usable_grammar(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(GRAMMARS / "lint_unreachable.bnf")
    code, out, _ = run(capsys, "grammar", "check", path)
    assert code == 0
    assert (
        f"warning: {path}:4:1: rule <unused> is unreachable from the start rule <net>"
        in out.splitlines()
    )


def test_check_missing_file_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "grammar", "check", "no/such.bnf")
    assert code == 2
    assert (
        out + err
    ).strip() == "error: cannot read grammar file no/such.bnf: No such file or directory"


def test_check_arch_samples_parses_and_builds(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "grammar",
        "check",
        CNN,
        "--arch",
        "-n",
        "40",
        "--seed",
        "3",
        "--input-shape",
        "1,28,28",
        "--classes",
        "5",
    )
    assert code == 0
    assert f"{CNN}: sampled 40 genomes with --init sensible (seed 3):" in out
    assert "built for input 1x28x28, 5 classes" in out
    assert "mapped to a phenotype" in out and "parsed as an architecture" in out


def test_check_arch_names_the_common_failures(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "odd.bnf"
    path.write_text("<net> ::= conv(8,3) | bogus(1) | <net> <net>\n")
    code, out, _ = run(
        capsys, "grammar", "check", str(path), "--arch", "-n", "60", "--init", "sensible"
    )
    assert code == 0
    assert "with --init sensible" in out
    assert "most common failures:" in out and "x parse:" in out


def test_sample_prints_valid_phenotypes_only(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "grammar", "sample", CNN, "-n", "5", "--seed", "1")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 5 and not err
    assert all(parse_arch(line) for line in lines)
    assert run(capsys, "grammar", "sample", CNN, "-n", "5", "--seed", "1")[1] == out


def test_sample_separates_multi_line_phenotypes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "grammar", "sample", str(GRAMMARS / "multiline.bnf"), "-n", "3", "--seed", "2"
    )
    assert code == 0 and out.count("\n\n") == 2


def test_map_writes_only_json_to_stdout(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    genomes = [[0, 2, 1, 5, 5, 4], [0], [1, 2, 0], []]
    code, out, err = run(
        capsys, "grammar", "map", EXPR, stdin=json.dumps(genomes), monkeypatch=monkeypatch
    )
    assert code == 0 and not err
    assert json.loads(out) == ["y * x", None, "( x )", None]


def test_map_options(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = "[[0, 2, 1], [1, 2, 0]]"
    _, out, _ = run(
        capsys,
        "grammar",
        "map",
        EXPR,
        "--max-wraps",
        "1",
        "--max-depth",
        "3",
        stdin=stdin,
        monkeypatch=monkeypatch,
    )
    assert json.loads(out) == [None, None]
    _, out, _ = run(
        capsys, "grammar", "map", EXPR, "--max-wraps", "1", stdin=stdin, monkeypatch=monkeypatch
    )
    assert json.loads(out) == ["y + y", "( x )"]


@pytest.mark.parametrize(
    ("stdin", "words"),
    [
        ("[[1, 2", "stdin is not valid JSON"),
        ('{"a": 1}', "expected a JSON list of genomes"),
        ("[[1, -2]]", "genome 0 must be a list of non-negative integers"),
        ("[[1], [true]]", "genome 1 must be a list of non-negative integers"),
    ],
)
def test_map_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin: str, words: str
) -> None:
    code, out, err = run(capsys, "grammar", "map", EXPR, stdin=stdin, monkeypatch=monkeypatch)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and words in err and err.startswith("error: ")
