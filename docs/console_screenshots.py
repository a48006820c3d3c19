"""Takes the README's screenshots of the web console: the inbox and a case page, on a laptop and a phone.

Run: `.venv/bin/python docs/console_screenshots.py` (needs /usr/bin/chromium). Builds a demo database in a
temporary folder, opens a few cases for the demo personas through the case use cases, serves the console with
uvicorn and photographs it with Playwright; writes docs/console-*.png.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
from pathlib import Path

import uvicorn
from playwright.async_api import ViewportSize, async_playwright

from bot.app import build_app
from bot.settings import Settings
from bot.web.app import make_web_app
from bot.web.context import build_context
from bot.web.desk import ConsoleCases
from core.calendar import default_calendar, today_in_jakarta
from core.cases.views import ChatMessage
from core.console.staff import Principal, Role
from core.db import Database
from core.demo import recreate_database, seed_demo
from core.rules import default_rules

DOCS = Path(__file__).parent
AGENT, STAFF_CHAT = 7_000_001, -1001234
MESSAGES = [
    "kak sertifikat saya blm muncul padahal udah selesai pelatihan seminggu lalu",
    "insentif gagal terus, rekening saya BNI masih aktif kok",
    "nama di sertifikat salah kak, kurang satu huruf",
    "sudah kasih rating tapi jadwal insentif belum ada",
]


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'shots.db'}"
        settings = Settings(database_url=url, staff_chat_id=[STAFF_CHAT], agent_ids=[AGENT], web_url="http://shots")
        db = Database.open(url)
        await recreate_database(db)
        personas = await seed_demo(db.engine, default_rules(), default_calendar(), settings.pii_key, today_in_jakarta())
        context = build_context(settings, build_app(settings, db))
        cases = context.app.services.cases
        assert cases is not None
        status = context.app.services.status
        opened = []
        for n, ((participant_id, _), text) in enumerate(zip(personas[2:6], MESSAGES, strict=True)):
            user = 8_100_000 + n
            diagnosis = await status.status(participant_id)
            stage = diagnosis.headline.stage.value if diagnosis else None
            reason = "overdue" if diagnosis and diagnosis.headline.overdue else "participant_asked"
            case = await cases.open_case(user, participant_id, reason, "id", stage, ["wait"], "<b>card</b>", str(user))
            await cases.relay_from_participant(case.case, ChatMessage("text", text, [], user, 10 + n))
            opened.append(case.case.id)
        agent = Principal(f"staff:{AGENT}", Role.AGENT, AGENT)
        desk = ConsoleCases(context)
        await desk.reply(agent, opened[0], "Halo Kak, kami cek laporan pelatihanmu di platform dulu ya.")
        await desk.note(agent, opened[0], "Platform sudah lapor kemarin; tunggu PMO 1 hari kerja.")
        await cases.relay_from_participant(
            (await cases.case_by_id(opened[0])),  # type: ignore[arg-type]
            ChatMessage("text", "baik kak terima kasih, saya tunggu", [], 8_100_000, 99),
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(make_web_app(context), host="127.0.0.1", port=port, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 (uvicorn offers a flag, not an event)
            await asyncio.sleep(0.05)
        token = await context.access.issue_login_link(AGENT)
        base = f"http://127.0.0.1:{port}"
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            sizes = (("", ViewportSize(width=1280, height=760)), ("-phone", ViewportSize(width=390, height=844)))
            for name, viewport in sizes:
                page = await (await browser.new_context(viewport=viewport, locale="id-ID")).new_page()
                await page.goto(f"{base}/login?t={token}")
                await page.get_by_role("button").click()
                await page.wait_for_url(f"{base}/inbox")
                await page.screenshot(path=str(DOCS / f"console-inbox{name}.png"), full_page=True)
                await page.goto(f"{base}/cases/{opened[0]}")
                await page.screenshot(path=str(DOCS / f"console-case{name}.png"), full_page=True)
                token = await context.access.issue_login_link(AGENT)
            await browser.close()
        server.should_exit = True
        await serving
        await context.close()


if __name__ == "__main__":
    asyncio.run(main())
