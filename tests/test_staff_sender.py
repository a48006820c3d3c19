"""The staff queue against the fake Bot API server, on a clock the test turns: ~20 messages and ~20 topic creations in
any rolling minute per group (also across a restart), one busy group never starving another, relays late but never
lost (network and server errors retry for as long as it takes, a refused one is reported), a topic that could not be
created recovering, and agents' albums to participants reported, mirrored and kept internal when they are notes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from aiogram import Bot
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.flows.staff import staff_renderer
from bot.notifications import ParticipantSender
from bot.outbox_sender import StaffSender
from bot.settings import Settings
from bot.telegram import make_bot
from bot.texts import default_renderer
from core.accounts import AccountService
from core.cases import CaseService, CaseView, ChatMessage
from core.hours import default_support_desk
from core.models import OutboxMessage, OutboxStatus
from core.outbox import PARTICIPANT, STAFF, Outbox
from tests.fake_bot_api import ApiError, FakeBotApi, bad_request, blocked_by_user, server_error

GROUP_A, GROUP_B = -100_700_001, -100_700_002
AGENT = 9_700_001
FIRST_USER = 9_710_001


class Clock:
    """The sender's idea of now; tests move it. It starts at the real time, so that queued texts are not from the
    future."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)
        self.start = self.now

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = self.start + timedelta(seconds=seconds)


@dataclass
class Desk:
    api: FakeBotApi
    bot: Bot
    engine: AsyncEngine
    cases: CaseService
    clock: Clock

    def sender(self) -> StaffSender:
        """A staff sender as a (new) leader starts it: nothing in memory, only the database."""
        return StaffSender(self.bot, Outbox(self.engine), self.cases, clock=self.clock)

    async def open_case(self, user: int) -> CaseView:
        self.api.push_message(user, "/start")  # the participant's private chat exists
        opened = await self.cases.open_case(
            user, None, "participant_asked", "id", None, [], "<b>kartu</b>", f"P {user}"
        )
        return opened.case

    async def rows(self, **where: object) -> list[OutboxMessage]:
        async with self.engine.connect() as conn:
            query = select(OutboxMessage).order_by(OutboxMessage.id)
            for name, value in where.items():
                query = query.where(getattr(OutboxMessage, name) == value)
            return list((await conn.execute(query)).all())  # type: ignore[arg-type]

    def topic(self, user: int, chat: int = GROUP_A) -> int:
        [thread] = [t for t, name in self.api.topics(chat).items() if name == f"P {user}"]
        return thread

    def topic_texts(self, user: int, chat: int = GROUP_A) -> list[str]:
        return [m.text or m.caption or "" for m in self.api.topic_messages(chat, self.topic(user, chat))]


@pytest.fixture
async def desk(engine: AsyncEngine, api: FakeBotApi) -> AsyncIterator[Desk]:
    api.user(AGENT, "Sari")
    for group in (GROUP_A, GROUP_B):
        api.add_forum_group(group, members={AGENT: "administrator"})
    bot = make_bot(Settings(_env_file=None, bot_token=api.token, bot_api_url=api.url))
    yield Desk(api, bot, engine, CaseService(engine, [GROUP_A, GROUP_B], default_support_desk()), Clock())
    await bot.session.close()


def most_in_a_minute(times: list[datetime]) -> int:
    """The most sends in any rolling minute (a send at t counts in (t - 60 s, t])."""
    return max((sum(1 for o in times if t - timedelta(minutes=1) < o <= t) for t in times), default=0)


async def sent_times(desk: Desk, chat: int, method: str) -> list[datetime]:
    rows = await desk.rows(lane=STAFF, chat_id=chat, method=method, status=OutboxStatus.SENT)
    times = [r.sent_at for r in rows if r.sent_at is not None]
    return sorted(t if t.tzinfo else t.replace(tzinfo=UTC) for t in times)


# --- limits ---------------------------------------------------------------------------------------------------------
async def test_a_group_gets_at_most_20_messages_in_any_rolling_minute(desk: Desk) -> None:
    for n in range(45):
        await desk.cases.post_to_staff_chat(GROUP_A, None, f"pemberitahuan {n}")
    sender = desk.sender()
    counts = []
    for second in range(0, 150, 5):
        desk.clock.at(second)
        await sender.drain_once()
        counts.append(len(desk.api.calls_to("sendMessage", GROUP_A)))
    assert counts[0] == 20  # a full minute's allowance at once …
    assert counts[11] == 20  # … and nothing more until that minute has passed (t = 55 s) …
    assert counts[12] == 40 and counts[-1] == 45  # … t = 60 s, t = 120 s
    times = await sent_times(desk, GROUP_A, "sendMessage")
    assert len(times) == 45 and most_in_a_minute(times) == 20


async def test_a_restarted_sender_counts_what_was_sent_before_it(desk: Desk) -> None:
    for n in range(30):
        await desk.cases.post_to_staff_chat(GROUP_A, None, f"pemberitahuan {n}")
    desk.clock.at(0)
    await desk.sender().drain_once()
    assert len(desk.api.calls_to("sendMessage", GROUP_A)) == 20
    successor = desk.sender()  # a restart, or another worker taking the lead
    desk.clock.at(30)
    await successor.drain_once()
    assert len(desk.api.calls_to("sendMessage", GROUP_A)) == 20  # the minute is not over: nothing
    desk.clock.at(61)
    await successor.drain_once()
    assert len(desk.api.calls_to("sendMessage", GROUP_A)) == 30
    assert most_in_a_minute(await sent_times(desk, GROUP_A, "sendMessage")) == 20


async def test_topic_creations_keep_to_20_a_minute_across_a_restart(desk: Desk) -> None:
    desk.cases.staff_chat_ids = [GROUP_A]  # every new case into one group
    users = [FIRST_USER + n for n in range(25)]
    for user in users:
        await desk.open_case(user)
    desk.clock.at(0)
    await desk.sender().drain_once()
    assert len(desk.api.calls_to("createForumTopic", GROUP_A)) == 20
    successor = desk.sender()
    desk.clock.at(45)
    await successor.drain_once()
    assert len(desk.api.calls_to("createForumTopic", GROUP_A)) == 20
    for second in (61, 122, 183):  # the 25 cards, 20 a minute, then the last topics with their cards
        desk.clock.at(second)
        await successor.drain_once()
    assert len(desk.api.topics(GROUP_A)) == 25
    assert all(desk.topic_texts(user) == ["kartu"] for user in users)
    assert most_in_a_minute(await sent_times(desk, GROUP_A, "createForumTopic")) == 20
    assert most_in_a_minute(await sent_times(desk, GROUP_A, "sendMessage")) <= 20


async def test_a_busy_group_does_not_hold_up_another(desk: Desk) -> None:
    for n in range(250):
        await desk.cases.post_to_staff_chat(GROUP_A, None, f"antrean panjang {n}")
    await desk.cases.post_to_staff_chat(GROUP_B, None, "untuk grup B")
    desk.clock.at(0)
    await desk.sender().drain_once()
    assert [c.params["text"] for c in desk.api.calls_to("sendMessage", GROUP_B)] == ["untuk grup B"]
    assert len(desk.api.calls_to("sendMessage", GROUP_A)) == 20


async def test_texts_written_while_the_group_is_at_its_limit_go_as_one_message(desk: Desk) -> None:
    case = await desk.open_case(FIRST_USER)
    for n in range(19):
        await desk.cases.post_to_staff_chat(GROUP_A, None, f"pemberitahuan {n}")
    sender = desk.sender()
    desk.clock.at(0)
    await sender.drain_once()  # the topic, its card and 19 notices: the minute's 20 messages
    lines = ["halo kak", "sertifikat saya belum muncul", "sudah 2 minggu", "tolong dicek", "terima kasih"]
    for n, line in enumerate(lines):
        await desk.cases.relay_from_participant(case, ChatMessage("text", line, [], FIRST_USER, 100 + n))
    desk.clock.at(30)
    await sender.drain_once()
    assert desk.topic_texts(FIRST_USER) == ["kartu"]  # late under load …
    desk.clock.at(61)
    await sender.drain_once()
    assert desk.topic_texts(FIRST_USER) == ["kartu", "\n".join(lines)]  # … never lost, and merged into one


# --- late, never lost -----------------------------------------------------------------------------------------------
async def test_network_and_server_errors_never_use_up_a_relay(desk: Desk) -> None:
    case = await desk.open_case(FIRST_USER)
    sender = desk.sender()
    desk.clock.at(0)
    await sender.drain_once()
    await desk.cases.relay_from_participant(case, ChatMessage("text", "masih ada orang?", [], FIRST_USER, 7))
    desk.api.fail_next("sendMessage", server_error(), times=12, chat_id=GROUP_A)
    unreachable = make_bot(Settings(_env_file=None, bot_token=desk.api.token, bot_api_url="http://127.0.0.1:9"))
    try:
        for minute in range(1, 40):  # past each retry's wait (at most a minute)
            desk.clock.at(61 * minute)
            sender.bot = unreachable if 14 <= minute < 24 else desk.bot  # 10 rounds without any network
            await sender.drain_once()
    finally:
        await unreachable.session.close()
    [relay] = await desk.rows(method="relayText")
    assert (relay.status, relay.attempts) == (OutboxStatus.SENT, 0)
    assert [c.error.error_code for c in desk.api.calls_to("sendMessage", GROUP_A) if c.error] == [500] * 12
    assert desk.topic_texts(FIRST_USER) == ["kartu", "masih ada orang?"]


async def test_a_relay_telegram_refuses_is_reported_in_the_topic(desk: Desk) -> None:
    case = await desk.open_case(FIRST_USER)
    photo = desk.api.push_photo(FIRST_USER, caption="bukti")["message"]["message_id"]
    sender = desk.sender()
    desk.clock.at(0)
    await sender.drain_once()
    await desk.cases.relay_from_participant(case, ChatMessage("photo", "bukti", ["f"], FIRST_USER, photo))
    await desk.cases.relay_from_participant(case, ChatMessage("text", "x" * 4096, [], FIRST_USER, photo + 1))
    desk.api.fail_next("copyMessages", bad_request("message to copy not found"), chat_id=GROUP_A)
    desk.api.fail_next("sendMessage", bad_request("message is too long"), chat_id=GROUP_A)
    for second in (5, 10, 15):
        desk.clock.at(second)
        await sender.drain_once()
    assert [r.status for r in await desk.rows(method="copyMessages")] == [OutboxStatus.FAILED]
    texts = desk.topic_texts(FIRST_USER)
    assert texts[0] == "kartu"
    assert texts[1].startswith("⚠️ Foto/berkas/suara dari peserta tidak bisa diposting") and "not found" in texts[1]
    assert texts[2].startswith("⚠️ Pesan peserta tidak bisa diposting") and "Isinya: xxx" in texts[2]


async def test_a_staff_group_that_refuses_the_bot_is_reported_to_the_participant(desk: Desk) -> None:
    case = await desk.open_case(FIRST_USER)
    sender = desk.sender()
    desk.clock.at(0)
    await sender.drain_once()
    await desk.cases.relay_from_participant(case, ChatMessage("text", "halo?", [], FIRST_USER, 5))
    kicked = ApiError(403, "Forbidden: bot was kicked from the supergroup chat")
    desk.api.fail_next("sendMessage", kicked, chat_id=GROUP_A)
    desk.clock.at(5)
    await sender.drain_once()
    [relay] = await desk.rows(method="relayText")
    assert relay.status == OutboxStatus.FAILED
    [told] = await desk.rows(lane=PARTICIPANT, chat_id=FIRST_USER)
    assert told.payload == {"kind": "relay_lost", "locale": "id", "context": {}}
    assert await desk.rows(method="notice") == []  # a report in the group would be refused the same way


async def test_the_participant_hears_that_their_message_did_not_reach_the_agents(
    desk: Desk, participant_sender: ParticipantSender
) -> None:
    case = await desk.open_case(FIRST_USER)
    desk.clock.at(0)
    await desk.sender().drain_once()
    await desk.cases.relay_from_participant(case, ChatMessage("text", "halo?", [], FIRST_USER, 5))
    desk.api.fail_next("sendMessage", ApiError(403, "Forbidden: bot is not a member of the supergroup chat"))
    desk.clock.at(5)
    await desk.sender().drain_once()
    await participant_sender.drain_once()
    expected = default_renderer().render("notify_relay_lost", "id")
    assert desk.api.sent(FIRST_USER)[-1] == expected


async def test_a_topic_that_cannot_be_created_is_retried_until_it_is(desk: Desk) -> None:
    desk.api.fail_next("createForumTopic", bad_request("not enough rights to create a topic"), times=12)
    case = await desk.open_case(FIRST_USER)
    sender = desk.sender()
    for round_ in range(12):  # far more than any give-up budget; each wait longer, at most 10 minutes
        desk.clock.at(601 * round_)
        await sender.drain_once()
    [creation] = await desk.rows(method="createForumTopic")
    assert (creation.status, creation.attempts) == (OutboxStatus.PENDING, 0)
    assert desk.api.topics(GROUP_A) == {}
    # The rights are fixed; the participant writes: the creation is tried at once, then the card and the message.
    await desk.cases.relay_from_participant(case, ChatMessage("text", "halo, ada orang?", [], FIRST_USER, 9))
    desk.clock.at(601 * 11 + 2)
    await sender.drain_once()
    assert desk.topic_texts(FIRST_USER) == ["kartu", "halo, ada orang?"]


async def test_a_creation_given_up_by_an_older_version_is_queued_again(desk: Desk) -> None:
    case = await desk.open_case(FIRST_USER)
    async with desk.engine.begin() as conn:  # what the previous release left: given up after 8 tries
        await conn.execute(
            update(OutboxMessage).where(OutboxMessage.method == "createForumTopic").values(status=OutboxStatus.FAILED)
        )
    sender = desk.sender()
    desk.clock.at(0)
    await sender.drain_once()
    assert desk.api.topics(GROUP_A) == {}
    await desk.cases.relay_from_participant(case, ChatMessage("text", "halo lagi", [], FIRST_USER, 3))
    for second in (5, 6):  # the new creation is queued after the card: the card waits a round for its topic
        desk.clock.at(second)
        await sender.drain_once()
    assert desk.topic_texts(FIRST_USER) == ["kartu", "halo lagi"]


async def test_a_reopened_case_is_announced_in_its_topic(desk: Desk) -> None:
    case = await desk.open_case(FIRST_USER)
    await desk.cases.claim(case.id, AGENT, lambda previous: "diambil")
    await desk.cases.close_by_agent(
        case.id, AGENT, "ditutup", "Terima kasih", (), ChatMessage("text", "/close", [], GROUP_A, 1)
    )
    assert await desk.cases.reopen_recent(FIRST_USER) is not None
    desk.clock.at(0)
    await desk.sender().drain_once()
    expected = staff_renderer().render("staff_case_reopened", "id", case_id=case.id, claimed_by=AGENT)
    assert desk.topic_texts(FIRST_USER) == ["kartu", "diambil", "ditutup", expected]
    assert expected.startswith(f"🔄 Kasus #{case.id} dibuka kembali")


# --- agents' albums to the participant ------------------------------------------------------------------------------
async def agent_album(desk: Desk, case: CaseView, caption: str | None, group_id: str) -> list[int]:
    thread = desk.topic(case.telegram_user_id)
    ids = []
    parts = []
    for n in range(2):
        update_ = desk.api.push_group_photo(GROUP_A, AGENT, thread, caption if n == 0 else None, group_id)
        message_id = update_["message"]["message_id"]
        ids.append(message_id)
        parts.append(ChatMessage("photo", caption if n == 0 else None, [], GROUP_A, message_id, group_id))
    # The part without a caption is handled first (another worker, say): it is queued before the note is known.
    for part in reversed(parts):
        if part.text and part.text.startswith("/note"):
            await desk.cases.note(case.id, AGENT, part.text[5:], "photo", [], group_id)
        else:
            await desk.cases.agent_message(case.id, AGENT, part)
    await asyncio.sleep(1.6)  # the album's parts settle
    return ids


@pytest.fixture
async def participant_sender(desk: Desk) -> ParticipantSender:
    accounts = AccountService(desk.engine)
    return ParticipantSender(desk.bot, Outbox(desk.engine), accounts, default_renderer(), cases=desk.cases)


async def test_an_album_a_blocked_participant_cannot_get_is_reported_in_the_topic(
    desk: Desk, participant_sender: ParticipantSender
) -> None:
    case = await desk.open_case(FIRST_USER)
    desk.clock.at(0)
    await desk.sender().drain_once()
    await agent_album(desk, case, "contoh halaman", "album-1")
    desk.api.fail_next("copyMessages", blocked_by_user(), chat_id=FIRST_USER)
    await participant_sender.drain_once()
    assert {r.status for r in await desk.rows(lane=PARTICIPANT)} == {OutboxStatus.FAILED}
    desk.clock.at(5)
    await desk.sender().drain_once()
    notice = default_renderer().render("staff_not_delivered", "id", blocked=True, error="")
    assert desk.topic_texts(FIRST_USER)[-1] == notice


async def test_an_albums_copies_are_noted_so_that_edits_are_mirrored(
    desk: Desk, participant_sender: ParticipantSender
) -> None:
    case = await desk.open_case(FIRST_USER)
    desk.clock.at(0)
    await desk.sender().drain_once()
    parts = await agent_album(desk, case, "contoh", "album-2")
    await participant_sender.drain_once()
    [call] = desk.api.calls_to("copyMessages", FIRST_USER)
    copies = [r["message_id"] for r in call.result]
    assert [await desk.cases.relayed_copy(case.id, part) for part in parts] == copies


async def test_an_album_captioned_as_a_note_never_reaches_the_participant(
    desk: Desk, participant_sender: ParticipantSender
) -> None:
    case = await desk.open_case(FIRST_USER)
    desk.clock.at(0)
    await desk.sender().drain_once()
    # The other part was queued before the note's part was handled (another worker, say): the album stays internal.
    await agent_album(desk, case, "/note foto internal", "album-3")
    await participant_sender.drain_once()
    assert desk.api.calls_to("copyMessages", FIRST_USER) == []
    assert {r.error for r in await desk.rows(lane=PARTICIPANT)} == {"internal note: not relayed"}


async def test_a_notification_survives_server_errors(desk: Desk, participant_sender: ParticipantSender) -> None:
    case = await desk.open_case(FIRST_USER)
    await desk.cases.tell_participant(case.id, "transfer_done", {"seq": 1, "amount": 600000, "channel": "OVO"}, "k1")
    desk.api.fail_next("sendMessage", server_error(), times=10, chat_id=FIRST_USER)
    participant_sender.per_chat_interval = 0.0  # one chat's retries back to back
    for _ in range(11):
        await participant_sender.drain_once()
        async with desk.engine.begin() as conn:  # past each retry's wait
            await conn.execute(update(OutboxMessage).values(not_before=None))
    [notification] = await desk.rows(lane=PARTICIPANT)
    assert (notification.status, notification.attempts) == (OutboxStatus.SENT, 0)


# --- one participant never stalls the group -------------------------------------------------------------------------
async def test_one_participants_burst_does_not_hold_up_anothers_case_card(desk: Desk) -> None:
    busy = await desk.open_case(FIRST_USER)
    sender = desk.sender()
    desk.clock.at(0)
    await sender.drain_once()  # the busy participant's topic and card
    for n in range(20):  # photos and texts in turn: 40 messages that cannot be merged
        photo = desk.api.push_photo(FIRST_USER)["message"]["message_id"]
        await desk.cases.relay_from_participant(busy, ChatMessage("photo", None, ["f"], FIRST_USER, photo))
        await desk.cases.relay_from_participant(busy, ChatMessage("text", f"lihat {n}", [], FIRST_USER, photo + 1))
    await desk.open_case(FIRST_USER + 2)  # in group B: the next case goes to group A again
    other = FIRST_USER + 1
    await desk.open_case(other)  # queued after all 40
    desk.clock.at(61)
    await sender.drain_once()
    assert desk.topic_texts(other) == ["kartu"]  # served in turn, not after the 40 messages
    for second in (200, 300):
        desk.clock.at(second)
        await sender.drain_once()
    assert len(desk.topic_texts(FIRST_USER)) == 41  # and the busy participant's, all of them, in order
    assert desk.topic_texts(FIRST_USER)[2::2] == [f"lihat {n}" for n in range(20)]
    told = [r for r in await desk.rows(lane=PARTICIPANT, chat_id=FIRST_USER) if r.method == "notify"]
    assert [r.payload["kind"] for r in told] == ["relay_backlog"]  # told once that they wait their turn


async def test_single_photos_sent_in_a_burst_go_ten_a_call_within_the_limit(desk: Desk) -> None:
    case = await desk.open_case(FIRST_USER)
    sender = desk.sender()
    desk.clock.at(0)
    await sender.drain_once()
    for _ in range(25):
        photo = desk.api.push_photo(FIRST_USER)["message"]["message_id"]
        await desk.cases.relay_from_participant(case, ChatMessage("photo", None, ["f"], FIRST_USER, photo))
    for second in (5, 66):  # a minute after the first ten
        desk.clock.at(second)
        await sender.drain_once()
    calls = [c.params["message_ids"] for c in desk.api.calls_to("copyMessages", GROUP_A) if c.ok]
    # Each copied photo counts against the group's 20 messages a minute (the card took one): 10 + 9, then the rest.
    assert [len(ids) for ids in calls] == [10, 9, 6]
    assert [m for ids in calls for m in ids] == sorted(m for ids in calls for m in ids)


async def test_many_edits_of_one_message_queue_only_the_newest(desk: Desk) -> None:
    case = await desk.open_case(FIRST_USER)
    for n in range(30):
        edited = ChatMessage("text", f"versi {n}", [], FIRST_USER, 77)
        await desk.cases.relay_from_participant(case, edited, header="✏️ diubah:\n", edit=True)
    waiting = await desk.rows(method="relayText", status=OutboxStatus.PENDING)
    assert [r.payload["text"] for r in waiting] == ["✏️ diubah:\nversi 29"]


async def test_a_case_opened_in_this_process_reaches_an_idle_sender_at_once(desk: Desk) -> None:
    """The case's commit rings the staff lane's doorbell: its topic and card go out although the sender, idle with an
    empty queue, would look again only after a minute."""
    stop = asyncio.Event()
    task = asyncio.create_task(desk.sender().run(stop, idle=60.0))
    try:
        await asyncio.sleep(0.3)  # it has looked once and found nothing
        user = FIRST_USER + 900
        await desk.open_case(user)
        await desk.api.wait_for(lambda: any(n == f"P {user}" for n in desk.api.topics(GROUP_A).values()), within=5.0)
    finally:
        stop.set()
        await task
