"""The statistics dashboard (supervisors and admins): the figures of `/stats`, `prakerja-bot stats` and
`GET /api/v1/stats` (one `compute_stats`), drawn as inline SVG bars, and the per-day series as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bot.flows.admin import stats_context
from bot.web.pages.admin_common import period_days
from bot.web.security import ctx, page, render
from core.calendar import today_in_jakarta
from core.console.staff import Principal, Role
from core.stats import DayFigures, Stats, compute_stats, period_ending

CHART_WIDTH = 600.0
CHART_HEIGHT = 140.0
CSV_COLUMNS = ("day", "conversations", "deflected", "deflection", "cases_opened")


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the day or the stage
    value: str


def column_chart(days: Sequence[DayFigures], values: Sequence[float], shown: Sequence[str] | None = None) -> list[Bar]:
    """One column a day, scaled to the largest value (a day with nothing has no column); `shown` is each value as
    the tooltip says it (default: the number)."""
    shown = shown if shown is not None else [f"{v:g}" for v in values]
    top = max(values, default=0) or 1
    step = CHART_WIDTH / max(len(days), 1)
    gap = min(step * 0.2, 4.0)
    bars = []
    for n, (day, value, text) in enumerate(zip(days, values, shown, strict=True)):
        height = round(CHART_HEIGHT * value / top, 2)
        bars.append(Bar(round(n * step + gap / 2, 2), round(CHART_HEIGHT - height, 2), round(step - gap, 2), height,
                        day.day.isoformat(), text))  # fmt: skip
    return bars


def row_chart(counts: dict[str, int]) -> list[Bar]:
    """One horizontal bar per stage, most frequent first (the order compute_stats gives)."""
    top = max(counts.values(), default=0) or 1
    return [Bar(0, n * 22.0, round(CHART_WIDTH * 0.6 * value / top, 2), 16, stage, str(value))
            for n, (stage, value) in enumerate(counts.items())]  # fmt: skip


async def _figures(request: Request) -> tuple[int, Stats]:
    days = period_days(request)
    start, end = period_ending(today_in_jakarta(), days)
    return days, await compute_stats(ctx(request).app.engine, start, end)


@page(Role.SUPERVISOR)
async def dashboard(request: Request, who: Principal) -> Response:
    days, stats = await _figures(request)
    series = stats.days
    charts = {
        "conversations": column_chart(
            series, [d.conversations for d in series], [str(d.conversations) for d in series]
        ),
        "cases_opened": column_chart(series, [d.cases_opened for d in series]),
        "deflection": column_chart(
            series,
            [d.deflection or 0.0 for d in series],
            [f"{d.deflection:.0%}" if d.deflection is not None else "—" for d in series],
        ),
    }
    peaks = {
        "conversations": max((d.conversations for d in series), default=0),
        "cases_opened": max((d.cases_opened for d in series), default=0),
        "deflection": f"{max((d.deflection or 0.0 for d in series), default=0.0):.0%}",
    }
    values = {
        "days": days,
        "peaks": peaks,
        "s": stats_context(stats.to_dict()),
        "charts": charts,
        "stages": row_chart(stats.cases_by_stage),
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
    }
    return render(request, who, "admin_stats.html", values)


@page(Role.SUPERVISOR)
async def stats_csv(request: Request, who: Principal) -> Response:
    """The per-day series and a total row; figures only, no person in it."""
    days, stats = await _figures(request)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for d in stats.days:
        share = f"{d.deflection:.4f}" if d.deflection is not None else ""
        writer.writerow([d.day.isoformat(), d.conversations, d.deflected, share, d.cases_opened])
    total = f"{stats.deflection:.4f}" if stats.deflection is not None else ""
    writer.writerow(["total", stats.conversations, stats.deflected, total, stats.cases_opened])
    await ctx(request).audit.record(who.actor, "stats.export", None, {"days": days})
    name = f"stats-{stats.start.isoformat()}-{(stats.end).isoformat()}.csv"
    headers = {"content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store"}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def routes() -> list[BaseRoute]:
    return [Route("/admin/stats", dashboard), Route("/admin/stats.csv", stats_csv)]
