"""The web console and its API, in process over ASGI on a real database: sign-in, sessions, CSRF, roles, the inbox,
case actions through the shared case use cases (outbox, topic, audit), API tokens, live events."""

from __future__ import annotations

import asyncio
import os
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from core.cases.views import ChatMessage
from core.console.staff import Role
from core.db import Database
from core.models import AuditEntry, Case, CaseMessage, ConsoleLoginLink, OutboxMessage
from tests.fake_bot_api import FakeBotApi
from tests.harness import TOKEN
from tests.web_harness import ADMIN, AGENT, SUPERVISOR, console

REDIS_URL = os.environ.get("REDIS_URL", "")


async def test_without_a_session_the_root_is_the_login_page_and_the_api_answers_401(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        home = await c.client.get("/")
        assert home.status_code == 200 and "/login" in home.text
        assert (await c.client.get("/inbox")).headers["location"] == "/"
        for path in ("/api/v1/cases", "/api/v1/faq", "/api/v1/stats", "/api/v1/cases/1"):
            assert (await c.client.get(path)).status_code == 401
        assert (await c.client.get("/api/openapi.json")).json()["openapi"].startswith("3.")


async def test_a_login_link_signs_in_once_into_an_httponly_samesite_session(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        assert await c.context.access.issue_login_link(5555) is None  # not staff
        token = await c.context.access.issue_login_link(AGENT)
        assert token is not None
        async with c.context.access.sessions() as session:
            stored = (await session.scalars(select(ConsoleLoginLink.token_hash))).all()
        assert token not in stored and len(stored) == 1  # only the hash is kept
        shown = await c.client.get(f"/login?t={token}")  # a link preview does not spend it
        assert token in shown.text
        signed = await c.client.post("/login", data={"t": token})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert (await c.client.get("/inbox")).status_code == 200
        c.client.cookies.clear()
        again = await c.client.post("/login", data={"t": token})
        assert again.status_code == 400 and "pk_session" not in again.headers.get("set-cookie", "")


async def test_an_expired_link_is_refused(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        old = datetime.now(UTC) - timedelta(minutes=11)
        token = await c.context.access.issue_login_link(AGENT, now=old)
        assert token is not None
        assert await c.context.access.redeem_login_link(token) is None


async def test_a_reply_from_the_console_goes_through_the_outbox_the_topic_and_the_audit_log(
    db: Database,
) -> None:
    async with console(db) as c:
        case_id = await c.open_case(7001, "sertifikat belum muncul")
        csrf = await c.sign_in(AGENT)
        refused = await c.client.post(f"/cases/{case_id}/reply", data={"text": "tanpa token"})
        assert refused.status_code == 403
        sent = await c.client.post(f"/cases/{case_id}/reply", data={"csrf": csrf, "text": "Halo Kak <b>"})
        assert sent.status_code == 303 and "done=reply" in sent.headers["location"]
        async with c.context.access.sessions() as session:
            outbox = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
            said = (await session.scalars(select(CaseMessage).where(CaseMessage.direction == "agent"))).all()
            audit = (await session.scalars(select(AuditEntry))).all()
        to_participant = [o for o in outbox if o.lane == "participant"]
        assert [(o.chat_id, o.method, o.payload["text"]) for o in to_participant] == [
            (7001, "agentText", "Halo Kak &lt;b&gt;")
        ]
        assert any("Halo Kak &lt;b&gt;" in o.payload.get("text", "") for o in outbox if o.lane == "staff")
        assert [(m.author_id, m.text) for m in said] == [(AGENT, "Halo Kak <b>")]
        assert ("case.reply", f"staff:{AGENT}") in {(a.action, a.actor) for a in audit}
        page = await c.client.get(f"/cases/{case_id}")
        assert "Halo Kak &lt;b&gt;" in page.text and 'data-status="pending"' in page.text
        detail = (await c.client.get(f"/api/v1/cases/{case_id}")).json()
        assert detail["status"] == "claimed" and detail["claimed_by"] == AGENT


async def test_roles_are_checked_on_the_server(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        await c.context.access.set_member(SUPERVISOR, Role.SUPERVISOR, "Sup", True, ADMIN)
        case_id = await c.open_case(7002, "halo")
        csrf = await c.sign_in(AGENT)
        entry = {"title": {"id": "x"}, "paraphrases": {"id": ["x y z"]}, "answer": {"id": "x"}}
        headers = {"x-csrf-token": csrf}
        assert (await c.client.put("/api/v1/faq/greeting", json=entry, headers=headers)).status_code == 403
        assign = {"agent_id": SUPERVISOR}
        assert (await c.client.post(f"/api/v1/cases/{case_id}/assign", json=assign, headers=headers)).status_code == 403
        assert (await c.client.get("/api/v1/stats")).status_code == 403
        c.client.cookies.clear()
        csrf = await c.sign_in(SUPERVISOR)
        moved = await c.client.post(f"/api/v1/cases/{case_id}/assign", json={"agent_id": AGENT},
                                    headers={"x-csrf-token": csrf})  # fmt: skip
        assert moved.status_code == 200 and moved.json()["claimed_by"] == AGENT
        assert (await c.client.get("/api/v1/stats")).status_code == 200


async def test_inbox_views_counts_and_search(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        first = await c.open_case(7101, "a")
        second = await c.open_case(7102, "b")
        csrf = await c.sign_in(AGENT)
        await c.client.post(f"/cases/{first}/reply", data={"csrf": csrf, "text": "ok"})
        listed = (await c.client.get("/api/v1/cases?view=unassigned")).json()
        assert [row["id"] for row in listed["cases"]] == [second]
        assert listed["counts"] == {"unassigned": 1, "mine": 1, "open": 2, "waiting": 1, "closed": 0}
        assert [r["id"] for r in (await c.client.get("/api/v1/cases?view=waiting")).json()["cases"]] == [first]
        assert [r["id"] for r in (await c.client.get("/api/v1/cases?q=7102")).json()["cases"]] == [second]
        assert [r["id"] for r in (await c.client.get(f"/api/v1/cases?q=%23{first}")).json()["cases"]] == [first]
        page = await c.client.get("/inbox?view=open&fragment=rows")
        assert re.findall(r'data-case="(\d+)"', page.text) == [str(first), str(second)]


async def test_cases_past_their_first_reply_target_are_flagged_and_filtered(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        late, answered_late, on_time = (
            await c.open_case(7201, "a"),
            await c.open_case(7202, "b"),
            await c.open_case(7203, "c"),
        )
        past = datetime.now(UTC) - timedelta(hours=2)
        async with sqlite_db.engine.begin() as conn:
            await conn.execute(update(Case).where(Case.id.in_([late, answered_late])).values(first_reply_due=past))
            await conn.execute(update(Case).where(Case.id == answered_late).values(first_reply_at=datetime.now(UTC)))
        csrf = await c.sign_in(AGENT)
        await c.client.post(f"/cases/{on_time}/reply", data={"csrf": csrf, "text": "halo"})  # well within the hour
        listed = (await c.client.get("/api/v1/cases?view=open")).json()["cases"]
        assert {r["id"]: r["sla_breached"] for r in listed} == {late: True, answered_late: True, on_time: False}
        breached = (await c.client.get("/api/v1/cases?view=open&sla=1")).json()["cases"]
        assert sorted(r["id"] for r in breached) == sorted([late, answered_late])
        assert (await c.client.get("/api/v1/cases?sla=yes")).status_code == 422
        page = await c.client.get("/inbox?view=open&sla=1")
        assert re.findall(r'data-case="(\d+)"', page.text) == [str(late), str(answered_late)]
        assert page.text.count('class=" breached"') == 2 and "lewat SLA" in page.text


async def test_the_console_process_assigns_new_cases_to_the_agent_signed_in(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        app = c.client._transport.app  # type: ignore[attr-defined]
        async with app.router.lifespan_context(app):  # starts the automatic assignment loop, as `web` does
            await c.sign_in(AGENT)
            case_id = await c.open_case(7301, "halo")
            for _ in range(100):  # the loop passes every 5 s
                listed = (await c.client.get("/api/v1/cases?view=mine")).json()["cases"]
                if listed:
                    break
                await asyncio.sleep(0.1)
            assert [r["id"] for r in listed] == [case_id]
            async with sqlite_db.engine.connect() as conn:
                payloads = (await conn.execute(select(OutboxMessage.payload))).scalars().all()
            assert any(f"diberikan otomatis ke {AGENT}" in str(p) for p in payloads)  # the topic is told


async def test_the_case_page_offers_canned_replies_with_their_variables_filled_in(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        case_id = await c.open_case(7401, "halo")
        await c.sign_in(AGENT)
        page = await c.client.get(f"/cases/{case_id}")
        assert f"Halo Kak, saya {AGENT} dari Prakerja Helpdesk. Kasus #{case_id} sekarang saya tangani" in page.text


async def test_a_participants_file_is_shown_through_the_consoles_file_proxy(sqlite_db: Database) -> None:
    async with FakeBotApi() as api:
        pushed = api.push_document(7501, "bukti.pdf", content=b"%PDF-1.4 bukti transfer")
        file_id = pushed["message"]["document"]["file_id"]
        async with console(sqlite_db, bot_token=TOKEN, bot_api_url=api.url) as c:
            cases = c.context.app.services.cases
            assert cases is not None
            case_id = await c.open_case(7501, "ini buktinya")
            opened = await cases.case_by_id(case_id)
            assert opened is not None
            await cases.relay_from_participant(opened, ChatMessage("document", "bukti", [file_id], 7501, 9))
            await c.sign_in(AGENT)
            detail = (await c.client.get(f"/api/v1/cases/{case_id}")).json()
            [line] = [m for m in detail["transcript"] if m["media"]]
            page = await c.client.get(f"/cases/{case_id}")
            assert line["media"][0] in page.text
            got = await c.client.get(line["media"][0])
            assert got.status_code == 200 and got.content == b"%PDF-1.4 bukti transfer"
            assert got.headers["content-type"] in ("application/pdf", "application/octet-stream")  # by its path
            assert got.headers["content-disposition"].startswith("attachment")  # a document: downloaded
            assert TOKEN not in page.text  # the browser never sees the bot token
            # Another case's message, a file number out of range, or no session: nothing.
            assert (await c.client.get(f"/cases/{case_id + 1}/media/{line['id']}/0")).status_code == 404
            assert (await c.client.get(f"/cases/{case_id}/media/{line['id']}/1")).status_code == 404
            c.client.cookies.clear()
            assert (await c.client.get(line["media"][0], follow_redirects=False)).status_code in (302, 303, 401)


async def test_api_tokens_are_stored_hashed_and_can_be_revoked(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        token_id, token = await c.context.access.create_api_token("crm", Role.AGENT, ADMIN)
        assert all(t.token_hash != token for t in await c.context.access.api_tokens())
        auth = {"authorization": f"Bearer {token}"}
        assert (await c.client.get("/api/v1/faq", headers=auth)).status_code == 200
        assert await c.context.access.revoke_api_token(token_id)
        assert (await c.client.get("/api/v1/faq", headers=auth)).status_code == 401


async def test_a_new_case_is_published_to_connected_consoles(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        async with c.context.events.local.subscription() as queue:
            await asyncio.sleep(0.5)  # the watcher has its first marks
            case_id = await c.open_case(7201, "baru")
            event = await asyncio.wait_for(queue.get(), 20)
        assert event["case_id"] == case_id


@pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set")
async def test_events_reach_every_process_through_redis(sqlite_db: Database) -> None:
    """Two console processes (two contexts) on one database: one watcher holds the Redis lease and publishes; the
    other process's browsers get the event through Redis pub/sub."""
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    await redis.delete("prakerja:console:watcher")
    await redis.aclose()
    async with console(sqlite_db, REDIS_URL) as first, console(sqlite_db, REDIS_URL) as second:
        async with first.context.events.local.subscription() as q1, second.context.events.local.subscription() as q2:
            await asyncio.sleep(1.0)  # a watcher took the lease and has its first marks
            case_id = await first.open_case(7301, "lewat redis")
            got = [await asyncio.wait_for(q.get(), 20) for q in (q1, q2)]
        assert [e["case_id"] for e in got] == [case_id, case_id]


async def test_an_admin_adds_staff_and_creates_a_token_and_both_are_audited(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        csrf = await c.sign_in(ADMIN)
        headers = {"x-csrf-token": csrf}
        added = await c.client.post("/api/v1/staff", json={"telegram_id": 4242, "role": "supervisor"}, headers=headers)
        assert added.status_code == 200
        assert await c.context.access.role_of(4242) == Role.SUPERVISOR
        assert await c.context.access.issue_login_link(4242) is not None  # added in the console: may sign in
        made = (await c.client.post("/api/v1/tokens", json={"name": "crm", "role": "agent"}, headers=headers)).json()
        auth = {"authorization": f"Bearer {made['token']}"}
        assert (await c.client.get("/api/v1/cases", headers=auth)).status_code == 200
        assert (await c.client.get("/api/v1/tokens", headers=auth)).status_code == 403  # an agent token
        assert (await c.client.delete(f"/api/v1/tokens/{made['id']}", headers=headers)).status_code == 200
        assert (await c.client.get("/api/v1/cases", headers=auth)).status_code == 401
        off = {"telegram_id": 4242, "role": "supervisor", "active": False}
        await c.client.post("/api/v1/staff", json=off, headers=headers)
        assert await c.context.access.role_of(4242) is None
        audit = (await c.client.get("/api/v1/audit")).json()["entries"]
        assert [e["action"] for e in audit][:5] == ["staff.set", "token.revoke", "token.create", "staff.set", "login"]
        assert {e["actor"] for e in audit} == {f"staff:{ADMIN}"}


async def test_an_admin_imports_a_file_through_the_api_and_gets_the_row_report(sqlite_db: Database) -> None:
    async with console(sqlite_db) as c:
        csrf = await c.sign_in(ADMIN)
        headers = {"x-csrf-token": csrf, "content-type": "text/csv"}
        body = "code,name\ntokopedia,Tokopedia\n,Tanpa kode\n"
        refused = (await c.client.post("/api/v1/imports/platforms", content=body, headers=headers)).json()
        assert refused["status"] == "rejected" and refused["rejections"][0]["line"] == 3  # all or nothing
        good = "code,name\ntokopedia,Tokopedia\npintaria,Pintaria\n"
        report = (await c.client.post("/api/v1/imports/platforms", content=good, headers=headers)).json()
        assert (report["status"], report["applied"]) == ("applied", 2)
        again = (await c.client.post("/api/v1/imports/platforms", content=good, headers=headers)).json()
        assert (again["applied"], again["unchanged"]) == (0, 2)  # idempotent
        assert (await c.client.post("/api/v1/imports/nonsense", content=good, headers=headers)).status_code == 404


async def test_the_faq_api_checks_an_entry_as_faq_set_does(sqlite_db: Database) -> None:
    """The API saved any template and took YAML-ish values: now the one entry reader and the same render checks
    (time and size limits, Telegram HTML) refuse it before a participant can trigger it."""
    async with console(sqlite_db) as c:
        csrf = await c.sign_in(ADMIN)
        headers = {"x-csrf-token": csrf}
        slow = "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}"
        entry = {"title": {"id": "Lambat"}, "paraphrases": {"id": ["jawaban lambat"]}, "answer": {"id": slow}}
        refused = await c.client.put("/api/v1/faq/slow_answer", json=entry, headers=headers)
        assert refused.status_code == 422, refused.text
        assert (await c.client.get("/api/v1/faq/slow_answer")).status_code == 404
        unknown = dict(entry, answer={"id": "Baik."}, extra="x")
        assert (await c.client.put("/api/v1/faq/slow_answer", json=unknown, headers=headers)).status_code == 422
        good = dict(entry, answer={"id": "Baik."}, sources=["official_faq_2024"])
        saved = await c.client.put("/api/v1/faq/slow_answer", json=good, headers=headers)
        assert saved.status_code == 200, saved.text
        # A version saved before the checks (straight into the store) is not put back by a rollback either.
        stored = await c.context.faq.entry_at("slow_answer", 1)
        assert stored is not None
        await c.context.faq.save(type(stored)(stored.id, stored.title, stored.paraphrases, {"id": slow}), ADMIN)
        await c.context.faq.save(stored, ADMIN)  # v3: good again
        rollback = await c.client.post("/api/v1/faq/slow_answer/rollback", json={"version": 2}, headers=headers)
        assert rollback.status_code == 422, rollback.text
        assert await c.context.faq.current_version("slow_answer") == 3


async def test_a_superscript_digit_in_a_case_id_is_not_found_not_a_crash(sqlite_db: Database) -> None:
    """The API fuzzer found it: "²".isdigit() is true and int("²") raises, so /api/v1/cases/²/close answered 500."""
    async with console(sqlite_db) as c:
        csrf = await c.sign_in(ADMIN)
        for path in ("/api/v1/cases/%C2%B2/close", "/api/v1/cases/%C2%B2", "/cases/%C2%B2"):
            response = await (
                c.client.post(path, headers={"x-csrf-token": csrf}) if path.endswith("close") else c.client.get(path)
            )
            assert response.status_code in (404, 422), (path, response.status_code)
