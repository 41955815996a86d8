"""The report of a run: one self-contained page, the front's phenotypes, partial runs, escaping."""

from __future__ import annotations

import base64
import html
import re
import shutil
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_archive import damage

pytest.importorskip("matplotlib")

from ge_nas import rundir  # noqa: E402
from ge_nas.archive import Record  # noqa: E402
from ge_nas.errors import ConfigError  # noqa: E402
from ge_nas.fidelity import fidelity_key  # noqa: E402
from ge_nas.metrics import INVALID, OK, Metrics  # noqa: E402
from ge_nas.report import (  # noqa: E402
    _front_html,
    archive_front,
    invalid_reasons,
    progress_text,
    read_run,
    render_html,
    status_counts,
    status_text,
    write_report,
)

IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def report_html(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Return a copy of the finished run, reported, and its report.html text."""
    target = tmp_path_factory.mktemp("reported") / "run"
    shutil.copytree(run_dir, target)
    write_report(target)
    return target, (target / "report.html").read_text(encoding="utf-8")


def test_report_writes_two_plots_and_one_page(report_html: tuple[Path, str]) -> None:
    path, page = report_html
    images = [base64.b64decode(data) for data in IMG.findall(page)]
    assert images == [(path / "pareto.png").read_bytes(), (path / "history.png").read_bytes()]
    assert all(image.startswith(b"\x89PNG") for image in images)


def test_page_needs_nothing_beside_it(report_html: tuple[Path, str]) -> None:
    page = report_html[1]
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"<script|<link|src=\"(?!data:)|url\(", page)


def test_page_shows_front_generations_config_and_grammar(report_html: tuple[Path, str]) -> None:
    path, page = report_html
    front = rundir.read_pareto(path)
    assert front and "Partial report" not in page
    for row in front:
        assert html.escape(row["phenotype"]) in page
    config = rundir.load_run_config(path)
    assert html.escape(config.command) in page
    assert html.escape(Path(config.grammar).read_text(encoding="utf-8")) in page
    generations = (path / rundir.GENERATIONS).read_text().splitlines()
    assert (
        page.count("<tr>") >= len(front) + len(generations) + 20
    )  # front, generations, configuration rows


def test_every_value_is_escaped(run_dir: Path) -> None:
    snapshot = read_run(run_dir)
    row = {**snapshot.front[0], "phenotype": "<script>alert(1)</script> & co"}
    page = render_html(
        replace(snapshot, front=(row,), grammar_text="<x> ::= a | b"),
        pareto_png=b"p",
        history_png=b"h",
    )
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert "&lt;x&gt; ::= a | b" in page


def test_partial_run_names_what_is_missing(copy_run) -> None:  # type: ignore[no-untyped-def]
    path = copy_run(rundir.PARETO, rundir.GENERATIONS, "front", "checkpoint.json", rundir.GRAMMAR)
    (path / rundir.CONFIG).write_text(
        (path / rundir.CONFIG).read_text().replace("grammars/cnn_small.bnf", "gone/away.bnf")
    )
    report = write_report(path)
    notes = " ".join(report.snapshot.notes)
    assert (
        "pareto.csv is missing" in notes
        and "generations.jsonl is missing" in notes
        and "gone/away.bnf" in notes
    )
    page = (path / "report.html").read_text()
    assert (
        "Partial report" in page and "pareto.csv is missing" in page and len(IMG.findall(page)) == 2
    )
    assert (
        not report.snapshot.front_final and report.snapshot.front
    )  # the archive's non-dominated networks


def test_grammar_copy_survives_the_original(copy_run) -> None:  # type: ignore[no-untyped-def]
    path = copy_run()
    (path / rundir.CONFIG).write_text(
        (path / rundir.CONFIG).read_text().replace("grammars/cnn_small.bnf", "gone/away.bnf")
    )
    report = write_report(path)
    assert report.snapshot.grammar_text == Path("grammars/cnn_small.bnf").read_text()


def test_only_a_config_still_reports(copy_run) -> None:  # type: ignore[no-untyped-def]
    path = copy_run(rundir.ARCHIVE, rundir.PARETO, rundir.GENERATIONS)
    report = write_report(path)
    assert report.snapshot.evaluations == () and "archive.sqlite is missing" in " ".join(
        report.snapshot.notes
    )
    assert "No trained network yet" in (path / "report.html").read_text()


def test_half_written_generation_line_is_skipped(copy_run) -> None:  # type: ignore[no-untyped-def]
    path = copy_run()
    with open(path / rundir.GENERATIONS, "a") as f:
        f.write('{"generation": 7, "evalu')
    snapshot = read_run(path)
    assert [g["generation"] for g in snapshot.generations] == [0, 1]
    assert any("line 3 is unreadable" in note for note in snapshot.notes)


@pytest.mark.parametrize(
    ("make", "why"), [(lambda p: p / "nope", "no such directory"), (lambda p: p, "no config.toml")]
)
def test_not_a_run_directory(tmp_path: Path, make, why: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=f"not a run directory \\({why}\\)"):
        write_report(make(tmp_path))


def test_damaged_archive_is_one_note_of_one_line(copy_run) -> None:  # type: ignore[no-untyped-def]
    path = copy_run()
    damage(path / rundir.ARCHIVE)
    snapshot = read_run(path)
    damaged = [n for n in snapshot.notes if "archive.sqlite: a damaged SQLite database" in n]
    assert len(damaged) == 1 and "\n" not in damaged[0] and snapshot.evaluations == ()


def test_malformed_archive_row_is_left_out_and_noted(copy_run) -> None:  # type: ignore[no-untyped-def]
    path = copy_run()
    fidelity = fidelity_key(rundir.load_run_config(path))
    before = len(read_run(path).evaluations)
    with sqlite3.connect(path / rundir.ARCHIVE) as db:
        db.execute(
            "INSERT INTO evaluations (phenotype_hash, fidelity, phenotype, genome, status, metrics)"
            " VALUES ('cut', ?, 'relu', '[1]', 'ok', '{\"status\": \"ok\", \"val_')",
            (fidelity,),
        )
    db.close()
    snapshot = read_run(path)
    assert len(snapshot.evaluations) == before
    assert any("1 evaluation(s) with malformed JSON left out" in n for n in snapshot.notes)


def record(val: float, params: int, phenotype: str, status: str = OK) -> Record:
    return Record(
        phenotype, "f", phenotype, (1,), Metrics(status, val, val - 0.01, params, params * 10)
    )


def test_archive_front_is_the_non_dominated_trained_set() -> None:
    records = [
        record(0.9, 1000, "a"),
        record(0.8, 100, "b"),
        record(0.85, 2000, "c"),
        record(0.95, 10, "d", "failed"),
        record(0.7, 100, "e"),
    ]
    front = archive_front(records)
    assert [(r["rank"], r["phenotype"]) for r in front] == [("1", "a"), ("2", "b")]
    assert front[0]["test_fidelity"] == "search" and float(
        front[0]["test_accuracy"]
    ) == pytest.approx(0.89)


def test_archive_front_leaves_out_networks_below_the_accuracy_floor() -> None:
    at_chance = replace(record(0.11, 10, "tiny"), metrics=Metrics(OK, 0.11, params=10, chance=0.1))
    learned = [record(0.9, 1000, "a"), record(0.8, 100, "b")]
    assert [r["phenotype"] for r in archive_front([*learned, at_chance])] == ["a", "b", "tiny"]
    assert [r["phenotype"] for r in archive_front([*learned, at_chance], 0.1)] == ["a", "b"]
    assert [r["phenotype"] for r in archive_front([at_chance], 0.1)] == ["tiny"]  # none learned


def test_front_shows_latency_and_robustness_when_measured() -> None:
    plain = archive_front([record(0.9, 1000, "a")])
    measured = archive_front(
        [
            replace(
                record(0.9, 1000, "a"),
                metrics=replace(record(0.9, 1000, "a").metrics, latency_ms=2.5, robustness=0.75),
            )
        ]
    )
    assert "latency" not in _front_html(SimpleNamespace(front=plain))
    page = _front_html(SimpleNamespace(front=measured))
    assert '<th class="num">latency ms</th>' in page and "2.500" in page and "0.7500" in page


def test_report_lists_the_top_invalid_reasons_with_their_grammar_line(run_dir: Path) -> None:
    told = "unknown layer 'bogus' (x.bnf:3: <layer> ::= bogus)"
    bogus = Metrics(INVALID, error=f"{told}\nphenotype 1:1: ...", reason="unknown layer 'bogus'")
    snapshot = replace(
        read_run(run_dir),
        generations=(
            {
                "generation": 0,
                "invalid_reasons": {"unknown layer 'bogus'": 3, "ran out of codons": 1},
            },
            {"generation": 1, "invalid_reasons": {"ran out of codons": 1}},
        ),
        evaluations=(Record("h", "f", "bogus", (1,), bogus),),
    )
    assert invalid_reasons(snapshot) == [(3, told), (2, "ran out of codons")]
    page = render_html(snapshot, pareto_png=b"p", history_png=b"h")
    assert "Why networks were invalid" in page and html.escape(told) in page


def test_summary_texts() -> None:
    assert (
        status_text(
            status_counts([record(0.9, 1, "a"), record(0, 1, "b", "invalid"), record(0.8, 1, "c")])
        )
        == "3 (2 ok, 1 invalid)"
    )
    assert progress_text([], 6).startswith("the initial population is not finished")
    assert progress_text([{"generation": 6}], 6) == "generation 6/6 done (finished)"


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report_html: tuple[Path, str], tmp_path: Path) -> None:
    """Render the page as a person would see it; look at the screenshot when changing the page."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    shot = tmp_path / "report.png"
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
        (report_html[0] / "report.html").resolve().as_uri(),
    ]
    subprocess.run(command, capture_output=True, timeout=120, check=True)
    from matplotlib.image import imread

    pixels = imread(str(shot))
    assert pixels.shape[:2] == (2000, 1200)
    assert pixels[..., :3].std() > 0.05  # not a blank page


def test_the_genome_column_breaks_between_codons_not_inside_them() -> None:
    from ge_nas.report import CSS

    rule = next(line for line in CSS.splitlines() if line.startswith("td.genome"))
    assert "break-all" not in rule and "word-break: normal" in rule
