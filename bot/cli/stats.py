"""`prakerja-bot stats`: the figures of the Telegram `/stats` for the operator's terminal, as a table or JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import date
from pathlib import Path
from typing import Any

from rich.table import Table

from bot.cli.common import CliError, out
from bot.settings import Settings
from core.calendar import today_in_jakarta
from core.stats import DEFAULT_PERIOD_DAYS, MAX_PERIOD_DAYS, Stats, compute_stats, period_ending


def register(subparsers: Any) -> None:
    """Register `stats` on the `prakerja-bot` sub-command parsers (the result of `add_subparsers`)."""
    stats = subparsers.add_parser(
        "stats", help="conversations, deflection, cases, reply times and satisfaction for a period"
    )
    period = stats.add_mutually_exclusive_group()
    period.add_argument("--days", type=int, help=f"the last N days up to today (default {DEFAULT_PERIOD_DAYS})")
    period.add_argument("--from", dest="start", type=date.fromisoformat, metavar="YYYY-MM-DD", help="first day")
    stats.add_argument(
        "--to", dest="end", type=date.fromisoformat, metavar="YYYY-MM-DD", help="day after the last (exclusive)"
    )
    stats.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    stats.add_argument("--chart", metavar="FILE.png", help="also write the daily trend chart to this PNG file")
    stats.set_defaults(handler=cmd_stats)


def _period(args: argparse.Namespace) -> tuple[date, date]:

    start: date | None = getattr(args, "start", None)
    end: date | None = getattr(args, "end", None)
    days: int | None = getattr(args, "days", None)
    if start is None and end is None:
        days = DEFAULT_PERIOD_DAYS if days is None else days
        if not 1 <= days <= MAX_PERIOD_DAYS:
            raise CliError(f"--days must be between 1 and {MAX_PERIOD_DAYS}")
        return period_ending(today_in_jakarta(), days)
    if start is None or end is None:
        raise CliError("--from and --to go together (the period is [from, to), dates in Asia/Jakarta)")
    if end <= start:
        raise CliError("--to must be after --from (it is the first day not counted)")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise CliError(f"the period may span at most {MAX_PERIOD_DAYS} days")
    return start, end


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = round(seconds / 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    return " ".join(f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if n) or "0 min"


def _percent(share: float | None) -> str:
    return f"{100 * share:.0f}%" if share is not None else "—"


def _print_table(stats: Stats) -> None:
    figures = stats.to_dict()
    summary = Table(title=f"Helpdesk statistics {stats.start.isoformat()} – {stats.end.isoformat()} (exclusive)")
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    satisfaction = (
        f"{stats.satisfaction_average:.2f} / 5 ({stats.satisfaction_count})"
        if stats.satisfaction_average is not None
        else "—"
    )
    for name, value in (
        ("conversations", str(stats.conversations)),
        ("resolved without an agent", f"{stats.deflected} ({_percent(stats.deflection)})"),
        ("cases opened", str(stats.cases_opened)),
        ("cases closed", str(stats.cases_closed)),
        ("median time to first agent reply", _duration(figures["median_first_reply_seconds"])),
        ("median time to close", _duration(figures["median_to_close_seconds"])),
        ("first reply within target (SLA)", f"{_percent(stats.first_reply_within_sla)} of {stats.sla_cases}"),
        ("satisfaction", satisfaction),
    ):
        summary.add_row(name, value)
    out.print(summary)
    if stats.cases_by_stage or stats.conversations_by_stage:
        stages = Table("stage", "conversations", "cases opened", title="By diagnosis stage")
        for stage in dict.fromkeys([*stats.conversations_by_stage, *stats.cases_by_stage]):
            stages.add_row(
                stage, str(stats.conversations_by_stage.get(stage, 0)), str(stats.cases_by_stage.get(stage, 0))
            )
        out.print(stages)
    days = Table("day", "conversations", "without agent", "deflection", "cases opened", title="By day")
    for d in stats.days:
        days.add_row(
            d.day.isoformat(), str(d.conversations), str(d.deflected), _percent(d.deflection), str(d.cases_opened)
        )
    out.print(days)


async def cmd_stats(settings: Settings, args: argparse.Namespace) -> int:
    """Print the statistics of a period; optionally write the trend chart."""
    # Imported here: every `prakerja-bot` command builds the parser, only this one needs them.
    from bot.charts import trend_chart
    from bot.flows.admin import admin_renderer, chart_labels
    from core.db import Database

    start, end = _period(args)
    async with Database.open(settings.database_url) as db:
        stats = await compute_stats(db.engine, start, end)
    chart_file: str | None = getattr(args, "chart", None)
    if chart_file:
        labels = chart_labels(admin_renderer(), settings.default_locale, (end - start).days)
        png = await asyncio.to_thread(trend_chart, stats.days, labels)
        await asyncio.to_thread(Path(chart_file).write_bytes, png)
    if getattr(args, "json", False):
        print(json.dumps(stats.to_dict(), ensure_ascii=False))
    else:
        _print_table(stats)
        if chart_file:
            out.print(f"Chart written to {chart_file}")
    return 0
