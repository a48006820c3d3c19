"""The console in a real browser (Debian's Chromium driven by Playwright) against the installed processes: the bot
(`prakerja-bot run`) on the fake Bot API and the console (`prakerja-bot web`) on one database. An agent signs in by
the link the bot sends to /login, sees a new case appear live, replies and the reply reaches the participant's chat;
an admin edits an FAQ entry and the bot answers with it on the next turn. Few and slow: one module, one of each."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.fake_bot_api import FakeBotApi
from tests.harness import SCRIPT, TOKEN, RunningBot, environment, start_bot, stop, text, wait_until_polling
from tests.web_harness import free_port, start_web

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]

STAFF = -100_777
AGENT, ADMIN, PARTICIPANT = 9_500_001, 9_500_002, 9_500_101
WAIT = 20.0  # a ceiling, not a timing
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS")  # a folder: the README's screenshots are taken from this run


@dataclass
class Desk:
    api: FakeBotApi
    bot: RunningBot
    web_url: str
    browser: Any


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def desk(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Desk]:
    from playwright.async_api import async_playwright

    tmp = tmp_path_factory.mktemp("console")
    database_url = f"sqlite+aiosqlite:///{tmp / 'console.db'}"
    demo = await asyncio.to_thread(
        subprocess.run, [str(SCRIPT), "demo"], env=environment(database_url), cwd=tmp, capture_output=True, timeout=60
    )
    assert demo.returncode == 0, demo.stderr
    port = free_port()
    web_url = f"http://127.0.0.1:{port}"
    async with FakeBotApi(TOKEN) as api, async_playwright() as playwright:
        api.user(AGENT, "Sari")
        api.user(ADMIN, "Adi")
        api.add_forum_group(STAFF, "Prakerja Staff", {AGENT: "administrator"})
        env = environment(database_url, BOT_API_URL=api.url, STAFF_CHAT_ID=str(STAFF), AGENT_IDS=str(AGENT),
                          ADMIN_IDS=str(ADMIN), WEB_URL=web_url)  # fmt: skip
        process = await asyncio.to_thread(start_bot, tmp, env, tmp / "bot.log")
        web = await asyncio.to_thread(start_web, tmp, env, port)
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            await wait_until_polling(api, process, tmp / "bot.log")
            async with httpx.AsyncClient() as client:
                for _ in range(600):
                    try:
                        if (await client.get(f"{web_url}/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert web.poll() is None, "the console exited (see web.log)"
                    await asyncio.sleep(0.1)
            bot = RunningBot(api, process, tmp / "bot.log")
            bot.assert_healthy()
            yield Desk(api, bot, web_url, browser)
        finally:
            await browser.close()
            web.terminate()
            await asyncio.to_thread(web.wait, 10)
            await stop(process)


async def say(api: FakeBotApi, user: int, message: str) -> str:
    before = len(api.sent(user))
    api.push_message(user, message)
    return (await api.wait_for_messages(user, before + 1, within=WAIT))[before]


async def signed_in_page(desk: Desk, user: int) -> Any:
    """/login to the bot in a private chat → the link → the console's sign-in button → the inbox."""
    reply = await say(desk.api, user, "/login")
    found = re.search(r"(http://\S+/login\?t=[\w-]+)", reply)
    assert found is not None, reply
    context = await desk.browser.new_context(viewport={"width": 1280, "height": 800}, locale="id-ID")
    page = await context.new_page()
    await page.goto(found.group(1))
    await page.get_by_role("button").click()
    await page.wait_for_url(f"{desk.web_url}/inbox")
    return page


async def test_an_agent_signs_in_sees_a_case_arrive_live_and_the_reply_reaches_the_participant(desk: Desk) -> None:
    page = await signed_in_page(desk, AGENT)
    assert await page.locator("h1").first.inner_text() != ""
    assert await page.locator("tr[data-case]").count() == 0
    api = desk.api
    await say(api, PARTICIPANT, "/start")
    await api.wait_for_messages(PARTICIPANT, 2, within=WAIT)
    message_id, data = api.button(PARTICIPANT, text("btn_agent"))
    api.push_callback(PARTICIPANT, data, message_id)
    row = page.locator("tr[data-case]", has_text=str(PARTICIPANT))
    await row.wait_for(timeout=WAIT * 1000)  # no reload: the server-sent event brought it
    if SHOTS:
        await page.screenshot(path=f"{SHOTS}/console-inbox.png", full_page=True)
    await row.get_by_role("link").click()
    await page.wait_for_url(re.compile(r".*/cases/\d+$"))
    before = len(api.sent(PARTICIPANT))
    await page.locator("#reply-text").fill("Halo Kak, sertifikatmu kami cek sekarang ya.")
    await page.locator("#reply-form button.primary").click()
    texts = await api.wait_for_messages(PARTICIPANT, before + 1, within=WAIT)
    assert "Halo Kak, sertifikatmu kami cek sekarang ya." in texts[before:]
    await page.locator('.delivery[data-status="sent"]').first.wait_for(timeout=WAIT * 1000)
    if SHOTS:
        await page.screenshot(path=f"{SHOTS}/console-case.png", full_page=True)
    desk.bot.assert_healthy()


async def test_an_admin_edits_an_faq_entry_and_the_bot_answers_with_it_next_turn(desk: Desk) -> None:
    page = await signed_in_page(desk, ADMIN)
    csrf = await page.locator('input[name="csrf"]').first.get_attribute("value")
    entry = {
        "title": {"id": "Kartu fisik", "en": "Physical card"},
        "paraphrases": {"id": ["apakah ada kartu fisik prakerja", "kartu prakerja bentuk fisik dikirim ke rumah"]},
        "answer": {"id": "Kartu Prakerja hanya <b>digital</b>, tidak ada kartu fisik yang dikirim."},
    }
    saved = await page.request.put(f"{desk.web_url}/api/v1/faq/physical_card", data=entry,
                                   headers={"x-csrf-token": csrf})  # fmt: skip
    assert saved.status == 200, await saved.text()
    answer = await say(desk.api, PARTICIPANT + 1, "kartu prakerja bentuk fisik dikirim ke rumah kapan")
    assert answer.startswith("Kartu Prakerja hanya <b>digital</b>")
    desk.bot.assert_healthy()
