"""Second-factor lock-out: counted per participant (not per Telegram account), longer from the second lock on,
and the answers people really type (issue 9 §3, issue 11 item 9). Real SQLite file, real AccountService."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from core.accounts import LOCKOUT, LONG_LOCKOUT, MAX_FAILURES, AccountService, SecondFactorResult
from core.calendar import default_calendar
from core.db import Database
from core.demo import PERSONAS, recreate_database, seed_demo
from core.identity import find_birth_date
from core.rules import default_rules

DEDI = next(p for p in PERSONAS if p.name == "Dedi Kurniawan")
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WRONG = "01-01-1990"


@pytest_asyncio.fixture
async def accounts(tmp_path: Path) -> AsyncIterator[tuple[AccountService, int]]:
    async with Database.open(f"sqlite+aiosqlite:///{tmp_path / 'lockout.db'}") as db:
        await recreate_database(db)
        created = await seed_demo(db.engine, default_rules(), default_calendar(), b"k" * 32, date(2026, 3, 2))
        participant = next(pid for pid, persona in created if persona.name == DEDI.name)
        yield AccountService(db.engine), participant


async def fail(service: AccountService, user: int, participant: int, times: int, now: datetime) -> SecondFactorResult:
    result = SecondFactorResult.WRONG
    for _ in range(times):
        result = (await service.verify_second_factor(user, participant, WRONG, now=now)).result
    return result


async def test_a_second_telegram_account_gets_no_fresh_tries(accounts: tuple[AccountService, int]) -> None:
    service, dedi = accounts
    assert await fail(service, 1, dedi, MAX_FAILURES - 1, START) is SecondFactorResult.WRONG
    # Another account with the same phone continues the same count…
    last = await service.verify_second_factor(2, dedi, WRONG, now=START)
    assert last.result is SecondFactorResult.LOCKED and last.locked_until == START + LOCKOUT
    # …and every account is locked out of this participant, even with the right answer.
    for user in (1, 2, 3):
        right = await service.verify_second_factor(user, dedi, DEDI.birth_date.strftime("%d-%m-%Y"), now=START)
        assert right.result is SecondFactorResult.LOCKED
    assert await service.locked_until(3, dedi, now=START) == START + LOCKOUT


async def test_the_second_lock_lasts_a_day(accounts: tuple[AccountService, int]) -> None:
    service, dedi = accounts
    assert await fail(service, 1, dedi, MAX_FAILURES, START) is SecondFactorResult.LOCKED
    later = START + LOCKOUT + timedelta(seconds=1)
    assert await fail(service, 1, dedi, MAX_FAILURES - 1, later) is SecondFactorResult.WRONG
    second = await service.verify_second_factor(1, dedi, WRONG, now=later)
    assert second.result is SecondFactorResult.LOCKED and second.lockouts == 2
    assert second.locked_until == later + LONG_LOCKOUT and timedelta(hours=24) <= LONG_LOCKOUT
    still = later + LONG_LOCKOUT - timedelta(seconds=1)
    assert (await service.verify_second_factor(9, dedi, "0004", now=still)).result is SecondFactorResult.LOCKED
    # A served lock gives 5 fresh tries, the next lock is a day again; a success resets everything.
    after = later + LONG_LOCKOUT + timedelta(seconds=1)
    linked = await service.verify_second_factor(9, dedi, "0004", now=after)
    assert linked.result is SecondFactorResult.LINKED
    assert await fail(service, 1, dedi, MAX_FAILURES, after) is SecondFactorResult.LOCKED
    assert await service.locked_until(1, dedi, now=after) == after + LOCKOUT


@pytest.mark.parametrize(
    "typed",
    [
        "tgl lahir 17-08-1995",
        "17 Agst 1995",
        "17-8-95",
        "17081995",
        "17 Agustus 95",
        "lahir 17 agustus 1995 kak",
        "Tanggal lahir saya 17/08/1995",
    ],
)
async def test_birth_dates_as_people_type_them_link(accounts: tuple[AccountService, int], typed: str) -> None:
    service, dedi = accounts
    assert DEDI.birth_date == date(1995, 8, 17)
    assert find_birth_date(typed, today=date(2026, 3, 2)) == date(1995, 8, 17)
    outcome = await service.verify_second_factor(1, dedi, typed, now=START)
    assert outcome.result is SecondFactorResult.LINKED, typed


@pytest.mark.parametrize("typed", ["sertifikat saya kapan keluar?", "lahir kak", "17 08", "170895 12"])
async def test_questions_and_fragments_are_not_answers(accounts: tuple[AccountService, int], typed: str) -> None:
    service, dedi = accounts
    outcome = await service.verify_second_factor(1, dedi, typed, now=START)
    assert outcome.result is SecondFactorResult.UNREADABLE and outcome.tries_left == MAX_FAILURES
