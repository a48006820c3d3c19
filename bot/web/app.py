"""The console and the API in one Starlette app. A page group is a module with `routes()`: add it to ROUTE_MODULES."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.web import api, api_admin, api_imports
from bot.web.context import WebContext
from bot.web.pages import admin_pages, case, inbox, login
from core.leader import run_as_leader

ROUTE_MODULES: list[ModuleType] = [login, inbox, case, api, api_admin, api_imports, admin_pages]
STATIC = Path(__file__).parent / "static"
ASSIGNMENT_LOCK = 7_401_004  # PostgreSQL advisory lock: one assigner across the web processes (see bot/telegram.py)


class SecurityHeaders:
    """No framing, no sniffing, scripts only from us: the console shows participants' words."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                headers += [
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)  # type: ignore[arg-type]


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def make_web_app(context: WebContext) -> Starlette:
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    for module in ROUTE_MODULES:
        routes.extend(module.routes())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await context.events.start()
        stop = asyncio.Event()
        assigner = context.assigner()
        assigning = (
            asyncio.create_task(run_as_leader(context.app.engine, ASSIGNMENT_LOCK, assigner.run, stop))
            if assigner is not None
            else None
        )
        try:
            yield
        finally:
            stop.set()
            if assigning is not None:
                await asyncio.gather(assigning, return_exceptions=True)
            await context.close()

    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(SecurityHeaders)])
    app.state.ctx = context
    return app
