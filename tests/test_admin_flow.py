"""The admin conversation: FAQ edits reach the next participant's question; bad edits and non-admins change nothing."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.types import Message, Update
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import build_app
from bot.flows.admin import AdminFlow, AdminOutcome
from bot.flows.commands import ADMIN_COMMANDS
from bot.flows.conversation import Conversation
from bot.flows.faq_catalog import FaqCatalogProvider
from bot.flows.types import EventKind, Incoming
from bot.handlers.admin import make_router
from bot.settings import Settings
from bot.texts import load_yaml
from core.db import Database
from core.faq import parse_faq_entries
from core.faq_store import FaqStore
from core.models import FaqAnswer
from tests.fake_bot_api import FakeBotApi
from tests.html_check import assert_telegram_html

ADMIN = 9001
STRANGER = 9002
PARTICIPANT = 777_123
QUESTION = "kartu prakerja bentuk fisik dikirim ke rumah kapan"
NEW_ENTRY_YAML = """\
title: {id: Kartu fisik, en: Physical card}
paraphrases:
  id:
    - apakah ada kartu fisik prakerja
    - kartu prakerja bentuk fisik dikirim ke rumah
    - kapan kartu fisik prakerja dikirim
  en:
    - is there a physical prakerja card
answer:
  id: |
    Kartu Prakerja hanya <b>digital</b>{% if participant %}, Kak {{ participant.name }}{% endif %}.
  en: The card is <b>digital</b> only.
"""


@dataclasses.dataclass
class Admin:
    store: FaqStore
    provider: FaqCatalogProvider
    flow: AdminFlow

    async def say(
        self, command: str, argument: str = "", user: int = ADMIN, document: bytes | None = None
    ) -> AdminOutcome:
        outcome = await self.flow.handle(Incoming(EventKind.COMMAND, user, command, argument), document)
        for reply in outcome.replies:
            assert_telegram_html(reply.text)
        return outcome


def text_of(outcome: AdminOutcome) -> str:
    return "\n".join(reply.text for reply in outcome.replies)


@pytest.fixture
async def admin(engine: AsyncEngine) -> AsyncIterator[Admin]:
    store = FaqStore(engine)
    await store.seed_from_knowledge()
    provider = FaqCatalogProvider.from_knowledge(store)
    yield Admin(store, provider, AdminFlow(store, provider, {ADMIN}))


async def ask(db: Database, provider: FaqCatalogProvider, question: str) -> str:
    """A participant's free-text question through the real conversation, with the catalog of this moment."""
    app = build_app(Settings(_env_file=None, database_url=db.url), db)  # the test's database closes it
    services = dataclasses.replace(app.services, faq=await provider.catalog())
    outcome = await Conversation(services).handle(Incoming(EventKind.TEXT, PARTICIPANT, question), None)
    return "\n".join(reply.text for reply in outcome.replies)


async def test_an_admin_edit_answers_the_next_question(db: Database, admin: Admin) -> None:
    assert "hanya <b>digital</b>" not in await ask(db, admin.provider, QUESTION)

    saved = text_of(await admin.say("faq_set", "physical_card\n" + NEW_ENTRY_YAML))
    assert "physical_card" in saved and "versi 1" in saved

    answer = await ask(db, admin.provider, QUESTION)
    assert "Kartu Prakerja hanya <b>digital</b>." in answer


async def test_an_edit_then_a_rollback(engine: AsyncEngine, admin: Admin) -> None:
    original = await admin.store.get("phone_change")
    assert original is not None
    body = yaml.safe_dump(
        {
            "title": original.title,
            "paraphrases": original.paraphrases,
            "answer": {"id": "Ganti nomor lewat menu Profil."},
        }
    )
    assert "versi 2" in text_of(await admin.say("faq_set", f"phone_change\n{body}"))
    catalog = await admin.provider.catalog()
    assert catalog.entries["phone_change"].answer == {"id": "Ganti nomor lewat menu Profil."}

    history = text_of(await admin.say("faq_history", "phone_change"))
    assert history.index("v2") < history.index("v1")

    assert "versi 3" in text_of(await admin.say("faq_rollback", "phone_change 1"))
    assert (await admin.provider.catalog()).entries["phone_change"] == original
    assert "versi 99" in text_of(await admin.say("faq_rollback", "phone_change 99"))


async def test_an_entry_sent_as_a_file(admin: Admin) -> None:
    document = ("- id: physical_card\n" + "\n".join("  " + line for line in NEW_ENTRY_YAML.splitlines())).encode()
    saved = text_of(await admin.say("faq_set", "physical_card", document=document))
    assert "dibuat" in saved
    assert await admin.store.get("physical_card") is not None


@pytest.mark.parametrize(
    ("answer", "named"),
    [
        ("'Halo {{ participant.nosuchfield }}'", "nosuchfield"),
        ("'Halo {% if %}'", "Expected an expression"),
        ("'{% if participant %}{{ participant.next_incentive_date.day }}{% endif %}'", "Budi"),  # sparse sample
        ("'Syarat & ketentuan'", "&amp;amp;"),
        ("'Klik <div>di sini</div>'", "&lt;div&gt;"),
        ("'<b>tebal'", "&lt;b&gt; tidak ditutup"),
    ],
)
async def test_a_broken_answer_is_refused_and_nothing_is_saved(admin: Admin, answer: str, named: str) -> None:
    before = await admin.store.revision()
    body = f"title: {{id: Kartu}}\nparaphrases:\n  id: [kartu prakerja hilang]\nanswer:\n  id: {answer}\n"
    refused = text_of(await admin.say("faq_set", f"lost_card\n{body}"))
    assert "tidak disimpan" in refused
    assert named in refused
    assert await admin.store.revision() == before
    assert await admin.store.get("lost_card") is None


async def test_bad_shapes_name_their_problem(admin: Admin) -> None:
    before = await admin.store.revision()
    cases = {
        "Bad-Id\ntitle: {id: x}\nparaphrases: {id: [x]}\nanswer: {id: x}": "huruf kecil",
        "lost_card\ntitle: {id: x}\nparaphrases: {id: satu kalimat}\nanswer: {id: x}": "daftar kalimat",
        "lost_card\ntitle: {id: x}\nparaphrases: {id: [x]}\nanswer: {en: x}": "answer.id",
        "lost_card\nid: other_id\ntitle: {id: x}\nparaphrases: {id: [x]}\nanswer: {id: x}": "other_id",
        "lost_card\ntitle: {id: x}\nparaphrases: {id: [x]}\nanswer: {id: x}\nextra: 1": "extra",
        "lost_card\n: : :": "tidak bisa dibaca",
        "lost_card\n- a\n- b": "satu entri",
    }
    for argument, named in cases.items():
        assert named in text_of(await admin.say("faq_set", argument)), argument
    assert "/faq_set ID" in text_of(await admin.say("faq_set", "lost_card"))
    assert await admin.store.revision() == before


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("title: {id: x}\nparaphrases: {id: [kartu hilang]}\nanswer: {id: yes}", "ya/tidak"),
        ("title: {id: 12}\nparaphrases: {id: [kartu hilang]}\nanswer: {id: x}", "(<code>12</code>)"),
        ("title: {id: x}\nparaphrases: {id: [kartu hilang, 2023]}\nanswer: {id: x}", "(<code>2023</code>)"),
        ("title: {id: x}\nparaphrases: {id: [kartu hilang]}\nanswer: {id: 2025-01-01}", "angka atau tanggal"),
    ],
)
async def test_a_value_yaml_reads_as_no_text_is_refused_not_saved_as_true(admin: Admin, body: str, named: str) -> None:
    before = await admin.store.revision()
    refused = text_of(await admin.say("faq_set", f"lost_card\n{body}"))
    assert "tidak disimpan" in refused and named in refused and "tanda kutip" in refused
    assert await admin.store.revision() == before
    assert await admin.store.get("lost_card") is None


async def test_a_version_that_no_longer_renders_is_not_rolled_back_to(admin: Admin) -> None:
    entry = await admin.store.get("survey")
    assert entry is not None
    # Saved when templates could still read `old_global` (say): it would fail in front of participants now.
    await admin.store.save(dataclasses.replace(entry, answer={"id": "Isi survei {{ old_global }}"}), ADMIN)
    await admin.store.save(entry, ADMIN)  # an admin has put the good text back: version 3
    before = await admin.store.revision()
    refused = text_of(await admin.say("faq_rollback", "survey 2"))
    assert "tidak dikembalikan ke versi 2" in refused and "old_global" in refused
    assert await admin.store.revision() == before and await admin.store.current_version("survey") == 3
    assert "versi 4" in text_of(await admin.say("faq_rollback", "survey 1"))  # a good version still comes back


async def test_an_edit_on_a_fresh_database_keeps_the_seeded_faq(sqlite_engine: AsyncEngine) -> None:
    store = FaqStore(sqlite_engine)  # nothing seeded yet: no participant has asked anything
    provider = FaqCatalogProvider.from_knowledge(store)
    flow = AdminFlow(store, provider, {ADMIN})
    await flow.handle(Incoming(EventKind.COMMAND, ADMIN, "faq_set", "physical_card\n" + NEW_ENTRY_YAML))
    entries = (await provider.catalog()).entries
    assert "physical_card" in entries and "certificate_missing" in entries and "survey" in entries


async def test_a_non_admin_is_refused_and_nothing_changes(admin: Admin) -> None:
    before = await admin.store.revision()
    for command, argument in [
        ("faq", ""),
        ("faq_set", "physical_card\n" + NEW_ENTRY_YAML),
        ("faq_delete", "survey"),
        ("faq_rollback", "survey 1"),
        ("faq_export", ""),
        ("stats", ""),
        ("gaps", ""),
    ]:
        outcome = await admin.say(command, argument, user=STRANGER)
        assert "khusus untuk admin" in text_of(outcome)
        assert outcome.attachments == []
    assert await admin.store.revision() == before
    assert await admin.store.get("survey") is not None


async def test_faq_test_shows_five_scored_matches(admin: Admin) -> None:
    shown = text_of(await admin.say("faq_test", "sertif blm muncul gmn kak"))
    scored = re.findall(r"^\d\. <code>(\w+)</code> — skor (\d+\.\d)", shown, re.MULTILINE)
    assert len(scored) == 5
    assert scored[0][0] == "certificate_missing"
    assert [float(s) for _, s in scored] == sorted((float(s) for _, s in scored), reverse=True)
    assert "dijawab langsung" in shown


async def test_list_show_and_delete(admin: Admin) -> None:
    listed = text_of(await admin.say("faq"))
    assert "<code>survey</code>" in listed and "<code>certificate_missing</code>" in listed

    short = await admin.say("faq_show", "survey")
    assert "<pre>" in text_of(short) and "versi 1" in text_of(short)
    long = await admin.say("faq_show", "certificate_missing")  # too long to quote: sent as a file
    assert [a.filename for a in long.attachments] == ["certificate_missing.yaml"]
    assert yaml.safe_load(long.attachments[0].data)["answer"]["id"].startswith("Urutan sampai sertifikat muncul")

    deleted = text_of(await admin.say("faq_delete", "agent_request"))
    assert "/faq_rollback agent_request 1" in deleted and "agent" in deleted  # it starts the agent flow
    assert "agent_request" not in (await admin.provider.catalog()).entries
    assert "Tidak ada FAQ aktif" in text_of(await admin.say("faq_show", "agent_request"))


async def test_export_is_a_yaml_document_that_parses(admin: Admin) -> None:
    outcome = await admin.say("faq_export")
    [document] = outcome.attachments
    assert document.kind == "document" and document.filename.endswith(".yaml")
    assert "41 entri" in document.caption
    parsed = yaml.safe_load(document.data.decode())
    assert parse_faq_entries(parsed) == await admin.store.current()
    assert parsed["off_topic"]


async def test_stats_and_gaps(engine: AsyncEngine, admin: Admin) -> None:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        for question in ["cara daftar bpjs gmn", "cara daftar bpjs", "harga emas hari ini"]:
            await conn.execute(insert(FaqAnswer).values(question=question, kind="none", score=3.0, asked_at=now))
    gaps = text_of(await admin.say("gaps", "7"))
    assert "<b>1. 2×</b> «cara daftar bpjs»" in gaps
    assert "«cara daftar bpjs gmn»" in gaps

    stats = await admin.say("stats", "7")
    assert "Percakapan: <b>0</b>" in text_of(stats)
    [chart] = stats.attachments
    assert chart.kind == "photo" and chart.data.startswith(b"\x89PNG")

    assert "/stats HARI" in text_of(await admin.say("stats", "999"))


def test_every_admin_message_has_both_languages_and_every_command_a_usage(tmp_path: Path) -> None:
    messages = load_yaml("admin_messages.yaml")["messages"]
    assert {key for key, value in messages.items() if set(value) != {"id", "en"}} == set()
    usage = messages["admin_usage"]["id"]
    assert all(f'"{c}"' in usage for c in ADMIN_COMMANDS - {"faq", "faq_export"})


async def test_the_telegram_handler_serves_admins_refuses_others_and_lets_other_commands_through(
    sqlite_engine: AsyncEngine,
) -> None:
    store = FaqStore(sqlite_engine)
    await store.seed_from_knowledge()
    provider = FaqCatalogProvider.from_knowledge(store)
    flow = AdminFlow(store, provider, {ADMIN})
    passed_on: list[str] = []
    rest = Router(name="rest")

    @rest.message()
    async def anything_else(message: Message) -> None:
        passed_on.append(message.text or "")

    async with FakeBotApi() as api:
        session = AiohttpSession(api=TelegramAPIServer.from_base(api.url))
        bot = Bot(api.token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
        dp = Dispatcher(admin_flow=flow, admin_ids=frozenset({ADMIN}))
        dp.include_routers(make_router(), rest)
        try:
            for user, text in [
                (ADMIN, "/faq_test sertif blm muncul gmn kak"),
                (STRANGER, "/faq_delete survey"),
                (STRANGER, "/start"),
                (ADMIN, "/faqs"),
            ]:
                update = Update.model_validate(api.push_message(user, text), context={"bot": bot})
                await dp.feed_update(bot, update)
        finally:
            await session.close()
        admin_sees, stranger_sees = api.sent(ADMIN), api.sent(STRANGER)

    assert len(admin_sees) == 1 and "certificate_missing" in admin_sees[0]
    assert len(stranger_sees) == 1 and "khusus untuk admin" in stranger_sees[0]
    assert passed_on == ["/start", "/faqs"]
    assert await store.get("survey") is not None
