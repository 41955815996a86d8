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
    assert "invalid; most common reasons:" in out
    assert f"x parse: unknown layer 'bogus' ({path}:1: <net> ::= bogus(1))" in out


def test_check_parses_samples_without_arch_and_names_the_grammar_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bogus.bnf"
    path.write_text("<net> ::= <layer> | <layer> <layer>\n<layer> ::= conv(8)\n  | bogus\n")
    code, out, _ = run(capsys, "grammar", "check", str(path), "-n", "30", "--seed", "2")
    lines = out.splitlines()
    assert code == 0 and "built for input" not in out
    parsed = next(line for line in lines if "parsed as an architecture" in line)
    invalid = int(next(line for line in lines if "most common reasons" in line).split()[0])
    assert parsed.endswith(f"({30 - invalid}/30)") and 0 < invalid < 30
    assert f"x parse: unknown layer 'bogus' ({path}:3: <layer> ::= bogus)" in out


def test_check_exits_1_when_no_sample_is_a_valid_network(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "none.bnf"
    path.write_text("<net> ::= conv(<f>) relu\n<f> ::= 0 | -1\n")
    code, out, _ = run(capsys, "grammar", "check", str(path), "-n", "10")
    assert code == 1
    assert f"conv: filters must be in [1, 4096], got 0 ({path}:2: <f> ::= 0)" in out
    assert out.splitlines()[-1] == (
        f"{path}: no sampled phenotype is a valid network; fix the lines named above"
    )


def test_check_exits_1_when_no_sample_builds_with_arch(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "flat.bnf"
    path.write_text("<net> ::= dense(8) conv(8)\n")
    assert run(capsys, "grammar", "check", str(path), "-n", "5")[0] == 0
    code, out, _ = run(capsys, "grammar", "check", str(path), "-n", "5", "--arch")
    assert code == 1 and "x build: conv needs a feature map, gets a flat vector" in out


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("<net> ::= conv(<f>) | dense(<f>) relu\n<f> ::= 8 | 16 | 32\n", "6 derivation trees"),
        ((GRAMMARS / "expr.bnf").read_text(), "more than 1e1000 derivation trees"),
    ],
)
def test_check_prints_the_search_space_size(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, shown: str
) -> None:
    path = tmp_path / "space.bnf"
    path.write_text(text)
    out = run(capsys, "grammar", "check", str(path), "-n", "5")[1]
    assert f"{path}: search space: {shown} up to --max-depth 40" in out


def test_check_rounds_a_huge_search_space(capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "grammar", "check", CNN, "-n", "5", "--max-depth", "12")[1]
    assert re.search(
        r"search space: ~[1-9]\.[0-9]e[0-9]+ derivation trees up to --max-depth 12", out
    )


def test_check_arch_prints_the_parameter_range_of_the_built_networks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "two.bnf"
    path.write_text("<net> ::= dense(4) | dense(8)\n")
    out = run(capsys, "grammar", "check", str(path), "-n", "20", "--arch")[1]
    # pooled 1x8x8 input: dense(4) 1*4+4 and head 4*10+10; dense(8) 1*8+8 and 8*10+10
    assert "  parameters of the built networks: 58..106" in out


def test_check_shows_a_missing_define_as_one_syntax_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(GRAMMARS / "syntax_head_missing.bnf")
    code, out, _ = run(capsys, "grammar", "check", path)
    assert code == 2
    assert out.splitlines() == [
        f"error: {path}:3:9: expected '::=' after <layer>",
        "    <layer> conv(8) | pool",
        "            ^",
        f"{path}: 1 error(s); the grammar cannot be used",
    ]


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


def test_map_bit_genomes_as_lists_or_strings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # <expr>: 2 bits (00 <expr> <op> <expr>, 01 ( <expr> ), 10 <var>); <op>: 2 bits (10 *); <var>: 1 bit.
    stdin = json.dumps(["00 10 1 10 10 0".replace(" ", ""), [0, 1, 1, 0, 0], "0010"])
    code, out, err = run(
        capsys,
        "grammar",
        "map",
        EXPR,
        "--representation",
        "bits",
        stdin=stdin,
        monkeypatch=monkeypatch,
    )
    assert (code, err) == (0, "")
    assert json.loads(out) == ["y * x", "( x )", None]
    code, _, err = run(
        capsys,
        "grammar",
        "map",
        EXPR,
        "--representation",
        "bits",
        stdin="[[0, 2]]",
        monkeypatch=monkeypatch,
    )
    assert code == 2 and "genome 0 must hold only bits" in err


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
