"""The REST API under /api/v1/ (JSON), described at /api/openapi.json. A console session (with X-CSRF-Token on
writes) or an admin-made bearer token; 401 without either."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.flows.admin import answer_problems
from bot.web.desk import ConsoleCases
from bot.web.openapi import openapi_document
from bot.web.pages.inbox import inbox_filter
from bot.web.security import api, ctx, problem
from bot.web.texts import ActionRefused, text
from core.calendar import today_in_jakarta
from core.console.inbox import InboxView
from core.console.staff import Principal, Role
from core.faq_entries import FaqEntry, read_entry
from core.faq_store import FaqStoreError, FaqValidationError, VersionInfo
from core.stats import compute_stats

MAX_BODY = 64 * 1024


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ValueError("body too large")
    data = json.loads(raw or b"{}")
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def _case_id(request: Request) -> int | None:
    raw = request.path_params["case_id"]
    return int(raw) if raw.isdecimal() and len(raw) < 12 else None


def _refused(refused: ActionRefused) -> JSONResponse:
    return problem(refused.status, text(refused.key, "en"))


@api()
async def cases_list(request: Request, who: Principal) -> Response:
    q = request.query_params
    flags_ok = q.get("overdue", "0") in ("0", "1") and q.get("sla", "0") in ("0", "1")
    if q.get("view", "open") not in {v.value for v in InboxView} or not flags_ok:
        return problem(422, "view must be one of unassigned, mine, open, waiting, closed; overdue and sla 0 or 1")
    if not q.get("page", "0").isdecimal():
        return problem(422, "page must be a whole number")
    result = await ctx(request).inbox.page(inbox_filter(request, who))
    return JSONResponse(
        {
            "counts": result.counts,
            "total": result.total,
            "cases": [
                {
                    "id": r.id,
                    "status": r.status,
                    "telegram_user_id": r.telegram_user_id,
                    "name": r.name,
                    "stage": r.stage,
                    "reason": r.reason,
                    "staff_chat_id": r.staff_chat_id,
                    "opened_at": r.opened_at.isoformat(),
                    "claimed_by": r.claimed_by,
                    "waiting": r.waiting,
                    "first_reply_due": r.first_reply_due.isoformat() if r.first_reply_due else None,
                    "sla_breached": r.sla_breached,
                }
                for r in result.rows
            ],
        }
    )


@api()
async def case_get(request: Request, who: Principal) -> Response:
    case_id = _case_id(request)
    detail = await ConsoleCases(ctx(request)).detail(case_id) if case_id is not None else None
    if detail is None:
        return problem(404, "no such case")
    return JSONResponse(detail.to_dict())


@api()
async def case_action(request: Request, who: Principal) -> Response:
    case_id = _case_id(request)
    if case_id is None:
        return problem(404, "no such case")
    try:
        body = await _body(request)
    except ValueError as error:
        return problem(400, str(error))
    desk = ConsoleCases(ctx(request))
    action = request.path_params["action"]
    try:
        if action in ("reply", "note"):
            value = body.get("text")
            if not isinstance(value, str):
                return problem(422, "'text' must be a string")
            if action == "reply":
                await desk.reply(who, case_id, value, close=body.get("close") is True)
            else:
                await desk.note(who, case_id, value)
        elif action == "assign":
            agent = body.get("agent_id")
            if not isinstance(agent, int) or isinstance(agent, bool) or agent <= 0:
                return problem(422, "'agent_id' must be a positive integer")
            if agent != who.telegram_id and not who.role.allows(Role.SUPERVISOR):
                return problem(403, "assigning to someone else needs the role supervisor")
            await desk.claim(who, case_id, None if agent == who.telegram_id else agent)
        elif action == "close":
            await desk.close(who, case_id)
        elif action == "reopen":
            await desk.reopen(who, case_id)
        else:
            return problem(404, "no such action")
    except ActionRefused as refused:
        return _refused(refused)
    detail = await desk.detail(case_id)
    return JSONResponse(detail.to_dict() if detail else {}, status_code=200)


def _entry(entry: FaqEntry) -> dict[str, Any]:
    return {"id": entry.id, "title": entry.title, "paraphrases": entry.paraphrases, "answer": entry.answer}


def _version(info: VersionInfo) -> dict[str, Any]:
    return {
        "version": info.version,
        "action": info.action,
        "author_id": info.author_id,
        "created_at": info.created_at.isoformat(),
        "deleted": info.deleted,
    }


@api()
async def faq_list(request: Request, who: Principal) -> Response:
    entries = await ctx(request).faq.current()
    return JSONResponse({"entries": [{"id": e.id, "title": e.title} for e in entries]})


@api()
async def faq_get(request: Request, who: Principal) -> Response:
    entry = await ctx(request).faq.get(request.path_params["faq_id"])
    if entry is None:
        return problem(404, "no such FAQ entry")
    version = await ctx(request).faq.current_version(entry.id)
    return JSONResponse(_entry(entry) | {"version": version})


@api(Role.ADMIN)
async def faq_put(request: Request, who: Principal) -> Response:
    faq_id = request.path_params["faq_id"]
    try:
        body = await _body(request)
    except ValueError as error:
        return problem(400, str(error))
    # The one entry reader and the same render checks as /faq_set: an answer that is slow, huge or invalid Telegram
    # HTML to render is refused before any participant can trigger it.
    entry, problems = read_entry(body, faq_id)
    if entry is not None and not problems:
        problems = await answer_problems(entry)
    if entry is None or problems:
        return problem(422, "; ".join(f"{p.key} {dict(p.values)}" for p in problems))
    try:
        version = await ctx(request).faq.save(entry, who.agent_id)
    except FaqValidationError as error:
        return problem(422, "; ".join(f"{p.code}: {p.field}" for p in error.problems))
    except FaqStoreError as error:
        return problem(409, str(error))
    await ctx(request).audit.record(who.actor, "faq.put", f"faq:{faq_id}", {"version": version})
    return JSONResponse(_entry(entry) | {"version": version})


@api()
async def faq_history(request: Request, who: Principal) -> Response:
    faq_id = request.path_params["faq_id"]
    history = await ctx(request).faq.history(faq_id)
    if not history:
        return problem(404, "no such FAQ entry")
    return JSONResponse({"id": faq_id, "versions": [_version(v) for v in history]})


@api(Role.ADMIN)
async def faq_rollback(request: Request, who: Principal) -> Response:
    faq_id = request.path_params["faq_id"]
    try:
        body = await _body(request)
    except ValueError as error:
        return problem(400, str(error))
    target = body.get("version")
    if not isinstance(target, int) or isinstance(target, bool) or not 1 <= target <= 2**31 - 1:
        return problem(422, "'version' must be a whole number from 1")
    # What rendered when it was saved may not any more: the same refusal as /faq_rollback and the admin page.
    old = await ctx(request).faq.entry_at(faq_id, target)
    problems = await answer_problems(old) if old is not None else []
    if problems:
        return problem(422, "; ".join(f"{p.key} {dict(p.values)}" for p in problems))
    try:
        version = await ctx(request).faq.rollback(faq_id, target, who.agent_id)
    except FaqStoreError as error:
        return problem(404, str(error))
    except FaqValidationError as error:
        return problem(422, "; ".join(f"{p.code}: {p.field}" for p in error.problems))
    await ctx(request).audit.record(who.actor, "faq.rollback", f"faq:{faq_id}", {"to": target, "version": version})
    return JSONResponse({"id": faq_id, "version": version})


@api(Role.SUPERVISOR)
async def stats(request: Request, who: Principal) -> Response:
    raw = request.query_params.get("days", "7")
    if not raw.isdecimal() or not 1 <= int(raw) <= 366:
        return problem(422, "days must be 1–366")
    days = int(raw)
    end = today_in_jakarta() + timedelta(days=1)
    figures = await compute_stats(ctx(request).app.engine, end - timedelta(days=days), end)
    return JSONResponse(figures.to_dict())


async def faq_entry(request: Request) -> Response:
    """One path, both methods: a 405 then names every method the path has (Allow)."""
    return await (faq_put(request) if request.method == "PUT" else faq_get(request))


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


def routes() -> list[BaseRoute]:
    return [
        Route("/api/openapi.json", openapi),
        Route("/api/v1/cases", cases_list),
        Route("/api/v1/cases/{case_id}", case_get),
        Route("/api/v1/cases/{case_id}/{action}", case_action, methods=["POST"]),
        Route("/api/v1/faq", faq_list),
        Route("/api/v1/faq/{faq_id}", faq_entry, methods=["GET", "PUT"]),
        Route("/api/v1/faq/{faq_id}/history", faq_history),
        Route("/api/v1/faq/{faq_id}/rollback", faq_rollback, methods=["POST"]),
        Route("/api/v1/stats", stats),
    ]
