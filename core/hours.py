"""When human agents answer: business hours on Indonesian working days, and the first-reply target counted in
those hours (the SLA), from `knowledge/support.yaml`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.calendar import JAKARTA, WorkingCalendar, default_calendar
from core.paths import knowledge_dir, read_yaml

# The variables a canned reply may use, written {{ name }}: filled in per case when it is sent (plain text, no
# template logic, so a canned text can never run anything).
CANNED_VARIABLES = frozenset({"first_name", "case_id", "agent"})
_VARIABLE = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class AssignmentPolicy:
    """Automatic assignment in the web console (see core.console.assignment)."""

    automatic: bool = True
    capacity: int = 5  # active cases an agent holds at most before the queue waits for someone else
    away_after: timedelta = timedelta(minutes=5)  # unseen in the console this long: offline, cases taken back


@dataclass(frozen=True)
class SupportDesk:
    opens: time
    closes: time
    reopen_window: timedelta
    transcript_lines: int
    canned: dict[str, dict[str, str]]
    calendar: WorkingCalendar
    first_reply_target: timedelta = timedelta(minutes=60)  # in business time: nights and holidays do not count
    assignment: AssignmentPolicy = field(default_factory=lambda: AssignmentPolicy())
    unknown_name: dict[str, str] = field(default_factory=dict)  # {{ first_name }} of a participant not verified

    def next_open(self, now: datetime) -> datetime | None:
        """None while agents are at work; else when they start again (Asia/Jakarta)."""
        local = now.astimezone(JAKARTA)
        if self.calendar.is_working_day(local.date()) and self.opens <= local.time() < self.closes:
            return None
        day = local.date()
        if not (self.calendar.is_working_day(day) and local.time() < self.opens):
            day = self.calendar.add_working_days(day, 1)
        return datetime.combine(day, self.opens, tzinfo=JAKARTA)

    def canned_values(self, legal_name: str | None, locale: str, case_id: int, agent: str) -> dict[str, object]:
        """The canned replies' variables for a case: the participant's first name (a form of address when the
        participant is not verified), the case number and the agent's name."""
        words = (legal_name or "").split()
        first = words[0].capitalize() if words else self.unknown_name.get(locale) or self.unknown_name.get("id", "")
        return {"first_name": first, "case_id": case_id, "agent": agent}

    def canned_text(self, name: str, locale: str, values: Mapping[str, object]) -> str | None:
        """A canned reply in the case's language with its variables filled in; None when there is no such reply."""
        texts = self.canned.get(name)
        if texts is None:
            return None
        text = texts.get(locale) or texts["id"]
        return _VARIABLE.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text)

    def _hours_of(self, day: date) -> tuple[datetime, datetime] | None:
        if not self.calendar.is_working_day(day):
            return None
        return datetime.combine(day, self.opens, tzinfo=JAKARTA), datetime.combine(day, self.closes, tzinfo=JAKARTA)

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """How much of [start, end) falls within business hours on working days."""
        total = timedelta()
        day, last = start.astimezone(JAKARTA).date(), end.astimezone(JAKARTA).date()
        while day <= last:
            hours = self._hours_of(day)
            if hours is not None:
                overlap = min(end, hours[1]) - max(start, hours[0])
                total += max(overlap, timedelta())
            day += timedelta(days=1)
        return total

    def add_business_time(self, start: datetime, amount: timedelta) -> datetime:
        """The instant `amount` of business time after `start` (a case opened at night is due the next morning)."""
        left = amount
        day = start.astimezone(JAKARTA).date()
        while True:
            hours = self._hours_of(day)
            if hours is not None and start < hours[1]:
                begin = max(start, hours[0])
                if begin + left <= hours[1]:
                    return begin + left
                left -= hours[1] - begin
            day = self.calendar.next_working_day(day + timedelta(days=1))

    def first_reply_due(self, opened_at: datetime) -> datetime:
        return self.add_business_time(opened_at, self.first_reply_target)


def _clock(value: Any) -> time:
    if isinstance(value, int):  # YAML reads 08:00 as sexagesimal minutes
        return time(value // 60, value % 60)
    return time.fromisoformat(str(value))


def load_support_desk(path: Path | None = None, calendar: WorkingCalendar | None = None) -> SupportDesk:
    data = read_yaml(path or knowledge_dir() / "support.yaml")
    hours = data["business_hours"]
    assignment = data.get("assignment") or {}
    return SupportDesk(
        opens=_clock(hours["opens"]),
        closes=_clock(hours["closes"]),
        reopen_window=timedelta(hours=int(data.get("reopen_window_hours", 24))),
        transcript_lines=int(data.get("transcript_lines", 12)),
        canned=dict(data.get("canned") or {}),
        unknown_name=dict(data.get("canned_unknown_name") or {}),
        calendar=calendar or default_calendar(),
        first_reply_target=timedelta(minutes=int((data.get("sla") or {}).get("first_reply_business_minutes", 60))),
        assignment=AssignmentPolicy(
            automatic=bool(assignment.get("automatic", True)),
            capacity=max(1, int(assignment.get("capacity", 5))),
            away_after=timedelta(minutes=max(1, int(assignment.get("away_after_minutes", 5)))),
        ),
    )


@lru_cache(maxsize=1)
def default_support_desk() -> SupportDesk:
    return load_support_desk()
