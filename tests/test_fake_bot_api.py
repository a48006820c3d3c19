"""The fake Bot API server keeps Telegram's semantics (long polling, offsets, errors) and its shapes: every update it
emits and every message it answers parses with python-telegram-bot, the independent oracle (DESIGN.md §5)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import BotCommand, BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

from tests.fake_bot_api import (
    DEFAULT_TOKEN,
    FakeBotApi,
    blocked_by_user,
    check_with_ptb,
    ptb_message,
    ptb_update,
    too_many_requests,
)
from tests.html_check import html_problems, parse_telegram_html, telegram_refusal

USER = 5_550_001


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api.url))
    bot = Bot(DEFAULT_TOKEN, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    yield bot
    await bot.session.close()


async def call(api: FakeBotApi, method: str, **params: Any) -> dict[str, Any]:
    """A raw JSON request, as another client than aiogram would make it."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{api.url}/bot{api.token}/{method}", json=params) as response,
    ):
        body: dict[str, Any] = await response.json()
        return body


@pytest.mark.parametrize(
    ("html", "refused", "documented"),
    [
        ("<b>Halo</b> &amp; selamat", False, True),
        ('<a href="https://x.id">x</a> <code>a&lt;b</code>', False, True),
        ("beri ulasan & rating", False, False),  # tdlib keeps a bare "&"; the docs say escape it
        ("1 > 0", False, False),
        ("&nbsp;x", False, False),
        ("<strong>x</strong>", False, False),  # Telegram's synonym, not one of our tags
        ("<b>x", True, False),
        ("<b><i>x</b></i>", True, False),
        ("x</a>", True, False),
        ("<br>x", True, False),
        ("aku <3 kamu", True, False),
        ("<!-- x -->y", True, False),
        ("", True, False),
    ],
)
def test_the_html_checker_knows_what_telegram_refuses(html: str, refused: bool, documented: bool) -> None:
    assert (telegram_refusal(html) is not None) is refused
    assert (html_problems(html) == []) is documented


def test_entities_count_utf16_code_units() -> None:
    plain, entities = parse_telegram_html('😀 <b>Halo</b> <a href="https://x.id">x</a>')
    assert plain == "😀 Halo x"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 4},
        {"type": "text_link", "offset": 8, "length": 1, "url": "https://x.id"},
    ]


async def test_get_me_a_wrong_token_and_every_way_to_pass_parameters(api: FakeBotApi) -> None:
    me = await call(api, "getMe")
    assert me["ok"] and me["result"]["is_bot"] and me["result"]["id"] == 123456
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{api.url}/bot1:wrong/getMe") as response:
            assert response.status == 401
            assert (await response.json())["ok"] is False
        api.push_message(USER, "lewat GET")
        async with http.get(f"{api.url}/bot{api.token}/getUpdates", params={"offset": "0", "limit": "1"}) as response:
            [update] = (await response.json())["result"]
            assert update["message"]["text"] == "lewat GET"
        async with http.post(f"{api.url}/bot{api.token}/getUpdates", data={"offset": str(update["update_id"] + 1)}):
            pass
    assert api.calls_to("getUpdates")[-1].params == {"offset": update["update_id"] + 1}  # form fields decoded
    assert api.calls_to("getUpdates")[0].params == {"offset": 0, "limit": 1}


async def test_long_poll_waits_for_the_timeout_when_nothing_comes(api: FakeBotApi) -> None:
    started = time.monotonic()
    answer = await call(api, "getUpdates", timeout=1)
    assert answer == {"ok": True, "result": []}
    assert 0.9 <= time.monotonic() - started < 3


async def test_long_poll_answers_as_soon_as_an_update_arrives(api: FakeBotApi) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(call(api, "getUpdates", timeout=10))
    await asyncio.sleep(0.2)
    assert not poll.done()
    api.push_message(USER, "halo")
    answer = await asyncio.wait_for(poll, 3)
    assert time.monotonic() - started < 3
    assert [u["message"]["text"] for u in answer["result"]] == ["halo"]


async def test_updates_stay_until_an_offset_confirms_them(api: FakeBotApi) -> None:
    for text in ("satu", "dua", "tiga"):
        api.push_message(USER, text)
    first = (await call(api, "getUpdates", limit=2))["result"]
    assert [u["message"]["text"] for u in first] == ["satu", "dua"]
    again = (await call(api, "getUpdates"))["result"]
    assert [u["message"]["text"] for u in again] == ["satu", "dua", "tiga"]  # not confirmed yet
    ids = [u["update_id"] for u in again]
    assert ids == sorted(ids) and len(set(ids)) == 3
    rest = (await call(api, "getUpdates", offset=ids[1] + 1))["result"]
    assert [u["message"]["text"] for u in rest] == ["tiga"]
    assert (await call(api, "getUpdates", offset=ids[2] + 1, timeout=0))["result"] == []
    assert (await call(api, "getUpdates", offset=0))["result"] == []  # confirmed updates never come back


async def test_a_second_poller_terminates_the_first(api: FakeBotApi) -> None:
    first = asyncio.create_task(call(api, "getUpdates", timeout=5))
    await asyncio.sleep(0.1)
    second = asyncio.create_task(call(api, "getUpdates", timeout=5))
    await asyncio.sleep(0.1)
    api.push_message(USER, "x")
    assert (await asyncio.wait_for(first, 3))["error_code"] == 409
    assert (await asyncio.wait_for(second, 3))["ok"]


async def test_aiogram_requests_are_recorded_and_answered_like_telegram(api: FakeBotApi, bot: Bot) -> None:
    api.push_message(USER, "/start")  # the chat exists once the user wrote; its message id is 1
    keyboard = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Ya", callback_data="abcd|h|y")]])
    sent = await bot.send_message(USER, "<b>Halo</b> &amp; selamat 😀", reply_markup=keyboard)
    assert sent.message_id == 2 and sent.text == "Halo & selamat 😀"
    assert sent.entities is not None and (sent.entities[0].type, sent.entities[0].length) == ("bold", 4)
    [recorded] = api.calls_to("sendMessage", USER)
    assert recorded.params["chat_id"] == USER and recorded.params["parse_mode"] == "HTML"
    assert recorded.params["reply_markup"] == {"inline_keyboard": [[{"text": "Ya", "callback_data": "abcd|h|y"}]]}
    assert api.sent(USER) == ["<b>Halo</b> &amp; selamat 😀"]
    assert api.button(USER, "Ya") == (2, "abcd|h|y")

    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(USER, "<b>unclosed")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(999, "nobody")
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        long = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="x" * 65)]])
        await bot.send_message(USER, "too long", reply_markup=long)

    edited = await bot.edit_message_reply_markup(chat_id=USER, message_id=2, reply_markup=None)
    assert not isinstance(edited, bool) and edited.reply_markup is None
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(chat_id=USER, message_id=2, reply_markup=None)
    assert api.message(USER, 2).reply_markup is None

    assert await bot.send_chat_action(USER, "typing")
    assert await bot.set_my_commands([BotCommand(command="start", description="Mulai")], language_code="en")
    assert api.commands["default", "en"] == [{"command": "start", "description": "Mulai"}]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad-Name", description="x")])
    unknown = await call(api, "sendDice", chat_id=USER)
    assert unknown == {"ok": True, "result": True}
    assert [c.method for c in api.calls][-2:] == ["setMyCommands", "sendDice"]
    assert api.calls_to("sendDice")[0].params == {"chat_id": USER}


async def test_a_callback_query_is_answered_once(api: FakeBotApi, bot: Bot) -> None:
    api.push_message(USER, "hi")
    keyboard = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Go", callback_data="go")]])
    await bot.send_message(USER, "pick", reply_markup=keyboard)
    query_id = api.press(USER, "Go")
    pressed = api.updates[-1]["callback_query"]
    assert pressed["data"] == "go" and pressed["message"]["reply_markup"] == keyboard.model_dump(exclude_none=True)
    assert await bot.answer_callback_query(query_id, text="ok")
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query_id)
    answered = api.answered(query_id)
    assert answered is not None and answered.params["text"] == "ok"


async def test_injected_errors_come_for_the_given_number_of_calls(api: FakeBotApi, bot: Bot) -> None:
    api.push_message(USER, "hi")
    api.fail_next("sendMessage", too_many_requests(3), times=2)
    api.fail_next("sendMessage", blocked_by_user(), chat_id=USER)
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter) as retry:
            await bot.send_message(USER, "a")
        assert retry.value.retry_after == 3
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(USER, "b")
    assert (await bot.send_message(USER, "c")).text == "c"
    assert [c.error.error_code if c.error else 200 for c in api.calls_to("sendMessage")] == [429, 429, 403, 200]
    assert api.sent(USER) == ["c"]


async def test_everything_the_server_emits_parses_with_python_telegram_bot(api: FakeBotApi, bot: Bot) -> None:
    api.push_message(USER, "/start")
    api.push_message(USER, "sertifikat saya belum muncul <b> & 😀")
    api.push_contact(USER, "6281200000004", USER)
    api.push_contact(USER, "+6281200000016", None)  # a contact card of someone without Telegram
    api.push_photo(USER, caption="ini buktinya")
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Ulasan", url="https://prakerja.go.id")],
                         [InlineKeyboardButton(text="Sudah", callback_data="abcd|t|next")]]
    )  # fmt: skip
    message = await bot.send_message(
        USER, 'Buka <a href="https://prakerja.go.id">dashboard</a>, <code>SERT/1</code>', reply_markup=keyboard
    )
    await bot.edit_message_text("<i>diganti</i>", chat_id=USER, message_id=message.message_id)
    api.push_callback(USER, "abcd|t|next", message.message_id)
    api.push_callback(USER, "forged", message.message_id)
    api.push_callback(USER, "abcd|t|next", message.message_id, inaccessible=True)

    assert len(api.updates) == 8
    check_with_ptb(api)
    command = ptb_update(api.updates[0]).message
    assert command.text == "/start" and command.entities[0].type == "bot_command"
    contact = ptb_update(api.updates[2]).message.contact
    assert (contact.phone_number, contact.user_id) == ("6281200000004", USER)
    assert ptb_update(api.updates[3]).message.contact.user_id is None
    photo = ptb_update(api.updates[4]).message
    assert photo.photo[-1].width == 1280 and photo.caption == "ini buktinya"
    query = ptb_update(api.updates[5]).callback_query
    assert query.data == "abcd|t|next" and query.from_user.id == USER
    assert query.message.message_id == message.message_id and query.message.text == "diganti"
    old = ptb_update(api.updates[7]).callback_query.message
    assert old.is_accessible is False and old.message_id == message.message_id

    assert len(api.returned) == 2
    sent = ptb_message(api.returned[0])
    assert sent.text == "Buka dashboard, SERT/1" and sent.from_user.is_bot
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("text_link", 5, 9), ("code", 16, 6)]
    assert sent.entities[0].url == "https://prakerja.go.id"
    assert sent.reply_markup.inline_keyboard[1][0].callback_data == "abcd|t|next"
    edited = ptb_message(api.returned[1])
    assert edited.text == "diganti" and edited.edit_date is not None


GROUP = -100_123
AGENT, MEMBER = 5_550_101, 5_550_102


async def test_a_forum_group_topics_copies_and_members(api: FakeBotApi, bot: Bot) -> None:
    api.add_forum_group(GROUP, members={AGENT: "administrator", MEMBER: "member"})
    api.push_message(USER, "halo")
    api.push_album(USER, 2, caption="bukti")
    api.push_document(USER, "ktp.pdf")
    api.push_voice(USER)
    [text, first, second, document, voice] = [u["message"]["message_id"] for u in api.updates]

    api.fail_next("createForumTopic", too_many_requests(1))
    with pytest.raises(TelegramRetryAfter):
        await bot.create_forum_topic(GROUP, "Peserta · 1")
    topic = await bot.create_forum_topic(GROUP, "Peserta · 1")
    assert api.topics(GROUP) == {topic.message_thread_id: "Peserta · 1"}
    with pytest.raises(TelegramBadRequest, match="not a forum"):
        await bot.create_forum_topic(USER, "x")

    thread = topic.message_thread_id
    card = await bot.send_message(GROUP, "<b>Kasus</b>", message_thread_id=thread)
    assert card.is_topic_message and card.message_thread_id == thread and card.chat.is_forum
    copied = await bot.copy_messages(GROUP, USER, [first, second, document, voice], message_thread_id=thread)
    assert len(copied) == 4
    album = [api.message(GROUP, c.message_id) for c in copied[:2]]
    assert album[0].media_group_id is not None and album[0].media_group_id == album[1].media_group_id
    assert album[0].photo is not None and album[0].caption == "bukti"
    assert album[0].media_group_id != api.updates[1]["message"]["media_group_id"]
    assert api.message(GROUP, copied[2].message_id).document is not None
    assert api.message(GROUP, copied[3].message_id).voice is not None
    with pytest.raises(TelegramBadRequest, match="strictly increasing"):
        await bot.copy_messages(GROUP, USER, [second, first])
    in_topic = [m.message_id for m in api.topic_messages(GROUP, thread)]
    assert in_topic == [card.message_id] + [c.message_id for c in copied]

    api.push_group_message(GROUP, AGENT, "Halo Kak", thread)
    reply = api.updates[-1]["message"]
    assert reply["is_topic_message"] and reply["message_thread_id"] == thread
    assert reply["reply_to_message"]["forum_topic_created"]["name"] == "Peserta · 1"
    to_user = await bot.copy_message(USER, GROUP, reply["message_id"])
    assert api.message(USER, to_user.message_id).text == "Halo Kak"
    api.push_edited(GROUP, reply["message_id"], "Halo Kakak")
    assert api.updates[-1]["edited_message"]["text"] == "Halo Kakak"
    assert api.updates[-1]["edited_message"]["edit_date"] > 0
    edited = await bot.edit_message_text("Halo Kakak", chat_id=USER, message_id=to_user.message_id)
    assert not isinstance(edited, bool) and edited.text == "Halo Kakak"
    api.push_group_photo(GROUP, AGENT, thread, caption="contoh")
    photo = await bot.copy_message(USER, GROUP, api.updates[-1]["message"]["message_id"])
    assert api.message(USER, photo.message_id).caption == "contoh"
    with pytest.raises(TelegramBadRequest, match="message to copy not found"):
        await bot.copy_message(USER, GROUP, 9_999)
    with pytest.raises(TelegramBadRequest, match="can't be copied"):
        await bot.copy_message(USER, GROUP, thread)  # the topic's creation message
    with pytest.raises(TelegramForbiddenError, match="initiate conversation"):
        await bot.send_message(MEMBER, "x")  # a member who never wrote to the bot

    statuses = {u: (await bot.get_chat_member(GROUP, u)).status for u in (AGENT, MEMBER, USER, 123456)}
    assert statuses == {AGENT: "administrator", MEMBER: "member", USER: "left", 123456: "administrator"}
    api.set_member(GROUP, MEMBER, "kicked")
    assert (await bot.get_chat_member(GROUP, MEMBER)).status == "kicked"

    sent_photo = await bot.send_photo(USER, "AgAD-some-file", caption="<i>grafik</i>")
    assert sent_photo.photo is not None and sent_photo.photo[-1].file_id == "AgAD-some-file"
    assert sent_photo.caption == "grafik"
    upload = await bot.send_document(USER, BufferedInputFile(b"a,b\n1,2\n", filename="stats.csv"), caption="csv")
    assert upload.document is not None and upload.document.file_name == "stats.csv" and upload.caption == "csv"
    document_message = await bot.send_document(GROUP, "BQAD-file", message_thread_id=thread)
    assert document_message.document is not None and document_message.message_thread_id == thread

    api.delete_topic(GROUP, thread)
    assert api.topics(GROUP) == {}
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(GROUP, "masih ada?", message_thread_id=thread)
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.copy_message(GROUP, USER, text, message_thread_id=thread)
    with pytest.raises(AssertionError, match="message thread not found"):
        api.push_group_message(GROUP, AGENT, "x", thread)
    with pytest.raises(AssertionError, match="cannot post"):
        api.push_group_message(GROUP, MEMBER, "x")  # kicked
    again = await bot.create_forum_topic(GROUP, "Peserta · 1")
    assert again.message_thread_id > thread
    check_with_ptb(api)
    assert {kind for kind, _ in api.results} >= {"ForumTopic", "MessageId", "ChatMemberAdministrator", "ChatMemberLeft"}


async def test_files_caption_edits_and_member_changes(api: FakeBotApi, bot: Bot) -> None:
    """A document's content comes back through getFile and the file URL; a caption edit and a member leaving are
    updates as Telegram sends them (python-telegram-bot parses them)."""
    update = api.push_document(USER, "entri.yaml", caption="/faq_set x", content=b"title: {id: x}\n")
    document = update["message"]["document"]
    assert document["file_size"] == 15
    downloaded = await bot.download(document["file_id"])
    assert downloaded is not None and downloaded.read() == b"title: {id: x}\n"
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("no-such-file")

    group = -100_555_001
    api.add_forum_group(group, members={USER: "administrator"})
    photo = api.push_group_photo(group, USER, caption="lama")["message"]["message_id"]
    edited = api.push_edited(group, photo, "baru")["edited_message"]
    assert edited["caption"] == "baru" and "text" not in edited and edited["photo"]
    left = api.push_chat_member(group, USER, "left")["chat_member"]
    assert (left["old_chat_member"]["status"], left["new_chat_member"]["status"]) == ("administrator", "left")
    assert (await bot.get_chat_member(group, USER)).status == "left"
    check_with_ptb(api)
