"""End to end for admins: the installed `prakerja-bot run` against the fake Bot API server, with ADMIN_IDS set. An
admin's edit (typed, or a YAML file the bot downloads) answers the very next participant question; a rollback brings
the old answer back; an answer that does not render is refused and changes nothing; a stranger changes nothing.

One bot process serves the module; every test edits its own FAQ entry and asks as its own participant.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.fake_bot_api import FakeBotApi, check_with_ptb
from tests.harness import SCRIPT, TOKEN, RunningBot, environment, start_bot, stop, wait_until_polling
from tests.html_check import html_problems

pytestmark = pytest.mark.asyncio(loop_scope="module")

ADMIN, STRANGER = 9_300_001, 9_300_002
WAIT = 20.0  # a ceiling, not a timing: a loaded CI machine can be slow
_participants = itertools.count(9_310_001)
PHYSICAL_CARD = """\
title: {id: Kartu fisik, en: Physical card}
paraphrases:
  id:
    - apakah ada kartu fisik prakerja
    - kartu prakerja bentuk fisik dikirim ke rumah
  en:
    - is there a physical prakerja card
answer:
  id: Kartu Prakerja hanya <b>digital</b>, tidak ada kartu fisik yang dikirim.
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def running(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningBot]:
    tmp = tmp_path_factory.mktemp("e2e-admin")
    database_url = f"sqlite+aiosqlite:///{tmp / 'admin.db'}"
    demo = await asyncio.to_thread(
        subprocess.run, [str(SCRIPT), "demo"], env=environment(database_url), cwd=tmp, capture_output=True, timeout=60
    )
    assert demo.returncode == 0, demo.stderr
    async with FakeBotApi(TOKEN) as api:
        env = environment(database_url, BOT_API_URL=api.url, ADMIN_IDS=str(ADMIN))
        process = await asyncio.to_thread(start_bot, tmp, env, tmp / "bot.log")
        bot = RunningBot(api, process, tmp / "bot.log")
        try:
            await wait_until_polling(api, process, tmp / "bot.log")
            bot.assert_healthy()
            yield bot
        finally:
            await stop(process)


async def say(api: FakeBotApi, user: int, message: str) -> str:
    """`user` writes; the bot's one reply (its HTML)."""
    before = len(api.sent(user))
    api.push_message(user, message)
    texts = await api.wait_for_messages(user, before + 1, within=WAIT)
    return texts[before]


async def ask(api: FakeBotApi, question: str) -> str:
    """A new participant's question: what the bot answers."""
    return await say(api, next(_participants), question)


def entry(answer: str, paraphrase: str) -> str:
    return f"title: {{id: Uji}}\nparaphrases:\n  id: [{paraphrase}]\nanswer:\n  id: {answer}\n"


async def test_an_admin_edit_answers_the_next_question(running: RunningBot) -> None:
    api = running.api
    question = "kartu prakerja bentuk fisik dikirim ke rumah kapan"
    assert "hanya <b>digital</b>" not in await ask(api, question)
    saved = await say(api, ADMIN, "/faq_set physical_card\n" + PHYSICAL_CARD)
    assert "✅ <b>physical_card</b> dibuat: versi 1" in saved
    answer = await ask(api, question)
    assert answer.startswith("Kartu Prakerja hanya <b>digital</b>, tidak ada kartu fisik yang dikirim.")
    assert html_problems(answer) == []
    running.assert_healthy()


async def test_a_rollback_brings_the_old_answer_back(running: RunningBot) -> None:
    api = running.api
    question = "ubah nomor hp yang terdaftar"
    original = await ask(api, question)
    assert original.startswith("Nomor HP hanya bisa diganti oleh <b>penerima Prakerja tahun berjalan</b>.")
    shown = await say(api, ADMIN, "/faq_show phone_change")
    assert "versi 1" in shown
    edited = entry("'Ganti nomor sekarang lewat aplikasi Prakerja, menu Akun.'", question)
    assert "versi 2" in await say(api, ADMIN, "/faq_set phone_change\n" + edited)
    assert (await ask(api, question)).startswith("Ganti nomor sekarang lewat aplikasi Prakerja")
    rolled_back = await say(api, ADMIN, "/faq_rollback phone_change 1")
    assert "dikembalikan ke isi versi 1, disimpan sebagai versi 3" in rolled_back
    assert await ask(api, question) == original
    history = await say(api, ADMIN, "/faq_history phone_change")
    assert history.index("v3") < history.index("v2") < history.index("v1") and f"admin {ADMIN}" in history
    running.assert_healthy()


async def test_an_answer_that_does_not_render_is_refused(running: RunningBot) -> None:
    api = running.api
    question = "kartu prakerja saya hilang dicuri"
    for answer, named in [
        ("'Halo {{ participant.nosuchfield }}'", "nosuchfield"),
        ("'Halo {% if %}'", "Expected an expression"),
        ("'Klik <div>di sini</div>'", "&lt;div&gt;"),
    ]:
        refused = await say(api, ADMIN, "/faq_set lost_card\n" + entry(answer, question))
        assert "<b>lost_card</b> tidak disimpan" in refused and named in refused, refused
    assert "Tidak ada FAQ aktif dengan id <code>lost_card</code>" in await say(api, ADMIN, "/faq_show lost_card")
    assert "Halo" not in await ask(api, question)
    running.assert_healthy()


async def test_an_entry_sent_as_a_yaml_file_is_downloaded_and_saved(running: RunningBot) -> None:
    api = running.api
    question = "apakah ada sertifikat cetak yang dikirim pos"
    content = entry("'Sertifikat Prakerja hanya <b>elektronik</b>; unduh dari dashboard.'", question).encode()
    before = len(api.sent(ADMIN))
    api.push_document(ADMIN, "printed_certificate.yaml", caption="/faq_set printed_certificate", content=content)
    [saved] = (await api.wait_for_messages(ADMIN, before + 1, within=WAIT))[before:]
    assert "✅ <b>printed_certificate</b> dibuat: versi 1" in saved
    [got_file] = [c for c in api.calls_to("getFile") if c.ok]
    assert [c.params["file_path"] for c in api.calls_to("download")] == [got_file.result["file_path"]]
    assert (await ask(api, question)).startswith("Sertifikat Prakerja hanya <b>elektronik</b>")
    running.assert_healthy()
    check_with_ptb(api)


async def test_a_stranger_changes_nothing(running: RunningBot) -> None:
    api = running.api
    edit = "/faq_set survey\n" + entry("'Jawaban palsu'", "survei")
    for command in (edit, "/faq_rollback survey 1", "/faq_delete survey"):
        assert "khusus untuk admin" in await say(api, STRANGER, command)
    shown = await say(api, ADMIN, "/faq_show survey")
    assert "versi 1" in shown and "Jawaban palsu" not in shown
    running.assert_healthy()
