"""Every command README.md shows runs, at tiny scale, so that no example can rot."""

from __future__ import annotations

import io
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from data_files import write_cifar10

from ge_nas import rundir
from ge_nas.cli import build_parser, main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
COMMANDS = sorted(set(re.findall(r"python -m ge_nas ([^`\n#|]*)", README)))
TINY = ["--population", "2", "--generations", "1", "--epochs", "1", "--train-subset", "0.2",
        "--final-epochs", "1", "--finalists", "1", "--workers", "1"]  # fmt: skip
# Flags README names that belong to other programs (pip, dask, ruff, mypy) or to benchmarks/.
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
FOREIGN_FLAGS = {"--index-url", "--nthreads", "--check", "--strict"} | {
    flag
    for script in BENCHMARKS.glob("*.py")
    for flag in re.findall(r'add_argument\(\s*"(--[a-z0-9-]+)"', script.read_text("utf-8"))
}


def argv_of(command: str, run: Path, tmp_path: Path) -> list[str]:
    """Return a README command's arguments on the test's own run directory and files."""
    argv = [
        a.replace("runs/RUN", str(run))
        .replace("grammars/x.bnf", "grammars/cnn_small.bnf")
        .replace("runs/source", str(run / "source"))  # Transfer learning's source model
        for a in shlex.split(command)
    ]
    if argv[0] == "export" and "--rank" not in argv:  # README exports what its train line saved
        argv = [re.sub(r"/front/\d+$", "/front/1", a) for a in argv]
    if "--dataset" in argv and argv[argv.index("--dataset") + 1].startswith("cifar"):
        argv[argv.index("--dataset") + 1] = "digits"  # no CIFAR files here: the embedded digits
    if argv[0] == "prune":  # a tiny pruning run of the tiny run's network
        argv += [*TINY, "--out", str(tmp_path / "pruned")]
    if argv[0] == "run" and "cifar10" in argv:  # README's CIFAR set-up, on fake CIFAR batches
        write_cifar10(tmp_path / "cifar-10-batches-py", py2=False, per_batch=40)
        argv += ["--data-dir", str(tmp_path)]
    if argv[0] == "run":
        tiny = TINY
        if "--shots" in argv:  # the shots choose the training images: no --train-subset
            at = TINY.index("--train-subset")
            tiny = TINY[:at] + TINY[at + 2 :]
        argv += [*tiny, "--out", str(tmp_path / "new-run")]
    if "--rank" in argv:  # the tiny run's front is short: take its last rank for README's example
        ranks = [row["rank"] for row in rundir.read_pareto(run)]
        at = argv.index("--rank") + 1
        if argv[at] not in ranks:
            argv = [a.replace(f"front/{argv[at]}", f"front/{ranks[-1]}") for a in argv]
            argv[at] = ranks[-1]
    if argv[0] == "ensemble":  # an ensemble needs two trained networks: train a second one in
        second = ["train", "--phenotype", "conv(4,3) relu | opt=adam", "--dataset", "digits"]
        assert main([*second, "--epochs", "1", "--out", str(run / "front" / "99")]) == 0
    if argv[0] == "train" and "--out" in argv and Path(argv[argv.index("--out") + 1]).exists():
        argv[argv.index("--out") + 1] = str(
            tmp_path / "trained"
        )  # the tiny run's rank is a finalist
    return argv


def test_readme_shows_commands() -> None:
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize("command", COMMANDS)
def test_every_readme_command_parses(command: str, tmp_path: Path) -> None:
    argv = argv_of(command, tmp_path, tmp_path) if "--rank" not in command else shlex.split(command)
    build_parser(argv).parse_args(argv)


def test_every_flag_readme_names_exists() -> None:
    known = set()
    for action in _actions(build_parser()):
        known.update(s for s in action.option_strings if s.startswith("--"))
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", README)) - FOREIGN_FLAGS
    assert sorted(named - known) == []


def _actions(parser):  # type: ignore[no-untyped-def]
    for action in parser._actions:
        yield action
        if isinstance(action.choices, dict):  # a sub-parser action: its commands' parsers
            for sub in action.choices.values():
                yield from _actions(sub)


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_every_readme_command_runs(
    command: str,
    run_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    pytest.importorskip("onnxruntime") if "onnx" in command else None
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    if "runs/source" in command and not command.startswith("train"):
        # README's source model (its train line is tested on its own): the tests' six-block backbone
        shutil.copytree(request.getfixturevalue("backbone_dir"), run / "source")
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    if "grammar map" in command:
        genomes = re.search(r"echo '([^']*)' \| python -m ge_nas " + re.escape(command), README)
        monkeypatch.setattr(sys, "stdin", io.StringIO(genomes.group(1) if genomes else "[[1, 2]]"))
    assert main(argv_of(command, run, tmp_path)) == 0
