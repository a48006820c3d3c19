"""Proving who a Telegram user is: their own phone number, then a second factor; failures lock the account out.

The front end guarantees the contact belongs to the sender (Telegram's contact user id); this module decides the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core.db import make_sessionmaker
from core.identity import InvalidIdentifier, digits_only, find_birth_date, keyed_hash, normalize_phone
from core.models import Event, IdentityAttempts, IdentityLockout, Participant, TelegramLink

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=30)
# From the second lock on, a day: at most 10 guesses on the first day and 5 a day after, instead of 240 a day.
LONG_LOCKOUT = timedelta(hours=24)


class SecondFactorResult(StrEnum):
    LINKED = "linked"
    WRONG = "wrong"
    LOCKED = "locked"
    UNREADABLE = "unreadable"  # neither a date nor 4 digits: not counted as a failure


@dataclass(frozen=True)
class SecondFactorOutcome:
    result: SecondFactorResult
    tries_left: int = MAX_FAILURES
    locked_until: datetime | None = None
    lockouts: int = 0  # locks this participant has served or is serving


class AccountService:
    """Use cases around the Telegram ↔ participant link. Each method is one transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = make_sessionmaker(engine)

    async def participant_for_phone(self, raw_phone: str) -> int | None:
        try:
            phone = normalize_phone(raw_phone)
        except InvalidIdentifier:
            return None
        async with self.sessions() as session:
            found: int | None = await session.scalar(select(Participant.id).where(Participant.phone == phone))
            return found

    async def unblocked(self, telegram_user_id: int) -> None:
        """They write to us again, so they unblocked the bot: notifications may resume."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(TelegramLink).where(TelegramLink.telegram_user_id == telegram_user_id).values(blocked_at=None)
            )

    async def linked_participant(self, telegram_user_id: int) -> int | None:
        async with self.sessions() as session:
            link = await session.get(TelegramLink, telegram_user_id)
        if link is None:
            return None
        if link.blocked_at is not None:
            await self.unblocked(telegram_user_id)
        return link.participant_id

    async def locked_until(
        self, telegram_user_id: int, participant_id: int | None = None, now: datetime | None = None
    ) -> datetime | None:
        """Until when verification is locked for this Telegram account — and, when known, for the participant it
        claims to be (locked by whichever account failed)."""
        now = now or datetime.now(UTC)
        async with self.sessions() as session:
            attempts = await session.get(IdentityAttempts, telegram_user_id)
            lockout = await session.get(IdentityLockout, participant_id) if participant_id is not None else None
            return _later(_active_lock(attempts, now), _active_lock(lockout, now))

    async def verify_second_factor(
        self, telegram_user_id: int, participant_id: int, answer: str, now: datetime | None = None, locale: str = "id"
    ) -> SecondFactorOutcome:
        """Birth date (any usual format) or the last 4 NIK digits; links the account on success.

        Failures count per participant: a lock holds for every Telegram account, and each lock after the first
        lasts `LONG_LOCKOUT`. The account that triggered a lock is locked too, so it is reminded at once."""
        now = now or datetime.now(UTC)
        async with self.sessions.begin() as session:
            attempts = await session.get(IdentityAttempts, telegram_user_id, with_for_update=True)
            lockout = await session.get(IdentityLockout, participant_id, with_for_update=True)
            if (locked := _later(_active_lock(attempts, now), _active_lock(lockout, now))) is not None:
                return SecondFactorOutcome(SecondFactorResult.LOCKED, 0, locked, lockout.lockouts if lockout else 0)
            participant = await session.get(Participant, participant_id)
            if participant is None:
                return SecondFactorOutcome(SecondFactorResult.WRONG, 0)
            born = find_birth_date(answer, today=now.date())
            digits = digits_only(answer)
            if born is None and not (len(digits) == 4 and digits == answer.strip()):
                return SecondFactorOutcome(SecondFactorResult.UNREADABLE, _tries_left(lockout))
            if born == participant.birth_date or (born is None and digits == participant.nik_last4):
                await self._link(session, telegram_user_id, participant_id, locale)
                for row in (attempts, lockout):
                    if row is not None:
                        await session.delete(row)
                return SecondFactorOutcome(SecondFactorResult.LINKED)
            if lockout is None:
                lockout = IdentityLockout(participant_id=participant_id, failures=0, lockouts=0)
                session.add(lockout)
            elif lockout.locked_until is not None:
                lockout.failures, lockout.locked_until = 0, None  # a served lock-out starts a fresh count
            lockout.failures += 1
            if lockout.failures < MAX_FAILURES:
                return SecondFactorOutcome(SecondFactorResult.WRONG, MAX_FAILURES - lockout.failures)
            lockout.lockouts += 1
            lockout.locked_until = now + (LOCKOUT if lockout.lockouts == 1 else LONG_LOCKOUT)
            if attempts is None:
                attempts = IdentityAttempts(telegram_user_id=telegram_user_id, failures=0)
                session.add(attempts)
            attempts.failures, attempts.locked_until = lockout.failures, lockout.locked_until
            return SecondFactorOutcome(SecondFactorResult.LOCKED, 0, lockout.locked_until, lockout.lockouts)

    async def _link(self, session: AsyncSession, telegram_user_id: int, participant_id: int, locale: str) -> None:
        await session.execute(delete(TelegramLink).where(TelegramLink.telegram_user_id == telegram_user_id))
        session.add(TelegramLink(telegram_user_id=telegram_user_id, participant_id=participant_id, locale=locale))
        session.add(
            Event(
                participant_id=participant_id,
                entity="telegram_links",
                entity_id=str(telegram_user_id),
                kind="linked",
                data={},
                source_kind="participant",
                source_ref=str(telegram_user_id),
            )
        )

    async def set_locale(self, telegram_user_id: int, locale: str) -> None:
        """Notifications go out in the language the participant chose."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(TelegramLink).where(TelegramLink.telegram_user_id == telegram_user_id).values(locale=locale)
            )

    async def mark_blocked(self, telegram_user_id: int, now: datetime | None = None) -> None:
        """The participant blocked the bot: no more notifications until they write again."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(TelegramLink)
                .where(TelegramLink.telegram_user_id == telegram_user_id)
                .values(blocked_at=now or datetime.now(UTC))
            )

    async def logout(self, telegram_user_id: int) -> bool:
        async with self.sessions.begin() as session:
            return await unlink(session, telegram_user_id)


async def unlink(session: AsyncSession, telegram_user_id: int) -> bool:
    """Forget which participant this Telegram account is, in the caller's transaction (a /logout during a case
    closes the case in the same one); False when it was not linked."""
    link = await session.get(TelegramLink, telegram_user_id)
    if link is None:
        return False
    session.add(
        Event(
            participant_id=link.participant_id,
            entity="telegram_links",
            entity_id=str(telegram_user_id),
            kind="unlinked",
            data={},
            source_kind="participant",
            source_ref=str(telegram_user_id),
        )
    )
    await session.delete(link)
    return True


def _active_lock(attempts: IdentityAttempts | IdentityLockout | None, now: datetime) -> datetime | None:
    if attempts is None or attempts.locked_until is None:
        return None
    until = attempts.locked_until
    return until if until > now else None


def _later(first: datetime | None, second: datetime | None) -> datetime | None:
    return max(first, second) if first is not None and second is not None else first or second


def _tries_left(lockout: IdentityLockout | None) -> int:
    return MAX_FAILURES - (lockout.failures if lockout and lockout.locked_until is None else 0)


@dataclass(frozen=True)
class RekeyReport:
    """What `rekey_identifiers` did: participants re-keyed, already under the new key, and those the file does not
    cover (their ids; then nothing was changed)."""

    rekeyed: int
    already: int
    uncovered: tuple[int, ...]


async def rekey_identifiers(
    engine: AsyncEngine, identifiers: Iterable[tuple[str, str]], old_key: bytes, new_key: bytes
) -> RekeyReport:
    """Key rotation: re-hash every stored NIK and card number from `old_key` to `new_key`.

    A keyed hash cannot be re-keyed by itself — that is its point — so the identifiers come from the participants
    file (`identifiers`: (nik, card_number) pairs). All or nothing: if any participant's hash is in neither key's
    form for the file's identifiers, nothing changes and the report names them. Running it again is harmless."""
    rekey: dict[str, str] = {}
    current: set[str] = set()
    for nik, card in identifiers:
        for secret in (nik, card):
            if digits_only(secret):
                rekey[keyed_hash(secret, old_key)] = new = keyed_hash(secret, new_key)
                current.add(new)
    sessions = make_sessionmaker(engine)
    async with sessions.begin() as session:
        rows = (await session.execute(select(Participant.id, Participant.nik_hash, Participant.card_number_hash))).all()
        changes: list[dict[str, object]] = []
        uncovered: list[int] = []
        already = 0
        for participant_id, nik_hash, card_hash in rows:
            if nik_hash in current and card_hash in current:
                already += 1
                continue
            new_nik, new_card = rekey.get(nik_hash), rekey.get(card_hash)
            if new_nik is None or new_card is None:
                uncovered.append(participant_id)
                continue
            changes.append({"pid": participant_id, "nik": new_nik, "card": new_card})
        if uncovered:
            return RekeyReport(0, already, tuple(uncovered))
        if changes:
            statement = (
                update(Participant.__table__)  # type: ignore[arg-type]
                .where(Participant.__table__.c.id == bindparam("pid"))
                .values(nik_hash=bindparam("nik"), card_number_hash=bindparam("card"))
            )
            await session.execute(statement, changes)
        return RekeyReport(len(changes), already, ())
