"""How the helpdesk is doing over a period of Jakarta calendar days: conversations, deflection, cases, speed, mood.

A conversation is one participant's day with the bot (a distinct Telegram user with at least one interaction on a
Jakarta calendar day). It is *deflected* — resolved without an agent — when that user opened no case that day and
none of that day's interactions was relayed to an agent (a case carried over from an earlier day is still an
agent's conversation). Case figures (times, satisfaction, stages) are for the cases opened in the period. Within SLA:
of the cases whose first-reply due time has passed or that got a reply, the share first answered by that time.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Date, cast, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.calendar import JAKARTA
from core.console.inbox import sla_breached
from core.models import Case, Interaction

DEFAULT_PERIOD_DAYS = 7  # "/stats", "/gaps" and `prakerja-bot stats` without a period
MAX_PERIOD_DAYS = 366
RELAY = "relay"  # interactions.kind of a message relayed to an agent inside a case
JAKARTA_UTC_OFFSET_HOURS = 7  # WIB has had no daylight saving since 1964


@dataclass(frozen=True)
class DayFigures:
    day: date
    conversations: int
    deflected: int
    cases_opened: int

    @property
    def deflection(self) -> float | None:
        return self.deflected / self.conversations if self.conversations else None


@dataclass(frozen=True)
class Stats:
    start: date  # first day counted (Jakarta)
    end: date  # first day not counted
    conversations: int
    deflected: int
    cases_opened: int
    cases_closed: int
    median_first_reply: timedelta | None
    median_to_close: timedelta | None
    satisfaction_average: float | None
    satisfaction_count: int
    first_reply_within_sla: float | None = None
    sla_cases: int = 0  # the cases that share is of
    cases_by_stage: dict[str, int] = field(default_factory=dict)
    conversations_by_stage: dict[str, int] = field(default_factory=dict)
    days: list[DayFigures] = field(default_factory=list)

    @property
    def deflection(self) -> float | None:
        return self.deflected / self.conversations if self.conversations else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready figures (durations in seconds, dates ISO)."""

        def seconds(value: timedelta | None) -> float | None:
            return round(value.total_seconds(), 1) if value is not None else None

        def share(value: float | None) -> float | None:
            return round(value, 4) if value is not None else None

        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "conversations": self.conversations,
            "deflected": self.deflected,
            "deflection": share(self.deflection),
            "cases_opened": self.cases_opened,
            "cases_closed": self.cases_closed,
            "median_first_reply_seconds": seconds(self.median_first_reply),
            "median_to_close_seconds": seconds(self.median_to_close),
            "satisfaction_average": round(self.satisfaction_average, 2)
            if self.satisfaction_average is not None
            else None,
            "satisfaction_count": self.satisfaction_count,
            "first_reply_within_sla": share(self.first_reply_within_sla),
            "sla_cases": self.sla_cases,
            "cases_by_stage": self.cases_by_stage,
            "conversations_by_stage": self.conversations_by_stage,
            "days": [
                {
                    "day": d.day.isoformat(),
                    "conversations": d.conversations,
                    "deflected": d.deflected,
                    "deflection": share(d.deflection),
                    "cases_opened": d.cases_opened,
                }
                for d in self.days
            ],
        }


def period_ending(today: date, days: int) -> tuple[date, date]:
    """The last `days` days up to and including today, as [from, to)."""
    return today - timedelta(days=days - 1), today + timedelta(days=1)


def jakarta_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=JAKARTA).astimezone(UTC)


def _local_day(value: datetime) -> date:
    return value.astimezone(JAKARTA).date()


def _as_date(value: object) -> date:
    # PostgreSQL returns a date, SQLite the text "YYYY-MM-DD".
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _day_expression(dialect: str) -> ColumnElement[Any]:
    """The Jakarta calendar day of `interactions.at`, computed by the database so only (user, day) pairs travel."""
    if dialect == "postgresql":
        return cast(func.timezone("Asia/Jakarta", Interaction.at), Date)
    # SQLite keeps the UTC wall time as text.
    return func.date(Interaction.at, f"+{JAKARTA_UTC_OFFSET_HOURS} hours")


def _ranked(counts: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Most frequent first, ties by name, so that reports and tests read the same every time."""
    return dict(sorted(counts, key=lambda pair: (-pair[1], pair[0])))


def _median(values: Iterable[timedelta]) -> timedelta | None:
    seconds = [v.total_seconds() for v in values]
    return timedelta(seconds=statistics.median(seconds)) if seconds else None


async def compute_stats(engine: AsyncEngine, start: date, end: date) -> Stats:
    """The figures for Jakarta days [start, end).

    Interactions are counted in the database (per day, per stage); only the (user, day) pairs that involve an agent
    — a relayed message or a case — travel to Python, so the cost follows the number of cases, not of messages.
    """
    if end <= start:
        raise ValueError("the period must end after it starts")
    lower, upper = jakarta_midnight(start), jakarta_midnight(end)
    day = _day_expression(engine.dialect.name).label("day")
    in_period = (Interaction.at >= lower, Interaction.at < upper)
    opened_in_period = (Case.opened_at >= lower, Case.opened_at < upper)
    now = datetime.now(UTC)
    user_days = (
        select(Interaction.telegram_user_id, day, Interaction.stage)
        .where(*in_period, Interaction.stage.is_not(None))
        .distinct()
        .subquery()
    )
    async with engine.connect() as conn:
        per_day_rows = (
            await conn.execute(
                select(day, func.count(func.distinct(Interaction.telegram_user_id))).where(*in_period).group_by(day)
            )
        ).all()
        stage_rows = (await conn.execute(select(user_days.c.stage, func.count()).group_by(user_days.c.stage))).all()
        relay_rows = (
            await conn.execute(
                select(Interaction.telegram_user_id, day).where(*in_period, Interaction.kind == RELAY).distinct()
            )
        ).all()
        # The days on which people who opened a case talked to the bot (to tell whether a case's day is a
        # conversation of the period).
        case_user_rows = (
            await conn.execute(
                select(Interaction.telegram_user_id, day)
                .where(
                    *in_period, Interaction.telegram_user_id.in_(select(Case.telegram_user_id).where(*opened_in_period))
                )
                .distinct()
            )
        ).all()
        case_rows = (
            await conn.execute(
                select(
                    Case.telegram_user_id,
                    Case.opened_at,
                    Case.first_reply_at,
                    Case.first_reply_due,
                    sla_breached(now).label("breached"),
                    Case.closed_at,
                    Case.satisfaction,
                    Case.stage,
                ).where(*opened_in_period)
            )
        ).all()

    per_day_conversations = Counter({_as_date(d): int(n) for d, n in per_day_rows})
    talked = {(int(user), _as_date(d)) for user, d in case_user_rows}
    with_agent = {(int(user), _as_date(d)) for user, d in relay_rows}
    with_agent |= {(int(row.telegram_user_id), _local_day(row.opened_at)) for row in case_rows} & talked
    per_day_agent = Counter(d for _, d in with_agent)
    per_day_cases = Counter(_local_day(row.opened_at) for row in case_rows)
    days = [start + timedelta(days=n) for n in range((end - start).days)]
    day_figures = [
        DayFigures(d, per_day_conversations[d], per_day_conversations[d] - per_day_agent[d], per_day_cases[d])
        for d in days
    ]

    first_replies = [row.first_reply_at - row.opened_at for row in case_rows if row.first_reply_at is not None]
    closes = [row.closed_at - row.opened_at for row in case_rows if row.closed_at is not None]
    ratings = [int(row.satisfaction) for row in case_rows if row.satisfaction is not None]
    decided = [
        not row.breached  # the inbox's rule: no reply by the due time, or a later one
        for row in case_rows
        if row.first_reply_due is not None and (row.first_reply_at is not None or row.first_reply_due < now)
    ]
    return Stats(
        start=start,
        end=end,
        conversations=sum(d.conversations for d in day_figures),
        deflected=sum(d.deflected for d in day_figures),
        cases_opened=len(case_rows),
        cases_closed=len(closes),
        median_first_reply=_median(first_replies),
        median_to_close=_median(closes),
        satisfaction_average=statistics.fmean(ratings) if ratings else None,
        satisfaction_count=len(ratings),
        first_reply_within_sla=sum(decided) / len(decided) if decided else None,
        sla_cases=len(decided),
        cases_by_stage=_ranked(Counter(row.stage or "unknown" for row in case_rows).items()),
        conversations_by_stage=_ranked((str(stage), int(n)) for stage, n in stage_rows),
        days=day_figures,
    )
