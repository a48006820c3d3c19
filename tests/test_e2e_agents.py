"""End to end with human agents: the installed `prakerja-bot run` against the fake Bot API server, with a staff forum
supergroup (STAFF_CHAT_ID) where each participant's case gets a topic with a case card, and messages are relayed both
ways.

One bot process serves the module (one test kills and restarts it on the same database); every test is its own
participant. A second bot, with two staff groups and its own fake Telegram and database, starts alongside it for the
test that spreads cases over both groups. Business hours follow the wall clock: the tests accept either "an agent
will reply" or "an agent will reply from …".
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from aiogram.types import Message

from core.identity import mask_phone
from tests.fake_bot_api import ApiCall, FakeBotApi, blocked_by_user, check_with_ptb, server_error, too_many_requests
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

STAFF = -100_123
STAFF_2 = -100_456
ELSEWHERE = -100_999  # a group the bot is in that is not a staff group
AGENT, AGENT_2 = 9_100_001, 9_100_003
MEMBER = 9_100_002  # in the staff group, not an agent
INDRA_PHONE, INDRA_NIK_LAST4 = "+6281200000008", "0008"
WAIT = 20.0  # a ceiling, not a timing: a loaded CI machine can be slow
_participants = itertools.count(9_200_001)


def setup_groups(api: FakeBotApi) -> None:
    api.user(AGENT, "Sari")
    api.user(AGENT_2, "Budi")
    api.user(MEMBER, "Tamu")
    api.add_forum_group(STAFF, "Prakerja Staff", {AGENT: "administrator", MEMBER: "member"})
    api.add_forum_group(STAFF_2, "Prakerja Staff 2", {AGENT_2: "administrator"})
    api.add_forum_group(ELSEWHERE, "Komunitas", {AGENT: "member"})


def spawn(api: FakeBotApi, tmp: Path, env: dict[str, str], name: str) -> RunningBot:
    """Start `prakerja-bot run` (it takes a few seconds to import and connect: wait with `until_polling`)."""
    log = tmp / f"{name}.log"
    return RunningBot(api, start_bot(tmp, env | {"BOT_API_URL": api.url}, log), log)


async def until_polling(running: RunningBot, polls: int = 0) -> RunningBot:
    """Wait until the bot polls (more than `polls` getUpdates calls in all): `wait_until_polling`."""
    await wait_until_polling(running.api, running.process, running.log, polls)
    running.assert_healthy()
    return running


@dataclass
class Desk:
    """The fake Telegram, the bot process serving it (replaced on a restart), and how it was started."""

    api: FakeBotApi
    tmp: Path
    env: dict[str, str]
    bot: RunningBot
    restarts: int = 0

    async def restart(self, kill: bool = True) -> None:
        """Kill the bot (no goodbye: SIGKILL) and start a new process on the same database."""
        await stop(self.bot.process, kill=kill)
        self.restarts += 1
        polls = len(self.api.calls_to("getUpdates"))
        self.bot = await until_polling(spawn(self.api, self.tmp, self.env, f"bot-{self.restarts}"), polls)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("agents-demo")
    path = tmp / "demo.db"
    demo = subprocess.run(
        [str(SCRIPT), "demo"],
        env=environment(f"sqlite+aiosqlite:///{path}"),
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert demo.returncode == 0, demo.stderr
    return path


def copy_db(demo_db: Path, tmp: Path) -> str:
    path = tmp / "bot.db"
    shutil.copy(demo_db, path)
    return f"sqlite+aiosqlite:///{path}"


@dataclass
class Desks:
    main: Desk  # STAFF_CHAT_ID=-100123
    two_groups: Desk  # STAFF_CHAT_ID=-100123,-100456, with its own fake Telegram and database


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def desks(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Desks]:
    """Both bots start at once (each takes seconds to import); the second one is awaited by its test."""
    async with FakeBotApi(TOKEN) as api, FakeBotApi(TOKEN) as api_2:
        made: list[Desk] = []
        configurations = ((api, f"{STAFF}", f"{AGENT}"), (api_2, f"{STAFF},{STAFF_2}", f"{AGENT},{AGENT_2}"))
        try:
            for fake, groups, agents in configurations:
                setup_groups(fake)
                tmp = tmp_path_factory.mktemp("agents")
                # The tests follow one another in one staff group, faster than Telegram's 20 messages a minute there;
                # the limit itself is tested on a clock the test turns (test_staff_sender.py).
                env = environment(
                    copy_db(demo_db, tmp), STAFF_CHAT_ID=groups, AGENT_IDS=agents, STAFF_MESSAGES_PER_MINUTE="600"
                )
                made.append(Desk(fake, tmp, env, spawn(fake, tmp, env, "bot")))
            await until_polling(made[0].bot)
            yield Desks(*made)
        finally:
            await asyncio.gather(*(stop(running.bot.process) for running in made))


@pytest.fixture
def desk(desks: Desks) -> Desk:
    return desks.main


@dataclass
class Participant:
    """One participant's private chat with the bot; `seen` counts the bot's sendMessage texts already read."""

    desk: Desk
    user: int
    seen: int = 0
    log_start: int = 0
    blocked: bool = False  # the test injects refusals for this chat

    @property
    def api(self) -> FakeBotApi:
        return self.desk.api

    async def replies(self, n: int) -> list[str]:
        texts = await self.api.wait_for_messages(self.user, self.seen + n, within=WAIT)
        new = texts[self.seen :]
        self.seen = len(texts)
        return new

    async def send(self, message: str, replies: int) -> list[str]:
        self.api.push_message(self.user, message)
        return await self.replies(replies)

    async def press(self, label: str, replies: int) -> tuple[ApiCall, list[str]]:
        message_id, data = self.api.button(self.user, label)
        query_id = self.api.push_callback(self.user, data, message_id)
        await self.api.wait_for(lambda: self.api.answered(query_id) is not None, WAIT, f"answer to {label!r}")
        new = await self.replies(replies)
        answered = self.api.answered(query_id)
        assert answered is not None
        return answered, new

    async def ask_for_agent(self) -> tuple[int, Message]:
        """/start → "🙋 Bicara dengan agen": the case opens; returns its topic and card, once they are in the group."""
        await self.send("/start", 2)
        _, [opened] = await self.press(text("btn_agent"), 1)
        assert_agent_opened(opened)
        return await topic_and_card(self.api, STAFF, self.user)

    def bot_messages(self) -> list[Message]:
        """What the participant sees from the bot (sent and copied), as it is now."""
        return self.api.messages(self.user)

    async def quiet(self) -> None:
        """Nothing more than what the test read arrived; every text went in HTML parse mode; the bot is healthy."""
        await asyncio.sleep(0.3)
        assert self.api.sent(self.user)[self.seen :] == []
        if not self.blocked:
            refused = [(c.method, c.error) for c in self.api.calls if c.chat_id == self.user and not c.ok]
            assert refused == []
        assert {c.params.get("parse_mode") for c in self.api.sent_calls(self.user)} <= {"HTML"}
        self.desk.bot.assert_healthy(self.log_start)


@pytest.fixture
def participant(desk: Desk) -> Participant:
    return Participant(desk, next(_participants), log_start=desk.bot.log_size())


def assert_agent_opened(reply: str, overdue: bool = False) -> None:
    """The case is open, in or outside business hours (then with the time an agent answers)."""
    opening = "melewati batas waktu" if overdue else "saya teruskan ke agen kami"
    assert opening in reply, reply
    in_hours = "Agen akan membalas di chat ini." in reply
    later = re.search(r"di luar jam layanan; agen akan membalas mulai <b>.+ pukul \d\d:\d\d WIB</b>", reply)
    assert in_hours != bool(later), reply
    assert "/cancel" in reply


def body(message: Message) -> str:
    return message.text or message.caption or ""


def topic_of(api: FakeBotApi, chat_id: int, user: int) -> int | None:
    found = [thread for thread, name in api.topics(chat_id).items() if name.endswith(f"· {user}")]
    assert len(found) <= 1, f"several topics for {user}: {api.topics(chat_id)}"
    return found[0] if found else None


async def topic_and_card(api: FakeBotApi, chat_id: int, user: int) -> tuple[int, Message]:
    await api.wait_for(lambda: topic_of(api, chat_id, user) is not None, WAIT, f"the topic of {user}")
    thread = topic_of(api, chat_id, user)
    assert thread is not None
    await api.wait_for(lambda: bool(api.topic_messages(chat_id, thread)), WAIT, "the case card")
    card = api.topic_messages(chat_id, thread)[0]
    assert body(card).startswith("🆕 Kasus baru"), body(card)
    return thread, card


async def topic_gets(
    api: FakeBotApi, chat_id: int, thread: int, check: Callable[[Message], bool], what: str
) -> Message:
    """Wait for a bot message in the topic that passes `check`."""

    def found() -> Message | None:
        return next((m for m in api.topic_messages(chat_id, thread) if check(m)), None)

    await api.wait_for(lambda: found() is not None, WAIT, what)
    message = found()
    assert message is not None
    return message


def says(fragment: str) -> Callable[[Message], bool]:
    return lambda m: fragment in body(m)


async def no_more(api: FakeBotApi, chat_id: int, thread: int, count: int, seconds: float = 1.5) -> None:
    """Within `seconds` (longer than the sender's merging window), the topic still has `count` bot messages."""
    await asyncio.sleep(seconds)
    assert [body(m) for m in api.topic_messages(chat_id, thread)][count:] == []


def group_texts(api: FakeBotApi, chat_id: int) -> list[str]:
    """Everything the bot put into the group: the texts of its calls and of the messages there now."""
    calls = [str(c.params.get("text", "")) + str(c.params.get("name", "")) for c in api.calls if c.chat_id == chat_id]
    return calls + [body(m) for m in api.history(chat_id)]


def staff_html_is_clean(api: FakeBotApi, chat_id: int) -> None:
    html = [str(c.params["text"]) for c in api.calls_to("sendMessage", chat_id) if c.params.get("parse_mode") == "HTML"]
    assert {t[:40]: html_problems(t) for t in html if html_problems(t)} == {}


# --- the tests ------------------------------------------------------------------------------------------------------
async def test_a_whole_case_from_asking_for_an_agent_to_the_satisfaction_answer(participant: Participant) -> None:
    api, user = participant.api, participant.user
    thread, card = await participant.ask_for_agent()
    assert "peserta minta bicara dengan agen" in body(card)
    assert f"Belum terverifikasi: Peserta {user} (Telegram {user})" in body(card)
    assert "/claim" in body(card) and "/close" in body(card)
    assert api.topics(STAFF)[thread] == f"Peserta {user} · {user}"

    # The participant writes three lines quickly, then a photo: one merged message, then the photo, in order.
    for line in ("halo kak", "sertifikat saya belum muncul", "sudah 2 minggu", "NIK 3273/0117/0895/0004 lhr 17-08-95"):
        api.push_message(user, line)
    api.push_photo(user, caption="ini dashboard saya")
    photo_id = api.updates[-1]["message"]["message_id"]
    shot = await topic_gets(api, STAFF, thread, lambda m: m.photo is not None, "the participant's photo")
    assert shot.caption == "ini dashboard saya"
    relayed = [body(m) for m in api.topic_messages(STAFF, thread)][1:]
    # What answers the second factor never reaches agents (issue 11): the NIK and the birth date are masked.
    assert relayed[0].startswith("halo kak\nsertifikat saya belum muncul\nsudah 2 minggu\nNIK ")
    assert "0004" not in relayed[0] and "17-08-95" not in relayed[0] and relayed[1] == "ini dashboard saya"
    [copied] = [c for c in api.calls_to("copyMessages", STAFF) if c.params["from_chat_id"] == user]
    assert (copied.params["message_ids"], copied.params["message_thread_id"]) == ([photo_id], thread)
    await participant.quiet()  # the bot did not answer those itself

    # Agents: claim, an internal note (never relayed), a reply, a photo, an edit.
    api.push_group_message(STAFF, AGENT, "/claim", thread)
    claimed = await topic_gets(api, STAFF, thread, says("✋ Kasus #"), "the claim")
    case_id = int(re.findall(r"#(\d+)", body(claimed))[0])
    assert body(claimed) == text("staff_claimed", case_id=case_id, agent="Sari", previous=None)
    api.push_group_message(STAFF, AGENT, "/note peserta sepertinya salah platform", thread)
    await topic_gets(api, STAFF, thread, says(text("staff_note_saved")), "the note saved")

    api.push_group_message(STAFF, AGENT, "Halo Kak, saya bantu cek ya 🙏", thread)
    reply_id = api.updates[-1]["message"]["message_id"]
    await api.wait_for(lambda: any(body(m).startswith("Halo Kak") for m in participant.bot_messages()), WAIT, "reply")
    copy_call = api.calls_to("copyMessage", user)[-1]
    assert (copy_call.params["from_chat_id"], copy_call.params["message_id"]) == (STAFF, reply_id)
    api.push_group_photo(STAFF, AGENT, thread, caption="Contoh halaman Pelatihan Saya")
    await api.wait_for(lambda: any(m.photo for m in participant.bot_messages()), WAIT, "the agent's photo")
    api.push_edited(STAFF, reply_id, "Halo Kak Peserta, saya bantu cek ya 🙏")
    edit = await api.wait_for_call("editMessageText", user)
    assert edit.ok and edit.params["message_id"] == copy_call.result["message_id"]
    mirrored = api.message(user, copy_call.result["message_id"])
    assert mirrored.text == "Halo Kak Peserta, saya bantu cek ya 🙏" and mirrored.from_user is not None
    assert mirrored.from_user.is_bot  # under the bot's name
    assert not any("salah platform" in body(m) for m in participant.bot_messages())

    # /status: a fresh card with the conversation so far; /canned; /queue anywhere in the group.
    api.push_group_message(STAFF, AGENT, "/status", thread)
    status = await topic_gets(api, STAFF, thread, says(f"Kasus baru #{case_id}"), "the refreshed card")
    for line in ("👤 halo kak", "🙋 Halo Kak, saya bantu", "📝 peserta sepertinya salah", "👤 [photo] ini dashboard"):
        assert line in body(status), body(status)
    api.push_group_message(STAFF, AGENT, "/canned screenshot", thread)
    [canned] = await participant.replies(1)
    assert canned.startswith("Boleh kirimkan tangkapan layar")
    await topic_gets(api, STAFF, thread, says("📤 Balasan siap pakai screenshot"), "the canned reply noted")
    api.push_group_message(STAFF, AGENT, "/canned tidakada", thread)
    await topic_gets(api, STAFF, thread, says("Balasan siap pakai yang ada: account_inactive"), "the canned list")
    api.push_group_message(STAFF, AGENT, "/queue")  # in General, outside any topic

    def queue() -> list[Message]:
        return [m for m in api.messages(STAFF) if m.message_thread_id is None and "Antrean kasus" in body(m)]

    await api.wait_for(lambda: bool(queue()), WAIT, "the queue")
    assert f"#{case_id} · " in body(queue()[-1]) and f"dipegang {AGENT}" in body(queue()[-1])
    [listed] = [c for c in api.calls_to("sendMessage", STAFF) if "Antrean kasus" in str(c.params["text"])]
    assert f'<a href="https://t.me/c/123/{thread}">#{case_id}</a> · belum terverifikasi' in str(listed.params["text"])

    # /close: the participant is asked for a score; a score is thanked.
    api.push_group_message(STAFF, AGENT, "/close", thread)
    [closed] = await participant.replies(1)
    assert closed == text("case_closed")
    scores = [b["text"] for row in keyboard_of(api.sent_calls(user)[-1]) for b in row]
    assert scores == ["1", "2", "3", "4", "5"]
    await topic_gets(api, STAFF, thread, says(f"🔒 Kasus #{case_id} ditutup oleh Sari"), "the close notice")
    scores_id, _ = api.button(user, "5")
    _, [thanks] = await participant.press("5", 1)
    assert thanks == text("satisfaction_thanks")
    # Forged answers (a score out of range, a case number past the database's integers) are expired buttons.
    forged = [api.push_callback(user, data, scores_id) for data in (f"0000|c|{case_id}_9", "0000|c|" + "9" * 23 + "_5")]
    await api.wait_for(lambda: None not in [api.answered(q) for q in forged], WAIT, "answers to forged scores")
    assert [a.params["text"] for a in map(api.answered, forged) if a] == [text("button_expired")] * 2

    # Writing again within 24 hours reopens the case in the same topic, and the agents are told so.
    shown = len(api.topic_messages(STAFF, thread))
    [reopened] = await participant.send("maaf kak, satu lagi", 1)
    assert reopened == text("case_reopened")
    await topic_gets(api, STAFF, thread, says("maaf kak, satu lagi"), "the relay after reopening")
    notice = f"🔄 Kasus #{case_id} dibuka kembali: peserta menulis lagi setelah kasus ditutup. Masih dipegang {AGENT}."
    assert [body(m) for m in api.topic_messages(STAFF, thread)[shown:]] == [notice, "maaf kak, satu lagi"]
    assert [c for c in api.calls_to("createForumTopic") if c.ok and str(user) in c.params["name"]] != []
    assert len([c for c in api.calls_to("createForumTopic") if str(user) in c.params["name"]]) == 1
    api.push_group_message(STAFF, AGENT, "Silakan Kak", thread)
    await api.wait_for(lambda: any(body(m) == "Silakan Kak" for m in participant.bot_messages()), WAIT, "relay")
    await participant.quiet()
    staff_html_is_clean(api, STAFF)
    check_with_ptb(api)


async def test_cancel_closes_the_participants_own_case_and_the_bot_answers_again(participant: Participant) -> None:
    api, user = participant.api, participant.user
    # An identified participant whose troubleshooting steps did not help: the case opens on its own; the card shows
    # who they are (masked), the steps tried, and never their answer to the second factor.
    # Citra's training is in progress: her steps hold no wait, so "done, still missing" leads on at once (Dedi's
    # first step is a wait that is still on time since the 2021 order).
    citra_phone, citra_born = "+6281200000003", "21-09-2000"
    await participant.send("/status", 2)
    api.push_contact(user, citra_phone, user)
    await participant.replies(1)
    await participant.send(citra_born, 3)
    await participant.press(text("btn_step_next"), 1)
    _, [last_step, opened] = await participant.press(text("btn_step_next"), 2)
    assert "Langkah terakhir" in last_step
    assert_agent_opened(opened)
    thread, card = await topic_and_card(api, STAFF, user)
    assert "langkah mandiri tidak menyelesaikan" in body(card) and "🧭 Sudah dicoba: " in body(card)
    assert "Citra Dewi · HP" in body(card) and mask_phone(citra_phone) in body(card)
    assert "· NIK" not in body(card) and "*" * 12 not in body(card)  # its last 4 digits answer the second factor
    assert citra_born not in body(card) and "👤 [verifikasi]" in body(card)

    [in_progress] = await participant.send("/start", 1)  # while a case is open the bot stays out of the way
    assert in_progress == text("case_in_progress")
    [closed] = await participant.send("/cancel", 1)
    assert closed == text("case_closed_by_participant")
    await topic_gets(api, STAFF, thread, says(text("case_closed_by_participant_staff")), "the cancel notice")
    shown = len(api.topic_messages(STAFF, thread))
    # The participant asked for the bot back: their next question is the bot's, not reopened for the agents.
    api.push_message(user, "kapan insentif cair?")
    await api.wait_for(lambda: len(api.sent(user)) > participant.seen, WAIT, "the bot's own answer")
    await no_more(api, STAFF, thread, shown)
    answers = api.sent(user)[participant.seen :]
    participant.seen = len(api.sent(user))
    assert text("case_reopened") not in answers
    api.push_group_message(STAFF, AGENT, "/claim", thread)
    await topic_gets(api, STAFF, thread, says(text("staff_no_case")), "no case to claim")
    await participant.quiet()


async def test_an_overdue_diagnosis_opens_a_case_at_once_with_a_masked_card(participant: Participant) -> None:
    api, user = participant.api, participant.user
    await participant.send("/status", 2)
    api.push_contact(user, INDRA_PHONE.lstrip("+"), user)
    await participant.replies(1)
    linked, summary, _, opened = await participant.send(INDRA_NIK_LAST4, 4)
    assert linked == text("identify_linked") and "Indra Gunawan" in summary
    assert_agent_opened(opened, overdue=True)
    assert "belum terverifikasi" not in opened
    thread, card = await topic_and_card(api, STAFF, user)
    assert api.topics(STAFF)[thread] == f"Indra Gunawan · {user}"
    content = body(card)
    assert "⏰ melewati batas waktu" in content and "TERLAMBAT" in content and "awaiting_pmo" in content
    assert INDRA_NIK_LAST4 not in content  # the second factor he just typed is never shown to agents
    assert f"HP {mask_phone(INDRA_PHONE)}" in content
    everything = "\n".join(group_texts(api, STAFF))
    assert "81200000008" not in everything  # the phone number in no form (+62…, 62…, 0…)
    assert re.search(r"\d{10,}", everything) is None  # nor the NIK or any other long number
    # Closed before anyone claimed it: the closing message must not claim (reopen) it, the score is taken.
    api.push_group_message(STAFF, AGENT, "/close", thread)
    [closed] = await participant.replies(1)
    assert closed == text("case_closed")
    _, [thanks] = await participant.press("4", 1)
    assert thanks == text("satisfaction_thanks")
    await participant.quiet()


async def test_albums_documents_voice_and_edits_reach_the_topic(participant: Participant) -> None:
    api, user = participant.api, participant.user
    thread, _ = await participant.ask_for_agent()
    album = [u["message"]["message_id"] for u in api.push_album(user, 3, caption="tiga tangkapan layar")]
    await api.wait_for(lambda: len(api.topic_messages(STAFF, thread)) >= 4, WAIT, "the album")
    [call] = [c for c in api.calls_to("copyMessages", STAFF) if c.params["from_chat_id"] == user]
    assert call.params["message_ids"] == album and call.params["message_thread_id"] == thread
    copies = api.topic_messages(STAFF, thread)[1:]
    assert len({m.media_group_id for m in copies}) == 1 and copies[0].media_group_id is not None
    assert copies[0].caption == "tiga tangkapan layar"

    api.push_document(user, "bukti-rating.pdf", caption="bukti")
    await topic_gets(api, STAFF, thread, lambda m: m.document is not None, "the document")
    api.push_voice(user)
    await topic_gets(api, STAFF, thread, lambda m: m.voice is not None, "the voice message")
    api.push_message(user, "sertifikatnya atas nama Budi")
    typo = api.updates[-1]["message"]["message_id"]
    await topic_gets(api, STAFF, thread, says("sertifikatnya atas nama Budi"), "the text")
    api.push_edited(user, typo, "sertifikatnya atas nama Budiman")
    edited = await topic_gets(api, STAFF, thread, says("sertifikatnya atas nama Budiman"), "the edit")
    assert body(edited).startswith(text("staff_edited"))

    # An agent's album reaches the participant as one album too, although its parts come as separate updates.
    parts = [
        api.push_group_photo(STAFF, AGENT, thread, caption="contoh" if n == 0 else None, media_group_id="agent-album")
        for n in range(2)
    ]
    await api.wait_for(lambda: bool(api.calls_to("copyMessages", user)), WAIT, "the agent's album")
    [to_participant] = api.calls_to("copyMessages", user)
    assert to_participant.params["message_ids"] == [p["message"]["message_id"] for p in parts]
    assert to_participant.params["from_chat_id"] == STAFF
    assert not [c for c in api.calls_to("copyMessage", user)]  # no part went on its own
    # The agent corrects the album's caption: the participant's copy is corrected too.
    await asyncio.sleep(0.3)  # the copies' ids are written down
    api.push_edited(STAFF, parts[0]["message"]["message_id"], "contoh yang benar")
    edit = await api.wait_for_call("editMessageCaption", user)
    assert edit.ok and edit.params["message_id"] == to_participant.result[0]["message_id"]
    assert api.message(user, edit.params["message_id"]).caption == "contoh yang benar"
    await participant.quiet()


async def test_a_caption_with_a_nik_or_phone_reaches_agents_masked(participant: Participant) -> None:
    """A screenshot captioned with the NIK is copied with a masked caption; an album keeps its parts together and its
    masked caption follows it (a plain copy would carry the raw caption into the staff group)."""
    api, user = participant.api, participant.user
    thread, _ = await participant.ask_for_agent()
    api.push_photo(user, caption="ini NIK saya 3273 0117 0895 0004")
    shot = await topic_gets(api, STAFF, thread, lambda m: m.photo is not None, "the photo")
    assert shot.caption is not None and shot.caption.startswith("ini NIK saya ") and "0004" not in shot.caption
    album = [u["message"]["message_id"] for u in api.push_album(user, 2, caption="lahir 17/08/95 hp (0812) 0000-0004")]
    masked = await topic_gets(api, STAFF, thread, lambda m: bool(m.text and m.text.startswith("lahir ")), "caption")
    assert "17/08" not in body(masked) and "0812" not in body(masked)
    [copy] = [c for c in api.calls_to("copyMessages", STAFF) if c.params["from_chat_id"] == user]
    assert copy.params["message_ids"] == album and copy.params["remove_caption"] is True
    shown = [body(m) + (m.caption or "") for m in api.topic_messages(STAFF, thread)]
    assert not [line for line in shown if "3273" in line or "17/08" in line or "0812" in line]
    await participant.quiet()


async def test_a_photo_or_album_captioned_note_stays_in_the_topic(participant: Participant) -> None:
    api, user = participant.api, participant.user
    thread, _ = await participant.ask_for_agent()
    api.push_group_photo(STAFF, AGENT, thread, caption="/note tangkapan layar sistem internal")
    await topic_gets(api, STAFF, thread, says("📝 Catatan (photo) disimpan"), "the note saved")
    for n in range(3):  # an album whose first part is captioned "/note": none of its parts is relayed
        caption = "/note riwayat transfer dari bank" if n == 0 else None
        api.push_group_photo(STAFF, AGENT, thread, caption=caption, media_group_id="agent-note-album")
    api.push_group_message(STAFF, AGENT, "Baik Kak, sedang kami cek.", thread)  # a reply after them still goes
    reply = "Baik Kak, sedang kami cek."
    await api.wait_for(lambda: any(body(m) == reply for m in participant.bot_messages()), WAIT, "the reply")
    await asyncio.sleep(2.0)  # past the album's settling time
    assert [m for m in participant.bot_messages() if m.photo] == []
    assert api.calls_to("copyMessages", user) == []
    api.push_group_message(STAFF, AGENT, "/status", thread)
    status = await topic_gets(api, STAFF, thread, says("📝 [photo] tangkapan layar"), "the notes in the card")
    assert "📝 [photo] riwayat transfer" in body(status)
    await participant.quiet()


async def test_a_restart_in_the_middle_keeps_the_case_and_what_was_queued(desk: Desk, participant: Participant) -> None:
    api, user = desk.api, participant.user
    thread, _ = await participant.ask_for_agent()
    # The group is at its limit when the participant writes: the relay waits in the outbox, and the bot dies.
    api.fail_next("sendMessage", too_many_requests(2), chat_id=STAFF)
    api.push_message(user, "halo, masih ada orang?")
    await api.wait_for(lambda: any(c.error for c in api.calls_to("sendMessage", STAFF)[-1:]), WAIT, "the 429")
    await asyncio.sleep(0.2)  # the retry time is written down
    desk.bot.assert_healthy(participant.log_start)
    await desk.restart(kill=True)
    api.push_message(user, "kok sepi")  # queued behind the waiting one: nothing overtakes it
    await topic_gets(api, STAFF, thread, says("kok sepi"), "the relays after the restart")
    relayed = "\n".join(body(m) for m in api.topic_messages(STAFF, thread)[1:])
    assert relayed == "halo, masih ada orang?\nkok sepi"
    assert topic_of(api, STAFF, user) == thread  # the same topic: no second one
    assert len([c for c in api.calls_to("createForumTopic") if str(user) in c.params["name"]]) == 1
    api.push_group_message(STAFF, AGENT, "Masih, Kak. Saya cek dulu.", thread)
    await api.wait_for(
        lambda: any(body(m) == "Masih, Kak. Saya cek dulu." for m in participant.bot_messages()), WAIT, "relay"
    )
    [in_progress] = await participant.send("/start", 1)
    assert in_progress == text("case_in_progress")
    participant.log_start = 0  # the new process's log, from its start
    await participant.quiet()


async def test_a_topic_creation_limit_loses_nothing(participant: Participant) -> None:
    api, user = participant.api, participant.user
    api.fail_next("createForumTopic", too_many_requests(1), times=2, chat_id=STAFF)
    thread, card = await participant.ask_for_agent()
    attempts = [c for c in api.calls_to("createForumTopic", STAFF) if str(user) in c.params["name"]]
    assert [c.error.error_code if c.error else 200 for c in attempts] == [429, 429, 200]
    assert attempts[1].at - attempts[0].at >= 0.9  # retry_after was kept
    assert body(card).startswith("🆕 Kasus baru")
    api.push_message(user, "sudah masuk?")
    await topic_gets(api, STAFF, thread, says("sudah masuk?"), "the relay")
    cards = [m for m in api.topic_messages(STAFF, thread) if body(m).startswith("🆕 Kasus baru")]
    assert len(cards) == 1
    await participant.quiet()


async def test_only_agents_act_and_only_in_the_staff_group(participant: Participant) -> None:
    api, user = participant.api, participant.user
    thread, _ = await participant.ask_for_agent()
    copies_before = len(api.calls_to("copyMessage", user))
    api.push_group_message(STAFF, MEMBER, "/claim", thread)
    await topic_gets(api, STAFF, thread, says(text("staff_not_agent")), "the refusal")
    api.push_group_message(STAFF, MEMBER, "halo, saya bukan agen", thread)
    refused = text("staff_not_delivered", blocked=False, error=text("staff_not_agent"))
    await topic_gets(api, STAFF, thread, says(refused), "the not-relayed notice")
    await asyncio.sleep(0.5)
    assert len(api.calls_to("copyMessage", user)) == copies_before
    assert not any("bukan agen" in body(m) for m in participant.bot_messages())
    assert not any(says("✋")(m) for m in api.topic_messages(STAFF, thread))

    # A stranger in a private chat, and an agent in a group that is not a staff group.
    stranger = Participant(participant.desk, next(_participants))
    for command in ("/claim", "/close", "/queue"):
        [refusal] = await stranger.send(command, 1)
        assert refusal == text("agent_only_command")
    api.push_group_message(ELSEWHERE, AGENT, "/queue")
    await asyncio.sleep(1.0)
    assert [c.method for c in api.calls if c.chat_id == ELSEWHERE] == []
    await participant.quiet()
    await stranger.quiet()


async def test_a_participant_who_blocked_the_bot_is_reported_in_the_topic(participant: Participant) -> None:
    api, user = participant.api, participant.user
    thread, _ = await participant.ask_for_agent()
    participant.blocked = True
    api.fail_next("copyMessage", blocked_by_user(), chat_id=user)
    api.push_group_message(STAFF, AGENT, "Halo Kak?", thread)
    notice = text("staff_not_delivered", blocked=True, error="")
    await topic_gets(api, STAFF, thread, says(notice), "the not-delivered notice")
    [refused] = api.calls_to("copyMessage", user)
    assert refused.error is not None and refused.error.error_code == 403
    api.fail_next("sendMessage", blocked_by_user(), chat_id=user)
    api.push_group_message(STAFF, AGENT, "/close", thread)  # the case closes even so
    await topic_gets(api, STAFF, thread, says("ditutup oleh Sari"), "the close notice")
    await participant.quiet()


async def test_a_deleted_topic_is_made_again_with_its_card(participant: Participant) -> None:
    api, user = participant.api, participant.user
    thread, card = await participant.ask_for_agent()
    api.delete_topic(STAFF, thread)
    api.push_message(user, "halo? ada yang baca?")
    await api.wait_for(lambda: topic_of(api, STAFF, user) not in (None, thread), WAIT, "a new topic")
    new = topic_of(api, STAFF, user)
    assert new is not None and api.topics(STAFF)[new] == f"Peserta {user} · {user}"
    await topic_gets(api, STAFF, new, says("halo? ada yang baca?"), "the relay in the new topic")
    again = await topic_gets(api, STAFF, new, says("🆕 Kasus baru"), "the card again")
    assert body(again) == body(card)
    api.push_group_message(STAFF, AGENT, "Ada, Kak.", new)
    await api.wait_for(lambda: any(body(m) == "Ada, Kak." for m in participant.bot_messages()), WAIT, "relay")
    await participant.quiet()


async def test_new_cases_are_spread_over_several_staff_groups(desks: Desks) -> None:
    desk = desks.two_groups
    api = desk.api
    await until_polling(desk.bot)
    first, second, third = (Participant(desk, next(_participants)) for _ in range(3))
    await first.ask_for_agent()
    await second.send("/start", 2)
    await second.press(text("btn_agent"), 1)
    thread, _ = await topic_and_card(api, STAFF_2, second.user)  # the group with fewer open cases
    assert topic_of(api, STAFF, second.user) is None
    await third.send("/start", 2)
    await third.press(text("btn_agent"), 1)
    await topic_and_card(api, STAFF, third.user)  # one case each: the first group in the list
    api.push_group_message(STAFF_2, AGENT_2, "Halo dari grup kedua", thread)
    await api.wait_for(lambda: any(body(m) == "Halo dari grup kedua" for m in second.bot_messages()), WAIT, "relay")
    api.push_message(second.user, "terima kasih")
    await topic_gets(api, STAFF_2, thread, says("terima kasih"), "the relay into the second group")
    for participant in (first, second, third):
        await participant.quiet()
    check_with_ptb(api)


# --- the outbox and one transaction per action ----------------------------------------------------------------------
async def test_an_agents_reply_survives_server_errors_and_a_429(participant: Participant) -> None:
    """An agent's single message goes through the durable outbox like an album: retried, never "not delivered"."""
    api, user = participant.api, participant.user
    thread, _ = await participant.ask_for_agent()
    api.fail_next("copyMessage", server_error(), chat_id=user)
    api.fail_next("copyMessage", too_many_requests(1), chat_id=user)
    api.push_group_message(STAFF, AGENT, "Halo Kak, sebentar saya cek", thread)
    await api.wait_for(
        lambda: any(body(m) == "Halo Kak, sebentar saya cek" for m in participant.bot_messages()), WAIT, "the reply"
    )
    errors = [c.error.error_code for c in api.calls_to("copyMessage", user) if c.error]
    assert errors == [500, 429]
    not_delivered = text("staff_not_delivered", blocked=False, error="")[:30]
    assert not any(not_delivered in body(m) for m in api.topic_messages(STAFF, thread))
    participant.blocked = True  # the refusals above were injected on purpose
    await participant.quiet()


def case_status(desk: Desk, user: int) -> str:
    with sqlite3.connect(desk.tmp / "bot.db") as db:
        [(status,)] = db.execute(
            "SELECT status FROM cases WHERE telegram_user_id = ? ORDER BY id DESC LIMIT 1", (user,)
        ).fetchall()
    return str(status)


async def until_logged(desk: Desk, fragment: str) -> None:
    """The log is no API call, which is what `FakeBotApi.wait_for` wakes on: look every 50 ms."""
    for _ in range(int(WAIT / 0.05)):
        if fragment in desk.bot.log.read_text():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{fragment!r} never logged")


@contextlib.contextmanager
def outbox_refuses(desk: Desk, user: int) -> Iterator[None]:
    """The database refuses any outbox row for this participant (a full disk, say) while the block runs."""
    with sqlite3.connect(desk.tmp / "bot.db") as db:
        db.execute(
            f"CREATE TRIGGER refuse_{user} BEFORE INSERT ON outbox WHEN NEW.chat_id = {user} "
            f"OR NEW.case_id IN (SELECT id FROM cases WHERE telegram_user_id = {user}) "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
    try:
        yield
    finally:
        with sqlite3.connect(desk.tmp / "bot.db") as db:
            db.execute(f"DROP TRIGGER refuse_{user}")


async def test_a_close_that_cannot_tell_everyone_does_not_happen_at_all(desk: Desk, participant: Participant) -> None:
    """/close by an agent, /cancel by the participant: the state change and the messages it causes are one
    transaction — a failure leaves the case open, with nobody told half of it."""
    api, user = participant.api, participant.user
    thread, _ = await participant.ask_for_agent()
    with outbox_refuses(desk, user):
        api.push_group_message(STAFF, AGENT, "/close", thread)
        await until_logged(desk, "refused by the test")  # the failed /close
        await participant.send("/cancel", 1)  # the bot apologises (error_generic) …
        assert case_status(desk, user) == "open"  # … and the case is still open
    await asyncio.sleep(0.5)
    assert api.sent(user)[participant.seen :] == []  # no satisfaction question went out for the failed /close
    assert not any("ditutup" in body(m) for m in api.topic_messages(STAFF, thread))
    [closed] = await participant.send("/cancel", 1)  # the database is back: all of it, together
    assert closed == text("case_closed_by_participant")
    await topic_gets(api, STAFF, thread, says(text("case_closed_by_participant_staff")), "the cancel notice")
    assert case_status(desk, user) == "closed"
    participant.log_start = desk.bot.log_size()  # the refused writes were logged as errors, on purpose
