"""The human desk's rules without Telegram: when agents answer (working days and hours in Asia/Jakarta), the 24-hour
reopening, what a case stores (redacted), /queue in pages with topic links, a case card cut to Telegram's size, and
the staff-membership cache forgetting a member who left."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Chat, ChatMemberLeft, ChatMemberMember, ChatMemberUpdated, User
from sqlalchemy import insert, select, update
from sqlalchemy import text as text_sql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import build_app
from bot.flows.handoff import MAX_MESSAGE, CaseHandoff, plain_length
from bot.flows.staff import AgentRoster
from bot.flows.turn import HandoffRequest
from bot.handlers import agent
from bot.handlers.throttle import install_throttle
from bot.settings import Settings
from bot.telegram import make_bot
from bot.texts import default_renderer
from core.calendar import JAKARTA, default_calendar, today_in_jakarta
from core.cases import CaseService, CaseView, ChatMessage
from core.db import Database
from core.demo import seed_demo
from core.hours import CANNED_VARIABLES, default_support_desk
from core.models import Case, CaseMessage, OutboxMessage, OutboxStatus, TelegramLink
from core.outbox import STAFF, Outbox
from core.rules import default_rules
from tests.fake_bot_api import FakeBotApi
from tests.html_check import html_problems

GROUP_A, GROUP_B = -100_700_001, -100_700_002
AGENT = 9_800_001
USER = 9_810_001


def jakarta(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=JAKARTA)


# --- business hours -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("now", "answer_by"),
    [
        ("2025-03-04 10:00", None),  # Tuesday, in hours
        ("2025-03-04 08:00", None),  # the minute they open
        ("2025-03-04 07:59", "2025-03-04 08:00"),  # before opening: the same day
        ("2025-03-04 17:00", "2025-03-05 08:00"),  # closing time is out of hours
        ("2025-03-07 18:30", "2025-03-10 08:00"),  # Friday evening: Monday
        ("2025-03-08 10:00", "2025-03-10 08:00"),  # Saturday
        ("2025-03-09 23:59", "2025-03-10 08:00"),  # Sunday night
        ("2026-03-17 18:00", "2026-03-25 08:00"),  # Nyepi (18 cuti bersama, 19) then Lebaran cuti bersama (20, 23, 24)
        ("2025-03-27 17:30", "2025-04-08 08:00"),  # Nyepi cuti bersama 28 Mar, Idul Fitri 31 Mar–1 Apr, cuti to 7 Apr
        ("2025-03-31 10:00", "2025-04-08 08:00"),  # on Idul Fitri itself, in what would be business hours
        ("2025-04-02 07:00", "2025-04-08 08:00"),  # a cuti bersama morning
    ],
)
def test_when_agents_answer(now: str, answer_by: str | None) -> None:
    desk = default_support_desk()
    expected = jakarta(answer_by) if answer_by else None
    assert desk.next_open(jakarta(now)) == expected
    assert desk.next_open(jakarta(now).astimezone(UTC)) == expected  # the same instant given in UTC


@pytest.mark.parametrize(
    ("opened", "due"),
    [
        ("2025-03-04 10:00", "2025-03-04 11:00"),  # in hours: an hour later
        ("2025-03-04 16:30", "2025-03-05 08:30"),  # half an hour today, half tomorrow morning
        ("2025-03-04 22:00", "2025-03-05 09:00"),  # at night: the clock starts when agents do
        ("2025-03-07 16:45", "2025-03-10 08:45"),  # Friday afternoon: Monday morning
        ("2025-03-27 16:30", "2025-04-08 08:30"),  # across Nyepi and the Lebaran holidays and cuti bersama
    ],
)
def test_the_first_reply_target_counts_business_time_only(opened: str, due: str) -> None:
    desk = default_support_desk()
    assert desk.first_reply_target == timedelta(minutes=60)  # knowledge/support.yaml sla
    assert desk.first_reply_due(jakarta(opened)) == jakarta(due)
    assert desk.first_reply_due(jakarta(opened).astimezone(UTC)) == jakarta(due)
    assert desk.business_time_between(jakarta(opened), jakarta(due)) == timedelta(minutes=60)


def test_business_time_between_leaves_out_nights_weekends_and_holidays() -> None:
    desk = default_support_desk()
    assert desk.business_time_between(jakarta("2025-03-07 16:00"), jakarta("2025-03-10 09:00")) == timedelta(hours=2)
    assert desk.business_time_between(jakarta("2025-03-31 09:00"), jakarta("2025-03-31 12:00")) == timedelta()
    assert desk.business_time_between(jakarta("2025-03-04 12:00"), jakarta("2025-03-04 11:00")) == timedelta()


async def test_a_new_case_is_due_a_first_reply_within_the_target(
    cases: CaseService, sqlite_engine: AsyncEngine
) -> None:
    opened = await cases.open_case(USER, None, "participant_asked", "id", None, [], "<b>kartu</b>", "P")
    async with sqlite_engine.connect() as conn:
        row = (await conn.execute(select(Case.opened_at, Case.first_reply_due).where(Case.id == opened.case.id))).one()
    assert row.first_reply_due == default_support_desk().first_reply_due(row.opened_at)
    assert row.first_reply_due >= row.opened_at + timedelta(minutes=60)


def test_canned_replies_fill_in_their_variables_and_use_no_others() -> None:
    desk = default_support_desk()
    known = desk.canned_values("SITI RAHMAWATI", "id", 42, "Ani")
    assert known == {"first_name": "Siti", "case_id": 42, "agent": "Ani"}
    greeting = desk.canned_text("greeting", "id", known)
    assert greeting is not None and greeting.startswith("Halo Siti, saya Ani dari Prakerja Helpdesk. Kasus #42")
    english = desk.canned_text("greeting", "en", desk.canned_values(None, "en", 7, "Budi"))
    assert english is not None and english.startswith("Hello there, I'm Budi") and "#7" in english
    assert desk.canned_text("nothing_like_it", "id", known) is None
    for name, texts in desk.canned.items():
        for locale in ("id", "en"):
            used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", texts[locale]))
            assert used <= CANNED_VARIABLES, (name, locale, used)


def test_the_holidays_used_above_are_the_calendars() -> None:
    calendar = default_calendar()
    closed = ["2025-03-28", "2025-03-31", "2025-04-01", "2025-04-02", "2025-04-07", "2026-03-18", "2026-03-19"]
    assert not any(calendar.is_working_day(datetime.fromisoformat(d).date()) for d in closed)
    assert calendar.is_working_day(datetime.fromisoformat("2025-04-08").date())


# --- cases ----------------------------------------------------------------------------------------------------------
@pytest.fixture
async def cases(sqlite_engine: AsyncEngine) -> CaseService:
    return CaseService(sqlite_engine, [GROUP_A, GROUP_B], default_support_desk())


async def agent_close(cases: CaseService, case_id: int) -> CaseView:
    closing = ChatMessage("text", "/close", [], GROUP_A, 99)
    return await cases.close_by_agent(case_id, AGENT, "ditutup", "Terima kasih", (), closing)


async def open_and_close(cases: CaseService) -> datetime:
    opened = await cases.open_case(USER, None, "participant_asked", "id", None, [], "<b>kartu</b>", "P")
    closed = await agent_close(cases, opened.case.id)
    assert closed.closed_at is not None
    return closed.closed_at


async def test_writing_again_within_24_hours_reopens_the_case(cases: CaseService) -> None:
    closed_at = await open_and_close(cases)
    assert await cases.reopen_recent(USER, now=closed_at + timedelta(hours=24) + timedelta(seconds=1)) is None
    reopened = await cases.reopen_recent(USER, now=closed_at + timedelta(hours=24) - timedelta(seconds=1))
    assert reopened is not None and reopened.status == "open"
    closed_again = await agent_close(cases, reopened.id)
    assert closed_again.closed_at is not None
    assert await cases.reopen_recent(USER, now=closed_again.closed_at + timedelta(hours=24)) is not None  # just in


async def test_a_case_closed_by_the_participant_stays_closed(cases: CaseService) -> None:
    opened = await cases.open_case(USER, None, "participant_asked", "id", None, [], "<b>kartu</b>", "P")
    assert await cases.close_by_participant(opened.case.id, USER, "ditutup peserta")
    assert await cases.reopen_recent(USER) is None


async def test_case_messages_are_stored_redacted(cases: CaseService, sqlite_engine: AsyncEngine) -> None:
    opened = await cases.open_case(USER, None, "participant_asked", "id", None, [], "<b>kartu</b>", "P")
    said = "NIK saya 3174012345678901, lahir 17-08-1990, HP 081234567890"
    await cases.relay_from_participant(opened.case, ChatMessage("text", said, [], USER, 1))
    await cases.agent_message(
        opened.case.id, AGENT, ChatMessage("text", "Saya telepon ke 081298765432 ya", [], GROUP_A, 2)
    )
    await cases.note(opened.case.id, AGENT, "nomor kartu 5123456789012345")
    async with sqlite_engine.connect() as conn:
        stored = " | ".join(str(t) for t in (await conn.scalars(select(CaseMessage.text))).all())
    for secret in ("3174012345678901", "17-08-1990", "081234567890", "081298765432", "5123456789012345"):
        assert secret not in stored
    assert "NIK saya" in stored and "Saya telepon ke" in stored and "nomor kartu" in stored


async def test_an_edit_too_long_for_one_message_is_relayed_in_two(cases: CaseService) -> None:
    opened = await cases.open_case(USER, None, "participant_asked", "id", None, [], "<b>kartu</b>", "P")
    edited = ChatMessage("text", "y" * 4096, [], USER, 1)
    await cases.relay_from_participant(opened.case, edited, header="✏️ diubah:\n", edit=True)
    async with cases.sessions() as session:
        payloads = await session.scalars(select(OutboxMessage.payload).where(OutboxMessage.method == "relayText"))
        texts = [p["text"] for p in payloads.all()]
    assert [len(t) for t in texts] == [4096, len("✏️ diubah:\n")] and "".join(texts) == "✏️ diubah:\n" + "y" * 4096


# --- /queue ---------------------------------------------------------------------------------------------------------
async def test_the_queue_comes_in_pages_of_this_group_with_links_and_masked_names(sqlite_db: Database) -> None:
    personas = await seed_demo(sqlite_db.engine, default_rules(), default_calendar(), b"k", today_in_jakarta())
    app = build_app(Settings(_env_file=None, staff_chat_id=[GROUP_A, GROUP_B]), sqlite_db)
    staff = app.staff
    assert staff is not None
    staff.cases.staff_chat_ids = [GROUP_A]
    participant_id, persona = personas[0]
    ids = []
    for n in range(80):
        who = participant_id if n == 0 else None
        opened = await staff.cases.open_case(USER + n, who, "overdue", "id", "awaiting_pmo", [], "kartu", "P")
        await staff.cases.topic_created(USER + n, GROUP_A, 1000 + n)
        ids.append(opened.case.id)
    staff.cases.staff_chat_ids = [GROUP_B]
    elsewhere = await staff.cases.open_case(USER + 99, None, "overdue", "id", None, [], "kartu", "P")
    pages = await staff.queue(GROUP_A)
    assert len(pages) >= 2
    assert all(plain_length(page) <= MAX_MESSAGE and html_problems(page) == [] for page in pages)
    assert pages[0].startswith(f"<b>Antrean kasus (80)</b>, terlama dulu — bagian 1/{len(pages)}")
    listed = [int(n) for page in pages for n in re.findall(r">#(\d+)</a>", page)]
    assert listed == ids and elsewhere.case.id not in listed  # oldest first, each once, only this group's
    assert f'<a href="https://t.me/c/700001/1000">#{ids[0]}</a>' in pages[0]
    first, last = persona.name.split()[0], persona.name.split()[-1]
    assert f"{first[:2]}{'*' * (len(first) - 2)}" in pages[0] and last not in "".join(pages)
    assert "belum terverifikasi" in pages[0]


# --- the case card --------------------------------------------------------------------------------------------------
async def test_a_long_case_card_is_cut_to_fit(sqlite_db: Database) -> None:
    app = build_app(Settings(_env_file=None, staff_chat_id=[GROUP_A]), sqlite_db)
    staff = app.staff
    assert staff is not None
    handoff: CaseHandoff = staff.handoff
    lines = [f"👤 pesan {n:02d} " + "kata " * 38 for n in range(40)]  # about 8,000 characters
    request = HandoffRequest(USER, None, "participant_asked", "id", ["rating"], lines, "Peserta")
    card, _, _ = await handoff.card(request)
    freak = HandoffRequest(USER, None, "participant_asked", "id", [], [], "A&B " * 1500)
    cut, _, _ = await handoff.card(freak)
    assert plain_length(card) <= MAX_MESSAGE and html_problems(card) == []
    assert "pesan 39" in card and "pesan 00" not in card  # the oldest lines went first
    assert "/claim" in card and "Belum terverifikasi" in card
    assert plain_length(cut) <= MAX_MESSAGE and html_problems(cut) == [] and cut.endswith("…")


# --- who is staff ---------------------------------------------------------------------------------------------------
async def test_a_member_who_leaves_is_no_agent_at_once(api: FakeBotApi) -> None:
    api.add_forum_group(GROUP_A, members={AGENT: "member"})
    bot: Bot = make_bot(Settings(_env_file=None, bot_token=api.token, bot_api_url=api.url))
    roster = AgentRoster(frozenset())
    lookup = agent.member_lookup(bot)
    try:
        assert await roster.allows(GROUP_A, AGENT, lookup)
        api.set_member(GROUP_A, AGENT, "left")
        assert await roster.allows(GROUP_A, AGENT, lookup)  # remembered (one getChatMember per minute) …
        user = User(id=AGENT, is_bot=False, first_name="Sari")
        left = ChatMemberUpdated(
            chat=Chat(id=GROUP_A, type="supergroup", title="Prakerja Staff", is_forum=True),
            from_user=user,
            date=datetime.now(UTC),
            old_chat_member=ChatMemberMember(user=user),
            new_chat_member=ChatMemberLeft(user=user),
        )
        staff = SimpleNamespace(roster=roster)
        await agent.on_member_change(left, staff, [GROUP_A])  # … until Telegram says so
        assert not await roster.allows(GROUP_A, AGENT, lookup)
        assert roster.ttl <= 60
    finally:
        await bot.session.close()


async def test_a_topic_name_is_plain_text(sqlite_db: Database) -> None:
    """HTML in a participant's Telegram name is shown as typed, not as "&lt;b&gt;" (a topic's name is not HTML)."""
    app = build_app(Settings(_env_file=None, staff_chat_id=[GROUP_A]), sqlite_db)
    staff = app.staff
    assert staff is not None
    request = HandoffRequest(USER, None, "participant_asked", "id", [], [], "<b>Budi</b> & Sari")
    card, topic, _ = await staff.handoff.card(request)
    assert topic == f"<b>Budi</b> & Sari · {USER}"
    assert "&lt;b&gt;Budi&lt;/b&gt; &amp; Sari" in card  # the card is HTML: there it stays escaped


async def test_a_recreated_topic_keeps_its_name_after_many_other_topics(cases: CaseService) -> None:
    """The name is stored with the topic, not looked up among the last 500 topic creations in the outbox."""
    opened = await cases.open_case(USER, None, "participant_asked", "id", None, [], "<b>kartu</b>", "Budi · 1")
    await cases.topic_created(USER, opened.case.staff_chat_id or GROUP_A, 10)
    async with cases.sessions.begin() as session:  # 501 other participants' topics since, all sent long ago
        await session.execute(update(OutboxMessage).values(status=OutboxStatus.SENT))
        others = [{"name": f"P {n}"} for n in range(501)]
        await session.execute(
            insert(OutboxMessage),
            [{"lane": STAFF, "chat_id": GROUP_A, "method": "createForumTopic", "payload": p, "status": "sent"}
             for p in others],
        )  # fmt: skip
    await cases.topic_lost(USER)
    async with cases.sessions() as session:
        pending = (
            await session.execute(
                select(OutboxMessage.method, OutboxMessage.payload).where(OutboxMessage.status == OutboxStatus.PENDING)
            )
        ).all()
    assert [tuple(row) for row in pending] == [
        ("createForumTopic", {"name": "Budi · 1"}),
        ("sendMessage", {"text": "<b>kartu</b>", "parse_mode": "HTML"}),
    ]


async def test_sent_rows_keep_no_message_text_and_are_purged_after_retention(cases: CaseService) -> None:
    opened = await cases.open_case(USER, None, "participant_asked", "id", None, [], "<b>kartu</b>", "P")
    await cases.relay_from_participant(opened.case, ChatMessage("text", "nama ibu kandung saya Siti", [], USER, 1))
    outbox = Outbox(cases.sessions.kw["bind"])
    rows = await outbox.pending(STAFF)
    await outbox.mark_sent([r.id for r in rows], now=datetime.now(UTC) - timedelta(days=31))
    async with cases.sessions() as session:
        payloads = (await session.scalars(select(OutboxMessage.payload))).all()
    assert payloads and all(p == {} for p in payloads)
    assert await outbox.purge(datetime.now(UTC) - timedelta(days=30)) == len(rows)


def test_edits_share_the_participants_flood_throttle() -> None:
    """Edits used to skip the throttle: 200 edits in 6 s queued 200 relays."""
    dp = Dispatcher()
    throttle = install_throttle(dp, default_renderer())
    assert throttle in dp.edited_message.outer_middleware
    assert throttle in dp.message.outer_middleware and throttle in dp.callback_query.outer_middleware


async def test_a_logout_the_database_refuses_halfway_changes_nothing(sqlite_engine: AsyncEngine) -> None:
    """/logout during a case is one transaction: unlinked, case closed and agents told — or none of it."""
    [(participant_id, _), *_] = await seed_demo(
        sqlite_engine, default_rules(), default_calendar(), b"k", today_in_jakarta()
    )
    cases = CaseService(sqlite_engine, [GROUP_A], default_support_desk())
    opened = await cases.open_case(USER, participant_id, "participant_asked", "id", None, [], "kartu", "P")
    async with sqlite_engine.begin() as conn:
        await conn.execute(insert(TelegramLink).values(telegram_user_id=USER, participant_id=participant_id))
        await conn.execute(
            text_sql("CREATE TRIGGER refuse BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'the disk is full'); END")
        )
    with pytest.raises(IntegrityError):
        await cases.logout_and_close(opened.case.id, USER, "peserta keluar")
    async with sqlite_engine.connect() as conn:
        assert await conn.scalar(select(TelegramLink.participant_id).where(TelegramLink.telegram_user_id == USER))
        assert await conn.scalar(select(Case.status).where(Case.id == opened.case.id)) == "open"
    async with sqlite_engine.begin() as conn:
        await conn.execute(text_sql("DROP TRIGGER refuse"))
    assert await cases.logout_and_close(opened.case.id, USER, "peserta keluar")
    assert await cases.active_case(USER) is None
