"""The working-day calendar: properties that must hold for any date, and the 2026 decree's days."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from core.calendar import WorkingCalendar, load_closing_days, today_in_jakarta

CAL = WorkingCalendar(extra_closing_days=[date(2026, 12, 31)])
dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))
steps = st.integers(min_value=0, max_value=60)


@given(dates, st.integers(min_value=1, max_value=60))
@settings(max_examples=300, deadline=None)
def test_adding_working_days_never_lands_on_a_closed_day(start: date, n: int) -> None:
    end = CAL.add_working_days(start, n)
    assert CAL.is_working_day(end)
    assert end.weekday() < 5
    assert CAL.holiday_name(end) is None
    assert CAL.working_days_between(start, end) == n


@given(dates, steps, steps)
@settings(max_examples=300, deadline=None)
def test_adding_is_monotonic_in_n(start: date, a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    assert CAL.add_working_days(start, lo) <= CAL.add_working_days(start, hi)


@given(dates, dates, steps)
@settings(max_examples=300, deadline=None)
def test_adding_is_monotonic_in_the_start(a: date, b: date, n: int) -> None:
    lo, hi = sorted((a, b))
    assert CAL.add_working_days(lo, n) <= CAL.add_working_days(hi, n)


@given(dates, st.integers(min_value=1, max_value=40))
@settings(max_examples=200, deadline=None)
def test_backwards_then_forwards_returns_to_the_first_working_day_from_start(start: date, n: int) -> None:
    back = CAL.add_working_days(start, -n)
    assert CAL.is_working_day(back)
    assert CAL.add_working_days(back, n) == CAL.next_working_day(start)


@given(dates, steps)
@settings(max_examples=200, deadline=None)
def test_overdue_exactly_after_the_allowed_days(start: date, n: int) -> None:
    due = CAL.add_working_days(start, n)
    assert not CAL.is_overdue(start, n, due)
    assert CAL.is_overdue(start, n, due + timedelta(days=1))


def test_cuti_bersama_2026_counts_as_closed() -> None:
    # The default `holidays` call leaves cuti bersama out; ours must not.
    for day in (
        date(2026, 3, 18),
        date(2026, 3, 20),
        date(2026, 3, 23),
        date(2026, 3, 24),
        date(2026, 12, 24),
    ):
        assert not CAL.is_working_day(day), day
    assert CAL.is_working_day(date(2026, 3, 25))
    assert CAL.add_working_days(date(2026, 3, 17), 1) == date(2026, 3, 25)


def test_admin_closing_days_are_closed(tmp_path: Path) -> None:
    path = tmp_path / "closing_days.yaml"
    path.write_text("closing_days:\n  - date: 2026-11-25\n    reason: audit\n", encoding="utf-8")
    days = load_closing_days(path)
    assert days == [date(2026, 11, 25)]
    cal = WorkingCalendar(days)
    assert not cal.is_working_day(date(2026, 11, 25))
    assert cal.add_working_days(date(2026, 11, 24), 1) == date(2026, 11, 26)
    assert CAL.is_working_day(date(2026, 11, 25))
    assert not CAL.is_working_day(date(2026, 12, 31))


def test_working_days_between_is_signed() -> None:
    assert CAL.working_days_between(date(2026, 11, 20), date(2026, 11, 23)) == 1  # Fri → Mon
    assert CAL.working_days_between(date(2026, 11, 23), date(2026, 11, 20)) == -1


def test_today_is_counted_in_jakarta() -> None:
    from datetime import UTC, datetime

    # 18:30 UTC on the 22nd is already 01:30 on the 23rd in Jakarta (UTC+7).
    assert today_in_jakarta(datetime(2026, 11, 22, 18, 30, tzinfo=UTC)) == date(2026, 11, 23)
