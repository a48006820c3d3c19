"""An admin's edit to the closing-days file reaches a running calendar without a restart."""

from __future__ import annotations

import logging
import os
from datetime import date
from pathlib import Path

import pytest

from core.calendar import WorkingCalendar

MONDAY = date(2026, 4, 6)


def write(path: Path, body: str, version: int) -> None:
    """Writes the file with a modification time of its own (a same-second rewrite must still be seen)."""
    path.write_text(body, encoding="utf-8")
    os.utime(path, ns=(version * 1_000_000_000, version * 1_000_000_000))


def closing(*days: date) -> str:
    lines = "".join(f"  - date: {d.isoformat()}\n    reason: tutup\n" for d in days)
    return f"closing_days:\n{lines}" if days else "closing_days: []\n"


def test_an_edit_is_followed_and_a_revert_too(tmp_path: Path) -> None:
    path = tmp_path / "closing_days.yaml"
    write(path, closing(), 1)
    calendar = WorkingCalendar.from_file(path, recheck_seconds=0)
    assert calendar.is_working_day(MONDAY)
    assert calendar.add_working_days(date(2026, 4, 3), 1) == MONDAY

    write(path, closing(MONDAY), 2)
    assert not calendar.is_working_day(MONDAY)
    assert calendar.holiday_name(MONDAY) == "closing day"
    assert calendar.add_working_days(date(2026, 4, 3), 1) == date(2026, 4, 7)

    path.unlink()  # no file: no extra closing days
    assert calendar.is_working_day(MONDAY)


def test_a_broken_edit_keeps_the_days_read_before(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "closing_days.yaml"
    write(path, closing(MONDAY), 1)
    calendar = WorkingCalendar.from_file(path, recheck_seconds=0)
    write(path, "closing_days:\n  - date: 2026-13-45\n", 2)
    with caplog.at_level(logging.ERROR, logger="core.calendar"):
        assert not calendar.is_working_day(MONDAY)
    assert "not reloaded" in caplog.text
    write(path, closing(), 3)  # fixed: followed again
    assert calendar.is_working_day(MONDAY)


def test_between_checks_the_file_is_not_looked_at(tmp_path: Path) -> None:
    path = tmp_path / "closing_days.yaml"
    write(path, closing(), 1)
    calendar = WorkingCalendar.from_file(path, recheck_seconds=3600)
    assert calendar.is_working_day(MONDAY)
    write(path, closing(MONDAY), 2)
    assert calendar.is_working_day(MONDAY)  # within the hour: the days in hand
    assert calendar.refresh() and not calendar.is_working_day(MONDAY)


def test_a_calendar_without_a_file_never_changes() -> None:
    calendar = WorkingCalendar([MONDAY])
    assert not calendar.refresh()
    assert not calendar.is_working_day(MONDAY)
