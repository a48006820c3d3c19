"""The trend by day as a PNG: conversations and cases opened as bars, deflection as a line on its own 0–100% axis.

matplotlib is imported on first use (it costs every start a noticeable fraction of a second), and only its
object API is used — no pyplot global state — so charts can be drawn on worker threads.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.stats import DayFigures

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 120
SIZE_INCHES = (8.0, 4.5)  # 960 × 540 pixels: readable on a phone, small to send
MAX_DATE_LABELS = 10


@dataclass(frozen=True)
class ChartLabels:
    """Every word on the chart, rendered from the admin templates by the caller (plain text, not HTML)."""

    title: str
    conversations: str
    cases_opened: str
    deflection: str
    count_axis: str


def trend_chart(days: Sequence[DayFigures], labels: ChartLabels) -> bytes:
    """A PNG of the per-day trend."""
    buffer = io.BytesIO()
    trend_figure(days, labels).savefig(buffer, format="png")
    return buffer.getvalue()


def trend_figure(days: Sequence[DayFigures], labels: ChartLabels) -> Figure:
    """The chart as a matplotlib figure (drawn by `trend_chart`; tests measure its labels)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    figure = Figure(figsize=SIZE_INCHES, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    counts = figure.add_subplot()
    positions = list(range(len(days)))
    width = 0.4
    counts.bar([p - width / 2 for p in positions], [d.conversations for d in days], width, label=labels.conversations)
    counts.bar([p + width / 2 for p in positions], [d.cases_opened for d in days], width, label=labels.cases_opened)
    counts.set_ylabel(labels.count_axis)
    counts.yaxis.set_major_locator(MaxNLocator(integer=True))
    counts.set_title(labels.title)

    # A long period would print a date under every bar: label at most MAX_DATE_LABELS of them, evenly, so that
    # "30/11"-wide labels never touch at 30 days (or 90) on a 960-pixel chart.
    step = max(1, -(-len(days) // MAX_DATE_LABELS))
    counts.set_xticks(positions[::step], [f"{d.day.day}/{d.day.month}" for d in days[::step]])

    shares = counts.twinx()
    deflection = [100 * d.deflection if d.deflection is not None else float("nan") for d in days]
    shares.plot(positions, deflection, color="tab:green", marker="o", label=labels.deflection)
    shares.set_ylim(0, 100)
    shares.yaxis.set_major_formatter(PercentFormatter())

    handles, names = counts.get_legend_handles_labels()
    more_handles, more_names = shares.get_legend_handles_labels()
    # Below the plot, so that it never hides a bar.
    figure.legend(handles + more_handles, names + more_names, loc="outside lower center", ncols=3, fontsize="small")

    return figure
