"""Where a data set's files live: the directories tried, and an error that says what is missing."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from ge_nas.errors import DatasetError

log = logging.getLogger(__name__)


def search_dirs(
    name: str,
    subdirs: Sequence[str],
    data_dir: str | None,
    system_dir: Path,
    *,
    nested: bool = False,
) -> list[Path]:
    """Return the directories that may hold data set `name`, in the order they are tried.

    Without data_dir, only system_dir/name (and, when nested, its subdirs) is tried.
    """
    if data_dir is None:
        root = system_dir / name
        return [root, *(root / s for s in subdirs)] if nested else [root]
    root = Path(data_dir)
    return [root, *(root / s for s in subdirs)]


def find_files(
    name: str, dirs: Sequence[Path], wanted: Mapping[str, Sequence[str]], hint: str
) -> dict[str, Path]:
    """Return role -> path from the first directory holding every wanted file."""
    files = ", ".join(_show(names) for names in wanted.values())
    hint = hint.format(files=files)
    partial: tuple[Path, dict[str, Path]] | None = None
    for folder in dirs:
        found = {role: p for role, names in wanted.items() if (p := _first_file(folder, names))}
        if len(found) == len(wanted):
            log.debug("%s: reading from %s", name, folder)
            return found
        partial = partial or ((folder, found) if found else None)
    if partial is None:
        raise DatasetError(_not_found_message(name, dirs, files, hint))
    folder, found = partial
    missing = ", ".join(_show(wanted[r]) for r in wanted if r not in found)
    raise DatasetError(
        f"{name}: {folder} has {', '.join(p.name for p in found.values())} but not {missing}; {hint}"
    )


def _show(names: Sequence[str]) -> str:
    """Return 'x[.gz]' for the names ('x.gz', 'x', ...), else the first name."""
    first = names[0]
    return f"{first[:-3]}[.gz]" if first.endswith(".gz") and first[:-3] in names else first


def _first_file(folder: Path, names: Sequence[str]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _not_found_message(name: str, dirs: Sequence[Path], files: str, hint: str) -> str:
    looked = "\n".join(f"  {d}" + ("" if d.is_dir() else " (no such directory)") for d in dirs)
    return f"{name}: data set not found; looked for {files} in:\n{looked}\nTo get it: {hint}"
