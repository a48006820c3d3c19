"""The console's admin pages over HTTP (in process, ASGI) on a real database: roles and CSRF, the FAQ editor (a form
edit that the matcher and the bot's next turn use, preview, history diff, rollback), knowledge gaps, the statistics
dashboard and its CSV, import upload with the per-row report, staff and roles, the audit log."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.flows.types import EventKind, Incoming
from bot.web.app import make_web_app
from core.calendar import WorkingCalendar
from core.console.staff import Role
from core.db import Database
from core.demo import PERSONAS, seed_demo
from core.models import AuditEntry, Case
from core.rules import default_rules
from tests.web_harness import ADMIN, AGENT, SUPERVISOR, Console, console, free_port

CHROMIUM = Path("/usr/bin/chromium")
WAIT_MS = 20_000  # a ceiling, not a timing
ADMIN_PAGES = ("/admin/faq", "/admin/faq/new", "/admin/gaps", "/admin/imports", "/admin/staff", "/admin/audit",
               "/admin/tokens")  # fmt: skip
QUESTION = "apakah kartu prakerja fisik dikirim ke rumah lewat pos"


def entry_form(csrf: str, faq_id: str, answer: str, mode: str = "create", **more: str) -> dict[str, str]:
    return {
        "csrf": csrf, "mode": mode, "do": "save", "faq_id": faq_id,
        "title_id": "Kartu fisik", "title_en": "Physical card",
        "paraphrases_id": "apakah ada kartu fisik prakerja\r\nkartu prakerja fisik dikirim ke rumah lewat pos",
        "paraphrases_en": "", "answer_id": answer, "answer_en": "", "sources": "official_faq_2024", "kind": "",
    } | more  # fmt: skip


async def bot_answer(c: Console, user_id: int, question: str) -> str:
    """What the bot says to a participant's free text on its next turn (the same conversation Telegram runs)."""
    outcome = await c.context.app.conversation.handle(Incoming(EventKind.TEXT, user_id, question), None)
    return outcome.replies[0].text


async def audit_actions(c: Console) -> list[tuple[str, str, str | None]]:
    async with c.context.access.sessions() as session:
        rows = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    return [(a.actor, a.action, a.target) for a in rows]


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


async def test_admin_pages_need_a_session_and_the_admin_role(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        await c.context.access.set_member(SUPERVISOR, Role.SUPERVISOR, "Sup", True, ADMIN)
        for path in (*ADMIN_PAGES, "/admin/stats"):
            assert (await c.client.get(path)).headers["location"] == "/", path
        await c.sign_in(AGENT)
        for path in (*ADMIN_PAGES, "/admin/stats", "/admin/stats.csv", "/admin/faq/export"):
            assert (await c.client.get(path)).status_code == 403, path
        inbox = (await c.client.get("/inbox")).text
        assert "/admin/" not in inbox  # no admin links for an agent
        c.client.cookies.clear()
        await c.sign_in(SUPERVISOR)
        assert (await c.client.get("/admin/stats")).status_code == 200  # supervisors see the figures
        assert (await c.client.get("/admin/faq")).status_code == 403
        assert 'href="/admin/stats"' in (await c.client.get("/inbox")).text
        c.client.cookies.clear()
        await c.sign_in(ADMIN)
        nav = (await c.client.get("/inbox")).text
        for path in ("/admin/faq", "/admin/gaps", "/admin/imports", "/admin/staff", "/admin/audit", "/admin/stats"):
            assert f'href="{path}"' in nav, path
        for path in (*ADMIN_PAGES, "/admin/stats"):
            assert (await c.client.get(path)).status_code == 200, path


async def test_an_faq_entry_edited_in_the_form_is_what_the_matcher_and_the_bot_use_and_rolls_back(
    db: Database,
) -> None:
    async with console(db) as c:
        csrf = await c.sign_in(ADMIN)
        first = "Kartu Prakerja hanya <b>digital</b>."
        refused = await c.client.post("/admin/faq/save", data=entry_form("wrong", "physical_card", first))
        assert refused.status_code == 403
        assert await c.context.faq.get("physical_card") is None
        saved = await c.client.post("/admin/faq/save", data=entry_form(csrf, "physical_card", first))
        assert saved.status_code == 303 and saved.headers["location"] == "/admin/faq/entry/physical_card?saved=1"
        shown = await c.client.get(saved.headers["location"])
        assert "v1" in shown.text and html.escape(first) in shown.text

        test = await c.client.get("/admin/faq", params={"q": QUESTION})
        candidates = re.findall(r'data-candidate="([a-z_0-9]+)"', test.text)
        assert candidates[0] == "physical_card" and 1 < len(candidates) <= 5
        assert (await bot_answer(c, 8001, QUESTION)).startswith(first)

        second = "Tidak ada kartu fisik, semuanya di dashboard."
        edit = entry_form(csrf, "physical_card", second, mode="edit")
        assert (await c.client.post("/admin/faq/save", data=edit)).status_code == 303
        assert (await bot_answer(c, 8002, QUESTION)).startswith(second)  # the next turn, no restart

        history = await c.client.get("/admin/faq/entry/physical_card/history")
        assert re.findall(r'data-version="(\d+)"', history.text) == ["2", "1"]
        diff = html.unescape(" ".join(re.findall(r'<span class="(?:add|del)">([^<]*)</span>', history.text)))
        assert f"-  id: {first}" in diff and f"+  id: {second}" in diff

        rollback = {"csrf": csrf, "version": "1"}
        assert (
            await c.client.post("/admin/faq/entry/physical_card/rollback", data={"version": "1"})
        ).status_code == 403
        rolled = await c.client.post("/admin/faq/entry/physical_card/rollback", data=rollback)
        assert rolled.status_code == 303 and rolled.headers["location"].endswith("?rolled=3")
        assert (await bot_answer(c, 8003, QUESTION)).startswith(first)
        assert [h.action for h in await c.context.faq.history("physical_card")] == ["rollback", "edit", "create"]
        faq_audit = [a for a in await audit_actions(c) if a[1].startswith("faq.")]
        assert faq_audit == [(f"staff:{ADMIN}", "faq.put", "faq:physical_card")] * 2 + [
            (f"staff:{ADMIN}", "faq.rollback", "faq:physical_card")
        ]


async def test_a_deleted_entry_leaves_the_bot_and_a_rollback_brings_it_back(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        csrf = await c.sign_in(ADMIN)
        first = "Kartu Prakerja hanya <b>digital</b>."
        assert (
            await c.client.post("/admin/faq/save", data=entry_form(csrf, "physical_card", first))
        ).status_code == 303
        assert (await bot_answer(c, 8201, QUESTION)).startswith(first)
        assert (await c.client.post("/admin/faq/entry/physical_card/delete")).status_code == 403
        gone = await c.client.post("/admin/faq/entry/physical_card/delete", data={"csrf": csrf})
        assert gone.headers["location"] == "/admin/faq/entry/physical_card/history?deleted=2"
        assert not (await bot_answer(c, 8202, QUESTION)).startswith(first)
        assert (await c.client.get("/admin/faq/entry/physical_card")).status_code == 404
        history = await c.client.get(gone.headers["location"])
        assert 'name="version" value="1"' in history.text  # the deleted entry's versions can be restored
        await c.client.post("/admin/faq/entry/physical_card/rollback", data={"csrf": csrf, "version": "1"})
        assert (await bot_answer(c, 8203, QUESTION)).startswith(first)
        actions = [a[1] for a in await audit_actions(c) if a[1].startswith("faq.")]
        assert actions == ["faq.put", "faq.delete", "faq.rollback"]


async def test_a_form_with_problems_comes_back_with_them_and_saves_nothing(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        csrf = await c.sign_in(ADMIN)
        bad = entry_form(csrf, "bad_answer", "Jawaban <div>bukan HTML Telegram</div>", paraphrases_id="")
        answer = await c.client.post("/admin/faq/save", data=bad)
        assert answer.status_code == 422
        problems = re.findall(r"<li>([^<]+)</li>", answer.text.split('class="problems"')[1].split("</ul>")[0])
        assert len(problems) >= 1 and "paraphrases.id" in " ".join(problems)
        assert 'value="bad_answer"' in answer.text  # the form keeps what was typed
        assert await c.context.faq.get("bad_answer") is None
        bad_html = entry_form(csrf, "bad_answer", "Jawaban <div>bukan HTML Telegram</div>")
        refused = await c.client.post("/admin/faq/save", data=bad_html)
        assert refused.status_code == 422 and "div" in refused.text.split('class="problems"')[1].split("</ul>")[0]
        taken = await c.client.post("/admin/faq/save", data=entry_form(csrf, "greeting", "Halo."))
        assert taken.status_code == 422 and "Id ini sudah dipakai" in taken.text
        assert await c.context.faq.current_version("greeting") == 1  # an id in use is not overwritten by "new"
        assert [a for a in await audit_actions(c) if a[1].startswith("faq.")] == []


async def test_the_preview_renders_the_answer_for_the_chosen_persona(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        csrf = await c.sign_in(ADMIN)
        template = "Halo {{ participant.name if participant else 'Kak' }}, <b>cek</b> dashboard."
        form = entry_form(csrf, "hello_persona", template, do="preview")
        anonymous = await c.client.post("/admin/faq/save", data=form | {"persona": "none"})
        assert anonymous.status_code == 200 and "Halo Kak, <b>cek</b> dashboard." in anonymous.text
        sample = await c.client.post("/admin/faq/save", data=form | {"persona": "sample:0"})
        assert "Halo Siti Rahayu, <b>cek</b> dashboard." in sample.text
        persona = PERSONAS[0]
        missing = await c.client.post("/admin/faq/save", data=form | {"persona": f"demo:{persona.key}"})
        assert "data-preview=" not in missing.text  # not in this database yet
        await seed_demo(sqlite_db.engine, default_rules(), WorkingCalendar(), b"k" * 40, date.today())
        demo = await c.client.post("/admin/faq/save", data=form | {"persona": f"demo:{persona.key}"})
        assert f"Halo {html.escape(persona.name)}, <b>cek</b> dashboard." in demo.text
        assert await c.context.faq.get("hello_persona") is None  # a preview saves nothing


async def test_knowledge_gaps_offer_a_new_entry_prefilled_from_the_cluster(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        answers = c.context.app.services.answers
        for user, question in enumerate(
            ["cara ganti foto profil prakerja", "cara ganti foto profil prakerja", "gimana ganti foto profil prakerja"]
        ):
            await answers.record(question, "none", None, 0.0, 9100 + user, None)
        await c.sign_in(ADMIN)
        page = await c.client.get("/admin/gaps?days=7")
        assert page.status_code == 200 and 'data-gap="1"' in page.text
        link = re.search(r'href="(/admin/faq/new\?[^"]+)"', page.text)
        assert link is not None
        editor = await c.client.get(html.unescape(link.group(1)))
        box = editor.text.split('name="paraphrases_id"')[1].split("</textarea>")[0]
        assert "cara ganti foto profil prakerja" in box


async def test_the_stats_dashboard_draws_the_figures_and_exports_them_as_csv(db: Database) -> None:
    async with console(db) as c:
        await c.open_case(7401, "sertifikat belum muncul")
        await c.sign_in(ADMIN)
        page = await c.client.get("/admin/stats?days=7")
        assert page.status_code == 200
        assert re.search(r'data-figure="cases_opened">1<', page.text)
        assert page.text.count('<svg class="chart"') == 4 and "<script" not in page.text.split("<main")[1]
        api = (await c.client.get("/api/v1/stats?days=7")).json()
        exported = await c.client.get("/admin/stats.csv?days=7")
        assert exported.headers["content-type"].startswith("text/csv")
        assert "attachment" in exported.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [r["day"] for r in rows[:-1]] == [d["day"] for d in api["days"]] and len(rows) == 8
        assert rows[-1]["day"] == "total" and int(rows[-1]["cases_opened"]) == api["cases_opened"] == 1
        assert int(rows[-1]["conversations"]) == api["conversations"]
        assert (f"staff:{ADMIN}", "stats.export", None) in await audit_actions(c)
        # The case is past its first-reply target with no reply: the share within the SLA is 0 of 1.
        async with db.engine.begin() as conn:
            await conn.execute(update(Case).values(first_reply_due=datetime.now(UTC) - timedelta(hours=1)))
        page = await c.client.get("/admin/stats?days=7")
        assert re.search(r'data-figure="first_reply_within_sla">0% \(1\)<', page.text)


async def test_an_import_upload_shows_the_per_row_report(db: Database) -> None:
    async with console(db) as c:
        csrf = await c.sign_in(ADMIN)
        bad = {"file": ("platforms.csv", b"code,name\ntokopedia,Tokopedia\n,Tanpa kode\n", "text/csv")}
        refused = await c.client.post("/admin/imports", data={"kind": "platforms"}, files=bad)
        assert refused.status_code == 403
        report = await c.client.post("/admin/imports", data={"csrf": csrf, "kind": "platforms"}, files=bad)
        assert report.status_code == 200 and 'data-status="rejected"' in report.text
        assert re.findall(r'data-line="(\d+)"', report.text) == ["3"]
        good = {"file": ("platforms.csv", b"code,name\ntokopedia,Tokopedia\npintaria,Pintaria\n", "text/csv")}
        applied = await c.client.post("/admin/imports", data={"csrf": csrf, "kind": "platforms"}, files=good,
                                      headers={"x-fragment": "report"})  # fmt: skip
        assert "<html" not in applied.text  # only the report, for the page's script to swap in
        assert 'data-status="applied"' in applied.text and re.search(r'data-figure="applied">2<', applied.text)
        again = await c.client.post("/admin/imports", data={"csrf": csrf, "kind": "platforms"}, files=good)
        assert re.search(r'data-figure="unchanged">2<', again.text)  # idempotent
        wrong = {"file": ("platforms.txt", b"x", "text/plain")}
        assert (
            await c.client.post("/admin/imports", data={"csrf": csrf, "kind": "platforms"}, files=wrong)
        ).status_code == 422
        imports = [a for a in await audit_actions(c) if a[1] == "import"]
        assert len(imports) == 3 and all(a[0] == f"staff:{ADMIN}" for a in imports)


async def test_staff_are_added_changed_and_disabled_and_the_audit_log_is_paged(db: Database) -> None:
    async with console(db) as c:
        csrf = await c.sign_in(ADMIN)
        add = {"csrf": csrf, "telegram_id": "4242", "name": "Rina", "role": "supervisor", "active": "1"}
        assert (await c.client.post("/admin/staff", data=add | {"csrf": "x"})).status_code == 403
        assert (await c.client.post("/admin/staff", data=add)).status_code == 303
        assert await c.context.access.role_of(4242) == Role.SUPERVISOR
        assert 'data-staff="4242"' in (await c.client.get("/admin/staff")).text
        await c.client.post("/admin/staff", data=add | {"role": "agent"})
        assert await c.context.access.role_of(4242) == Role.AGENT
        await c.client.post("/admin/staff", data=add | {"active": "0"})
        assert await c.context.access.role_of(4242) is None
        myself = await c.client.post("/admin/staff", data=add | {"telegram_id": str(ADMIN), "role": "agent"})
        assert myself.headers["location"].endswith("error=admin_staff_self")
        bad = await c.client.post("/admin/staff", data=add | {"telegram_id": "²"})
        assert bad.headers["location"].endswith("error=admin_staff_bad_id")
        staff_changes = [a for a in await audit_actions(c) if a[1] == "staff.set"]
        assert staff_changes == [(f"staff:{ADMIN}", "staff.set", "staff:4242")] * 3

        for n in range(60):
            await c.context.audit.record("staff:1", "test.entry", f"n:{n}")
        first = await c.client.get("/admin/audit")
        ids = [int(i) for i in re.findall(r'data-audit="(\d+)"', first.text)]
        assert len(ids) == 50 and ids == sorted(ids, reverse=True)
        next_link = re.search(r'href="(/admin/audit\?before=\d+)"', first.text)
        assert next_link is not None
        second = await c.client.get(next_link.group(1))
        rest = [int(i) for i in re.findall(r'data-audit="(\d+)"', second.text)]
        total = len(await audit_actions(c))
        assert len(rest) == total - 50 and max(rest) < min(ids)
        mine = await c.client.get("/admin/audit", params={"actor": f"staff:{ADMIN}"})
        assert set(re.findall(r'data-action="([a-z.]+)"', mine.text)) == {"login", "staff.set"}


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
async def test_in_a_browser_an_admin_writes_an_entry_previews_tests_it_and_uploads_an_import(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """The pages and console.js in Debian's Chromium, served over real HTTP by uvicorn: the form, the persona
    preview, the test box, the bot's next answer, and the background upload that swaps in only the report."""
    import uvicorn
    from playwright.async_api import async_playwright

    async with console(sqlite_db) as c, async_playwright() as playwright:
        port = free_port()
        config = uvicorn.Config(
            make_web_app(c.context), host="127.0.0.1", port=port, lifespan="off", log_level="warning"
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            for _ in range(400):  # uvicorn has no "started" event to await
                if server.started:
                    break
                await asyncio.sleep(0.05)
            assert server.started
            base = f"http://127.0.0.1:{port}"
            page = await (await browser.new_context(locale="id-ID")).new_page()
            token = await c.context.access.issue_login_link(ADMIN)
            await page.goto(f"{base}/login?t={token}")
            await page.get_by_role("button").click()
            await page.wait_for_url(f"{base}/inbox")
            await page.click('header a[href="/admin/faq"]')
            await page.click('a[href="/admin/faq/new"]')
            answer = "Halo {{ participant.name if participant else 'Kak' }}, kartu Prakerja hanya <b>digital</b>."
            await page.fill("#faq_id", "physical_card")
            await page.fill("#title_id", "Kartu fisik")
            await page.fill("#paraphrases_id", "apakah ada kartu fisik prakerja\n" + QUESTION)
            await page.fill("#answer_id", answer)
            await page.fill("#sources", "official_faq_2024")
            await page.select_option("select[name=persona]", "sample:0")
            await page.click('button[value="preview"]')
            preview = page.locator("[data-preview]")
            await preview.wait_for(timeout=WAIT_MS)
            assert await preview.inner_text() == "Halo Siti Rahayu, kartu Prakerja hanya digital."
            assert await preview.locator("b").inner_text() == "digital"
            await page.click('button[value="save"]')
            await page.wait_for_url(f"{base}/admin/faq/entry/physical_card?saved=1")
            await page.fill("input[name=q]", QUESTION)
            await page.press("input[name=q]", "Enter")
            first = page.locator("[data-candidate]").first
            await first.wait_for(timeout=WAIT_MS)
            assert await first.get_attribute("data-candidate") == "physical_card"
            said = await bot_answer(c, 8101, QUESTION)  # the bot's next turn answers with the saved entry
            assert said.startswith("Halo Kak, kartu Prakerja hanya <b>digital</b>."), said

            upload = tmp_path / "platforms.csv"
            upload.write_text("code,name\ntokopedia,Tokopedia\npintaria,Pintaria\n", encoding="utf-8")
            await page.click('header a[href="/admin/imports"]')
            await page.evaluate("window.notReloaded = true")
            await page.select_option("#import-kind", "platforms")
            await page.set_input_files("#import-file", str(upload))
            await page.click("#import-form button[type=submit]")
            report = page.locator('.report[data-status="applied"]')
            await report.wait_for(timeout=WAIT_MS)
            assert await page.evaluate("window.notReloaded === true")  # swapped in by console.js, no page load
            assert await report.locator('[data-figure="applied"]').inner_text() == "2"
            assert await page.locator("#import-progress").is_hidden()
        finally:
            await browser.close()
            server.should_exit = True
            await serving


async def test_an_integration_token_is_shown_once_works_and_is_revoked_from_the_page(
    sqlite_db: Database,
) -> None:
    async with console(sqlite_db) as c:
        csrf = await c.sign_in(ADMIN)
        made = await c.client.post("/admin/tokens", data={"csrf": csrf, "name": "crm", "role": "agent"})
        found = re.search(r'<code id="new-token">([^<]+)</code>', made.text)
        assert made.status_code == 200 and found is not None
        token = found.group(1)
        listing = await c.client.get("/admin/tokens")
        assert token not in listing.text and 'data-token="1"' in listing.text  # shown once
        auth = {"authorization": f"Bearer {token}"}
        assert (await c.client.get("/api/v1/cases", headers=auth)).status_code == 200
        assert (await c.client.post("/admin/tokens/1/revoke", data={"csrf": "x"})).status_code == 403
        assert (await c.client.post("/admin/tokens/1/revoke", data={"csrf": csrf})).status_code == 303
        assert (await c.client.get("/api/v1/cases", headers=auth)).status_code == 401
        assert [a[1] for a in await audit_actions(c) if a[1].startswith("token.")] == ["token.create", "token.revoke"]
