"""Automatic assignment (core/console/assignment.py): round-robin among agents online in the console, a capacity
per agent, a queue when all are full, and reassignment when an agent goes away — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.cases import CaseService
from core.console.assignment import ACTOR, Assigner
from core.console.audit import AuditLog
from core.console.staff import StaffAccess
from core.hours import AssignmentPolicy, default_support_desk
from core.models import AuditEntry, Case, CaseStatus, ConsoleSession, OutboxMessage

GROUP = -100_710_001
ANI, BUDI, CITRA, ADMIN = 9_810_101, 9_810_102, 9_810_103, 9_810_199
POLICY = AssignmentPolicy(automatic=True, capacity=2, away_after=timedelta(minutes=5))


def notice(key: str, values: dict[str, object]) -> str:
    return f"{key} {values}"


@pytest.fixture
async def setup(engine: AsyncEngine) -> tuple[AsyncEngine, CaseService, Assigner]:
    cases = CaseService(engine, [GROUP], default_support_desk())
    access = StaffAccess(engine, [ANI, BUDI, CITRA], [ADMIN])
    return engine, cases, Assigner(engine, cases, access, AuditLog(engine), POLICY, notice)


async def seen(engine: AsyncEngine, telegram_id: int, at: datetime) -> None:
    """A console session of this person, last seen at `at`."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(ConsoleSession).values(
                token_hash=f"{telegram_id}-{at.timestamp()}",
                telegram_id=telegram_id,
                csrf_token="x",
                created_at=at,
                expires_at=at + timedelta(hours=12),
                last_seen_at=at,
            )
        )


async def open_cases(cases: CaseService, count: int, first_user: int = 9_820_001) -> list[int]:
    ids = []
    for n in range(count):
        opened = await cases.open_case(first_user + n, None, "participant_asked", "id", None, [], "<b>k</b>", "P")
        ids.append(opened.case.id)
    return ids


async def holders(engine: AsyncEngine) -> dict[int, int | None]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(Case.id, Case.claimed_by).order_by(Case.id))).all()
    return {case_id: agent for case_id, agent in rows}


async def test_waiting_cases_go_round_robin_to_online_agents_up_to_their_capacity(
    setup: tuple[AsyncEngine, CaseService, Assigner],
) -> None:
    engine, cases, assigner = setup
    now = datetime.now(UTC)
    await seen(engine, ANI, now)
    await seen(engine, BUDI, now - timedelta(minutes=1))
    await seen(engine, CITRA, now - timedelta(minutes=30))  # closed the console long ago: not online
    await seen(engine, ADMIN, now)  # admins are not given cases
    ids = await open_cases(cases, 5)

    done = await assigner.run_once(now)
    # Oldest first, taking turns; two each (the capacity), the fifth waits in the queue.
    assert done.assigned == [(ids[0], ANI), (ids[1], BUDI), (ids[2], ANI), (ids[3], BUDI)]
    assert (await holders(engine))[ids[4]] is None
    async with engine.connect() as conn:
        statuses = (await conn.execute(select(Case.status, Case.auto_assigned).where(Case.id == ids[0]))).one()
        audited = (await conn.execute(select(AuditEntry.action).where(AuditEntry.actor == ACTOR))).scalars().all()
        notices = (await conn.execute(select(OutboxMessage.payload))).scalars().all()
    assert tuple(statuses) == (CaseStatus.CLAIMED, True)
    assert audited == ["case.auto_assign"] * 4
    assert sum("staff_auto_assigned" in str(p) for p in notices) == 4  # said in each case's topic

    # A case closes: the queue moves on at the next pass, to the agent whose turn it is.
    await cases.close_by_participant(ids[0], 9_820_001, "closed")
    done = await assigner.run_once(now)
    assert done.assigned == [(ids[4], ANI)]


async def test_an_agent_who_goes_away_gets_their_automatic_cases_taken_back(
    setup: tuple[AsyncEngine, CaseService, Assigner],
) -> None:
    engine, cases, assigner = setup
    start = datetime.now(UTC) - timedelta(minutes=20)
    await seen(engine, ANI, start)
    ids = await open_cases(cases, 2)
    assert (await assigner.run_once(start)).assigned == [(ids[0], ANI), (ids[1], ANI)]
    # Ani claims the second one herself: hers now, whatever happens.
    await cases.claim(ids[1], ANI, lambda previous: "claimed")

    later = datetime.now(UTC)
    await seen(engine, BUDI, later)  # Ani has not been seen for 20 minutes; Budi is here
    done = await assigner.run_once(later)
    assert done.released == [(ids[0], ANI)]
    assert done.assigned == [(ids[0], BUDI)]
    assert await holders(engine) == {ids[0]: BUDI, ids[1]: ANI}


async def test_nobody_online_leaves_the_queue_alone_and_assignment_can_be_turned_off(
    setup: tuple[AsyncEngine, CaseService, Assigner],
) -> None:
    engine, cases, assigner = setup
    ids = await open_cases(cases, 1)
    assert (await assigner.run_once()).assigned == []
    await seen(engine, ANI, datetime.now(UTC))
    assigner.policy = AssignmentPolicy(automatic=False)
    assert (await assigner.run_once()).assigned == []
    assert (await holders(engine))[ids[0]] is None


def test_the_policy_comes_from_support_yaml() -> None:
    policy = default_support_desk().assignment
    assert policy == AssignmentPolicy(automatic=True, capacity=5, away_after=timedelta(minutes=5))
