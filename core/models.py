"""The records: who bought what where, what each party reported, and an append-only log of every change.

Tables are created by the Alembic migrations in `core/migrations`, never by `create_all` in production code.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Integer on SQLite so that the id is the rowid (auto-incremented); BIGINT elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A moment, stored in UTC and always handed back timezone-aware: PostgreSQL's timestamptz does that itself,
    SQLite has no time zones and returns naive values. One column type instead of a patch at every reader."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC)  # SQLite keeps the wall time only: make it UTC's
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Membership(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class InstallmentStatus(StrEnum):
    SCHEDULED = "scheduled"
    TRANSFERRED = "transferred"
    FAILED = "failed"


class PayoutChannel(StrEnum):
    BNI = "BNI"
    BCA = "BCA"
    OVO = "OVO"
    GOPAY = "GOPAY"
    LINKAJA = "LINKAJA"
    DANA = "DANA"

    @property
    def is_ewallet(self) -> bool:
        return self not in (PayoutChannel.BNI, PayoutChannel.BCA)


class Platform(Base):
    __tablename__ = "platforms"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class Institution(Base):
    __tablename__ = "institutions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class Training(Base):
    __tablename__ = "trainings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))


class Participant(Base):
    __tablename__ = "participants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Card number and NIK are secrets: a keyed hash to verify, the last 4 digits to show masked.
    card_number_hash: Mapped[str] = mapped_column(String(64), unique=True)
    card_number_last4: Mapped[str] = mapped_column(String(4))
    nik_hash: Mapped[str] = mapped_column(String(64), unique=True)
    nik_last4: Mapped[str] = mapped_column(String(4))
    legal_name: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[date] = mapped_column(Date)
    phone: Mapped[str] = mapped_column(String(20), unique=True)  # E.164
    email: Mapped[str | None] = mapped_column(String(200))
    wave: Mapped[int] = mapped_column(Integer)
    scheme: Mapped[str] = mapped_column(String(8))  # a key of rules.yaml `schemes`
    accepted_on: Mapped[date] = mapped_column(Date)
    membership: Mapped[str] = mapped_column(String(16), default=Membership.ACTIVE)


class PayoutAccount(Base):
    __tablename__ = "payout_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), unique=True)
    channel: Mapped[str] = mapped_column(String(16))  # PayoutChannel
    account_last4: Mapped[str] = mapped_column(String(4))
    holder_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20))  # e-wallets: must equal the Prakerja phone
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=True)


class Enrollment(Base):
    """One training bought on one platform, with what the institution, platform and PMO reported."""

    __tablename__ = "enrollments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    voucher_code: Mapped[str] = mapped_column(String(40), unique=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    training_id: Mapped[int] = mapped_column(ForeignKey("trainings.id"))
    platform_code: Mapped[str] = mapped_column(ForeignKey("platforms.code"))
    purchased_on: Mapped[date] = mapped_column(Date)
    completed_on: Mapped[date | None] = mapped_column(Date)  # as reported by the institution
    name_at_institution: Mapped[str | None] = mapped_column(String(200))
    rated_on: Mapped[date | None] = mapped_column(Date)
    reported_on: Mapped[date | None] = mapped_column(Date)  # in the platform's daily report to the PMO
    # The report_date of the platform report that last changed these facts: an older report changes nothing.
    last_report_date: Mapped[date | None] = mapped_column(Date)


class Certificate(Base):
    __tablename__ = "certificates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id"), unique=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    printed_name: Mapped[str] = mapped_column(String(200))
    issued_on: Mapped[date] = mapped_column(Date)


class IncentiveInstallment(Base):
    __tablename__ = "incentive_installments"
    __table_args__ = (UniqueConstraint("participant_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"))
    seq: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(Integer)  # rupiah
    scheduled_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default=InstallmentStatus.SCHEDULED)
    transferred_on: Mapped[date | None] = mapped_column(Date)
    channel: Mapped[str | None] = mapped_column(String(16))
    failure_reason: Mapped[str | None] = mapped_column(String(32))


class ImportBatch(Base):
    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    file_name: Mapped[str] = mapped_column(String(300))
    file_sha256: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), default="running")  # applied / rejected / failed
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    rows_applied: Mapped[int] = mapped_column(Integer, default=0)
    rows_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)


class Event(Base):
    """Append-only: one row per changed fact, with its source. Triggers refuse UPDATE and DELETE."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now())
    participant_id: Mapped[int | None] = mapped_column(Integer, index=True)
    entity: Mapped[str] = mapped_column(String(32))  # table name
    entity_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # created / changed / …
    data: Mapped[dict[str, Any]] = mapped_column(JSON)  # changed: {"field": [old, new]}; created: {"field": value}
    source_kind: Mapped[str] = mapped_column(String(16))  # import / agent / admin / demo / system
    source_ref: Mapped[str] = mapped_column(String(64))  # batch id, Telegram user id, …


class TelegramLink(Base):
    """A Telegram account proven to belong to a participant (contact + second factor); lasts until /logout."""

    __tablename__ = "telegram_links"

    telegram_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    linked_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now())
    locale: Mapped[str] = mapped_column(String(2), default="id", server_default="id")  # for notifications
    blocked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # the participant blocked the bot


class IdentityAttempts(Base):
    """Failed second-factor answers per Telegram account, for the lock-out."""

    __tablename__ = "identity_attempts"

    telegram_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class IdentityLockout(Base):
    """Failed second-factor answers per participant, whichever Telegram account typed them: a second account with
    the same phone gets no fresh tries. `lockouts` counts the locks served, so that they grow longer."""

    __tablename__ = "identity_lockouts"

    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class FaqAnswer(Base):
    """Every question the matcher saw, what it answered, and whether the participant said it helped."""

    __tablename__ = "faq_answers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    asked_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now(), index=True)
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger)
    participant_id: Mapped[int | None] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(String(1000))  # redacted: no NIK or phone numbers
    faq_id: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float, default=0.0)
    kind: Mapped[str] = mapped_column(String(16))  # answer / suggest / none
    helpful: Mapped[bool | None] = mapped_column(Boolean)


class CaseStatus(StrEnum):
    OPEN = "open"  # waiting for an agent
    CLAIMED = "claimed"  # an agent took it
    CLOSED = "closed"


class Case(Base):
    """A participant's chat handed to a human agent, from opening to the satisfaction answer."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    participant_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.OPEN, index=True)
    reason: Mapped[str] = mapped_column(String(32))  # participant_asked / unresolved / overdue
    locale: Mapped[str] = mapped_column(String(2), default="id")
    stage: Mapped[str | None] = mapped_column(String(32))  # the headline diagnosis stage when it opened
    steps_tried: Mapped[list[str]] = mapped_column(JSON, default=list)
    staff_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    topic_id: Mapped[int | None] = mapped_column(Integer)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now())
    claimed_by: Mapped[int | None] = mapped_column(BigInteger)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_reply_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_reply_due: Mapped[datetime | None] = mapped_column(UtcDateTime)  # the SLA: opened + target in business time
    # Given by automatic assignment (core.console.assignment), not claimed by a person: released if its agent leaves.
    auto_assigned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_by: Mapped[int | None] = mapped_column(BigInteger)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    # The participant's message that opened the case: a redelivery of that very message (its turn failed after the
    # case was committed) is answered as the first delivery was, not relayed to the agent as a new message.
    opened_message_id: Mapped[int | None] = mapped_column(Integer)
    card_html: Mapped[str | None] = mapped_column(Text)  # the card posted when it opened: posted again in a new topic


class ParticipantTopic(Base):
    """The staff-group forum topic of one participant, reused for each of their cases."""

    __tablename__ = "participant_topics"

    telegram_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    staff_chat_id: Mapped[int] = mapped_column(BigInteger)
    topic_id: Mapped[int | None] = mapped_column(Integer)  # None while its creation is queued
    name: Mapped[str | None] = mapped_column(String(128))  # plain text: a recreated topic gets it again
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now())


class CaseMessage(Base):
    """Everything said in a case, both ways, plus agents' internal notes (never relayed)."""

    __tablename__ = "case_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    direction: Mapped[str] = mapped_column(String(16))  # participant / agent / note / bot
    author_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))  # text / photo / document / voice / album / …
    text: Mapped[str | None] = mapped_column(String(4096))
    file_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    source_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    source_message_id: Mapped[int | None] = mapped_column(Integer)
    relayed_message_id: Mapped[int | None] = mapped_column(Integer)  # its copy on the other side, for edits
    media_group_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now(), index=True)


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # handed to Telegram; the sender marks it sent when Telegram answers
    SENT = "sent"
    FAILED = "failed"  # gave up (e.g. the participant blocked the bot); the reason is kept


class OutboxMessage(Base):
    """A Bot API call to make later, durably: relays into staff groups, notifications to participants.

    Written in the same transaction as the change it reports; a sender drains it within Telegram's limits.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lane: Mapped[str] = mapped_column(String(16), index=True)  # staff / participant
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    method: Mapped[str] = mapped_column(String(32))  # sendMessage, copyMessage, createForumTopic, …
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    case_id: Mapped[int | None] = mapped_column(Integer)
    # The participant whose topic a staff message belongs to: the sender serves participants in turn.
    topic_user: Mapped[int | None] = mapped_column(BigInteger)
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column(UtcDateTime)
    error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)


class FaqVersion(Base):
    """Every saved state of an FAQ entry; the newest version of each id is the one in use."""

    __tablename__ = "faq_versions"
    __table_args__ = (UniqueConstraint("faq_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    faq_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[dict[str, str]] = mapped_column(JSON)
    paraphrases: Mapped[dict[str, list[str]]] = mapped_column(JSON)
    answer: Mapped[dict[str, str]] = mapped_column(JSON)
    sources: Mapped[list[str] | None] = mapped_column(JSON)  # ids in knowledge/sources.yaml
    kind: Mapped[str | None] = mapped_column(String(16))  # smalltalk / policy / action: cites no source
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    action: Mapped[str] = mapped_column(String(16))  # seed / create / edit / rollback / delete
    author_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now())


class Interaction(Base):
    """One participant update handled (for statistics: conversations, deflection, stages)."""

    __tablename__ = "interactions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now(), index=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    participant_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # text / command / button / contact / other / relay
    stage: Mapped[str | None] = mapped_column(String(32))


class ProcessedUpdate(Base):
    """Telegram redelivers updates: a worker claims an update_id here before handling it, and marks it done after."""

    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16))  # processing / done
    worker: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Long polling keeps the update itself until it is done (then it is cleared): the offset confirms updates to
    # Telegram as soon as they are stored here, and a restart handles the ones still open from this copy.
    payload: Mapped[str | None] = mapped_column(Text)


class StaffMember(Base):
    """A person who may use the web console, added there by an admin (AGENT_IDS / ADMIN_IDS need no row)."""

    __tablename__ = "staff_members"

    telegram_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    role: Mapped[str] = mapped_column(String(16))  # agent / supervisor / admin
    name: Mapped[str | None] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    added_by: Mapped[int | None] = mapped_column(BigInteger)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now())


class ConsoleLoginLink(Base):
    """A one-time login link: only its hash is kept; usable once, until it expires."""

    __tablename__ = "console_login_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ConsoleSession(Base):
    """A signed-in browser: the cookie carries a random token, the row its hash (server-side sessions)."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApiToken(Base):
    """A token for an integration (REST API), created by an admin; only its hash is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AuditEntry(Base):
    """Every staff action in the console or the API: who, what, on what, when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64))  # "staff:123" or "token:4"
    action: Mapped[str] = mapped_column(String(48))
    target: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
