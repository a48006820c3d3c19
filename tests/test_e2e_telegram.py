"""End to end: the installed `prakerja-bot run` (real aiogram, real polling) against the local fake Bot API server.

One bot process serves the module; every test talks as its own Telegram user, so the tests stay independent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.fake_bot_api import ApiCall, FakeBotApi, check_with_ptb
from tests.harness import (
    SCRIPT,
    TOKEN,
    RunningBot,
    environment,
    keyboard_of,
    start_bot,
    stop,
    text,
    wait_until_polling,
)
from tests.html_check import html_problems

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEDI_PHONE, DEDI_BORN = "+6281200000004", "17/08/1995"
RUDI_PHONE, RUDI_BORN = "+6281200000016", "09-09-1989"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def running(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningBot]:
    tmp = tmp_path_factory.mktemp("e2e")
    database = tmp / "e2e.db"
    database_url = f"sqlite+aiosqlite:///{database}"
    demo = await asyncio.to_thread(
        subprocess.run,
        [str(SCRIPT), "demo"],
        env=environment(database_url),
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert demo.returncode == 0, demo.stderr
    async with FakeBotApi(TOKEN) as api:
        log = tmp / "bot.log"
        process = await asyncio.to_thread(start_bot, tmp, environment(database_url, BOT_API_URL=api.url), log)
        running = RunningBot(api, process, log, database)
        try:
            await wait_until_polling(api, process, log)
            running.assert_healthy()
            yield running
        finally:
            await stop(process)


@dataclass
class Conversation:
    """One Telegram user's chat with the bot; `seen` counts the bot's messages already read."""

    running: RunningBot
    user: int
    seen: int = 0
    log_start: int = 0  # the bot's log before this conversation: its errors are this test's

    @property
    def api(self) -> FakeBotApi:
        return self.running.api

    async def replies(self, n: int) -> list[str]:
        texts = await self.api.wait_for_messages(self.user, self.seen + n, within=10)
        new = texts[self.seen :]
        self.seen = len(texts)
        return new

    async def send(self, message: str, replies: int) -> list[str]:
        self.api.push_message(self.user, message)
        return await self.replies(replies)

    async def share_contact(self, phone: str, contact_user_id: int | None, replies: int = 1) -> list[str]:
        self.api.push_contact(self.user, phone, contact_user_id)
        return await self.replies(replies)

    async def press(self, label: str, replies: int) -> tuple[ApiCall, list[str]]:
        message_id, data = self.api.button(self.user, label)
        return await self.press_data(data, message_id, replies)

    async def press_data(self, data: str, message_id: int, replies: int) -> tuple[ApiCall, list[str]]:
        query_id = self.api.push_callback(self.user, data, message_id)
        await self.api.wait_for(lambda: self.api.answered(query_id) is not None, 10, f"answer to {data!r}")
        new = await self.replies(replies)
        answered = self.api.answered(query_id)
        assert answered is not None
        return answered, new

    async def settled(self) -> None:
        """Nothing more arrives than what the test read; Telegram took every message, in HTML parse mode."""
        await asyncio.sleep(0.3)
        assert self.api.sent(self.user)[self.seen :] == []
        refused = [(c.method, c.error) for c in self.api.calls if c.chat_id == self.user and not c.ok]
        assert refused == []
        assert {c.params.get("parse_mode") for c in self.api.sent_calls(self.user)} == {"HTML"}
        self.running.assert_healthy(self.log_start)
        check_with_ptb(self.api)


_users = itertools.count(7_000_001)


@pytest.fixture
def chat(running: RunningBot) -> Conversation:
    return Conversation(running, next(_users), log_start=running.log_size())  # a Telegram user of this test's own


async def test_a_whole_certificate_conversation(chat: Conversation) -> None:
    api, user = chat.api, chat.user
    welcome, menu = await chat.send("/start", 2)
    assert "Prakerja Helpdesk" in welcome and menu == text("menu")
    sent = api.sent_calls(user)
    assert sent[0].params["reply_markup"] == {"remove_keyboard": True}
    labels = [b["text"] for row in keyboard_of(sent[1]) for b in row]
    assert labels == [text(k) for k in ("btn_menu_certificate", "btn_menu_incentive", "btn_menu_status", "btn_agent")]

    needed, ask = await chat.send("sertifikat saya belum muncul", 2)
    assert (needed, ask) == (text("identify_needed"), text("identify_ask_contact"))
    contact_keyboard = api.sent_calls(user)[-1].params["reply_markup"]
    assert contact_keyboard["keyboard"] == [[{"text": text("btn_share_contact"), "request_contact": True}]]
    assert contact_keyboard["one_time_keyboard"] is True

    # Telegram clients share the number without "+"; the contact is the sender's own.
    [second_factor] = await chat.share_contact(DEDI_PHONE.lstrip("+"), user)
    assert second_factor == text("identify_ask_second_factor")
    assert api.sent_calls(user)[-1].params["reply_markup"] == {"remove_keyboard": True}

    linked, summary, first_step = await chat.send(DEDI_BORN, 3)
    assert linked == text("identify_linked")
    assert "Dedi Kurniawan" in summary
    for fact in ("Digital Marketing untuk UMKM", "Pintaria", "Skill Academy", "menunggu laporan Pintar"):
        assert fact in summary
    assert "Langkah 1/" in first_step and "tunggu sampai" in first_step
    step_call = api.sent_calls(user)[-1]
    assert [b["text"] for b in keyboard_of(step_call)[0]] == [text("btn_step_next"), text("btn_step_solved")]

    pressed_id = step_call.result["message_id"]
    answer, [second_step] = await chat.press(text("btn_step_next"), 1)
    assert "text" not in answer.params and answer.params.get("show_alert") in (None, False)
    assert "Masih dalam batas waktu" in second_step  # before the promised date: no next step yet
    edits = api.calls_to("editMessageReplyMarkup", user)
    assert [(e.params["message_id"], e.params.get("reply_markup"), e.ok) for e in edits] == [(pressed_id, None, True)]
    assert api.message(user, pressed_id).reply_markup is None

    _, [thanks] = await chat.press(text("btn_step_solved"), 1)
    assert thanks == text("troubleshoot_solved")
    assert len(api.calls_to("editMessageReplyMarkup", user)) == 2

    # The command menu exists in both languages. ("typing…": test_typing_shows_only_while_a_look_up_is_slow.)
    for language, locale in (("", "id"), ("en", "en")):
        commands = api.commands["all_private_chats", language]
        assert [c["command"] for c in commands] == ["start", "status", "help", "lang", "cancel", "logout"]
        assert commands[0]["description"] == text("cmd_start", locale)
    assert api.calls_to("deleteWebhook")
    await chat.settled()
    check_with_ptb(api)


async def test_someone_elses_contact_and_a_typed_number_are_refused(chat: Conversation) -> None:
    await chat.send("/status", 2)
    [refused] = await chat.share_contact(DEDI_PHONE, contact_user_id=chat.user + 1)
    assert refused == text("identify_contact_not_yours")
    await chat.send("/status", 2)
    [refused_typed, ask_again] = await chat.send(DEDI_PHONE, 2)
    assert (refused_typed, ask_again) == (text("identify_typed_number"), text("identify_ask_contact"))
    [not_a_user] = await chat.share_contact(DEDI_PHONE, contact_user_id=None)  # a contact card, not a Telegram user
    assert not_a_user == text("identify_contact_not_yours")
    assert not any("Dedi" in t or "Digital Marketing" in t for t in chat.api.sent(chat.user))
    await chat.settled()


async def test_forged_and_stale_buttons_expire_without_a_crash(chat: Conversation) -> None:
    api, user = chat.api, chat.user
    await chat.send("/start", 2)
    old_menu = api.last_keyboard(user)
    _, old_data = api.button(user, text("btn_menu_certificate"))
    nonce = old_data.split("|")[0]
    forged = (
        "zzzz|s|certificate",  # a nonce the bot never issued
        f"{nonce}|x|certificate",  # an unknown action
        f"{nonce}|e|1",  # someone else's enrollment while not identified
        "'; DROP TABLE participants; --",
        "💥" * 16,
    )
    for data in forged:
        answer, none = await chat.press_data(data, old_menu.message_id, 0)
        assert none == []
        assert (answer.params["text"], answer.params["show_alert"]) == (text("button_expired"), True)
    await chat.send("/start", 2)  # a new menu: the old one's buttons are stale now
    answer, _ = await chat.press_data(old_data, old_menu.message_id, 0)
    assert answer.params["text"] == text("button_expired")
    assert api.message(user, old_menu.message_id).reply_markup is not None  # an expired press edits nothing
    assert api.calls_to("editMessageReplyMarkup", user) == []
    answer, [needed, _] = await chat.press(text("btn_menu_certificate"), 2)  # the current menu still works
    assert "text" not in answer.params and needed == text("identify_needed")
    await chat.settled()


async def test_a_button_on_a_message_telegram_no_longer_sends(chat: Conversation) -> None:
    await chat.send("/start", 2)
    message_id, data = chat.api.button(chat.user, text("btn_menu_certificate"))
    query_id = chat.api.push_callback(chat.user, data, message_id, inaccessible=True)
    assert chat.api.updates[-1]["callback_query"]["message"] == {
        "chat": chat.api.updates[-1]["callback_query"]["message"]["chat"],
        "message_id": message_id,
        "date": 0,
    }
    assert await chat.replies(2) == [text("identify_needed"), text("identify_ask_contact")]
    answered = chat.api.answered(query_id)
    assert answered is not None and "text" not in answered.params
    assert chat.api.calls_to("editMessageReplyMarkup", chat.user) == []  # nothing to edit without the message
    await chat.settled()


async def test_several_trainings_offer_a_choice(chat: Conversation) -> None:
    await chat.send("/status", 2)
    await chat.share_contact(RUDI_PHONE, chat.user)
    linked, summary, choose = await chat.send(RUDI_BORN, 3)
    assert linked == text("identify_linked")
    assert "Rudi Hartono" in summary and "Dasar Akuntansi dan Pembukuan" in summary and "Tata Rias Pengantin" in summary
    assert choose == text("certificate_choose")
    rows = keyboard_of(chat.api.sent_calls(chat.user)[-1])
    labels = [row[0]["text"] for row in rows]
    assert len(labels) == 2
    assert "Dasar Akuntansi" in labels[0] and "Tokopedia" in labels[0]
    assert "Tata Rias Pengantin" in labels[1] and "Kemnaker" in labels[1]
    _, [step] = await chat.press("Tata Rias Pengantin", 1)
    assert "Langkah 1/" in step and "tunggu sampai" in step  # since 2021 the report does not wait for the rating
    await chat.settled()


async def test_five_wrong_answers_lock_verification(chat: Conversation, running: RunningBot) -> None:
    try:
        await five_wrong_answers(chat)
    finally:
        # The lock holds for the participant, whichever account: lift it as an operator would, for the other tests.
        assert running.database is not None
        with contextlib.closing(sqlite3.connect(running.database)) as conn, conn:
            conn.execute("DELETE FROM identity_lockouts")


async def five_wrong_answers(chat: Conversation) -> None:
    await chat.send("/status", 2)
    await chat.share_contact(DEDI_PHONE, chat.user)
    for tries_left in (4, 3, 2, 1):
        [wrong] = await chat.send("01/01/1990", 1)
        assert wrong == text("identify_wrong", tries_left=tries_left)
    [locked] = await chat.send("02/02/1991", 1)
    assert locked.startswith(text("identify_locked", until=None).split(".")[0])
    assert "WIB" in locked
    # The sixth try, even with the right birth date, gets nowhere while the lock holds.
    [still_locked] = await chat.share_contact(DEDI_PHONE, chat.user)
    assert "WIB" in still_locked and still_locked.split("<b>")[0] == locked.split("<b>")[0]
    [reminder] = await chat.send(DEDI_BORN, 1)  # outside verification, a typed date gets the lock reminder
    assert reminder.split("<b>")[0] == locked.split("<b>")[0]
    needed, locked_again = await chat.send("/status", 2)
    assert needed == text("identify_needed") and "WIB" in locked_again
    assert not any("Dedi" in t or "tersambung" in t for t in chat.api.sent(chat.user))
    await chat.settled()


async def test_a_photo_gets_a_polite_reply(chat: Conversation) -> None:
    chat.api.push_photo(chat.user, caption="sertifikat saya")
    [reply] = await chat.replies(1)
    assert reply == text("not_understood_media")
    await chat.settled()


async def test_every_reply_keeps_telegram_html_rules(chat: Conversation) -> None:
    await chat.send("/start", 2)
    await chat.send("/status", 2)
    await chat.share_contact(DEDI_PHONE, chat.user)
    await chat.send(DEDI_BORN, 3)  # the summary and the rating step
    await chat.press(text("btn_step_next"), 1)
    texts = [str(c.params["text"]) for c in chat.api.calls_to("sendMessage") if c.ok]  # this test's and all before
    problems = {t[:50]: html_problems(t) for t in texts if html_problems(t)}
    assert problems == {}


async def test_a_double_tap_advances_one_step(chat: Conversation) -> None:
    await chat.send("/status", 2)
    await chat.share_contact(DEDI_PHONE, chat.user)
    await chat.send(DEDI_BORN, 3)
    message_id, data = chat.api.button(chat.user, text("btn_step_next"))
    first = chat.api.push_callback(chat.user, data, message_id)
    second = chat.api.push_callback(chat.user, data, message_id)  # both arrive in one getUpdates batch
    await chat.api.wait_for(lambda: None not in (chat.api.answered(first), chat.api.answered(second)), 10)
    [step] = await chat.replies(1)
    assert "Masih dalam batas waktu" in step  # Dedi's wait step: one answer, not two
    answers = [chat.api.answered(first), chat.api.answered(second)]
    assert [a.params.get("text") for a in answers if a is not None].count(text("button_expired")) == 1
    await chat.settled()


@contextlib.contextmanager
def write_lock(database: Path) -> Iterator[None]:
    """Hold the SQLite file's write lock, as a long import does: every turn that writes waits for it."""
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def test_typing_shows_only_while_a_look_up_is_slow(chat: Conversation) -> None:
    """Slow turns (the database busy with a writer for a second): "typing…" for a linked participant's question,
    which may read their records, and none for a stranger's; quick turns show none (tests/test_delivery.py)."""
    api, user, database = chat.api, chat.user, chat.running.database
    assert database is not None
    await chat.send("/status", 2)
    await chat.share_contact(DEDI_PHONE, user)
    await chat.send(DEDI_BORN, 3)
    stranger = Conversation(chat.running, next(_users), log_start=chat.log_start)
    typed_before = len(api.calls_to("sendChatAction", user))  # identifying may be slow too on a loaded machine
    question = "kapan insentif prakerja dicairkan"
    with write_lock(database):
        started = time.monotonic()
        api.push_message(user, question)
        api.push_message(stranger.user, question)
        await asyncio.sleep(1.0)
        assert api.sent(user)[chat.seen :] == [] and api.sent(stranger.user) == []  # both wait for the lock
    [answer] = await chat.replies(1)
    [other] = await stranger.replies(1)
    assert "Insentif Kak Dedi Kurniawan" in answer and "Dedi" not in other  # their records, not a generic text
    typing = api.calls_to("sendChatAction", user)[typed_before:]
    assert [c.params["action"] for c in typing] == ["typing"]
    assert started + 0.3 <= typing[0].at < api.sent_calls(user)[-1].at  # after 0.3 s, before the answer
    assert api.calls_to("sendChatAction", stranger.user) == []  # a stranger's question reads no records
    await chat.settled()
    await stranger.settled()
