"""Every grammar shipped in grammars/ passes `grammar check --arch` for 8x8 and 28x28 inputs;
cnnga_cifar.bnf also for CIFAR's 3x32x32, with seed 003's space.

A transfer-learning grammar (one with backbone layers) is built on the tests' six-block
backbone (conftest.backbone_dir), the block count its keep range is written for.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from ge_nas.cli import main
from ge_nas.grammar import count_derivations, load_grammar
from ge_nas.grammar.sge import map_sge

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


# --- cnnga_cifar.bnf: seed 003's space ---------------------------------------------------------

CNNGA = Path(__file__).parent.parent / "grammars" / "cnnga_cifar.bnf"


def test_cnnga_cifar_maps_parses_and_builds_for_cifar_images(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["grammar", "check", str(CNNGA), "--arch", "--input-shape", "3,32,32", "-n", "100"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "0 warning(s)" in out and "built for input 3x32x32, 10 classes       100.0%" in out
    # 4 scales x 4 kernels x 2 activations x (2 + 4 + 8 + 16 + 32) stage bits for 1..5 stages
    assert "search space: 1,984 derivation trees" in out


def test_cnnga_cifar_has_one_phenotype_per_choice_of_seed_003s_genes() -> None:
    grammar = load_grammar(CNNGA)
    phenotypes = set()
    for scale, kernel, act, depth in itertools.product(range(4), range(4), range(2), range(5)):
        for bits in itertools.product(range(2), repeat=depth + 1):
            genes = {
                "net": [0],
                "cnn": [scale],
                "kernel": [kernel],
                "act": [act],
                "stages": [depth],
            }
            phenotypes.add(map_sge(grammar, genes | {"stage": list(bits)}, max_depth=40).phenotype)
    assert None not in phenotypes
    assert len(phenotypes) == count_derivations(grammar, 40) == 4 * 4 * 2 * (2 + 4 + 8 + 16 + 32)


def test_cnnga_cifar_stage_filters_and_bits() -> None:
    # scale 2 (16 x 2 filters in stage 1, 32 x 2 in stage 2), kernel 2, elu, two stages: bits 0, 1
    genes = {"net": [0], "cnn": [1], "kernel": [0], "act": [1], "stages": [1], "stage": [0, 1]}
    assert map_sge(load_grammar(CNNGA), genes, max_depth=40).phenotype == (
        "conv(32, 2, 2) conv(32, 2) elu bn pool(max, 2) dropout(0.25) "
        "conv(64, 2) elu bn pool(max, 2) dropout(0.25) "
        "flatten dense(2048) relu dropout(0.5) dense(1024) relu dropout(0.5) "
        "| opt=adam lr=0.001 batch=32 sched=none"
    )
