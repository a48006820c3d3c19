"""The conversation flows without Telegram: the real app on an SQLite file seeded with the demo personas, driven one
event at a time through `Conversation.handle`, as the Telegram handlers and the console chat drive it."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from bot.app import App, build_app
from bot.flows.callbacks import MAX_ID, Action, Pressed, pack, unpack
from bot.flows.faq import FLOW_INTENTS
from bot.flows.types import Button, EventKind, Incoming, Outcome
from bot.flows.views import SAMPLE_PARTICIPANTS, participant_view
from bot.settings import Settings
from bot.texts import default_renderer
from core.accounts import LOCKOUT, MAX_FAILURES, SecondFactorResult
from core.calendar import default_calendar, today_in_jakarta
from core.db import Database
from core.demo import (
    INSTITUTIONS,
    PERSONAS,
    TRAININGS,
    DemoPersona,
    load_platform_directory,
    recreate_database,
    seed_demo,
)
from core.diagnosis import Stage
from core.models import FaqAnswer, IdentityLockout, Membership, OutboxMessage
from core.rules import default_rules
from tests.html_check import assert_telegram_accepts, assert_telegram_html

pytestmark = pytest.mark.asyncio(loop_scope="module")

_DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
_MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
           "November", "Desember")  # fmt: skip
PLATFORMS = {p["code"]: p["name"] for p in load_platform_directory()}
TRAINING = {code: (title, INSTITUTIONS[i]) for code, title, i in TRAININGS}
BY_NAME = {p.name: p for p in PERSONAS}


def text(key: str, locale: str = "id", **context: Any) -> str:
    return default_renderer().render(key, locale, **context)


def long_date(day: date) -> str:
    """ "Rabu, 25 Maret 2026", written out here rather than taken from the renderer under test."""
    return f"{_DAYS[day.weekday()]}, {day.day} {_MONTHS[day.month - 1]} {day.year}"


def born(persona: DemoPersona) -> str:
    return persona.birth_date.strftime("%d-%m-%Y")


@dataclass
class World:
    app: App
    participant_ids: dict[int, int]  # persona key → participant id
    today: date
    users: itertools.count[int] = field(default_factory=lambda: itertools.count(9_100_001))

    def chat(self) -> Chat:
        return Chat(self, next(self.users))


async def acknowledgements(app: App, user: int) -> list[str]:
    """What the bot queued for the participant's own chat with the change that caused it (a case opened)."""
    async with app.engine.connect() as conn:
        rows = await conn.execute(
            select(OutboxMessage.payload).where(OutboxMessage.chat_id == user, OutboxMessage.method == "botReply")
        )
        return [str(payload["text"]) for (payload,) in rows]


@dataclass
class Chat:
    """One Telegram user's conversation: the stored state between events, as aiogram's FSM storage keeps it."""

    world: World
    user: int
    state: dict[str, Any] | None = None
    last: Outcome = field(default_factory=Outcome)
    app: App | None = None  # another app on the world's database (one with a staff group); the world's by default

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.last.replies]

    @property
    def phase(self) -> str:
        assert self.state is not None
        return str(self.state["phase"])

    def buttons(self) -> list[Button]:
        return [b for reply in self.last.replies for row in reply.buttons for b in row]

    def labels(self) -> list[str]:
        return [b.label for b in self.buttons()]

    async def event(self, kind: EventKind, body: str = "", **extra: Any) -> list[str]:
        app = self.app or self.world.app
        outcome = await app.conversation.handle(Incoming(kind, self.user, body, **extra), self.state)
        self.state, self.last = outcome.state, outcome
        for reply in outcome.replies:
            assert_telegram_accepts(reply.text)
            for button in (b for row in reply.buttons for b in row):
                assert 0 < len(button.data.encode()) <= 64 and button.label
        if outcome.notice is not None:
            assert len(outcome.notice) <= 200
        return self.texts

    async def send(self, message: str) -> list[str]:
        return await self.event(EventKind.TEXT, message)

    async def command(self, name: str, argument: str = "") -> list[str]:
        return await self.event(EventKind.COMMAND, name, argument=argument)

    async def contact(self, phone: str, contact_user_id: int | None = -1) -> list[str]:
        owner = self.user if contact_user_id == -1 else contact_user_id
        return await self.event(EventKind.CONTACT, contact_phone=phone, contact_user_id=owner)

    async def press(self, label: str) -> list[str]:
        button = next((b for b in self.buttons() if label in b.label), None)
        assert button is not None, f"no button {label!r} in {self.labels()}"
        return await self.event(EventKind.BUTTON, button.data)

    def looks_up(self, kind: EventKind = EventKind.TEXT, body: str = "sertifikat saya belum muncul") -> bool:
        """Whether the front end would show "typing…" (if slow) while this event is handled."""
        return (self.app or self.world.app).conversation.may_look_up(Incoming(kind, self.user, body), self.state)

    async def identify(self, persona: DemoPersona, via: str = "status") -> list[str]:
        """/status (or the menu), the own contact, the birth date; returns the replies after linking."""
        if via == "status":
            assert await self.command("status") == [text("identify_needed"), text("identify_ask_contact")]
        assert self.last.replies[-1].request_contact == text("btn_share_contact")
        assert await self.contact(persona.phone) == [text("identify_ask_second_factor")]
        replies = await self.send(born(persona))
        assert replies[0] == text("identify_linked")
        return replies[1:]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    path: Path = tmp_path_factory.mktemp("flows") / "flows.db"
    app_settings = Settings(
        database_url=f"sqlite+aiosqlite:///{path}",
        default_locale="id",
        staff_chat_id=[],
        redis_url=None,
        _env_file=None,
    )
    db = Database.open(app_settings.database_url)
    await recreate_database(db)
    today = today_in_jakarta()
    created = await seed_demo(db.engine, default_rules(), default_calendar(), app_settings.pii_key, today)
    app = build_app(app_settings, db)
    try:
        yield World(app, {persona.key: pid for pid, persona in created}, today)
    finally:
        await app.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def staffed(world: World) -> AsyncIterator[App]:
    """The same database served with a staff group: a chat can be handed to a person (a case)."""
    app = build_app(world.app.settings.model_copy(update={"staff_chat_id": [-100_777]}))
    try:
        yield app
    finally:
        await app.close()


# --- certificate troubleshooting for every persona --------------------------------------------------------------------
@pytest.mark.parametrize("persona", PERSONAS, ids=lambda p: p.name.split()[0])
async def test_every_persona_is_walked_through_its_own_stage(world: World, persona: DemoPersona) -> None:
    chat = world.chat()
    await chat.command("start")
    assert await chat.press(text("btn_menu_certificate")) == [text("identify_needed"), text("identify_ask_contact")]
    flow = await chat.identify(persona, via="menu")
    status = await world.app.services.status.status(world.participant_ids[persona.key])
    assert status is not None

    if persona.stage is Stage.NOT_PURCHASED:
        deadline = world.today - timedelta(days=persona.accepted_days_ago)
        deadline += timedelta(days=default_rules().schemes[persona.scheme].purchase_deadline_days)
        [reply] = flow
        assert persona.name in reply and long_date(deadline) in reply
        revoked = persona.membership == Membership.REVOKED or deadline < world.today
        assert ("<b>dicabut</b>" in reply) is revoked and ("paling lambat" in reply) is not revoked
        assert chat.phase == "idle"
        return

    summary, *rest = flow
    assert f"Posisi sertifikat Kak {persona.name}" in summary
    for bought in persona.enrollments:  # each training on its line with its own platform and institution
        title, institution = TRAINING[bought.training]
        [line] = [line for line in summary.splitlines() if title in line]
        assert PLATFORMS[bought.platform] in line and f"lembaga {institution}" in line

    if len(persona.enrollments) > 1:
        [choose] = rest
        assert choose == text("certificate_choose") and chat.phase == "choose_enrollment"
        assert len(chat.buttons()) == len(persona.enrollments)
        last = persona.enrollments[-1]
        title, _ = TRAINING[last.training]
        assert f"{title[:38]} · {PLATFORMS[last.platform]}" in chat.labels()[-1]
        rest = await chat.press(title[:20])
        diagnosis = status.diagnoses[-1]
    else:
        diagnosis = status.diagnoses[0]
    [step] = rest
    assert chat.phase in ("troubleshoot", "idle")
    enrollment = diagnosis.enrollment
    assert enrollment is not None
    platform = PLATFORMS[enrollment.platform_code]
    labels = chat.labels()
    has_agent = text("btn_agent") in labels

    match diagnosis.stage:
        case Stage.IN_TRAINING:
            assert "Langkah 1/" in step and "selesaikan pelatihan" in step
            assert enrollment.institution_name in step and platform in step
        case Stage.NEEDS_RATING if diagnosis.certificate_issued:
            # Since 2021 the certificate comes first: it is shown, and the rating holds only the schedule back.
            assert "Sertifikat sudah terbit" in step and "ulasan" in step
            assert "jadwal insentif menunggu ulasan" in summary.lower() and diagnosis.rating_place == "dashboard"
            assert "Sertifikat tidak akan diproses" not in summary + step
        case Stage.NEEDS_RATING:
            assert "Langkah 1/" in step and "beri ulasan" in step and enrollment.training_title in step
        case Stage.AWAITING_PLATFORM_REPORT if diagnosis.overdue:
            assert f"hubungi {platform}" in step and "sudah terlambat" in step
            entry = world.app.services.platform(enrollment.platform_code)  # a confirmed channel, or says none is
            assert (entry["contact_url"] or entry["phone"] or entry["whatsapp"] or "belum punya kontak") in step
        case Stage.AWAITING_PLATFORM_REPORT | Stage.AWAITING_PMO if not diagnosis.overdue:
            # Wait until the last day it is on time (a platform report: usual in 1 working day, late after 3).
            assert diagnosis.on_time_until is not None and diagnosis.on_time_until >= world.today
            assert f"tunggu sampai {long_date(diagnosis.on_time_until)}" in step
        case Stage.AWAITING_PMO:
            assert "Ini perlu dicek langsung" in step and "melewati batas waktu" in step
            assert "melewati batas" in summary
        case Stage.NAME_MISMATCH:
            assert "perbaiki nama" in step and '"Tika Permata"' in step and enrollment.institution_name in step
        case _:  # a certificate exists: its number and printed name, whatever the incentive did
            assert diagnosis.stage in (Stage.CERTIFICATE_ISSUED, *(s for s in Stage if s.name.startswith("INCENTIVE")))
            assert enrollment.certificate_number is not None
            assert re.search(rf"<code>SERT/\d{{4}}/{persona.key:04d}\d\d</code>", step)
            assert f"<b>{enrollment.printed_name}</b>" in step
    # This world has no staff group: no agent is promised; the escalation step carries the complaint form itself.
    only_step = "Ini perlu dicek langsung" in step
    assert not has_agent and "agen" not in step.lower()
    if only_step:
        assert "formulir pengaduan" in step
    assert (text("btn_step_next") in labels) is (not only_step)


async def test_the_steps_go_on_until_solved_or_the_last_one(world: World) -> None:
    chat = world.chat()
    await chat.identify(BY_NAME["Eko Prasetyo"])  # platform report long overdue: no wait step to sit through
    numbers = []
    while text("btn_step_next") in chat.labels():
        [step] = await chat.press(text("btn_step_next"))
        numbers.append(re.findall(r"Langkah (\d)/(\d)|Langkah terakhir", step)[0])
    assert numbers == [("2", "3"), ("", "")]
    assert "formulir pengaduan" in chat.texts[0] and chat.labels() == []  # no staff group: no agent button
    assert chat.phase == "idle"

    other = world.chat()
    await other.identify(BY_NAME["Citra Dewi"])
    assert await other.press(text("btn_step_solved")) == [text("troubleshoot_solved")]
    assert other.phase == "idle"


async def test_a_side_question_keeps_the_flows_buttons_working(world: World) -> None:
    chat = world.chat()
    await chat.identify(BY_NAME["Citra Dewi"])  # in training: step 1 of several, the next one at once
    flow_buttons = chat.buttons()
    assert chat.phase == "troubleshoot"
    replies = await chat.send("berapa besar insentif prakerja")
    assert "Besaran" in replies[0] or "insentif" in replies[0].lower()
    assert chat.phase == "troubleshoot"
    next_step = next(b for b in flow_buttons if text("btn_step_next") in b.label)
    [step] = await chat.event(EventKind.BUTTON, next_step.data)
    assert chat.last.notice is None and "Langkah 2/" in step  # not "expired", not back to step 1
    # The answer's own buttons (did this help?) were superseded by the step's: they expire like any old button.
    await chat.event(EventKind.BUTTON, next_step.data)
    assert chat.last.notice == text("button_expired")


# --- incentive --------------------------------------------------------------------------------------------------------
INCENTIVE_EXPECTATIONS = {
    "Joko Susilo": (["✅ ditransfer"], False),
    "Lukman Hakim": (["📅 dijadwalkan"], False),
    "Maya Anggraini": (["✅ ditransfer"] * 4 + ["× 4 bulan"] + ["ke OVO"] * 4, False),
    "Nur Aini": (
        ["<b>gagal</b>", "<b>tidak aktif</b>. Aktifkan kembali lewat Bank BNI", "(BNI): akun tidak aktif"],
        True,
    ),
    "Oki Setiawan": (["<b>gagal</b>", "Samakan kembali nomornya", "(OVO): nomor HP e-wallet berbeda"], True),
    "Putri Maharani": (["<b>gagal</b>", "<b>belum terverifikasi</b>", "(DANA): e-wallet belum terverifikasi"], True),
    "Taufik Hidayat": (["✅ ditransfer"] * 3 + ["<b>gagal</b>", "<b>mencapai batas maksimum</b>"], True),
    "Umi Kalsum": (["<b>gagal</b>", "<b>diblokir</b>", "Sudah saya perbaiki"], True),
    "Vino Saputra": (["<b>gagal</b>", "<b>sudah ditutup</b>"], True),
    "Gita Puspita": (["<b>gagal</b>", "<b>batas transaksi bulanan</b>"], True),
    "Hendra Wijaya": (["<b>gagal</b>", "<b>kehadiran atau verifikasi wajah</b>"], True),
    "Dedi Kurniawan": (["Belum ada jadwal insentif"], False),
    # Certificate issued, no rating: the schedule waits for the rating (never "no schedule, see why").
    "Dian Permatasari": (["<b>jadwal menunggu ulasanmu</b>"], False),
    # The certificate with the wrong name is there, and its schedule is late: said, not hidden.
    "Kartika Sari": (["<b>terlambat</b>"], True),
}


@pytest.mark.parametrize("name", INCENTIVE_EXPECTATIONS, ids=lambda n: n.split()[0])
async def test_the_incentive_flow_names_schedule_transfers_and_remedies(world: World, name: str) -> None:
    persona = BY_NAME[name]
    chat = world.chat()
    await chat.command("start")
    await chat.press(text("btn_menu_incentive"))
    [summary] = await chat.identify(persona, via="menu")
    expected, needs_person = INCENTIVE_EXPECTATIONS[name]
    assert f"Insentif Kak {persona.name}" in summary
    for fragment in dict.fromkeys(expected):
        assert summary.count(fragment) == expected.count(fragment), (fragment, summary)
    if name == "Lukman Hakim":
        assert long_date(world.today + timedelta(days=3)) in summary
    # No staff group in this world: the one person button leads to the complaint form and says so.
    assert (text("btn_complaint") in chat.labels()) is needs_person
    assert text("btn_agent") not in chat.labels()


@pytest.mark.parametrize("name", ["Maya Anggraini", "Taufik Hidayat"], ids=lambda n: n.split()[0])
async def test_each_installment_starts_its_own_line(world: World, name: str) -> None:
    chat = world.chat()
    await chat.command("start")
    await chat.press(text("btn_menu_incentive"))
    [summary] = await chat.identify(BY_NAME[name], via="menu")
    assert re.findall(r"^(\d)\. Rp600\.000 — ", summary, flags=re.MULTILINE) == ["1", "2", "3", "4"]


# --- FAQ --------------------------------------------------------------------------------------------------------------
async def answered_question(chat: Chat) -> str:
    """A question the FAQ answers outright (not a flow), taken from the FAQ's own paraphrases."""
    entries = [e for e in chat.world.app.services.faq.entries.values() if e.id not in ("certificate_missing",)]
    for entry in entries:
        for question in entry.paraphrases.get("id", [])[:3]:
            replies = await chat.send(question)
            if replies and replies[-1].endswith("\n\n" + text("faq_helpful_question")):
                return question
    raise AssertionError("no FAQ paraphrase got a direct answer")


async def faq_rows(world: World, user: int) -> list[FaqAnswer]:
    async with world.app.engine.connect() as conn:
        rows = await conn.execute(select(FaqAnswer).where(FaqAnswer.telegram_user_id == user).order_by(FaqAnswer.id))
        return list(rows.all())  # type: ignore[arg-type]


async def test_a_helpful_faq_answer_is_stored_with_its_feedback(world: World) -> None:
    chat = world.chat()
    question = await answered_question(chat)
    assert chat.labels() == [text("btn_yes"), text("btn_no")]
    assert await chat.press(text("btn_yes")) == [text("faq_thanks")]
    last = (await faq_rows(world, chat.user))[-1]
    assert (last.question, last.kind, last.helpful) == (question, "answer", True)
    assert last.faq_id in world.app.services.faq.entries
    # The same buttons pressed again are stale: no second vote.
    assert await chat.event(EventKind.BUTTON, "zzzz|h|n") == []
    assert chat.last.notice == text("button_expired")


async def test_greetings_thanks_and_yes_are_answered_in_kind(world: World) -> None:
    chat = world.chat()
    [hello] = await chat.send("pagi kak")
    assert hello.startswith("Halo") and text("faq_helpful_question") not in hello
    assert chat.labels() == [text("btn_menu_certificate"), text("btn_menu_incentive")]
    [welcome] = await chat.send("makasih kak")
    assert welcome.startswith("Sama-sama")
    # After an answer that asked "did this help?", a typed "ya" is that yes (stored), not a new question.
    await answered_question(chat)
    assert await chat.send("ya") == [text("faq_thanks")]
    assert (await faq_rows(world, chat.user))[-1].helpful is True
    await answered_question(chat)
    assert (await chat.send("nggak"))[0] == text("faq_not_helpful", has_others=True)
    assert (await faq_rows(world, chat.user))[-1].helpful is False


async def test_a_story_is_thanked_and_an_unknown_question_is_not_understood(world: World) -> None:
    chat = world.chat()
    story = "Alhamdulillah insentifnya kemarin saya pakai buat modal usaha jualan gorengan di depan rumah"
    assert await chat.send(story) == [text("faq_statement")]
    assert chat.labels() == [text("btn_menu_certificate"), text("btn_menu_incentive"), text("btn_agent")]
    assert await chat.send("siapa juara piala dunia sepak bola tahun lalu?") == [text("faq_none")]


async def test_a_linked_participant_asking_about_their_own_schedule_gets_their_records(world: World) -> None:
    chat = world.chat()
    await chat.identify(BY_NAME["Lukman Hakim"])
    replies = await chat.send("kapan jadwal pencairan insentif saya")
    # The incentive flow (their schedule from the diagnosis), not the generic FAQ answer with "did this help?".
    assert "📅 dijadwalkan" in "\n".join(replies)
    assert not any(r.endswith(text("faq_helpful_question")) for r in replies)


async def test_a_message_with_two_requests_offers_the_second_as_a_button(world: World) -> None:
    chat = world.chat()
    replies = await chat.send(
        "min mau tanya cara membatalkan pelatihan yang sudah dibeli. terus satu lagi, kode redeem pelatihan dimana ya?"
    )
    answers = {"Batalkan Pelatihan": "Batalkan / ganti pelatihan", "Kode <b>redeem</b>": "Kode redeem / voucher"}
    first = next(mark for mark in answers if mark in replies[0])
    other = next(mark for mark in answers if mark != first)
    also = [label for label in chat.labels() if label.startswith("➕")]
    assert also == [text("btn_faq_also", title=answers[other])]
    [second] = await chat.press("➕")
    assert other in second and second.endswith(text("faq_helpful_question"))


async def test_frustration_gets_empathy_and_a_way_to_the_records(world: World) -> None:
    chat = world.chat()
    replies = await chat.send("udah seminggu lebih gak ada kabar, ini program penipuan ya??")
    assert replies[0].startswith("Maaf ya") and replies[1] == text("faq_frustration_check")
    assert text("btn_menu_certificate") in chat.labels()
    linked = world.chat()
    await linked.identify(BY_NAME["Dedi Kurniawan"])
    replies = await linked.send("kecewa banget sama prakerja, ini program penipuan ya")
    assert replies[0].startswith("Maaf ya, Kak Dedi") and len(replies) > 1  # then their status


async def test_a_fed_up_question_gets_sorry_then_its_own_answer(world: World) -> None:
    # The certificate is the question, the mood is not: an apology first, then the certificate flow's records.
    linked = world.chat()
    await linked.identify(BY_NAME["Dedi Kurniawan"])
    replies = await linked.send("udah seminggu sertifikat belum juga muncul, penipuan ya??")
    assert replies[0] == text("faq_frustrated")
    assert "Posisi sertifikat Kak Dedi Kurniawan" in replies[1]


async def test_an_unhelpful_faq_answer_offers_other_answers_and_an_agent(world: World) -> None:
    chat = world.chat()
    await answered_question(chat)
    [sorry] = await chat.press(text("btn_no"))
    labels = chat.labels()
    assert labels[-1] == text("btn_agent")
    assert sorry == text("faq_not_helpful", has_others=len(labels) > 1)
    assert (await faq_rows(world, chat.user))[-1].helpful is False
    answers = [b for b in chat.buttons() if b.data.split("|")[-1] in chat.world.app.services.faq.entries]
    answers = [b for b in answers if b.data.split("|")[-1] not in FLOW_INTENTS]
    if answers:  # another answer: it is stored too, and asks again
        replies = await chat.press(answers[0].label)
        assert replies[-1].endswith("\n\n" + text("faq_helpful_question"))
        rows = await faq_rows(world, chat.user)
        assert rows[-1].helpful is None and rows[-1].faq_id == answers[0].data.split("|")[-1] != rows[-2].faq_id


async def test_questions_are_stored_without_phone_numbers(world: World) -> None:
    chat = world.chat()
    await chat.send("nomor saya 081234567890 kok sertifikat belum ada")
    [row] = await faq_rows(world, chat.user)
    assert "081234567890" not in row.question and "7890" in row.question


async def test_a_picked_suggestion_is_stored_with_the_question_and_no_offers_the_other_suggestions(
    world: World,
) -> None:
    chat = world.chat()
    await answered_question(chat)  # an earlier answer leaves its own "other answers" behind
    [suggest] = await chat.send("insentif")
    assert suggest == text("faq_suggest")
    entries = world.app.services.faq.entries
    suggested = [b.data.split("|")[-1] for b in chat.buttons() if b.data.split("|")[1] == Action.FAQ]
    assert len(suggested) == 3 and chat.labels()[-1] == text("btn_agent")
    picked = next(faq_id for faq_id in suggested if faq_id not in FLOW_INTENTS)
    replies = await chat.press(entries[picked].title["id"])
    assert replies[-1].endswith("\n\n" + text("faq_helpful_question"))
    row = (await faq_rows(world, chat.user))[-1]
    assert (row.question, row.kind, row.faq_id) == ("insentif", "answer", picked)  # the words, not the title
    await chat.press(text("btn_no"))
    others = [entries[faq_id].title["id"] for faq_id in suggested if faq_id != picked]
    assert chat.labels() == [*others, text("btn_agent")]


async def test_answers_that_promise_an_action_come_with_its_button(world: World) -> None:
    chat = world.chat()
    [complaint] = await chat.send("di mana formulir pengaduan prakerja")
    assert "Kanal pengaduan resmi Prakerja" in complaint and "0800-150-3001" in complaint
    assert chat.labels() == [text("btn_agent"), text("btn_yes"), text("btn_no")]
    assert await chat.press(text("btn_agent")) == [
        text("agent_unavailable", complaint=world.app.services.directory["complaint_form"])
    ]

    [schedule] = await chat.send("kapan insentif prakerja dicairkan")
    assert "jadwal insentif muncul sekitar <b>1×24 jam</b> kemudian" in schedule
    assert chat.labels() == [text("btn_check_incentive"), text("btn_yes"), text("btn_no")]
    assert await chat.press(text("btn_check_incentive")) == [text("identify_needed"), text("identify_ask_contact")]
    [summary] = await chat.identify(BY_NAME["Dedi Kurniawan"], via="button")
    assert "Insentif Kak Dedi Kurniawan" in summary and "Belum ada jadwal insentif" in summary

    # Identified: the question about their own schedule goes straight to their records (the diagnosis), so no FAQ
    # text can contradict them.
    [summary] = await chat.send("kapan insentif prakerja dicairkan")
    assert "Insentif Kak Dedi Kurniawan" in summary


async def test_the_wrong_name_answer_shows_the_participants_own_names(world: World) -> None:
    chat = world.chat()
    await chat.identify(BY_NAME["Kartika Sari"])
    [answer] = await chat.send("nama di sertifikat tidak sesuai ktp")
    assert "Nama terdaftarmu: <b>Kartika Sari</b>" in answer
    assert re.search(r'\n• .+: nama di (sertifikat|lembaga) "Tika Permata" — <b>berbeda</b> ⚠️, minta ', answer)


async def test_dates_and_nik_digits_are_not_kept_from_free_text(world: World) -> None:
    chat = world.chat()
    await chat.send("lahir 17-08-1995 nik 0004, kapan sertifikat muncul? tgl lahir 17 Agustus 1995")
    await chat.send("0004")
    await chat.send("insentif 2023 berapa")
    questions = [row.question for row in await faq_rows(world, chat.user)]
    transcript = "\n".join(chat.state["transcript"] if chat.state else [])
    for kept in (*questions, transcript):
        assert "17-08-1995" not in kept and "Agustus 1995" not in kept and "0004" not in kept
    assert questions[0] == "lahir [tanggal] nik ****, kapan sertifikat muncul? tgl lahir [tanggal]"
    assert questions[2] == "insentif 2023 berapa"  # an ordinary question keeps its numbers


# --- /status: certificate and incentive ---------------------------------------------------------------------------
async def test_status_shows_the_incentive_with_the_certificates(world: World) -> None:
    chat = world.chat()
    # After a failed transfer /status is about the incentive: no certificate steps after it, one person button.
    [summary] = await chat.identify(BY_NAME["Nur Aini"])
    assert "Posisi sertifikat Kak Nur Aini" in summary and "Insentif Kak Nur Aini" in summary
    assert "<b>gagal</b>" in summary and "Aktifkan kembali lewat Bank BNI" in summary
    assert chat.labels() == [text("btn_incentive_fixed"), text("btn_complaint")]

    other = world.chat()
    summary, _ = await other.identify(BY_NAME["Dedi Kurniawan"])
    assert "Insentif Kak Dedi Kurniawan" in summary and "Belum ada jadwal insentif" in summary
    assert "/status" not in summary  # no pointer to the command the participant just used


# --- "typing…" --------------------------------------------------------------------------------------------------------
async def test_a_linked_participants_question_may_look_up_records(world: World) -> None:
    chat = world.chat()
    assert not chat.looks_up()
    await chat.send("sertifikat saya belum muncul")  # unlinked: asks for the contact, reads no records
    assert not chat.looks_up()
    await chat.identify(BY_NAME["Dedi Kurniawan"], via="button")
    assert chat.looks_up() and chat.looks_up(body="kapan insentif cair")
    await chat.command("start")  # a fresh state still knows the chat is linked
    assert chat.looks_up()
    await chat.command("logout")
    assert not chat.looks_up()


# --- buttons: forged data -----------------------------------------------------------------------------------------
async def test_button_arguments_are_checked_in_one_place() -> None:
    assert unpack(pack("abcd", Action.ENROLLMENT, str(MAX_ID))) == Pressed("abcd", Action.ENROLLMENT, str(MAX_ID),
                                                                           (MAX_ID,))  # fmt: skip
    assert unpack(pack("0000", Action.SATISFACTION, "12_5")) == Pressed("0000", Action.SATISFACTION, "12_5", (12, 5))
    for action, argument in [
        (Action.ENROLLMENT, str(MAX_ID + 1)),
        (Action.ENROLLMENT, "99999999999999999999"),
        (Action.ENROLLMENT, "0"),
        (Action.ENROLLMENT, "007"),
        (Action.SATISFACTION, "99999999999999999999999_5"),
        (Action.SATISFACTION, f"{MAX_ID + 1}_1"),
        (Action.SATISFACTION, "12_0"),
        (Action.SATISFACTION, "12_6"),
        (Action.SATISFACTION, "12_55"),
        (Action.SATISFACTION, "12"),
        (Action.START, "identify"),
        (Action.HELPFUL, "yes"),
        (Action.STEP, "later"),
        (Action.LANG, "fr"),
        (Action.AGENT, "x"),
        (Action.FAQ, "x"),
    ]:
        assert unpack(f"abcd|{action.value}|{argument}") is None, (action, argument)
        with pytest.raises(ValueError):
            pack("abcd", action, argument)
    assert unpack("abcd\n|s|status") is None and unpack("abcd|s|status\n") is None


FORGED = (
    "{nonce}|c|99999999999999999999999_5",  # past the database's integers: once an OverflowError
    "{nonce}|c|2147483648_5",
    "{nonce}|c|1_9",
    "{nonce}|e|99999999999999999999",
    "{nonce}|s|identify",
    "{nonce}|l|fr",
)


@pytest.mark.parametrize("nonce", ["0000", "current"])
async def test_forged_numbers_in_buttons_expire(world: World, staffed: App, nonce: str) -> None:
    cases = staffed.services.cases
    assert cases is not None
    chat = Chat(world, next(world.users), app=staffed)
    await chat.identify(BY_NAME["Rudi Hartono"])  # two trainings: a choice of enrollment, with ids in buttons
    await chat.command("start")
    await chat.press(text("btn_agent"))  # a case: satisfaction answers are looked up from now on
    await chat.command("cancel")
    assert await cases.active_case(chat.user) is None
    current = chat.state["nonce"] if chat.state else ""
    for data in FORGED:
        forged = data.format(nonce=current if nonce == "current" else nonce)
        assert await chat.event(EventKind.BUTTON, forged) == [], forged
        assert chat.last.notice == text("button_expired"), forged


# --- while an agent has the chat -------------------------------------------------------------------------------------
async def test_own_commands_are_answered_while_an_agent_has_the_chat(world: World, staffed: App) -> None:
    cases = staffed.services.cases
    assert cases is not None
    chat = Chat(world, next(world.users), app=staffed)
    await chat.identify(BY_NAME["Nur Aini"])
    await chat.command("start")
    assert await chat.press(text("btn_agent")) == []  # the acknowledgement goes with the case, through the outbox
    [opened] = await acknowledgements(staffed, chat.user)
    assert "saya teruskan ke agen kami" in opened
    case = await cases.active_case(chat.user)
    assert case is not None

    await chat.send("halo kak")
    assert chat.last.relay_case is not None and chat.texts == []  # for the agent, not for the bot

    assert await chat.command("help") == [text("help"), text("case_in_progress")]
    assert chat.last.relay_case is None
    [overview] = await chat.command("status")
    assert "Posisi sertifikat Kak Nur Aini" in overview and "Insentif Kak Nur Aini" in overview
    assert chat.buttons() == [] and chat.last.relay_case is None
    assert await chat.command("lang", "en") == [text("lang_set", "en")]
    assert await chat.command("lang") == [text("lang_choose", "en")]
    assert await chat.press("Bahasa Indonesia") == [text("lang_set")]
    assert await chat.command("start") == [text("case_in_progress")]
    assert chat.last.relay_case is None
    assert await cases.active_case(chat.user) == case  # none of that touched the case

    # /logout unlinks and closes the case: the agent must not go on about the records with an unverified account.
    assert await chat.command("logout") == [text("logout_done_case_closed")]
    assert await cases.active_case(chat.user) is None
    assert await staffed.services.accounts.linked_participant(chat.user) is None
    async with staffed.engine.connect() as conn:
        posted = await conn.scalars(select(OutboxMessage.payload).where(OutboxMessage.case_id == case.id))
        assert text("case_closed_by_logout_staff") in [p.get("text") for p in posted]


async def test_an_unverified_participant_with_an_agent_is_not_asked_to_verify(world: World, staffed: App) -> None:
    cases = staffed.services.cases
    assert cases is not None
    chat = Chat(world, next(world.users), app=staffed)
    await chat.command("start")
    await chat.press(text("btn_agent"))
    assert await chat.command("status") == [text("case_status_not_linked")]
    assert chat.state is not None and chat.phase == "idle"  # a birth date typed now would go to the agent
    assert await chat.command("logout") == [text("logout_not_linked"), text("case_in_progress")]
    assert await cases.active_case(chat.user) is not None
    assert await chat.command("cancel") == [text("case_closed_by_participant")]


# --- language, /cancel, /logout ---------------------------------------------------------------------------------------
async def test_lang_switches_to_english_and_back(world: World) -> None:
    chat = world.chat()
    assert await chat.command("lang", "en") == [text("lang_set", "en")]
    welcome, menu = await chat.command("start")
    assert welcome.startswith("Hello!") and menu == text("menu", "en")
    assert text("btn_menu_certificate", "en") in chat.labels()
    assert await chat.command("status") == [text("identify_needed", "en"), text("identify_ask_contact", "en")]
    assert await chat.contact(BY_NAME["Citra Dewi"].phone) == [text("identify_ask_second_factor", "en")]
    linked, summary, step = await chat.send(born(BY_NAME["Citra Dewi"]))
    assert linked == text("identify_linked", "en") and "Certificate status for Citra Dewi" in summary
    assert "Step 1/" in step and "finish the training" in step
    assert await chat.command("lang") == [text("lang_choose", "en")]
    assert await chat.press("Bahasa Indonesia") == [text("lang_set", "id")]
    assert (await chat.command("help"))[0] == text("help")


async def reach(world: World, phase: str) -> Chat:
    chat = world.chat()
    await chat.command("start")
    if phase in ("await_contact", "await_second_factor"):
        await chat.command("status")
    if phase == "await_second_factor":
        await chat.contact(BY_NAME["Dedi Kurniawan"].phone)
    if phase == "choose_enrollment":
        await chat.identify(BY_NAME["Rudi Hartono"])
    if phase == "troubleshoot":
        await chat.identify(BY_NAME["Dedi Kurniawan"])
    assert chat.phase == phase
    return chat


PHASES = ("idle", "await_contact", "await_second_factor", "choose_enrollment", "troubleshoot")


@pytest.mark.parametrize("phase", PHASES)
async def test_cancel_works_from_every_state(world: World, phase: str) -> None:
    chat = await reach(world, phase)
    linked = await world.app.services.accounts.linked_participant(chat.user)
    old_buttons = chat.buttons()
    assert await chat.command("cancel") == [text("cancelled")]
    assert chat.last.replies[0].remove_keyboard and chat.phase == "idle"
    assert await world.app.services.accounts.linked_participant(chat.user) == linked  # cancel is not logout
    for button in old_buttons:
        assert await chat.event(EventKind.BUTTON, button.data) == [] and chat.last.notice == text("button_expired")
    if phase == "await_second_factor":  # the birth date is just a question now, never a second factor
        await chat.send(born(BY_NAME["Dedi Kurniawan"]))
        assert await world.app.services.accounts.linked_participant(chat.user) is None


@pytest.mark.parametrize("phase", PHASES)
async def test_logout_works_from_every_state(world: World, phase: str) -> None:
    chat = await reach(world, phase)
    was_linked = await world.app.services.accounts.linked_participant(chat.user) is not None
    assert was_linked is (phase in ("choose_enrollment", "troubleshoot"))
    assert await chat.command("logout") == [text("logout_done" if was_linked else "logout_not_linked")]
    assert chat.phase == "idle" and chat.last.replies[0].remove_keyboard
    assert await world.app.services.accounts.linked_participant(chat.user) is None
    assert await chat.command("status") == [text("identify_needed"), text("identify_ask_contact")]


# --- identity ---------------------------------------------------------------------------------------------------------
async def test_someone_elses_contact_is_refused(world: World) -> None:
    dedi = BY_NAME["Dedi Kurniawan"]
    for owner in (None, 42):  # a contact card without a Telegram account, another Telegram user
        chat = world.chat()
        await chat.command("status")
        assert await chat.contact(dedi.phone, contact_user_id=owner) == [text("identify_contact_not_yours")]
        assert chat.phase == "idle" and chat.state is not None and chat.state["candidate"] == 0
        assert await chat.send(born(dedi)) != [text("identify_linked")]
        assert await world.app.services.accounts.linked_participant(chat.user) is None


async def test_a_typed_or_unknown_number_proves_nothing(world: World) -> None:
    chat = world.chat()
    await chat.command("status")
    assert await chat.send("0812-0000-0004") == [text("identify_typed_number"), text("identify_ask_contact")]
    assert await chat.contact("+6281299999999") == [text("identify_phone_unknown"), text("identify_phone_unknown_next")]
    assert chat.phase == "idle"


async def test_unreadable_answers_do_not_count(world: World) -> None:
    chat = world.chat()
    await chat.command("status")
    await chat.contact(BY_NAME["Dedi Kurniawan"].phone)
    for answer in ("🙏", "17 Agustusan", "12345", "", "32-13-2020"):
        assert await chat.send(answer) == [text("identify_unreadable", looks_like_nik=False)]
    # Words, not a date: a question typed mid-step gets the way out (/cancel) too.
    for question in ("halo kak", "sertifikat saya kapan keluar?"):
        [hint] = await chat.send(question)
        assert hint == text("identify_unreadable", looks_like_nik=False, question=True) and "/cancel" in hint
    assert await chat.send("3273011708950004") == [text("identify_unreadable", looks_like_nik=True)]
    assert chat.phase == "await_second_factor"
    assert await chat.send("01-01-1990") == [text("identify_wrong", tries_left=MAX_FAILURES - 1)]
    assert await chat.send("0004") == [text("identify_linked"), *chat.texts[1:]]  # the last 4 NIK digits
    assert await world.app.services.accounts.linked_participant(chat.user) == world.participant_ids[4]


async def test_five_failures_lock_the_conversation_out(world: World) -> None:
    dedi = BY_NAME["Dedi Kurniawan"]
    chat = world.chat()
    await chat.command("status")
    await chat.contact(dedi.phone)
    for tries_left in range(MAX_FAILURES - 1, 0, -1):
        assert await chat.send("9999") == [text("identify_wrong", tries_left=tries_left)]
    [locked] = await chat.send("01-01-2001")
    assert "Terlalu banyak percobaan" in locked and "WIB" in locked and chat.phase == "idle"
    [again] = await chat.contact(dedi.phone)  # the sixth try cannot even start
    assert again.split("<b>")[0] == locked.split("<b>")[0]
    needed, reminder = await chat.command("status")
    assert needed == text("identify_needed") and reminder.split("<b>")[0] == locked.split("<b>")[0]
    assert "pengaduan" in again and "/cancel" not in again  # what to do next, also without the agent button
    # Even a stored state that still waits for the second factor gets nowhere with the right answer.
    waiting = dict(chat.state or {}, phase="await_second_factor", candidate=world.participant_ids[dedi.key])
    chat.state = waiting
    [refused] = await chat.send(born(dedi))
    assert refused.split("<b>")[0] == locked.split("<b>")[0]
    assert await world.app.services.accounts.linked_participant(chat.user) is None
    # Back to idle, a typed date or 4 digits is an answer too: the lock reminder, not an FAQ match.
    chat.state = dict(chat.state or {}, phase="idle", candidate=0)
    for typed in (born(dedi), "lahir 17 agustus 1995 kak", "0004"):
        [reminder] = await chat.send(typed)
        assert reminder.split("<b>")[0] == locked.split("<b>")[0], typed
    # Every other test signs in as Dedi: lift his lock (it is per participant) the way an operator would.
    async with world.app.engine.begin() as conn:
        await conn.execute(delete(IdentityLockout))


async def test_a_lockout_lasts_thirty_minutes(world: World) -> None:
    accounts = world.app.services.accounts
    user, participant = 9_900_001, world.participant_ids[4]
    dedi = BY_NAME["Dedi Kurniawan"]
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    for n in range(1, MAX_FAILURES):
        outcome = await accounts.verify_second_factor(user, participant, "01-01-1990", now=start)
        assert (outcome.result, outcome.tries_left) == (SecondFactorResult.WRONG, MAX_FAILURES - n)
    outcome = await accounts.verify_second_factor(user, participant, "01-01-1990", now=start)
    assert outcome.result is SecondFactorResult.LOCKED and outcome.locked_until == start + LOCKOUT
    assert timedelta(minutes=30) == LOCKOUT
    almost = start + LOCKOUT - timedelta(seconds=1)
    for answer in (born(dedi), "0004", "halo"):
        refused = await accounts.verify_second_factor(user, participant, answer, now=almost)
        assert refused.result is SecondFactorResult.LOCKED
    assert await accounts.locked_until(user, now=almost) == start + LOCKOUT
    after = start + LOCKOUT + timedelta(seconds=1)
    assert await accounts.locked_until(user, now=after) is None
    wrong = await accounts.verify_second_factor(user, participant, "02-02-1990", now=after)
    assert (wrong.result, wrong.tries_left) == (SecondFactorResult.WRONG, MAX_FAILURES - 1)  # a fresh count
    linked = await accounts.verify_second_factor(user, participant, born(dedi), now=after)
    assert linked.result is SecondFactorResult.LINKED
    assert await accounts.linked_participant(user) == participant
    assert await accounts.logout(user)


# --- nothing anyone types breaks a flow or Telegram's HTML ------------------------------------------------------------
FRAGMENTS = (
    "",
    " ",
    "<b>",
    "</a>",
    "&",
    "&amp;",
    "<script>alert(1)</script>",
    "'; DROP TABLE participants; --",
    '" OR 1=1 --',
    "{{ 7*7 }}",
    "{% for x in y %}",
    "sertif blm muncul gmn kak",
    "مرحبا بالعالم",  # right to left
    "\u202eevil\u202c",
    "\x00\x01\x1b[31m",
    "😀👍🏽🇮🇩",
    "/start",
    "#1",
    "0812-0000-0004",
    "17-08-1995",
)
texts = st.one_of(
    st.text(max_size=300),
    st.sampled_from(FRAGMENTS),
    st.lists(st.sampled_from(FRAGMENTS), min_size=2, max_size=6).map(" ".join),
    st.builds(lambda s, n: (s * n)[: 4096 + n], st.text(min_size=1, max_size=4), st.integers(4097, 5000)),
)
pressed = st.builds(
    "abcd|{}|{}".format,  # the current nonce: the press reaches the flows
    st.sampled_from([action.value for action in Action]),
    st.one_of(
        st.sampled_from(("certificate", "incentive", "status", "agent", "y", "n", "next", "solved", "id", "en", "")),
        st.integers(0, 25).map(str),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", max_size=12),
    ),
)
kinds = st.sampled_from((EventKind.TEXT, EventKind.TEXT, EventKind.COMMAND, EventKind.BUTTON, EventKind.OTHER))
phases = st.sampled_from(("idle", "await_contact", "await_second_factor", "troubleshoot", "choose_enrollment"))
_fuzz_users = itertools.count(9_500_001)


@pytest.mark.parametrize("linked_to", [None, *BY_NAME], ids=lambda name: name.split()[0] if name else "nobody")
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(texts, pressed), kind=kinds, phase=phases, locale=st.sampled_from(("id", "en")))
async def test_no_text_breaks_a_flow_or_telegram_html(
    world: World, linked_to: str | None, body: str, kind: EventKind, phase: str, locale: str
) -> None:
    """Every persona's records (and nobody's), whatever arrives in whatever state: a few examples each."""
    chat = Chat(world, next(_fuzz_users))
    if linked_to is not None:
        persona = BY_NAME[linked_to]
        participant = world.participant_ids[persona.key]
        await world.app.services.accounts.verify_second_factor(chat.user, participant, born(persona))
    # Ayu has bought nothing: were a random answer ever her second factor, her reply is a short one.
    chat.state = {"phase": phase, "locale": locale, "candidate": world.participant_ids[1], "pending": "certificate",
                  "nonce": "abcd", "steps": ["wait", "escalate"], "enrollment": 5}  # fmt: skip
    name, _, argument = body.partition(" ")
    replies = await chat.event(kind, name if kind is EventKind.COMMAND else body, argument=argument)
    for reply in replies:
        assert_telegram_html(reply)
    if kind is EventKind.BUTTON:
        assert replies or chat.last.notice
        if not body.startswith("abcd|"):
            assert replies == [] and chat.last.notice == text("button_expired", locale)
    if kind is not EventKind.BUTTON:
        assert replies, "every message gets an answer"


async def test_done_still_missing_before_the_date_is_still_within_time(world: World) -> None:
    # Hana's training was reported yesterday; the certificate is due by the end of today (a working day after the
    # report). "Done, still missing" at the wait step must not open an agent case before that date.
    chat = world.chat()
    [_, step] = await chat.identify(BY_NAME["Hana Safitri"])
    status = await world.app.services.status.status(world.participant_ids[7])
    assert status is not None
    (d,) = status.diagnoses
    assert d.stage is Stage.AWAITING_PMO and not d.overdue and d.expected_by is not None
    assert world.today <= d.expected_by
    assert f"tunggu sampai {long_date(d.expected_by)}" in step
    [answer] = await chat.press(text("btn_step_next"))
    assert answer == text("step_wait_within_time", wait_until=d.expected_by)
    # The same buttons stay: pressed again after the date, they lead on (before it, the same answer).
    assert chat.labels() == [text("btn_step_next"), text("btn_step_solved")] and chat.phase == "troubleshoot"
    assert await chat.press(text("btn_step_next")) == [answer]


async def test_a_report_expected_yesterday_is_not_late_yet(world: World) -> None:
    # Dedi's report was expected yesterday but is late only after 3 working days: the wait step names that day and
    # "done, still missing" says he is still within time — no "contact the platform" yet.
    chat = world.chat()
    [_, step] = await chat.identify(BY_NAME["Dedi Kurniawan"])
    status = await world.app.services.status.status(world.participant_ids[4])
    assert status is not None
    (d,) = status.diagnoses
    assert d.on_time_until is not None and d.expected_by is not None and d.expected_by < d.on_time_until
    assert f"tunggu sampai {long_date(d.on_time_until)}" in step and long_date(d.expected_by) in step
    [answer] = await chat.press(text("btn_step_next"))
    assert answer == text("step_wait_within_time", wait_until=d.on_time_until)


async def test_a_certificate_without_a_rating_says_the_schedule_waits_for_it(world: World) -> None:
    chat = world.chat()
    [summary, step] = await chat.identify(BY_NAME["Dian Permatasari"])
    assert "Sertifikat terbit" in summary and "jadwal insentif menunggu ulasanmu" in summary
    assert "Sertifikat sudah terbit" in step
    [rating] = await chat.press(text("btn_step_next"))
    assert "Jadwal insentif menunggu ulasanmu" in rating and "dashboard Prakerja" in rating
    assert "Sertifikat tidak akan diproses" not in rating
    [wait] = await chat.press(text("btn_step_next"))
    assert "tunggu sampai" in wait
    [within] = await chat.press(text("btn_step_next"))  # rated just now: the schedule is not late yet
    assert "Masih dalam batas waktu" in within


async def test_status_after_a_failed_transfer_names_the_reason_and_offers_i_fixed_it(world: World) -> None:
    chat = world.chat()
    texts = await chat.identify(BY_NAME["Umi Kalsum"])
    joined = "\n".join(texts)
    assert "diblokir" in joined and "Sudah saya perbaiki" in joined
    # One message with the incentive's own buttons: no certificate steps, one person button.
    labels = chat.labels()
    assert text("btn_incentive_fixed") in labels and text("btn_step_next") not in labels
    assert labels.count(text("btn_agent")) + labels.count(text("btn_complaint")) == 1
    [fixed] = await chat.press(text("btn_incentive_fixed"))
    assert "formulir pengaduan" in fixed  # no staff group here: the form is where it is reported


@pytest.mark.parametrize(
    ("name", "state", "has_next_date"),
    [
        ("Maya Anggraini", "transferred", False),  # paid: never "your schedule is not there yet"
        ("Bayu Pratama", "overdue", False),  # an overdue date is not "the next" one
        ("Lukman Hakim", "scheduled", True),
        ("Dian Permatasari", "waiting_rating", False),
        ("Agus Salim", "waiting_schedule", False),
        ("Kartika Sari", "overdue", False),  # the wrong printed name does not hide the late schedule
        ("Nur Aini", "failed", False),
        ("Bambang Wijaya", "not_eligible", False),
        ("Citra Dewi", "none", False),
    ],
)
async def test_faq_participant_context_follows_the_diagnosis(
    world: World, name: str, state: str, has_next_date: bool
) -> None:
    persona = BY_NAME[name]
    status = await world.app.services.status.status(world.participant_ids[persona.key])
    assert status is not None
    view = participant_view(world.app.services.directory, status)
    assert view["incentive_state"] == state
    assert (view["next_incentive_date"] is not None) is has_next_date
    if has_next_date:
        assert view["next_incentive_date"] >= world.today
    if state in ("scheduled", "overdue", "waiting_schedule", "transferred", "failed"):
        assert view["incentive_date"] is not None
    assert set(view) == set(SAMPLE_PARTICIPANTS[0])  # the admin's preview renders with the same keys


async def test_a_training_in_progress_mentions_the_rating_it_will_need(world: World) -> None:
    chat = world.chat()
    [summary, step] = await chat.identify(BY_NAME["Citra Dewi"])
    for said in (summary, step):  # since 2021: on the dashboard, after the certificate, for the schedule
        assert "Beri Ulasan" in said and "jadwal insentif" in said


async def test_english_texts_have_no_untranslated_scheme_and_say_working_day_once(world: World) -> None:
    chat = world.chat()
    await chat.command("lang")
    await chat.press("English")
    persona = BY_NAME["Dian Permatasari"]
    await chat.command("status")
    await chat.contact(persona.phone)
    [linked, summary, first] = await chat.send(born(persona))
    assert linked == text("identify_linked", "en")
    assert "2023 onwards scheme" in summary and "ke atas" not in summary
    assert "Rp600,000" in summary and "day(s)" not in summary + first
    [rating] = await chat.press(text("btn_step_next", "en"))
    assert "1 working day after the review" in rating
    [wait] = await chat.press(text("btn_step_next", "en"))
    assert "cuti bersama (the government's collective leave days)" in wait


async def test_i_fixed_it_with_a_staff_group_hands_the_resend_to_an_agent(world: World, staffed: App) -> None:
    cases = staffed.services.cases
    assert cases is not None
    chat = Chat(world, next(world.users), app=staffed)
    [summary] = await chat.identify(BY_NAME["Vino Saputra"])  # account closed: a new account, then "I fixed it"
    assert "<b>sudah ditutup</b>" in summary and "agen kami meneruskannya" in summary
    assert chat.labels() == [text("btn_incentive_fixed"), text("btn_agent")]  # one person button, an agent's
    [thanks] = await chat.press(text("btn_incentive_fixed"))
    assert thanks == text("incentive_fixed", staffed=True, complaint=world.app.services.directory["complaint_form"])
    [opened] = await acknowledgements(staffed, chat.user)
    assert "saya teruskan ke agen kami" in opened
    assert await cases.active_case(chat.user) is not None
    await chat.command("cancel")


async def test_the_message_that_opened_a_case_delivered_again_is_answered_not_relayed(
    world: World, staffed: App
) -> None:
    """A webhook turn can store the case and then fail (the database restarting) before its reply goes out; Telegram
    delivers the message again. That redelivery used to be relayed to the agent, and the participant never heard
    that a person has the chat."""
    cases = staffed.services.cases
    assert cases is not None
    chat = Chat(world, next(world.users), app=staffed)
    before = chat.state
    assert await chat.event(EventKind.TEXT, "tolong sambungkan ke agen manusia", message_id=41) == []
    [opened] = await acknowledgements(staffed, chat.user)  # queued with the case, in its transaction
    assert "agen" in opened and chat.last.relay_case is None
    case = await cases.active_case(chat.user)
    assert case is not None and case.opened_message_id == 41
    chat.state = before  # the failed turn saved nothing
    # Its reply may have gone out before the failure: the redelivery says nothing new, and queues nothing twice.
    assert await chat.event(EventKind.TEXT, "tolong sambungkan ke agen manusia", message_id=41) == []
    assert await acknowledgements(staffed, chat.user) == [opened] and chat.last.relay_case is None
    await chat.event(EventKind.TEXT, "halo, masih menunggu", message_id=42)
    assert chat.texts == [] and chat.last.relay_case is not None  # a new message goes to the agent
    await chat.command("cancel")
