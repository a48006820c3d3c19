"""Sending replies through the fake Bot API server: requests as JSON (uploads multipart), the typing indicator
only when a look-up is slow, long texts split at line breaks with the keyboard on the last part."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramForbiddenError, TelegramRetryAfter
from aiogram.methods import SendMessage
from aiogram.types import BufferedInputFile

from bot.flows.types import Button, Reply
from bot.handlers.delivery import MAX_MESSAGE, TYPING_BUSY, deliver, markup_for, typing_while
from bot.settings import Settings
from bot.telegram import make_bot
from tests.fake_bot_api import FakeBotApi, blocked_by_user, too_many_requests

USER = 5_560_001


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    bot = make_bot(Settings(_env_file=None, bot_token=api.token, bot_api_url=api.url))  # the bot's own set-up
    yield bot
    await bot.session.close()


async def test_a_slow_look_up_shows_typing_a_quick_one_does_not(api: FakeBotApi, bot: Bot) -> None:
    api.push_message(USER, "/status")  # the chat exists once the user wrote
    async with typing_while(bot, USER, enabled=True, after=0.05):
        await asyncio.sleep(0.3)
    assert [c.params["action"] for c in api.calls_to("sendChatAction", USER)] == ["typing"]
    async with typing_while(bot, USER, enabled=True, after=0.2):
        pass
    async with typing_while(bot, USER, enabled=False, after=0.0):
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    assert len(api.calls_to("sendChatAction", USER)) == 1


async def test_a_failing_indicator_does_not_fail_the_update(api: FakeBotApi, bot: Bot) -> None:
    api.push_message(USER, "/status")
    api.fail_next("sendChatAction", blocked_by_user())
    async with typing_while(bot, USER, enabled=True, after=0.0):
        await asyncio.sleep(0.2)
    assert api.calls_to("sendChatAction", USER)


async def test_a_long_reply_is_split_at_line_breaks_with_the_keyboard_last(api: FakeBotApi, bot: Bot) -> None:
    api.push_message(USER, "/status")
    lines = [f"baris {n} " + "x" * 90 for n in range(100)]  # about 10,000 characters
    buttons = ((Button("Ya", "abcd|h|y"),),)
    await deliver(bot, USER, [Reply("\n".join(lines), buttons)])
    calls = api.calls_to("sendMessage", USER)
    assert len(calls) == 3 and all(len(str(c.params["text"])) <= MAX_MESSAGE for c in calls)
    assert "\n".join(str(c.params["text"]) for c in calls) == "\n".join(lines)
    assert [("reply_markup" in c.params) for c in calls] == [False, False, True]


async def test_requests_go_as_json_and_uploads_multipart(api: FakeBotApi, bot: Bot) -> None:
    api.push_message(USER, "/status")
    body = bot.session.build_form_data(bot, SendMessage(chat_id=USER, text="Halo"))  # type: ignore[attr-defined]
    assert body.content_type == "application/json"
    await deliver(bot, USER, [Reply("<b>Halo</b> &amp; 😀", ((Button("Ya", "abcd|h|y"),),))])
    [call] = api.calls_to("sendMessage", USER)
    assert call.params["parse_mode"] == "HTML" and call.params["text"] == "<b>Halo</b> &amp; 😀"
    assert call.params["reply_markup"] == {"inline_keyboard": [[{"text": "Ya", "callback_data": "abcd|h|y"}]]}
    sent = await bot.send_document(USER, BufferedInputFile(b"%PDF-1.4", filename="laporan.pdf"), caption="Laporan")
    assert sent.document is not None and sent.caption == "Laporan"
    [upload] = api.calls_to("sendDocument", USER)
    assert str(upload.params["document"]).startswith("attach://")  # the file itself is another multipart part


async def test_a_reply_sent_from_its_fields_is_the_request_aiogram_builds(api: FakeBotApi, bot: Bot) -> None:
    """`deliver` skips aiogram's method model; what reaches Telegram is the same, the bot's defaults included."""
    api.push_message(USER, "/status")
    replies = [
        Reply("<b>Halo</b> &amp; 😀"),
        Reply("Pilih", ((Button("Ya", "abcd|h|y"), Button("Tidak", "abcd|h|n")), (Button("Agen", "abcd|a|"),))),
        Reply("Bagikan nomor", request_contact="📱 Bagikan"),
        Reply("Selesai", remove_keyboard=True),
    ]
    for reply in replies:
        await deliver(bot, USER, [reply])
        await bot(SendMessage(chat_id=USER, text=reply.text, reply_markup=markup_for(reply)))
    calls = api.calls_to("sendMessage", USER)
    assert len(calls) == 2 * len(replies)
    for ours, aiograms in zip(calls[::2], calls[1::2], strict=True):
        assert ours.params == aiograms.params
    assert calls[0].params["parse_mode"] == "HTML" and calls[0].params["link_preview_options"] == {"is_disabled": True}


async def test_a_reply_whose_result_is_unread_still_raises_telegrams_errors(api: FakeBotApi, bot: Bot) -> None:
    """`deliver` does not parse the sent message back (nobody reads it), but a refusal raises as aiogram raises it."""
    api.push_message(USER, "/status")
    api.fail_next("sendMessage", blocked_by_user())
    with pytest.raises(TelegramForbiddenError):
        await deliver(bot, USER, [Reply("Halo")])
    api.fail_next("sendMessage", too_many_requests(3))
    with pytest.raises(TelegramRetryAfter) as retry:
        await deliver(bot, USER, [Reply("Halo")])
    assert retry.value.retry_after == 3
    await deliver(bot, USER, [Reply("Halo lagi")])
    assert [c.params["text"] for c in api.calls_to("sendMessage", USER)][-1] == "Halo lagi"
    sent = await bot.send_message(USER, "dibaca")  # a caller that reads the result still gets the Message
    assert sent.text == "dibaca" and sent.chat.id == USER


async def test_a_saturated_bot_leaves_the_indicator_out(api: FakeBotApi, bot: Bot) -> None:
    """Past TYPING_BUSY turns in hand every answer is late for the same reason: no extra request per turn then."""
    users = [USER + n for n in range(TYPING_BUSY + 1)]
    for user in users:
        api.push_message(user, "/status")

    async def slow_turn(user: int) -> None:
        async with typing_while(bot, user, enabled=True, after=0.05):
            await asyncio.sleep(0.3)

    await asyncio.gather(*(slow_turn(user) for user in users))
    assert api.calls_to("sendChatAction") == []
    await asyncio.gather(*(slow_turn(user) for user in users[:2]))  # two slow turns: each shows it
    assert len(api.calls_to("sendChatAction")) == 2
