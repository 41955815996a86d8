"""benchmarks/cifar_cost.py: the cost of seed 003's set-up, from FLOPs measured and CPU time timed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_cost_is_the_runs_training_flops_at_the_measured_rate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import cifar_cost

    argv = ["--grammar", str(ROOT / "grammars" / "cnnga_cifar.bnf"), "--networks", "6",
            "--timed", "1", "--timed-images", "8", "--population", "3", "--generations", "1",
            "--epochs", "2", "--train-images", "900", "--val-fraction", "0.1",
            "--final-epochs", "5", "--gpu-tflops", "1"]  # fmt: skip
    assert cifar_cost.main(argv) == 0
    out = capsys.readouterr().out
    mean = float(re.search(r"forward MFLOPs per image mean ([\d.]+)", out)[1]) * 1e6  # type: ignore[index]
    # 3 x 2 evaluations x 2 epochs x 900 images, then 5 epochs x 1,000 images; training = 3 forwards
    flops = 3 * mean * (3 * 2 * 2 * 900 + 5 * 1000)
    printed = float(re.search(r"([\d.e+-]+) PFLOPs of training", out)[1])  # type: ignore[index]
    assert printed == pytest.approx(flops / 1e15, rel=1e-2)
    gpu = float(re.search(r"TFLOP/s sustained \(assumed\): ([\d.e+-]+) h", out)[1])  # type: ignore[index]
    assert gpu == pytest.approx(flops / 1e12 / 3600, rel=1e-2)
    assert "6 networks of" in out and "timed:" in out
