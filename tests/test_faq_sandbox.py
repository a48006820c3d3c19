"""FAQ answers are templates that admins write at runtime, so they render in Jinja2's sandbox: an answer can read its
values (`participant.name`, `rules`, …) but never reach Python's internals, change data, or loop without end. An admin
cannot save such a template, nor roll back to one saved before, and the renderer participants' answers go through
refuses it — nothing it asks for ever runs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.flows.admin import AdminFlow
from bot.flows.faq_catalog import FaqCatalogProvider
from bot.flows.types import EventKind, Incoming
from bot.texts import Renderer, TemplateError, default_renderer, load_yaml
from core.faq_store import FaqStore

ADMIN = 9001
RUNS_A_COMMAND = "{{{{ cycler.__init__.__globals__.os.system('touch {marker}') }}}}"
ENTRY = 'title: {{id: Kartu hilang}}\nparaphrases: {{id: [kartu prakerja hilang]}}\nanswer: {{id: "Halo {answer}"}}\n'


@pytest.fixture
async def flow(sqlite_engine: AsyncEngine) -> AsyncIterator[AdminFlow]:
    store = FaqStore(sqlite_engine)
    await store.seed_from_knowledge()
    yield AdminFlow(store, FaqCatalogProvider.from_knowledge(store), {ADMIN})


async def say(flow: AdminFlow, command: str, argument: str) -> str:
    outcome = await flow.handle(Incoming(EventKind.COMMAND, ADMIN, command, argument))
    return "\n".join(reply.text for reply in outcome.replies)


async def test_an_admin_cannot_save_an_answer_that_runs_code(flow: AdminFlow, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    answer = RUNS_A_COMMAND.format(marker=marker)
    refused = await say(flow, "faq_set", "lost_card\n" + ENTRY.format(answer=answer))
    assert not marker.exists()  # the check renders the answer several times: not once did it run
    assert "tidak disimpan" in refused and "tidak diizinkan dalam template" in refused
    assert await flow.store.get("lost_card") is None


async def test_a_version_saved_before_the_sandbox_is_not_rolled_back_to(flow: AdminFlow, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    entry = await flow.store.get("survey")
    assert entry is not None
    unsafe = entry.answer | {"id": "Halo " + RUNS_A_COMMAND.format(marker=marker)}
    await flow.store.save(type(entry)(entry.id, entry.title, entry.paraphrases, unsafe), ADMIN)  # v2, unchecked
    await flow.store.save(entry, ADMIN)  # v3: the good text back
    refused = await say(flow, "faq_rollback", "survey 2")
    assert not marker.exists()
    assert "tidak dikembalikan" in refused and await flow.store.current_version("survey") == 3


@pytest.mark.parametrize(
    "answer",
    [
        "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
        "{{ participant.name.__class__.__mro__[1].__subclasses__() }}",
        "{{ rules.__class__ }}",
        "{% set seen = [] %}{{ seen.append('x') }}",  # an answer may not change data
        "{{ directory.update({'complaint_form': 'https://phishing.example'}) }}",
    ],
)
def test_the_renderer_refuses_python_internals(answer: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    # A renderer of its own, like default_renderer(): if an answer could change its values, no other test sees it.
    renderer = Renderer({}, {"rules": load_yaml("rules.yaml"), "directory": load_yaml("platforms.yaml")})
    with pytest.raises(TemplateError):
        renderer.render_source(answer.replace("MARKER", str(marker)), "id", participant={"name": "Siti"})
    assert not marker.exists()
    assert "phishing" not in str(renderer.env.globals["directory"])


def test_a_huge_loop_is_refused_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(TemplateError):
        default_renderer().render_source("{% for i in range(100000000) %}{% endfor %}ok", "id", participant=None)
    assert time.monotonic() - started < 1.0


def test_answers_still_read_their_values_in_the_sandbox() -> None:
    text = default_renderer().render_source(
        "Halo {{ participant.name }}, {{ 600000 | rupiah }}{% for w in participant.warnings %} {{ w }}{% endfor %}",
        "id",
        participant={"name": "Siti", "warnings": ["a", "b"]},
    )
    assert text == "Halo Siti, Rp600.000 a b"
