"""The inbox: views, filters, search, counts; the rows refresh live (see static/console.js and /events)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from bot.web.security import SESSION_COOKIE, ctx, page, principal, problem, render
from core.console.inbox import InboxFilter, InboxView
from core.console.staff import PRESENCE_EVERY, Principal

KEEPALIVE_SECONDS = 15.0


def inbox_filter(request: Request, who: Principal) -> InboxFilter:
    q = request.query_params
    try:
        view = InboxView(q.get("view", "open"))
    except ValueError:
        view = InboxView.OPEN
    group = q.get("group", "")
    page_number = q.get("page", "0")
    return InboxFilter(
        view=view,
        agent_id=who.agent_id,
        staff_chat_id=int(group) if group.lstrip("-").isdecimal() and len(group) < 20 else None,
        stage=q.get("stage") or None,
        overdue=q.get("overdue") in ("1", "on", "true"),
        sla_breached=q.get("sla") in ("1", "on", "true"),
        search=q.get("q", "")[:100],
        page=min(int(page_number), 10_000) if page_number.isdecimal() and len(page_number) < 6 else 0,
    )


@page()
async def inbox(request: Request, who: Principal) -> Response:
    f = inbox_filter(request, who)
    result = await ctx(request).inbox.page(f)
    template = "_inbox_rows.html" if request.query_params.get("fragment") == "rows" else "inbox.html"
    return render(
        request, who, template, {"f": f, "result": result, "views": list(InboxView), "query": request.url.query}
    )


async def events(request: Request) -> Response:
    """Server-sent events: one line of JSON per change; a comment every 15 s keeps proxies from closing it."""
    who = await principal(request)
    if who is None:
        return problem(401, "authentication required")
    fanout = ctx(request).events.local
    access = ctx(request).access
    cookie = request.cookies.get(SESSION_COOKIE)

    async def stream() -> AsyncIterator[str]:
        seen = time.monotonic()
        async with fanout.subscription() as queue:
            yield ": connected\n\n"
            while True:
                if cookie is not None and time.monotonic() - seen >= PRESENCE_EVERY.total_seconds():
                    seen = time.monotonic()  # an open console counts as online (automatic assignment)
                    with contextlib.suppress(Exception):
                        await access.touch(cookie)
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                yield f"data: {json.dumps(event)}\n\n"

    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def routes() -> list[BaseRoute]:
    return [Route("/inbox", inbox), Route("/events", events)]
