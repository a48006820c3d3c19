"""Who is asking: a session cookie (browsers) or a bearer token (integrations); roles and CSRF checked here, on the
server, for every request that needs them."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from bot.web.context import WebContext
from bot.web.texts import pick_locale, text
from core.console.staff import Principal, Role

SESSION_COOKIE = "pk_session"
LOCALE_COOKIE = "pk_lang"


def ctx(request: Request) -> WebContext:
    context: WebContext = request.app.state.ctx
    return context


def locale(request: Request) -> str:
    return pick_locale(
        request.cookies.get(LOCALE_COOKIE),
        request.headers.get("accept-language", ""),
        ctx(request).settings.default_locale,
    )


async def principal(request: Request) -> Principal | None:
    cached = request.scope.get("principal")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    access = ctx(request).access
    found: Principal | None = None
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        found = await access.token_principal(header[7:].strip())
    elif (cookie := request.cookies.get(SESSION_COOKIE)) is not None:
        found = await access.session_principal(cookie)
    request.scope["principal"] = found
    return found


def csrf_ok(request: Request, who: Principal, submitted: str | None) -> bool:
    """Session requests that change something carry the session's CSRF token (a form field or X-CSRF-Token);
    bearer tokens are not sent by browsers on their own, so they need none."""
    if who.actor.startswith("token:"):
        return True
    given = submitted or request.headers.get("x-csrf-token", "")
    return bool(given) and hmac.compare_digest(given, who.csrf_token)


Page = Callable[[Request, Principal], Awaitable[Response]]


def page(role: Role = Role.AGENT) -> Callable[[Page], Callable[[Request], Awaitable[Response]]]:
    """A console page: without a session → the login page; with too small a role → 403."""

    def wrap(handler: Page) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            who = await principal(request)
            if who is None or who.actor.startswith("token:"):
                return RedirectResponse("/", status_code=303)
            if not who.role.allows(role):
                return render(request, who, "error.html", {"message": text("err_role", locale(request))}, 403)
            return await handler(request, who)

        return endpoint

    return wrap


def api(role: Role = Role.AGENT) -> Callable[[Page], Callable[[Request], Awaitable[Response]]]:
    """An API route: 401 without a session or token, 403 below the role, 403 on a session write without CSRF."""

    def wrap(handler: Page) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            who = await principal(request)
            if who is None:
                return problem(401, "authentication required: a console session or 'Authorization: Bearer <token>'")
            if not who.role.allows(role):
                return problem(403, f"needs the role {role.value}")
            if request.method not in ("GET", "HEAD") and not csrf_ok(request, who, None):
                return problem(403, "missing or wrong X-CSRF-Token")
            return await handler(request, who)

        return endpoint

    return wrap


def problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"error": detail}, status_code=status)


def render(
    request: Request, who: Principal | None, template: str, values: dict[str, Any], status: int = 200
) -> Response:
    context = ctx(request)
    lang = locale(request)

    def t(key: str, **more: Any) -> str:
        return text(key, lang, **more)

    body = context.templates.get_template(template).render(
        t=t, locale=lang, who=who, request=request, path=request.url.path, **values
    )
    response = Response(body, status_code=status, media_type="text/html; charset=utf-8")
    response.headers["cache-control"] = "no-store"
    return response
