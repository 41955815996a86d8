"""Runs that survive: SIGKILL at any moment, resume, the same front; the run-directory lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ge_nas import rundir
from ge_nas.archive import Archive
from ge_nas.cli import main

RUN = [
    "run",
    "--grammar",
    "grammars/cnn_small.bnf",
    "--population",
    "5",
    "--generations",
    "2",
    "--seed",
    "4",
    "--epochs",
    "1",
    "--train-subset",
    "0.25",
    "--final-epochs",
    "1",
    "--finalists",
    "1",
    "--workers",
    "1",
    "--max-params",
    "30000",
]


def front(path: Path) -> list[tuple[str, str, str]]:
    return [
        (r["phenotype_hash"], r["val_accuracy"], r["test_accuracy"])
        for r in rundir.read_pareto(path)
    ]


def archive_keys(path: Path) -> list[tuple[str, str]]:
    with Archive(path / rundir.ARCHIVE, read_only=True) as archive:
        return [(r.phenotype_hash, r.fidelity) for r in archive.records()]


def rows(path: Path) -> int:
    try:
        return len(archive_keys(path))
    except Exception:
        return 0


def start_and_kill(out: Path, after_rows: int, *, run: list[str] = RUN) -> None:
    """Start a run in a subprocess and SIGKILL it once its archive holds after_rows evaluations."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ge_nas", "-q", *run, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while rows(out) < after_rows and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def check_kill_and_resume(run: list[str], tmp_path: Path, after_rows: int) -> None:
    """Run to the end; run again, SIGKILLed after after_rows evaluations, and resume: nothing lost or trained twice."""
    whole = tmp_path / "whole"
    assert main(["-q", *run, "--out", str(whole)]) == 0
    out = tmp_path / "killed"
    start_and_kill(out, after_rows, run=run)
    killed_with = archive_keys(out)
    assert len(killed_with) >= after_rows and not (out / rundir.PARETO).exists()
    assert main(["-q", "resume", str(out)]) == 0
    keys = archive_keys(out)
    assert keys[: len(killed_with)] == killed_with, "no finished evaluation is lost"
    assert len(keys) == len(set(keys)), "none is trained twice"
    assert sorted(keys) == sorted(archive_keys(whole))
    assert front(out) == front(whole)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "run"
    assert main(["-q", *RUN, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("after_rows", [2, 7])
def test_killed_run_resumes_to_the_same_front(
    uninterrupted: Path, tmp_path: Path, after_rows: int
) -> None:
    out = tmp_path / "run"
    start_and_kill(out, after_rows)
    killed_with = archive_keys(out)
    assert len(killed_with) >= after_rows and not (out / rundir.PARETO).exists()
    assert main(["-q", "resume", str(out)]) == 0
    assert front(out) == front(uninterrupted)
    keys = archive_keys(out)
    assert keys[: len(killed_with)] == killed_with, "no finished evaluation is lost"
    assert len(keys) == len(set(keys)) and sorted(keys) == sorted(archive_keys(uninterrupted)), (
        "none is trained twice"
    )
    lines = [
        json.loads(x)["generation"] for x in (out / rundir.GENERATIONS).read_text().splitlines()
    ]
    assert lines == [0, 1, 2]


STEADY = [*RUN, "--mode", "steady"]


@pytest.fixture(scope="module")
def uninterrupted_steady(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("steady") / "run"
    assert main(["-q", *STEADY, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("after_rows", [3, 8])
def test_killed_steady_state_run_resumes_to_the_same_front(
    uninterrupted_steady: Path, tmp_path: Path, after_rows: int
) -> None:
    out = tmp_path / "run"
    start_and_kill(out, after_rows, run=STEADY)
    killed_with = archive_keys(out)
    assert main(["-q", "resume", str(out)]) == 0
    assert front(out) == front(uninterrupted_steady)
    keys = archive_keys(out)
    assert keys[: len(killed_with)] == killed_with, "no finished evaluation is lost"
    assert len(keys) == len(set(keys)), "none is trained twice"
    assert sorted(keys) == sorted(archive_keys(uninterrupted_steady))


STEADY_SH = [*STEADY, "--fidelity", "sh", "--sh-rungs", "2", "--sh-eta", "2"]


def test_killed_steady_run_with_asha_resumes_to_the_same_front(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    whole = tmp_path_factory.mktemp("steady-sh") / "run"
    assert main(["-q", *STEADY_SH, "--out", str(whole)]) == 0
    assert any("epochs=2" in fidelity for _, fidelity in archive_keys(whole)), "ASHA promoted"
    out = tmp_path / "run"
    start_and_kill(out, 7, run=STEADY_SH)
    killed_with = archive_keys(out)
    assert main(["-q", "resume", str(out)]) == 0
    assert front(out) == front(whole)
    keys = archive_keys(out)
    assert keys[: len(killed_with)] == killed_with, "no finished evaluation is lost"
    assert sorted(keys) == sorted(archive_keys(whole))


BITS = [*RUN, "--representation", "bits"]


def test_killed_bits_run_resumes_to_the_same_front(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    whole = tmp_path_factory.mktemp("bits") / "run"
    assert main(["-q", *BITS, "--out", str(whole)]) == 0
    out = tmp_path / "run"
    start_and_kill(out, 7, run=BITS)
    killed_with = archive_keys(out)
    assert main(["-q", "resume", str(out)]) == 0
    assert front(out) == front(whole)
    keys = archive_keys(out)
    assert keys[: len(killed_with)] == killed_with, "no finished evaluation is lost"
    assert sorted(keys) == sorted(archive_keys(whole)), "none is trained twice"
    population = json.loads((out / rundir.CHECKPOINT).read_text())["population"]
    assert all(set(ind["genome"]) <= {0, 1} for ind in population)


def test_resume_extends_a_finished_run(uninterrupted: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    import shutil

    shutil.copytree(uninterrupted, out)
    before = len(archive_keys(out))
    assert main(["-q", "resume", str(out), "--generations", "3"]) == 0
    assert [
        json.loads(x)["generation"] for x in (out / rundir.GENERATIONS).read_text().splitlines()
    ] == [0, 1, 2, 3]
    assert len(archive_keys(out)) > before


def test_checkpoint_is_plain_json(uninterrupted: Path) -> None:
    doc = json.loads((uninterrupted / rundir.CHECKPOINT).read_text())
    assert doc["generation"] == 2 and len(doc["population"]) == 5
    assert set(doc["rng"]) == {"python"}  # evaluations seed torch themselves: no global RNG to keep


def hold_lock(path: Path) -> subprocess.Popen[bytes]:
    code = f"import time; from pathlib import Path; from ge_nas import rundir\nwith rundir.run_lock(Path({str(path)!r})):\n    print('locked', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"locked"
    return proc


def test_lock_refuses_a_second_process_and_is_taken_over_after_its_death(
    uninterrupted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(uninterrupted, out)
    holder = hold_lock(out)
    try:
        assert main(["-q", "resume", str(out)]) == 2
        assert f"in use by process {holder.pid}" in capsys.readouterr().err
        assert main(["-q", *RUN, "--out", str(out)]) == 2
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert main(["-q", "resume", str(out)]) == 0, "a lock left by a dead process is taken over"


def test_resume_of_something_that_is_not_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_resume_refuses_an_archive_it_did_not_make_and_changes_nothing(
    uninterrupted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil
    import sqlite3

    out = tmp_path / "run"
    shutil.copytree(uninterrupted, out)
    mine = tmp_path / "mine.db"
    with sqlite3.connect(mine) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    config = (out / rundir.CONFIG).read_text()
    (out / rundir.CONFIG).write_text(config.replace("# archive = (unset)", f'archive = "{mine}"'))
    before = {p.name: p.read_bytes() for p in [mine, *out.iterdir()] if p.is_file()}
    assert main(["resume", str(out)]) == 2
    assert "not a ge_nas archive" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in [mine, *out.iterdir()] if p.is_file()} == before


def test_a_run_killed_while_screening_resumes_to_the_same_finalists(tmp_path: Path) -> None:
    run = [*RUN, "--screen", "4"]
    whole = tmp_path / "whole"
    assert main(["-q", *run, "--out", str(whole)]) == 0
    kinds = ["|screen" in f if "final=True" in f else None for _, f in archive_keys(whole)]
    assert kinds.count(True) == 4 and kinds.count(False) == 1
    out = tmp_path / "killed"
    start_and_kill(out, kinds.index(True) + 2, run=run)  # two screening epochs archived
    killed_with = archive_keys(out)
    assert not (out / rundir.PARETO).exists()
    assert main(["-q", "resume", str(out)]) == 0
    keys = archive_keys(out)
    assert keys[: len(killed_with)] == killed_with and len(keys) == len(set(keys))
    assert sorted(keys) == sorted(archive_keys(whole)) and front(out) == front(whole)
    assert [r["on_front"] for r in rundir.read_pareto(out)] == [
        r["on_front"] for r in rundir.read_pareto(whole)
    ]
