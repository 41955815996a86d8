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
