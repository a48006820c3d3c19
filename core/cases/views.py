"""What the cases package hands out: plain values, never ORM rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from core.identity import redact, redact_free_text
from core.limits import MESSAGE_TEXT
from core.models import Case, CaseStatus

ACTIVE = (CaseStatus.OPEN, CaseStatus.CLAIMED)
MAX_TEXT = MESSAGE_TEXT


@dataclass(frozen=True)
class CaseView:
    id: int
    telegram_user_id: int
    participant_id: int | None
    status: str
    reason: str
    locale: str
    stage: str | None
    steps_tried: list[str]
    staff_chat_id: int | None
    topic_id: int | None
    opened_at: datetime
    claimed_by: int | None
    closed_at: datetime | None
    satisfaction: int | None
    opened_message_id: int | None = None

    @classmethod
    def of(cls, c: Case) -> CaseView:
        opened_at = c.opened_at or datetime.now(UTC)
        return cls(
            c.id, c.telegram_user_id, c.participant_id, c.status, c.reason, c.locale, c.stage, list(c.steps_tried),
            c.staff_chat_id, c.topic_id, opened_at, c.claimed_by, c.closed_at, c.satisfaction, c.opened_message_id,
        )  # fmt: skip


@dataclass(frozen=True)
class Opened:
    case: CaseView
    new: bool


@dataclass(frozen=True)
class QueuedCase:
    """A line of /queue: the case and its participant's name when they are identified."""

    case: CaseView
    participant_name: str | None


@dataclass(frozen=True)
class ChatMessage:
    """A message as a case records and relays it: its kind, text or caption, files, and where it was written."""

    kind: str  # text / photo / document / voice / … (see bot/handlers/relay.py)
    text: str | None
    file_ids: list[str]
    chat_id: int
    message_id: int
    media_group_id: str | None = None


def transcript_line(kind: str, text: str | None) -> str:
    """A transcript line: the text, or the kind of media with its caption ("[photo] ini dashboard saya")."""
    if kind == "text":
        return text or ""
    return f"[{kind}] {text}" if text else f"[{kind}]"


def stored(text: str | None, participant: bool = False) -> str | None:
    """What a case keeps of a message: no NIK, card or phone number — and from a participant, like their FAQ
    questions, nothing that answers the second factor (a birth date, the NIK's last 4 digits)."""
    return (redact_free_text if participant else redact)(text or "")[:MAX_TEXT] or None


def chunks(text: str, size: int = MAX_TEXT) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
