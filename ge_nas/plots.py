"""Figures of a run as PNG bytes: the accuracy-size front and the per-generation history.

matplotlib is an optional extra (`pip install 'ge_nas[report]'`). Figures are
drawn on the Agg canvas directly, never through pyplot: no display is needed
and no global backend or figure registry is touched.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ge_nas.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


CLOUD = "#9aa5b1"
FRONT = "#d1495b"
TEST = "#2e86ab"
DPI = 110


@dataclass(frozen=True)
class Point:
    """One trained network in the accuracy-size plane."""

    params: int
    val_accuracy: float
    test_accuracy: float | None = None
    rank: int | None = None  # position on the front, for labels
    final: bool = False  # test accuracy from the final retraining, not the search
    on_front: bool = True  # False: a finalist screened in from off the front (--screen)


def require_matplotlib() -> None:
    """Raise ConfigError with the install command when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'ge_nas[report]'") from None


def _figure(width: float, height: float, columns: int) -> tuple[Figure, list[Axes]]:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, list(figure.subplots(1, columns, squeeze=False)[0])


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def pareto_png(evaluations: Sequence[Point], front: Sequence[Point]) -> bytes:
    """Return a PNG of validation and test accuracy against params, the front over every evaluation."""
    figure, (val_ax, test_ax) = _figure(10.0, 4.2, 2)
    _cloud(val_ax, [(p.params, p.val_accuracy) for p in evaluations], "search evaluations")
    _front(
        val_ax, [(p.params, p.val_accuracy, p.rank) for p in front if p.on_front], FRONT, "front"
    )
    _screened(val_ax, [p for p in front if not p.on_front])
    _cloud(
        test_ax,
        [(p.params, p.test_accuracy) for p in evaluations if p.test_accuracy is not None],
        "search evaluations",
    )
    _test_front(test_ax, front)
    for ax, title in ((val_ax, "validation accuracy"), (test_ax, "test accuracy")):
        _style_size_axes(ax, title, has_data=bool(evaluations or front))
    return _png(figure)


def _cloud(ax: Axes, points: Sequence[tuple[int, float | None]], label: str) -> None:
    if points:
        xs, ys = zip(*points)
        ax.scatter(xs, ys, s=14, color=CLOUD, alpha=0.6, linewidths=0, label=label, zorder=1)


def _front(
    ax: Axes, points: Sequence[tuple[int, float, int | None]], color: str, label: str
) -> None:
    ordered = sorted(points, key=lambda p: (p[0], -p[1]))
    if not ordered:
        return
    xs, ys, ranks = zip(*ordered)
    ax.step(xs, ys, where="post", color=color, linewidth=1.2, alpha=0.8, zorder=2)
    ax.scatter(xs, ys, s=36, color=color, edgecolors="black", linewidths=0.5, label=label, zorder=3)
    for x, y, rank in ordered:
        if rank is not None:
            ax.annotate(
                str(rank), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8, zorder=4
            )


def _screened(ax: Axes, points: Sequence[Point]) -> None:
    """Mark the finalists screened in from off the front, with their ranks, apart from its staircase."""
    for n, p in enumerate(points):
        ax.scatter(
            [p.params], [p.val_accuracy], s=36, color="white", edgecolors=FRONT, linewidths=1.2,
            label=None if n else "finalist from off the front", zorder=3,
        )  # fmt: skip
        if p.rank is not None:
            ax.annotate(str(p.rank), (p.params, p.val_accuracy), xytext=(4, 4),
                        textcoords="offset points", fontsize=8, zorder=4)  # fmt: skip


def _test_front(ax: Axes, front: Sequence[Point]) -> None:
    scored = [
        (p.params, p.test_accuracy, p.rank, p.final) for p in front if p.test_accuracy is not None
    ]
    for final, label, face in (
        (True, "finalist, retrained", TEST),
        (False, "front, search training", "white"),
    ):
        chosen = [(x, y) for x, y, _, f in scored if f == final]
        if chosen:
            xs, ys = zip(*chosen)
            ax.scatter(
                xs, ys, s=40, color=face, edgecolors=TEST, linewidths=1.2, label=label, zorder=3
            )
    for x, y, rank, _ in scored:
        if rank is not None:
            ax.annotate(str(rank), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8)


def _style_size_axes(ax: Axes, title: str, *, has_data: bool) -> None:
    ax.set_title(title)
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("accuracy")
    ax.grid(True, which="major", alpha=0.3)
    if not has_data:
        _empty(ax, "no trained evaluations yet")
        return
    _log_params_axis(ax)
    ax.margins(x=0.08, y=0.08)
    ax.legend(loc="best", fontsize=8, framealpha=0.85)


def _log_params_axis(ax: Axes) -> None:
    """Log x axis labelled 1, 2, 5 x 10^k as '2k', '50k', '1M' (no crowded minor labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    low, high = ax.get_xlim()
    wide = high / max(low, 1e-9) > 1e3  # over three decades, 2 and 5 would crowd the labels
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _si(x)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _si(x: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:g}{unit}"
    return f"{x:g}"


def history_png(generations: Sequence[Mapping[str, Any]]) -> bytes:
    """Return a PNG of hypervolume and best (and median) validation accuracy per generation."""
    figure, (hv_ax, acc_ax) = _figure(10.0, 3.4, 2)
    gens = [int(g["generation"]) for g in generations]
    _line(hv_ax, gens, [g.get("hypervolume") for g in generations], "hypervolume", FRONT)
    _line(acc_ax, gens, [g.get("best_accuracy") for g in generations], "best", FRONT)
    _line(acc_ax, gens, [g.get("median_accuracy") for g in generations], "median", CLOUD)
    hv_ax.set_title("hypervolume (val error, log10 params)")
    acc_ax.set_title("validation accuracy of the population")
    for ax in (hv_ax, acc_ax):
        _style_history_axes(ax, has_data=bool(gens))
    if gens:
        acc_ax.legend(loc="best", fontsize=8, framealpha=0.85)
    return _png(figure)


def _line(ax: Axes, xs: Sequence[int], ys: Sequence[Any], label: str, color: str) -> None:
    pairs = [(x, float(y)) for x, y in zip(xs, ys) if y is not None]
    if pairs:
        ax.plot(*zip(*pairs), marker="o", markersize=4, color=color, label=label)


def _style_history_axes(ax: Axes, *, has_data: bool) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("generation")
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not has_data:
        _empty(ax, "no finished generation yet")


def _empty(ax: Axes, text: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="gray")
