"""The report of a run: what its directory holds, as two PNG plots and one self-contained HTML page.

A run that is still going, or was killed, misses some files; the report shows
what there is and says what is missing. Every value put into the page is
escaped with html.escape; the plots are embedded as base64 data URIs, so the
page needs nothing beside it.
"""

from __future__ import annotations

import base64
import html
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ge_nas import plots, rundir
from ge_nas.archive import Archive, Record
from ge_nas.config import RunConfig
from ge_nas.errors import ConfigError
from ge_nas.fidelity import fidelity_key
from ge_nas.metrics import INVALID
from ge_nas.objectives import learned
from ge_nas.pareto import size_front
from ge_nas.tables import OFF_FRONT_NOTE, measured_columns, off_front, optional_cell, rank_text

PARETO_PNG = "pareto.png"
HISTORY_PNG = "history.png"
REPORT_HTML = "report.html"


@dataclass(frozen=True)
class RunSnapshot:
    """Everything a report shows, read once from a run directory."""

    path: Path
    config: RunConfig
    grammar_text: str | None
    front: tuple[Mapping[str, str], ...]  # rows of pareto.csv, or the archive's non-dominated set
    front_final: bool  # True when the front comes from pareto.csv
    evaluations: tuple[Record, ...]  # every evaluation at search fidelity
    generations: tuple[Mapping[str, Any], ...]  # lines of generations.jsonl
    notes: tuple[str, ...]  # what is missing or unreadable


@dataclass(frozen=True)
class Report:
    """The files a report wrote and what it could not show."""

    snapshot: RunSnapshot
    files: tuple[Path, ...]


def read_run(run_dir: str | os.PathLike[str]) -> RunSnapshot:
    """Read what a run directory holds; missing or unreadable files become notes."""
    path = Path(run_dir)
    config = rundir.load_run_config(path)
    notes: list[str] = []
    evaluations = read_evaluations(rundir.archive_path(path, config), fidelity_key(config), notes)
    front, final = _read_front(path, evaluations, config.accuracy_floor, notes)
    generations = rundir.read_generations(path, notes)
    copy = path / rundir.GRAMMAR
    grammar = _read_grammar(str(copy) if copy.exists() else config.grammar, notes)
    return RunSnapshot(
        path,
        config,
        grammar,
        tuple(front),
        final,
        tuple(evaluations),
        tuple(generations),
        tuple(notes),
    )


def read_evaluations(archive: Path, fidelity: str | None, notes: list[str]) -> list[Record]:
    """Return the archive's well-formed evaluations (at fidelity, or all); what it cannot read becomes a note."""
    if not archive.is_file():
        notes.append(f"{archive} is missing: no evaluation has been recorded")
        return []
    try:
        with Archive(archive, read_only=True) as opened:
            records, skipped = opened.records(fidelity), opened.skipped
    except Exception as exc:  # not an archive, damaged: report what else there is
        notes.append(
            str(exc) if isinstance(exc, ConfigError) else f"{archive} is unreadable ({exc!r})"
        )
        return []
    if skipped:
        notes.append(f"{archive}: {skipped} evaluation(s) with malformed JSON left out")
    return records


def _read_front(
    path: Path, evaluations: Sequence[Record], floor: float, notes: list[str]
) -> tuple[list[Mapping[str, str]], bool]:
    if (path / rundir.PARETO).is_file():
        try:
            rows: list[Mapping[str, str]] = list(rundir.read_pareto(path))
            front_points(rows)  # check that every row converts
            return rows, True
        except (ValueError, KeyError, TypeError) as exc:
            notes.append(
                f"{rundir.PARETO} is malformed ({exc}); showing the archive's non-dominated networks instead"
            )
            return archive_front(evaluations, floor), False
    notes.append(
        f"{rundir.PARETO} is missing: the run has not finished (or was stopped); the front shown is the archive's non-dominated networks so far"
    )
    return archive_front(evaluations, floor), False


def archive_front(records: Iterable[Record], floor: float = 0.0) -> list[Mapping[str, str]]:
    """Return the non-dominated trained records (validation error, log10 params) as pareto.csv rows.

    As in the search, networks below the accuracy floor are left out when any network learned.
    """
    trained = [r for r in records if r.metrics.ok]
    learners = [r for r in trained if learned(r.metrics, floor)]
    rows = [
        rundir.pareto_row(rank, r, None, None)
        for rank, r in enumerate(size_front(learners or trained), start=1)
    ]
    return [
        {k: "" if v is None else str(v) for k, v in row.items()} for row in rows
    ]  # as pareto.csv reads back


def _read_grammar(grammar: str, notes: list[str]) -> str | None:
    try:
        return Path(grammar).read_text(encoding="utf-8")
    except OSError as exc:
        notes.append(
            f"grammar file {grammar} is gone or unreadable ({exc.strerror or exc}); its text is not shown"
        )
        return None


def front_points(rows: Iterable[Mapping[str, str]]) -> list[plots.Point]:
    """Return pareto.csv rows as plot points."""
    return [
        plots.Point(
            int(row["params"]),
            float(row["val_accuracy"]),
            _float_or_none(row.get("test_accuracy")),
            rank=int(row["rank"]),
            final=row.get("test_fidelity") == "final",
            on_front=row.get("on_front") != "0",
        )
        for row in rows
    ]


def _float_or_none(text: str | None) -> float | None:
    return None if text in (None, "", "None") else float(text)


def evaluation_points(records: Iterable[Record]) -> list[plots.Point]:
    """Return the trained records as plot points."""
    return [
        plots.Point(r.metrics.params or 1, r.metrics.val_accuracy, r.metrics.test_accuracy)
        for r in records
        if r.metrics.ok
    ]


def write_report(run_dir: str | os.PathLike[str]) -> Report:
    """Write pareto.png, history.png and report.html into run_dir.

    Raises:
        ConfigError: run_dir is not a run directory, or matplotlib is missing.
    """
    plots.require_matplotlib()
    snapshot = read_run(run_dir)
    pareto = plots.pareto_png(evaluation_points(snapshot.evaluations), front_points(snapshot.front))
    history = plots.history_png(snapshot.generations)
    page = render_html(snapshot, pareto_png=pareto, history_png=history)
    files = (
        _write_bytes(snapshot.path / PARETO_PNG, pareto),
        _write_bytes(snapshot.path / HISTORY_PNG, history),
        _write_bytes(snapshot.path / REPORT_HTML, page.encode("utf-8")),
    )
    return Report(snapshot, files)


def _write_bytes(path: Path, data: bytes) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the report: {exc.strerror or exc}") from None
    return path


# --- HTML -----------------------------------------------------------------------------------------

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2933; margin: 0; background: #f5f7fa; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #e4e7eb; }
.sub { color: #616e7c; margin: 0 0 16px; }
.notes { background: #fff8e1; border-left: 4px solid #f0b429; padding: 8px 14px; margin: 12px 0; }
.notes ul { margin: 4px 0; padding-left: 20px; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 2px 18px; margin: 0; }
dl.summary dt { color: #616e7c; } dl.summary dd { margin: 0; }
table { border-collapse: collapse; font-size: 13px; } table.wide { width: 100%; } table.narrow { min-width: 60%; }
th, td { border-bottom: 1px solid #e4e7eb; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f5f7fa; } .num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, pre, td.code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 12px; }
td.code { word-break: break-word; } td.key { white-space: nowrap; word-break: normal; }
td.genome { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 11px; color: #616e7c; max-width: 220px; word-break: normal; overflow-wrap: normal; }  /* codons are space-separated: lines break between codons, never inside one */
pre { background: #f5f7fa; padding: 10px 12px; overflow-x: auto; white-space: pre-wrap; border-radius: 4px; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
.muted { color: #9aa5b1; }
"""


def render_html(snapshot: RunSnapshot, *, pareto_png: bytes, history_png: bytes) -> str:
    """Return the whole report as one HTML document with the plots embedded."""
    name = snapshot.path.resolve().name
    body = "\n".join(
        [
            f"<h1>ge_nas run {_e(name)}</h1>",
            f'<p class="sub">{_e(str(snapshot.path))} &middot; <code>{_e(snapshot.config.command or "(command not recorded)")}</code></p>',
            _notes_html(snapshot.notes),
            "<h2>Summary</h2>",
            _summary_html(snapshot),
            "<h2>Accuracy against size</h2>",
            _img(pareto_png, "validation and test accuracy against parameters"),
            "<h2>Search history</h2>",
            _img(history_png, "hypervolume and accuracy per generation"),
            f"<h2>{'Pareto front' if snapshot.front_final else 'Non-dominated networks so far'}</h2>",
            _front_html(snapshot),
            "<h2>Generations</h2>",
            _generations_html(snapshot.generations),
            "<h2>Why networks were invalid</h2>",
            _invalid_html(snapshot),
            "<h2>Configuration</h2>",
            _config_html(snapshot.config),
            f"<h2>Grammar <code>{_e(snapshot.config.grammar)}</code></h2>",
            _grammar_html(snapshot),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>ge_nas report: {_e(name)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _img(png: bytes, alt: str) -> str:
    return (
        f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" alt="{_e(alt)}">'
    )


def _notes_html(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{_e(note)}</li>" for note in notes)
    return f'<div class="notes"><strong>Partial report.</strong><ul>{items}</ul></div>'


def _summary_html(snapshot: RunSnapshot) -> str:
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in summary_items(snapshot))
    return f'<dl class="summary">{items}</dl>'


def summary_items(snapshot: RunSnapshot) -> list[tuple[str, str]]:
    """Return (label, value) lines: data set, objectives, progress, evaluations, best."""
    c = snapshot.config
    return [
        ("data set", c.data_text()),
        ("objectives", ", ".join(c.objectives)),
        (
            "budget",
            f"population {c.population}, generations {c.generations}, epochs per evaluation {c.epochs}",
        ),
        ("progress", progress_text(snapshot.generations, c.generations)),
        ("archived evaluations", status_text(status_counts(snapshot.evaluations))),
        ("best validation accuracy", best_text(snapshot.evaluations)),
    ]


def progress_text(generations: Sequence[Mapping[str, Any]], total: int) -> str:
    """Return e.g. 'generation 3/6 done' from generations.jsonl lines."""
    if not generations:
        return f"the initial population is not finished yet (0/{total} generations)"
    last = int(generations[-1]["generation"])
    return f"generation {last}/{total} done" + (" (finished)" if last >= total else "")


def status_counts(records: Iterable[Record]) -> dict[str, int]:
    """Return how many records have each status."""
    counts: dict[str, int] = {}
    for r in records:
        counts[r.metrics.status] = counts.get(r.metrics.status, 0) + 1
    return counts


def status_text(counts: Mapping[str, int]) -> str:
    """Return e.g. '14 (12 ok, 2 invalid)'."""
    if not counts:
        return "none yet"
    parts = ", ".join(
        f"{n} {status}" for status, n in sorted(counts.items(), key=lambda kv: -kv[1])
    )
    return f"{sum(counts.values())} ({parts})"


def best_text(records: Iterable[Record]) -> str:
    """Return the best validation accuracy with its size and phenotype, or 'none yet'."""
    trained = [r for r in records if r.metrics.ok]
    if not trained:
        return "none yet"
    best = max(trained, key=lambda r: (r.metrics.val_accuracy, -(r.metrics.params or 0)))
    return f"{best.metrics.val_accuracy:.4f} with {best.metrics.params or 0:,} params: {best.phenotype}"


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[tuple[str, str]]], *, wide: bool = True
) -> str:
    """Return an HTML table; each cell is (CSS class, text) and the header takes its column's class."""
    classes = [cls for cls, _ in rows[0]] if rows else [""] * len(headers)
    head = "".join(f'<th class="{cls}">{_e(h)}</th>' for cls, h in zip(classes, headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="{cls}">{_e(v)}</td>' for cls, v in row) + "</tr>"
        for row in rows
    )
    return f'<table class="{"wide" if wide else "narrow"}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _front_html(snapshot: RunSnapshot) -> str:
    if not snapshot.front:
        return '<p class="muted">No trained network yet.</p>'
    extras = measured_columns(snapshot.front)
    headers = [
        "rank",
        "val acc",
        "test acc",
        "params",
        "FLOPs",
        *(head for _, head, _ in extras),
        "phenotype",
        "genome",
    ]
    rows = [_front_cells(row, extras) for row in snapshot.front]
    starred = any(row.get("test_fidelity") != "final" for row in snapshot.front)
    note = (
        '<p class="muted">* test accuracy after the search\'s short training (not retrained).</p>'
        if starred
        else ""
    )
    if any(off_front(row) for row in snapshot.front):
        note += f'<p class="muted">{html.escape(OFF_FRONT_NOTE)}.</p>'
    return _table(headers, rows) + note


def _front_cells(
    row: Mapping[str, str], extras: Sequence[tuple[str, str, str]]
) -> list[tuple[str, str]]:
    test = _float_or_none(row.get("test_accuracy"))
    test_text = (
        "-"
        if test is None
        else f"{test:.4f}" + ("" if row.get("test_fidelity") == "final" else "*")
    )
    return [
        ("num", rank_text(row)),
        ("num", f"{float(row['val_accuracy']):.4f}"),
        ("num", test_text),
        ("num", f"{int(row['params']):,}"),
        ("num", f"{int(row['flops']):,}"),
        *(("num", optional_cell(row, key, fmt)) for key, _, fmt in extras),
        ("code", row["phenotype"]),
        ("genome", row.get("genome", "")),
    ]


GENERATION_COLUMNS = (
    ("generation", "gen", "{}"),
    ("evaluations", "trained", "{}"),
    ("cached", "cached", "{}"),
    ("invalid", "invalid", "{}"),
    ("over_budget", "over budget", "{}"),
    ("failed", "failed", "{}"),
    ("best_accuracy", "best val", "{:.4f}"),
    ("median_accuracy", "median val", "{:.4f}"),
    ("front_size", "front", "{}"),
    ("hypervolume", "HV", "{:.4f}"),
    ("seconds", "seconds", "{:.1f}"),
)


def _generations_html(generations: Sequence[Mapping[str, Any]]) -> str:
    if not generations:
        return '<p class="muted">No finished generation yet.</p>'
    headers = [label for _, label, _ in GENERATION_COLUMNS]
    rows = [
        [("num", _format(fmt, g.get(key))) for key, _, fmt in GENERATION_COLUMNS]
        for g in generations
    ]
    return _table(headers, rows, wide=False)


TOP_REASONS = 10


def invalid_reasons(snapshot: RunSnapshot) -> list[tuple[int, str]]:
    """Return (individuals, reason with the grammar line to fix) of the most common invalid reasons.

    The counts are generations.jsonl's (every invalid individual, mapping failures too), or the
    archive's for a run without them; each reason is shown as the archive's first record of it
    tells it, which names the grammar line that wrote a phenotype that did not parse.
    """
    counts: Counter[str] = Counter()
    for generation in snapshot.generations:
        counts.update(_reason_counts(generation.get("invalid_reasons")))
    invalid = [r for r in snapshot.evaluations if r.metrics.status == INVALID]
    if not counts:
        counts = Counter(r.metrics.failure() for r in invalid)
    told = {r.metrics.failure(): r.metrics.error.split("\n")[0] for r in reversed(invalid)}
    return [(n, told.get(reason) or reason) for reason, n in counts.most_common(TOP_REASONS)]


def _reason_counts(value: Any) -> dict[str, int]:
    """Return a generations.jsonl line's reason counts, skipping what is not a count."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): n for k, n in value.items() if isinstance(n, int)}


def _invalid_html(snapshot: RunSnapshot) -> str:
    reasons = invalid_reasons(snapshot)
    if not reasons:
        return '<p class="muted">No invalid network.</p>'
    rows = [[("num", str(n)), ("code", reason)] for n, reason in reasons]
    return _table(["individuals", "reason (and the grammar line that wrote it)"], rows)


def _format(fmt: str, value: Any) -> str:
    try:
        return "-" if value is None else fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def _config_html(config: RunConfig) -> str:
    rows = [
        [("code key", key), ("code", "(unset)" if value is None else _config_value(value))]
        for key, value in asdict(config).items()
    ]
    return _table(["option", "value"], rows, wide=False)


def _config_value(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _grammar_html(snapshot: RunSnapshot) -> str:
    if snapshot.grammar_text is None:
        return f'<p class="notes">The grammar file {_e(snapshot.config.grammar)} is gone; its text cannot be shown.</p>'
    return f"<pre>{_e(snapshot.grammar_text)}</pre>"
