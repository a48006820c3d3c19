"""Which router owns a message: the participant router comes first and declines what the staff routers claim."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.types import Message

from bot.handlers import admin, console_login
from bot.handlers.participant import is_participant_message


def message(chat_type: str = "private", **fields: Any) -> Message:
    return Message.model_validate(
        {
            "message_id": 1,
            "date": 1764800000,
            "chat": {"id": 5, "type": chat_type},
            "from": {"id": 5, "is_bot": False, "first_name": "P"},
        }
        | fields
    )


@pytest.mark.parametrize(
    ("fields", "owner"),
    [
        ({"text": "kapan insentif cair"}, "participant"),
        ({"text": "/status"}, "participant"),
        ({"text": "/start abc"}, "participant"),
        ({"text": "/faqs"}, "participant"),  # not an admin command: a participant's unknown command
        ({"text": "/loginx"}, "participant"),
        (
            {"photo": [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}], "caption": "/faq_set x"},
            "participant",
        ),  # an admin caption counts only on a document
        ({"text": "/faq_test sertifikat"}, "admin"),
        ({"text": "/FAQ_TEST@prakerja_bot sertifikat"}, "admin"),
        ({"document": {"file_id": "d", "file_unique_id": "d"}, "caption": "/faq_set survey"}, "admin"),
        ({"text": "/login"}, "console_login"),
        ({"text": "/login@prakerja_bot"}, "console_login"),
    ],
)
async def test_a_private_message_has_one_owner(fields: dict[str, Any], owner: str) -> None:
    event = message(**fields)
    owners = {
        "participant": await is_participant_message(event),
        "admin": await admin.claims(event),
        "console_login": await console_login.claims(event),
    }
    assert [name for name, mine in owners.items() if mine] == [owner]


async def test_group_messages_are_never_a_participants() -> None:
    assert not await is_participant_message(message("supergroup", text="kapan insentif cair"))
