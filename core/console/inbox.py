"""The console's inbox: cases by view (unassigned, mine, all open, waiting on the participant, closed), filtered
(staff group, stage, overdue, first reply past its SLA), searched (case id, Telegram id, name), with a count per
view. Read-only queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.cases.views import ACTIVE
from core.db import make_sessionmaker
from core.models import Case, CaseMessage, CaseStatus, Participant

PAGE = 50


class InboxView(StrEnum):
    UNASSIGNED = "unassigned"
    MINE = "mine"
    OPEN = "open"
    WAITING = "waiting"  # an agent spoke last: the participant is to answer
    CLOSED = "closed"


def mask_name(name: str | None) -> str | None:
    """ "Siti Rahmawati Putri" → "Siti R. P.": enough to tell cases apart, not a full legal name."""
    if not name:
        return None
    first, *rest = name.split()
    return " ".join([first, *(f"{word[0]}." for word in rest)])


@dataclass(frozen=True)
class InboxFilter:
    view: InboxView = InboxView.OPEN
    agent_id: int = 0  # whose "mine"
    staff_chat_id: int | None = None
    stage: str | None = None
    overdue: bool = False
    sla_breached: bool = False
    search: str = ""
    page: int = 0


@dataclass(frozen=True)
class InboxRow:
    id: int
    status: str
    telegram_user_id: int
    name: str | None  # masked
    stage: str | None
    reason: str
    staff_chat_id: int | None
    opened_at: datetime
    claimed_by: int | None
    waiting: bool
    first_reply_due: datetime | None = None
    sla_breached: bool = False  # no agent reply by the due time, or a later one


@dataclass(frozen=True)
class InboxPage:
    rows: list[InboxRow]
    counts: dict[str, int]
    total: int  # rows matching the view and filters
    stages: list[str]
    staff_chats: list[int]


def sla_breached(now: datetime) -> ColumnElement[bool]:
    """The first agent reply came after its due time, or has not come and the due time has passed."""
    return and_(
        Case.first_reply_due.is_not(None),
        or_(
            and_(Case.first_reply_at.is_(None), Case.first_reply_due < now),
            Case.first_reply_at > Case.first_reply_due,
        ),
    )


def _last(direction: str) -> Any:
    return (
        select(CaseMessage.case_id, func.max(CaseMessage.id).label("last_id"))
        .where(CaseMessage.direction == direction)
        .group_by(CaseMessage.case_id)
    )


class Inbox:
    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = make_sessionmaker(engine)

    async def page(self, f: InboxFilter) -> InboxPage:
        last_agent = _last("agent").subquery()
        last_participant = _last("participant").subquery()
        waiting: ColumnElement[bool] = and_(
            Case.status.in_(ACTIVE),
            last_agent.c.last_id.is_not(None),
            or_(last_participant.c.last_id.is_(None), last_agent.c.last_id > last_participant.c.last_id),
        )
        base = (
            select(Case.id)
            .outerjoin(Participant, Participant.id == Case.participant_id)
            .outerjoin(last_agent, last_agent.c.case_id == Case.id)
            .outerjoin(last_participant, last_participant.c.case_id == Case.id)
        )
        now = datetime.now(UTC)
        breached = sla_breached(now)
        filters = self._filters(f, now)
        views: dict[InboxView, ColumnElement[bool]] = {
            InboxView.UNASSIGNED: and_(Case.status.in_(ACTIVE), Case.claimed_by.is_(None)),
            InboxView.MINE: and_(Case.status.in_(ACTIVE), Case.claimed_by == f.agent_id),
            InboxView.OPEN: Case.status.in_(ACTIVE),
            InboxView.WAITING: waiting,
            InboxView.CLOSED: Case.status == CaseStatus.CLOSED,
        }
        counts_query = base.with_only_columns(
            *(func.coalesce(func.sum(case((cond, 1), else_=0)), 0).label(v.value) for v, cond in views.items())
        ).where(*filters)
        async with self.sessions() as session:
            counts_row = (await session.execute(counts_query)).one()
            counts = {v.value: int(counts_row[i]) for i, v in enumerate(views)}
            order = Case.closed_at.desc() if f.view == InboxView.CLOSED else Case.opened_at
            rows_query = (
                base.with_only_columns(
                    Case.id,
                    Case.status,
                    Case.telegram_user_id,
                    Participant.legal_name,
                    Case.stage,
                    Case.reason,
                    Case.staff_chat_id,
                    Case.opened_at,
                    Case.claimed_by,
                    waiting.label("waiting"),
                    Case.first_reply_due,
                    breached.label("breached"),
                )
                .where(views[f.view], *filters)
                .order_by(order, Case.id)
                .limit(PAGE)
                .offset(max(f.page, 0) * PAGE)
            )
            rows = (await session.execute(rows_query)).all()
            stages = [s for s in (await session.scalars(select(Case.stage).distinct())).all() if s]
            chats = [c for c in (await session.scalars(select(Case.staff_chat_id).distinct())).all() if c]
        return InboxPage(
            [
                InboxRow(
                    r[0],
                    r[1],
                    r[2],
                    mask_name(r[3]),
                    r[4],
                    r[5],
                    r[6],
                    r[7] or datetime.now(UTC),
                    r[8],
                    bool(r[9]),
                    r[10],
                    bool(r[11]),
                )
                for r in rows
            ],
            counts,
            counts[f.view.value],
            sorted(stages),
            sorted(chats),
        )

    @staticmethod
    def _filters(f: InboxFilter, now: datetime) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if f.staff_chat_id is not None:
            out.append(Case.staff_chat_id == f.staff_chat_id)
        if f.stage:
            out.append(Case.stage == f.stage)
        if f.overdue:
            out.append(Case.reason == "overdue")
        if f.sla_breached:
            out.append(sla_breached(now))
        term = f.search.strip().lstrip("#")
        if term.isdecimal():
            number = int(term)
            out.append(or_(Case.id == number, Case.telegram_user_id == number) if number < 2**63 else Case.id < 0)
        elif term:
            # Names are matched, never shown whole: the list shows them masked.
            out.append(func.lower(Participant.legal_name).contains(term.lower(), autoescape=True))
        return out
