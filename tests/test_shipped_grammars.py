"""Every grammar shipped in grammars/ passes `grammar check --arch` for 8x8 and 28x28 inputs.

A transfer-learning grammar (one with backbone layers) is built on the tests' six-block
backbone (conftest.backbone_dir), the block count its keep range is written for.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ge_nas.cli import main

SHIPPED = sorted((Path(__file__).parent.parent / "grammars").glob("*.bnf"))


def test_there_are_shipped_grammars() -> None:
    assert any(p.name == "cnn_small.bnf" for p in SHIPPED)


@pytest.mark.parametrize("shape", ["1,8,8", "1,28,28"])
@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_grammar_checks_and_builds(
    path: Path, shape: str, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    backbone = []
    if "backbone(" in path.read_text(encoding="utf-8"):
        backbone = ["--backbone", str(request.getfixturevalue("backbone_dir"))]
    argv = ["grammar", "check", str(path), "--arch", "--input-shape", shape, "-n", "100"]
    assert main([*argv, *backbone]) == 0
    out = capsys.readouterr().out
    assert "0 warning(s)" in out
    built = re.search(r"built for input .*?(\d+\.\d)%", out)
    assert built and float(built.group(1)) >= 60.0, out
