"""The Indonesian working-day calendar: weekends, national holidays, cuti bersama, and admin-listed closing days.

Every date the bot promises a participant ("your certificate is expected by …") is counted here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import yaml

from core.paths import knowledge_dir, read_yaml

JAKARTA = ZoneInfo("Asia/Jakarta")
_SATURDAY = 5
log = logging.getLogger(__name__)


def today_in_jakarta(now: datetime | None = None) -> date:
    return (now or datetime.now(JAKARTA)).astimezone(JAKARTA).date()


@dataclass
class _ClosingDays:
    """The admin-listed closing days as last read, with the closed days per year computed from them."""

    extra: frozenset[date]
    closed_by_year: dict[int, frozenset[date]] = field(default_factory=dict)


class WorkingCalendar:
    """Working days in Asia/Jakarta. Holidays come from `holidays` (public + government = cuti bersama).

    A calendar made with `from_file` follows its closing-days file: it looks at the file's modification time at
    most every `recheck_seconds` and re-reads it when it changed, so an admin's edit needs no restart. A file that
    no longer parses is logged and the days read before stay in force.
    """

    def __init__(
        self,
        extra_closing_days: Iterable[date] = (),
        *,
        source: Path | None = None,
        recheck_seconds: float = 5.0,
    ) -> None:
        self._days = _ClosingDays(frozenset(extra_closing_days))
        self._names: dict[date, str] = {}
        self._source = source
        self._recheck_seconds = recheck_seconds
        self._source_version: tuple[int, int] | None = None
        self._next_check = 0.0

    @classmethod
    def from_file(cls, path: Path, recheck_seconds: float = 5.0) -> WorkingCalendar:
        """A calendar with the closing days of `path` (a broken file fails here, at start-up)."""
        calendar = cls(load_closing_days(path), source=path, recheck_seconds=recheck_seconds)
        calendar._source_version = _file_version(path)
        return calendar

    def refresh(self) -> bool:
        """Re-reads the closing-days file if it changed since it was read; True when it did."""
        if self._source is None:
            return False
        version = _file_version(self._source)
        if version == self._source_version:
            return False
        self._source_version = version  # a broken file is reported once, not on every lookup
        try:
            days = load_closing_days(self._source)
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
            log.exception("closing days file %s not reloaded; the days read before stay in force", self._source)
            return False
        self._days = _ClosingDays(frozenset(days))
        return True

    def _current(self) -> _ClosingDays:
        if self._source is not None:
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + self._recheck_seconds
                self.refresh()
        return self._days

    def _closed(self, year: int) -> frozenset[date]:
        days = self._current()
        closed = days.closed_by_year.get(year)
        if closed is None:
            # The default categories leave cuti bersama out; the government category holds it.
            national = holidays.country_holidays("ID", years=year, categories=("public", "government"))
            self._names.update(national)
            closed = frozenset(set(national) | {d for d in days.extra if d.year == year})
            days.closed_by_year[year] = closed
        return closed

    def holiday_name(self, day: date) -> str | None:
        if day in self._current().extra:
            return "closing day"
        self._closed(day.year)
        return self._names.get(day)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < _SATURDAY and day not in self._closed(day.year)

    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day after `start` (n=0 gives `start` itself); n < 0 counts backwards."""
        step = 1 if n >= 0 else -1
        remaining = abs(n)
        day = start
        while remaining:
            day += timedelta(days=step)
            if self.is_working_day(day):
                remaining -= 1
        return day

    def next_working_day(self, day: date) -> date:
        """`day` itself when it is a working day, else the first one after it."""
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]; negative when end is before start."""
        if end < start:
            return -self.working_days_between(end, start)
        count = 0
        day = start
        while day < end:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count += 1
        return count

    def is_overdue(self, start: date, allowed_working_days: int, today: date) -> bool:
        """True once `today` is past the last of the allowed working days after `start`."""
        return today > self.add_working_days(start, allowed_working_days)


def load_closing_days(path: Path | None = None) -> list[date]:
    """Extra closing days from `knowledge/closing_days.yaml` (a list of {date, reason})."""
    path = path or knowledge_dir() / "closing_days.yaml"
    if not path.exists():
        return []
    data = read_yaml(path) or {}
    days: list[date] = []
    for item in data.get("closing_days") or []:
        value = item["date"]
        days.append(value if isinstance(value, date) else date.fromisoformat(str(value)))
    return days


def _file_version(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=1)
def default_calendar() -> WorkingCalendar:
    """One calendar per process, following `knowledge/closing_days.yaml` as admins edit it."""
    return WorkingCalendar.from_file(knowledge_dir() / "closing_days.yaml")
