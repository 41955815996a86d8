"""benchmarks/fidelity.py: seed noise from repeated trainings, and a tiny run on the embedded digits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fidelity(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import fidelity

    return fidelity


def test_noise_share_is_the_seed_variance_over_the_whole_variance(fidelity) -> None:  # type: ignore[no-untyped-def]
    same = {0: [(0.5, 1.0, 10), (0.5, 1.0, 10)], 1: [(0.9, 1.0, 10), (0.9, 1.0, 10)]}
    assert fidelity.noise(same) == (0.0, 0.0)  # only the network matters
    only_seed = {0: [(0.5, 1.0, 10), (0.7, 1.0, 10)], 1: [(0.5, 1.0, 10), (0.7, 1.0, 10)]}
    spread, share = fidelity.noise(only_seed)
    # the share is an estimate: with two networks of two repeats each it can pass 1
    assert spread == pytest.approx(0.1414, abs=1e-4) and share == pytest.approx(1.5)
    assert fidelity.noise({0: [(0.5, 1.0, 10)], 1: [(0.6, 1.0, 10)]}) is None  # nothing repeated


def test_repeats_train_each_cheap_fidelity_with_other_seeds(
    fidelity, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    argv = ["--dataset", "digits", "--grammar", str(ROOT / "tests" / "grammars" / "tiny_cnn.bnf"),
            "--networks", "3", "--fidelities", "1x100", "--reference", "1x200", "--repeats", "2",
            "--workers", "1", "--out", str(tmp_path)]  # fmt: skip
    assert fidelity.main(argv) == 0
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    cheap = [r for r in rows if r["fidelity"] == "1x100"]
    assert len(cheap) == 6 and len(rows) == 9  # 3 networks x 2 seeds, and the reference once
    assert "noise" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--repeats 0"):
        fidelity.main([*argv[:-1], str(tmp_path / "again"), "--repeats", "0"])


def test_phenotypes_file_gives_the_networks_each_once(fidelity, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "nets.txt"
    path.write_text("# two networks, one written twice\n\nconv(8,3) relu | opt=adam\n"
                    "conv(8, 3) relu | opt=adam\n  conv(4,3) relu | opt=sgd lr=0.1\n")  # fmt: skip
    texts = fidelity.read_phenotypes(path)
    assert len(texts) == 2 and texts[0].startswith("conv(8,3") and "opt=sgd" in texts[1]
    path.write_text("conv(8,3) relu | opt=adam\nconv(8,3) bogus\n")
    with pytest.raises(SystemExit, match=r"nets\.txt:2: not a phenotype: .*bogus"):
        fidelity.read_phenotypes(path)
    path.write_text("# nothing\n")
    with pytest.raises(SystemExit, match="no phenotype in it"):
        fidelity.read_phenotypes(path)
    with pytest.raises(SystemExit, match="--phenotypes .*none.txt"):
        fidelity.read_phenotypes(tmp_path / "none.txt")


def write_archive(
    path: Path, nets: list[tuple[str, float, int]], key: str = "d|final=False"
) -> Path:
    """Add networks (phenotype, val. accuracy, params; accuracy < 0: failed) to an archive, in order."""
    from ge_nas.archive import Archive, Record
    from ge_nas.metrics import OK, Metrics

    with Archive(path) as archive:
        for t, (text, acc, params) in enumerate(nets):
            metrics = Metrics(OK, acc, None, params) if acc >= 0 else Metrics("error")
            archive.record(Record(text, key, text, (), metrics, ended=float(t)))
    return path


def test_archive_tops_are_each_searchs_best_within_the_target(fidelity, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ge = write_archive(tmp_path / "ge.sqlite", [("a", 0.7, 1_000), ("b", 0.9, 90_000),
                       ("c", 0.8, 20_000), ("d", 0.6, 5), ("x", -1, 0)])  # fmt: skip
    rnd = write_archive(tmp_path / "random.sqlite", [("c", 0.75, 20_000), ("e", 0.65, 30_000)])
    write_archive(
        ge, [("g", 0.99, 1_000)], key="d|final=True"
    )  # a final training, not the search's
    tops = fidelity.archive_tops([ge, rnd], 2, 50_000)  # b is too big, x failed
    assert tops == {"c": [str(ge), str(rnd)], "a": [str(ge)], "e": [str(rnd)]}
    assert fidelity.archive_tops([ge], 1, 100) == {"d": [str(ge)]}
    with pytest.raises(SystemExit, match="no trained network within 10 params"):
        fidelity.archive_tops([rnd], 2, 10)
    write_archive(rnd, [("f", 0.99, 100)], key="other|final=False")  # a second search, reusing it
    with pytest.raises(SystemExit, match="random.sqlite: searches at 2 fidelities"):
        fidelity.archive_tops([rnd], 2, 50_000)


NETS = "conv(4,3) relu | opt=adam\nconv(8,3) relu pool(max,2) | opt=adam\nconv(2,3) relu | opt=adam lr=0.01\n"


def test_phenotypes_file_trained_at_every_fidelity_and_bad_options_stop_first(
    fidelity, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    nets = tmp_path / "nets.txt"
    nets.write_text(NETS)
    out = tmp_path / "out"
    argv = ["--dataset", "digits", "--phenotypes", str(nets), "--fidelities", "1x100",
            "--reference", "1x200", "--workers", "1", "--out", str(out)]  # fmt: skip
    assert fidelity.main(argv) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {r["phenotype"] for r in rows} == set(fidelity.read_phenotypes(nets))
    assert all(r["from"] == [str(nets)] for r in rows)
    assert "reference 1x200: 3 networks trained" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="is not empty"):
        fidelity.main(argv)  # nothing appended to another run's results
    new = [*argv[:-1], str(tmp_path / "new")]
    for extra, message in [
        (["--top", "2"], "give --archive"),
        (["--reference", "4x"], "expected EPOCHSxIMAGES"),
        (["--reference", "0x200"], "at least 1"),
        (["--reference", "1x100"], "each once"),
        (["--top", "0"], "--top 0: expected at least 1"),
    ]:
        with pytest.raises(SystemExit, match=message):
            fidelity.main([*new, *extra])
    with pytest.raises(SystemExit):  # argparse: one source of networks
        fidelity.main([*new, "--archive", str(tmp_path / "ge.sqlite")])
    assert "not allowed with argument" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # nothing created by a run that stopped
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00conv")
    with pytest.raises(SystemExit, match="not a UTF-8 text file"):
        fidelity.read_phenotypes(tmp_path / "bin.txt")


def test_archive_networks_trained_with_where_they_came_from(fidelity, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    texts = NETS.splitlines()
    ge = write_archive(tmp_path / "ge.sqlite", [(texts[0], 0.8, 100), (texts[1], 0.7, 300)])
    rnd = write_archive(tmp_path / "random.sqlite", [(texts[2], 0.6, 50), (texts[0], 0.5, 100)])
    argv = ["--dataset", "digits", "--archive", str(ge), "--archive", str(rnd), "--top", "1",
            "--fidelities", "1x100", "--reference", "1x200", "--workers", "1",
            "--out", str(tmp_path / "out")]  # fmt: skip
    assert fidelity.main(argv) == 0
    rows = [
        json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    ]
    origin = {r["phenotype"]: r["from"] for r in rows}
    assert origin == {texts[0]: [str(ge)], texts[2]: [str(rnd)]} and len(rows) == 4
