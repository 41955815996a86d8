"""The package's layout: imports point down the layers, and the command line starts without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ge_nas"

# Lower layers never import higher ones; a module may import its own layer.
LAYERS = [
    {"errors", "metrics", "objectives", "config"},
    {"arch", "grammar", "data", "fidelity", "pareto", "archive", "rundir", "tables", "plots"},
    {"network", "train", "scoring", "export", "feature_cache"},
    {"worker", "executors", "dask_cache"},
    {"search", "report", "finalise"},
    {"cli", "__init__", "__main__"},
]


def room(module: str) -> str:
    """Return the top-level room of a dotted module name: ge_nas.grammar.mapper -> grammar."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def rank(module: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if room(module) in layer)


def imports() -> list[tuple[str, str]]:
    """Return (importer, imported) for every ge_nas import inside the package."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        importer = "ge_nas." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("ge_nas")
            ):
                found += [(importer, _imported(node.module, a.name)) for a in node.names]
    return found


def _imported(module: str, name: str) -> str:
    """Return the module an import reads: `from ge_nas import rundir` reads ge_nas.rundir, `import __version__` ge_nas."""
    is_module = (PACKAGE / f"{name}.py").exists() or (PACKAGE / name).is_dir()
    return f"ge_nas.{name}" if module == "ge_nas" and is_module else module


def test_every_room_has_a_layer() -> None:
    rooms = {
        room("ge_nas." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts))
        for p in PACKAGE.rglob("*.py")
    }
    assert rooms <= set().union(*LAYERS)


def test_imports_point_down_the_layers() -> None:
    upward = [(a, b) for a, b in imports() if room(b) != "__init__" and rank(b) > rank(a)]
    assert upward == []


def test_no_module_outside_cli_imports_a_command() -> None:
    assert [
        (a, b) for a, b in imports() if room(b) == "cli" and room(a) not in ("cli", "__main__")
    ] == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["grammar", "check", "grammars/cnn_small.bnf"],
        ["grammar", "sample", "grammars/cnn_small.bnf", "-n", "2"],
    ],
)
def test_help_and_grammar_commands_do_not_import_torch(argv: list[str]) -> None:
    code = f"import sys\nfrom ge_nas.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "False"
