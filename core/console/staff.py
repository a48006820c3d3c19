"""Staff sign-in: roles, one-time login links, server-side sessions and API tokens. Secrets are random tokens handed
out once; only their SHA-256 is stored, so a copy of the database signs nobody in."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import make_sessionmaker
from core.models import ApiToken, ConsoleLoginLink, ConsoleSession, StaffMember

LOGIN_LINK_LIFETIME = timedelta(minutes=10)
SESSION_LIFETIME = timedelta(hours=12)
# A session's last_seen_at (presence, for automatic assignment) is written at most this often, not per request.
PRESENCE_EVERY = timedelta(seconds=30)


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return (Role.AGENT, Role.SUPERVISOR, Role.ADMIN).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


@dataclass(frozen=True)
class Principal:
    """Who is acting: a staff member in a browser, or an integration's API token (acting with the token's role)."""

    actor: str  # "staff:<telegram id>" or "token:<id>"
    role: Role
    telegram_id: int | None
    csrf_token: str = ""

    @property
    def agent_id(self) -> int:
        """The id recorded as the author of replies and notes (an API token acts as 0: no Telegram user)."""
        return self.telegram_id or 0


@dataclass(frozen=True)
class StaffRow:
    telegram_id: int
    role: Role
    name: str | None
    active: bool
    from_settings: bool


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


class StaffAccess:
    """Roles from AGENT_IDS / ADMIN_IDS plus the console's staff list (an admin in ADMIN_IDS stays one)."""

    def __init__(self, engine: AsyncEngine, agent_ids: list[int], admin_ids: list[int]) -> None:
        self.sessions = make_sessionmaker(engine)
        self.agent_ids = frozenset(agent_ids)
        self.admin_ids = frozenset(admin_ids)

    async def role_of(self, telegram_id: int) -> Role | None:
        if telegram_id in self.admin_ids:
            return Role.ADMIN
        async with self.sessions() as session:
            row = await session.get(StaffMember, telegram_id)
        if row is not None:
            return Role(row.role) if row.active else None
        return Role.AGENT if telegram_id in self.agent_ids else None

    async def staff(self) -> list[StaffRow]:
        async with self.sessions() as session:
            rows = {r.telegram_id: r for r in (await session.scalars(select(StaffMember))).all()}
        listed: dict[int, StaffRow] = {}
        for tid in sorted(self.agent_ids | self.admin_ids):
            role = Role.ADMIN if tid in self.admin_ids else Role.AGENT
            listed[tid] = StaffRow(tid, role, None, True, True)
        for tid, row in rows.items():
            if tid not in self.admin_ids:
                listed[tid] = StaffRow(tid, Role(row.role), row.name, row.active, tid in self.agent_ids)
        return sorted(listed.values(), key=lambda s: s.telegram_id)

    async def set_member(self, telegram_id: int, role: Role, name: str | None, active: bool, added_by: int) -> None:
        async with self.sessions.begin() as session:
            row = await session.get(StaffMember, telegram_id)
            if row is None:
                session.add(
                    StaffMember(
                        telegram_id=telegram_id, role=role, name=name, active=active, added_by=added_by, added_at=_now()
                    )
                )
            else:
                row.role, row.name, row.active = role, name, active
            if not active:
                await session.execute(delete(ConsoleSession).where(ConsoleSession.telegram_id == telegram_id))

    # --- login links ---------------------------------------------------------------------------------------
    async def issue_login_link(self, telegram_id: int, now: datetime | None = None) -> str | None:
        """A fresh one-time token for a staff member (None for anyone else): valid 10 minutes, usable once."""
        if await self.role_of(telegram_id) is None:
            return None
        now = now or _now()
        token = secrets.token_urlsafe(32)
        async with self.sessions.begin() as session:
            await session.execute(delete(ConsoleLoginLink).where(ConsoleLoginLink.expires_at < now))
            session.add(
                ConsoleLoginLink(
                    token_hash=token_hash(token), telegram_id=telegram_id, expires_at=now + LOGIN_LINK_LIFETIME
                )
            )
        return token

    async def redeem_login_link(self, token: str, now: datetime | None = None) -> tuple[str, Principal] | None:
        """Spend a login token: a new session (its cookie token and the principal), or None when the token is
        unknown, used or expired, or its owner is no longer staff."""
        now = now or _now()
        async with self.sessions.begin() as session:
            spent = await session.execute(
                update(ConsoleLoginLink)
                .where(
                    ConsoleLoginLink.token_hash == token_hash(token),
                    ConsoleLoginLink.used_at.is_(None),
                    ConsoleLoginLink.expires_at >= now,
                )
                .values(used_at=now)
                .returning(ConsoleLoginLink.telegram_id)
            )
            telegram_id = spent.scalar_one_or_none()
        if telegram_id is None:
            return None
        role = await self.role_of(telegram_id)
        if role is None:
            return None
        cookie = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        async with self.sessions.begin() as session:
            await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))  # kept no longer
            session.add(
                ConsoleSession(
                    token_hash=token_hash(cookie),
                    telegram_id=telegram_id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + SESSION_LIFETIME,
                    last_seen_at=now,
                )
            )
        return cookie, Principal(f"staff:{telegram_id}", role, telegram_id, csrf)

    # --- sessions ------------------------------------------------------------------------------------------
    async def session_principal(self, cookie: str, now: datetime | None = None) -> Principal | None:
        now = now or _now()
        async with self.sessions() as session:
            row = await session.get(ConsoleSession, token_hash(cookie))
        expires = row.expires_at if row is not None else None
        if row is None or expires is None or expires < now:
            return None
        role = await self.role_of(row.telegram_id)
        if role is None:
            return None
        if now - row.last_seen_at >= PRESENCE_EVERY:
            await self.touch(cookie, now)
        return Principal(f"staff:{row.telegram_id}", role, row.telegram_id, row.csrf_token)

    async def touch(self, cookie: str, now: datetime | None = None) -> None:
        """The browser is still there (a request, or an open live-updates stream): the agent counts as online."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(ConsoleSession)
                .where(ConsoleSession.token_hash == token_hash(cookie))
                .values(last_seen_at=now or _now())
            )

    async def online_agents(self, since: datetime, now: datetime | None = None) -> list[int]:
        """Agents and supervisors with a live console session seen since `since` (admins are not given cases)."""
        now = now or _now()
        async with self.sessions() as session:
            ids = (
                await session.scalars(
                    select(ConsoleSession.telegram_id)
                    .where(ConsoleSession.last_seen_at >= since, ConsoleSession.expires_at > now)
                    .distinct()
                )
            ).all()
        online = []
        for telegram_id in sorted(ids):
            role = await self.role_of(telegram_id)
            if role in (Role.AGENT, Role.SUPERVISOR):
                online.append(telegram_id)
        return online

    async def end_session(self, cookie: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash(cookie)))

    # --- API tokens ----------------------------------------------------------------------------------------
    async def create_api_token(self, name: str, role: Role, created_by: int) -> tuple[int, str]:
        """A new integration token: returned once (show it to the admin), stored hashed."""
        token = "pk_" + secrets.token_urlsafe(32)
        async with self.sessions.begin() as session:
            row = ApiToken(
                name=name[:64], token_hash=token_hash(token), role=role, created_by=created_by, created_at=_now()
            )
            session.add(row)
            await session.flush()
            return row.id, token

    async def revoke_api_token(self, token_id: int) -> bool:
        async with self.sessions.begin() as session:
            row = await session.get(ApiToken, token_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = _now()
            return True

    async def api_tokens(self) -> list[ApiToken]:
        async with self.sessions() as session:
            return list((await session.scalars(select(ApiToken).order_by(ApiToken.id))).all())

    async def token_principal(self, token: str) -> Principal | None:
        async with self.sessions() as session:
            row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
        if row is None or row.revoked_at is not None:
            return None
        return Principal(f"token:{row.id}", Role(row.role), None)
