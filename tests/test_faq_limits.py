"""/faq_set takes untrusted YAML and templates: an alias bomb is refused before it expands, and every trial render runs
in a worker process within a time and an output-size limit, so that no answer that is slow or huge to render is saved
(and so no participant can trigger one) and the event loop never waits for one (issue 11, item 5)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.flows.admin import AdminFlow
from bot.flows.faq_catalog import FaqCatalogProvider
from bot.flows.types import EventKind, Incoming
from bot.texts import RENDER_OUTPUT_LIMIT, OutputTooLong, default_renderer, render_limited
from core.faq_store import FaqStore

ADMIN = 9001
ENTRY = 'title: {{id: Kartu hilang}}\nparaphrases: {{id: [kartu prakerja hilang]}}\nanswer: {{id: "Halo {answer}"}}\n'
NESTED_LOOP = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
HUGE_OUTPUT = "{% for a in range(100000) %}xxxxxxxxxxxxxxxxxxxx{% endfor %}"
ALIAS_BOMB = """lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.fixture
async def flow(sqlite_engine: AsyncEngine) -> AsyncIterator[AdminFlow]:
    store = FaqStore(sqlite_engine)
    await store.seed_from_knowledge()
    yield AdminFlow(store, FaqCatalogProvider.from_knowledge(store), {ADMIN})


async def say(flow: AdminFlow, command: str, argument: str) -> str:
    outcome = await flow.handle(Incoming(EventKind.COMMAND, ADMIN, command, argument))
    return "\n".join(reply.text for reply in outcome.replies)


async def while_ticking(work: asyncio.Future[str] | asyncio.Task[str]) -> tuple[str, int]:
    """Run `work` while a ticker counts how often the event loop got to it."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        return await work, ticks
    finally:
        ticker.cancel()


async def test_a_slow_template_is_refused_and_the_loop_keeps_running(flow: AdminFlow) -> None:
    work = asyncio.ensure_future(say(flow, "faq_set", "lost_card\n" + ENTRY.format(answer=NESTED_LOOP)))
    refused, ticks = await while_ticking(work)
    assert "tidak disimpan" in refused and "terlalu lama" in refused
    assert await flow.store.get("lost_card") is None  # never saved: no participant can make it run
    assert ticks >= 10  # the check ran elsewhere: the loop served others meanwhile


async def test_a_template_with_huge_output_is_refused(flow: AdminFlow) -> None:
    refused = await say(flow, "faq_set", "lost_card\n" + ENTRY.format(answer=HUGE_OUTPUT))
    assert "tidak disimpan" in refused and "terlalu banyak teks" in refused
    assert await flow.store.get("lost_card") is None


async def test_a_yaml_alias_bomb_is_refused_before_it_expands(flow: AdminFlow) -> None:
    assert len(ALIAS_BOMB) < 400
    refused = await say(flow, "faq_set", "lost_card\n" + ALIAS_BOMB)
    assert "anchor atau alias" in refused
    # Aliases are refused even where the entry is otherwise fine.
    aliased = "title: {id: &t Kartu hilang}\nparaphrases: {id: [*t]}\nanswer: {id: Halo}\n"
    assert "anchor atau alias" in await say(flow, "faq_set", "lost_card\n" + aliased)
    assert await flow.store.get("lost_card") is None


async def test_an_ordinary_answer_still_saves(flow: AdminFlow) -> None:
    saved = await say(flow, "faq_set", "lost_card\n" + ENTRY.format(answer="{{ participant.name if participant }}"))
    assert "tidak disimpan" not in saved
    assert await flow.store.get("lost_card") is not None


def test_participant_renders_are_capped_too() -> None:
    renderer = default_renderer()
    with pytest.raises(OutputTooLong):
        render_limited(renderer.compile(HUGE_OUTPUT, env=renderer.answer_env), {})
    assert len(render_limited(renderer.compile("{{ 'x' * 100 }}", env=renderer.answer_env), {})) == 100
    assert RENDER_OUTPUT_LIMIT >= 4096
