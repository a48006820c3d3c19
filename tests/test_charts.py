"""The stats chart stays readable: its date labels never overlap, however long the period."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise

import pytest

from bot.charts import ChartLabels, trend_chart, trend_figure
from core.stats import DayFigures

LABELS = ChartLabels("Tren harian", "Percakapan", "Kasus dibuka", "Tanpa agen", "Jumlah")


def days(n: int) -> list[DayFigures]:
    start = date(2026, 11, 4)
    return [DayFigures(start + timedelta(days=k), 10 + k % 7, 6 + k % 3, k % 4) for k in range(n)]


@pytest.mark.parametrize("n", [1, 7, 14, 30, 31, 90])
def test_date_labels_never_overlap(n: int) -> None:
    figure = trend_figure(days(n), LABELS)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    axes = figure.axes[0]
    boxes = [t.get_window_extent(renderer) for t in axes.get_xticklabels() if t.get_text()]
    assert boxes and len(boxes) <= 10
    for left, right in pairwise(boxes):
        assert left.x1 + 4 < right.x0, (n, [t.get_text() for t in axes.get_xticklabels()])


def test_the_chart_is_a_png() -> None:
    assert trend_chart(days(30), LABELS).startswith(b"\x89PNG")
