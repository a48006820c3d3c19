"""When human agents answer: business hours on Indonesian working days, from `knowledge/support.yaml`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from core.calendar import JAKARTA, WorkingCalendar, default_calendar
from core.paths import knowledge_dir


@dataclass(frozen=True)
class SupportDesk:
    opens: time
    closes: time
    reopen_window: timedelta
    transcript_lines: int
    canned: dict[str, dict[str, str]]
    calendar: WorkingCalendar

    def next_open(self, now: datetime) -> datetime | None:
        """None while agents are at work; else when they start again (Asia/Jakarta)."""
        local = now.astimezone(JAKARTA)
        if self.calendar.is_working_day(local.date()) and self.opens <= local.time() < self.closes:
            return None
        day = local.date()
        if not (self.calendar.is_working_day(day) and local.time() < self.opens):
            day = self.calendar.add_working_days(day, 1)
        return datetime.combine(day, self.opens, tzinfo=JAKARTA)


def _clock(value: Any) -> time:
    if isinstance(value, int):  # YAML reads 08:00 as sexagesimal minutes
        return time(value // 60, value % 60)
    return time.fromisoformat(str(value))


def load_support_desk(path: Path | None = None, calendar: WorkingCalendar | None = None) -> SupportDesk:
    data = yaml.safe_load((path or knowledge_dir() / "support.yaml").read_text(encoding="utf-8"))
    hours = data["business_hours"]
    return SupportDesk(
        opens=_clock(hours["opens"]),
        closes=_clock(hours["closes"]),
        reopen_window=timedelta(hours=int(data.get("reopen_window_hours", 24))),
        transcript_lines=int(data.get("transcript_lines", 12)),
        canned=dict(data.get("canned") or {}),
        calendar=calendar or default_calendar(),
    )


@lru_cache(maxsize=1)
def default_support_desk() -> SupportDesk:
    return load_support_desk()
