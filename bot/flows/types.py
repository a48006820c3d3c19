"""What flows take and return: plain data, no aiogram. The console chat and the Telegram handlers both speak it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.cases import CaseView


class EventKind(StrEnum):
    TEXT = "text"
    COMMAND = "command"
    CONTACT = "contact"
    BUTTON = "button"
    OTHER = "other"  # stickers, photos… outside a case: politely not understood


@dataclass(frozen=True)
class Incoming:
    kind: EventKind
    user_id: int
    text: str = ""  # message text, command name (without "/"), or callback data
    argument: str = ""  # what follows a command
    contact_phone: str | None = None
    contact_user_id: int | None = None  # Telegram's user id of the shared contact: must be the sender's own
    display_name: str = ""  # the sender's Telegram name, shown to agents for someone not yet identified
    message_id: int | None = None  # Telegram's id of the message, in its chat


@dataclass(frozen=True)
class Button:
    label: str
    data: str


@dataclass(frozen=True)
class Reply:
    """One message to send. `text` is Telegram HTML, already escaped by the renderer."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    request_contact: str | None = None  # label of a one-time "share my phone number" keyboard button
    remove_keyboard: bool = False


@dataclass
class Outcome:
    replies: list[Reply] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    notice: str | None = None  # short text for the button press itself (answerCallbackQuery)
    relay_case: CaseView | None = None  # a person has this chat: the front end relays the message to them
