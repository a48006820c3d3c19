"""FAQ entries edited at runtime: versions, history, rollback, delete, export, and every worker seeing the change."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.flows.faq_catalog import FaqCatalogProvider
from core.db import make_engine
from core.faq import load_faq, parse_faq_entries
from core.faq_entries import FaqEntry
from core.faq_store import FaqExists, FaqNotFound, FaqStore, FaqValidationError, FaqVersionNotFound
from core.models import Event, FaqVersion

ADMIN = 4242
QUESTION = "kartu prakerja bentuk fisik dikirim ke rumah kapan"

NEW_ENTRY = FaqEntry(
    id="physical_card",
    title={"id": "Kartu fisik", "en": "Physical card"},
    paraphrases={
        "id": [
            "apakah ada kartu fisik prakerja",
            "kartu prakerja bentuk fisik dikirim ke rumah",
            "kapan kartu fisik prakerja dikirim",
        ],
        "en": ["is there a physical prakerja card"],
    },
    answer={"id": "Kartu Prakerja hanya berbentuk digital, tidak ada kartu fisik.", "en": "The card is digital only."},
)


def second_engine(engine: AsyncEngine) -> AsyncEngine:
    """Another worker: its own connection pool on the same database."""
    return make_engine(engine.url.render_as_string(hide_password=False))


async def seeded(engine: AsyncEngine) -> FaqStore:
    store = FaqStore(engine)
    await store.seed_from_knowledge()
    return store


async def test_seed_fills_an_empty_table_once(engine: AsyncEngine) -> None:
    store = FaqStore(engine)
    knowledge = load_faq()
    assert await store.seed_from_knowledge() == len(knowledge)
    assert await store.seed_from_knowledge() == 0
    assert [e.id for e in await store.current()] == [e.id for e in knowledge]  # the knowledge file's order
    assert await store.current() == knowledge
    assert {v.action for e in knowledge for v in await store.history(e.id)} == {"seed"}


async def test_two_workers_seeding_at_once_seed_once(engine: AsyncEngine) -> None:
    other = second_engine(engine)
    try:
        seeded_counts = await asyncio.gather(
            FaqStore(engine).seed_from_knowledge(), FaqStore(other).seed_from_knowledge()
        )
    finally:
        await other.dispose()
    assert sorted(seeded_counts) == [0, len(load_faq())]
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(FaqVersion)) == len(load_faq())


async def test_a_new_entry_answers_the_next_question(engine: AsyncEngine) -> None:
    store = await seeded(engine)
    provider = FaqCatalogProvider.from_knowledge(store)
    before = await provider.catalog()
    assert before.matcher.match(QUESTION).faq_id != "physical_card"

    assert await store.save(NEW_ENTRY, ADMIN) == 1
    assert await store.get("physical_card") == NEW_ENTRY
    after = await provider.catalog()
    result = after.matcher.match(QUESTION)
    assert (result.kind, result.faq_id) == ("answer", "physical_card")
    assert "hanya berbentuk digital" in after.entries["physical_card"].answer["id"]


async def test_an_edit_replaces_the_answer_in_use(engine: AsyncEngine) -> None:
    store = await seeded(engine)
    provider = FaqCatalogProvider.from_knowledge(store)
    old = await store.get("phone_change")
    assert old is not None
    edited = FaqEntry(
        old.id, old.title, old.paraphrases, {"id": "Nomor HP diganti lewat menu Profil.", "en": "Via Profile."}
    )
    assert await store.save(edited, ADMIN) == 2
    assert await store.save(edited, ADMIN) == 2  # the same content again writes nothing
    catalog = await provider.catalog()
    question = "cara ganti nomor hp di akun prakerja"
    assert catalog.matcher.match(question).faq_id == "phone_change"
    assert catalog.entries["phone_change"].answer["id"] == "Nomor HP diganti lewat menu Profil."
    assert [e.id for e in await store.current()].count("phone_change") == 1


async def test_another_worker_sees_the_change_at_once(engine: AsyncEngine) -> None:
    store = await seeded(engine)
    other = second_engine(engine)
    try:
        worker = FaqCatalogProvider.from_knowledge(FaqStore(other))
        first = await worker.catalog()
        assert await worker.catalog() is first  # unchanged: no rebuild
        revision = await store.revision()
        await store.save(NEW_ENTRY, ADMIN)
        assert await store.revision() != revision
        second = await worker.catalog()
        assert second is not first
        assert "physical_card" in second.entries
        assert second.matcher.match(QUESTION).faq_id == "physical_card"
        assert "physical_card" not in first.entries  # a turn holding the old snapshot stays consistent
    finally:
        await other.dispose()


async def test_history_rollback_and_delete(engine: AsyncEngine) -> None:
    store = await seeded(engine)
    original = await store.get("survey")
    assert original is not None
    edited = dataclasses.replace(original, answer={"id": "Versi dua."})
    assert await store.save(edited, ADMIN, action="edit") == 2

    assert await store.rollback("survey", 1, ADMIN) == 3
    assert await store.get("survey") == original

    assert await store.delete("survey", ADMIN) == 4
    assert await store.get("survey") is None
    assert "survey" not in [e.id for e in await store.current()]
    with pytest.raises(FaqNotFound):
        await store.delete("survey", ADMIN)
    with pytest.raises(FaqVersionNotFound):
        await store.rollback("survey", 4, ADMIN)  # a deletion is not content to restore
    with pytest.raises(FaqVersionNotFound):
        await store.rollback("survey", 99, ADMIN)

    assert await store.rollback("survey", 2, ADMIN) == 5  # undoes the deletion with version 2's content
    assert (await store.get("survey")) == edited

    history = await store.history("survey")
    assert [(v.version, v.action, v.deleted) for v in history] == [
        (5, "rollback", False),
        (4, "delete", True),
        (3, "rollback", False),
        (2, "edit", False),
        (1, "seed", False),
    ]
    assert {v.author_id for v in history[:4]} == {ADMIN} and history[-1].author_id is None
    assert all(v.created_at.tzinfo is not None for v in history)

    async with engine.connect() as conn:
        events = (
            await conn.execute(
                select(Event.kind, Event.source_kind, Event.source_ref, Event.data)
                .where(Event.entity == "faq_versions", Event.entity_id == "survey")
                .order_by(Event.id)
            )
        ).all()
    assert [(e.kind, e.source_kind) for e in events] == [
        ("seed", "system"),
        ("edit", "admin"),
        ("rollback", "admin"),
        ("delete", "admin"),
        ("rollback", "admin"),
    ]
    assert events[1].source_ref == str(ADMIN)
    assert events[1].data == {"version": [1, 2], "changed": ["answer"]}


async def test_create_and_edit_refuse_the_wrong_state(engine: AsyncEngine) -> None:
    store = await seeded(engine)
    existing = await store.get("survey")
    assert existing is not None
    with pytest.raises(FaqExists):
        await store.save(existing, ADMIN, action="create")
    with pytest.raises(FaqNotFound):
        await store.save(NEW_ENTRY, ADMIN, action="edit")
    assert await store.get("physical_card") is None


@pytest.mark.parametrize("bad_id", ["Phone", "ab", "1abc", "with-dash", "spasi id", "x" * 65, ""])
async def test_invalid_ids_are_refused(sqlite_engine: AsyncEngine, bad_id: str) -> None:
    store = await seeded(sqlite_engine)
    revision = await store.revision()
    entry = FaqEntry(bad_id, NEW_ENTRY.title, NEW_ENTRY.paraphrases, NEW_ENTRY.answer)
    with pytest.raises(FaqValidationError) as refused:
        await store.save(entry, ADMIN)
    assert [(p.code, p.field) for p in refused.value.problems] == [("bad_id", "id")]
    assert await store.revision() == revision


async def test_empty_texts_are_refused(sqlite_engine: AsyncEngine) -> None:
    store = await seeded(sqlite_engine)
    entry = FaqEntry("no_words", {"id": " "}, {"id": [], "en": ["x"]}, {"en": "only English"})
    with pytest.raises(FaqValidationError) as refused:
        await store.save(entry, ADMIN)
    assert {(p.code, p.field) for p in refused.value.problems} == {
        ("missing", "title.id"),
        ("missing", "answer.id"),
        ("missing", "paraphrases.id"),
    }
    assert await store.get("no_words") is None


async def test_export_round_trips_and_keeps_off_topic(engine: AsyncEngine) -> None:
    store = await seeded(engine)
    await store.save(NEW_ENTRY, ADMIN)
    await store.delete("survey", ADMIN)
    exported = await store.export_yaml()
    assert exported.startswith("# FAQ entries")  # the knowledge file's explanation travels with it
    document = yaml.safe_load(exported)
    assert parse_faq_entries(document) == await store.current()
    assert "physical_card" in [f["id"] for f in document["faqs"]]
    assert "survey" not in [f["id"] for f in document["faqs"]]
    knowledge = yaml.safe_load(store.knowledge_file.read_text(encoding="utf-8"))
    assert document["off_topic"] == knowledge["off_topic"]
    assert "\n    answer:\n      id: |\n" in exported  # answers stay readable blocks, as in the knowledge file


async def test_the_first_catalog_seeds_an_empty_table(engine: AsyncEngine) -> None:
    store = FaqStore(engine)
    catalog = await FaqCatalogProvider.from_knowledge(store).catalog()
    assert list(catalog.entries) == [e.id for e in load_faq()]
    assert await store.seed_from_knowledge() == 0


def test_one_reader_refuses_yaml_yes_in_the_knowledge_file_as_an_admin_would() -> None:
    """The knowledge loader turned a YAML `yes` into "True" while /faq_set refused it: one reader now, one answer."""
    from core.faq_entries import FaqDocumentError, read_document, read_entry

    raw = {"id": "say_yes", "title": {"id": "Ya"}, "paraphrases": {"id": [True]}, "answer": {"id": "Baik."}}
    with pytest.raises(FaqDocumentError) as refused:
        read_document({"faqs": [raw]})
    assert [p.key for p in refused.value.problems] == ["faq_yaml_not_text"]
    entry, problems = read_entry(raw, "say_yes")
    assert entry is None and [p.key for p in problems] == ["faq_yaml_not_text"]


async def test_sources_and_kind_survive_the_store(sqlite_engine: AsyncEngine) -> None:
    """Seeded entries keep their sources; an edit without them is a change the history shows; export keeps them."""
    store = await seeded(sqlite_engine)
    seeded_entry = await store.get("certificate_missing")
    assert seeded_entry is not None and seeded_entry.sources
    assert seeded_entry == next(e for e in load_faq() if e.id == "certificate_missing")
    edited = FaqEntry(
        seeded_entry.id, seeded_entry.title, seeded_entry.paraphrases, seeded_entry.answer, ("official_faq_2024",)
    )
    await store.save(edited, ADMIN)
    assert (await store.get("certificate_missing")) == edited
    exported = parse_faq_entries(yaml.safe_load(await store.export_yaml()))
    assert next(e for e in exported if e.id == "certificate_missing").sources == ("official_faq_2024",)
    small_talk = [e for e in exported if e.kind == "smalltalk"]
    assert small_talk and all(not e.sources for e in small_talk)


def test_the_reader_refuses_a_kind_that_is_not_text() -> None:
    """The API fuzzer sent `"kind": {}`: a set membership test on a mapping raised, and the API answered 500."""
    from core.faq_entries import read_entry

    raw = {"title": {"id": "x"}, "paraphrases": {"id": ["x y"]}, "answer": {"id": "x"}}
    kinds: tuple[object, ...] = ({}, [], 3, "gossip")
    for kind in kinds:
        entry, problems = read_entry(raw | {"kind": kind}, "some_entry")
        assert entry is None and [p.values["code"] for p in problems] == ["bad_kind"]
