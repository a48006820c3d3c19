"""The console and the API in one Starlette app. A page group is a module with `routes()`: add it to ROUTE_MODULES."""

from __future__ import annotations

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

ROUTE_MODULES: list[ModuleType] = [login, inbox, case, api, api_admin, api_imports, admin_pages]
STATIC = Path(__file__).parent / "static"


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
        try:
            yield
        finally:
            await context.close()

    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(SecurityHeaders)])
    app.state.ctx = context
    return app
