"""Figures as PNG bytes: size, the highlighted front, empty data, a missing matplotlib."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from ge_nas import plots  # noqa: E402
from ge_nas.errors import ConfigError  # noqa: E402
from ge_nas.plots import Point, history_png, pareto_png  # noqa: E402

CLOUD = [Point(200 * (i + 1), 0.5 + 0.01 * i, 0.45 + 0.01 * i) for i in range(30)]
FRONT = [Point(150, 0.7, 0.72, rank=2, final=True), Point(5000, 0.9, 0.88, rank=1, final=False)]
GENERATIONS = [
    {
        "generation": g,
        "hypervolume": 0.3 + 0.1 * g,
        "best_accuracy": 0.8 + 0.05 * g,
        "median_accuracy": 0.6,
    }
    for g in range(3)
]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def pixels(data: bytes) -> np.ndarray:
    from matplotlib.image import imread

    return imread(io.BytesIO(data), format="png")[..., :3]


def count_color(data: bytes, hex_color: str) -> int:
    rgb = np.array([int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(pixels(data) - rgb).max(axis=-1) < 0.02).sum())


def test_pareto_png_has_the_figure_size() -> None:
    assert png_size(pareto_png(CLOUD, FRONT)) == (int(10.0 * plots.DPI), int(4.2 * plots.DPI))


def test_front_is_highlighted_over_the_evaluations() -> None:
    with_front, without = pareto_png(CLOUD, FRONT), pareto_png(CLOUD, [])
    assert count_color(with_front, plots.FRONT) > 50
    assert count_color(without, plots.FRONT) == 0
    assert count_color(with_front, plots.TEST) > 20


def test_empty_run_still_draws() -> None:
    assert png_size(pareto_png([], [])) == png_size(pareto_png(CLOUD, FRONT))
    assert png_size(history_png([]))[0] == int(10.0 * plots.DPI)


def test_history_png_draws_both_panels() -> None:
    data = history_png(GENERATIONS)
    assert png_size(data) == (int(10.0 * plots.DPI), int(3.4 * plots.DPI))
    assert count_color(data, plots.FRONT) > 50 and count_color(data, plots.CLOUD) > 20


def test_agg_canvas_without_pyplot_or_display() -> None:
    code = (
        "import sys; from ge_nas.plots import Point, pareto_png; "
        "data = pareto_png([Point(10, 0.5)], [Point(20, 0.6, rank=1)]); "
        "print(len(data) > 1000, 'matplotlib.pyplot' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = (
        "TkAgg"  # an interactive backend would need a display; the Agg canvas does not
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match=r"pip install 'ge_nas\[report\]'"):
        pareto_png(CLOUD, FRONT)
