"""Sign-in by a one-time link from the bot (/login) or `prakerja-bot web-link`; sign-out; the language switch."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.web.security import LOCALE_COOKIE, SESSION_COOKIE, csrf_ok, ctx, principal, render
from core.console.staff import SESSION_LIFETIME
from core.locales import LOCALES


async def home(request: Request) -> Response:
    who = await principal(request)
    if who is not None and not who.actor.startswith("token:"):
        return RedirectResponse("/inbox", status_code=303)
    return render(request, None, "login.html", {"token": None, "bad": False})


async def link(request: Request) -> Response:
    """GET shows a button, POST spends the token: a link previewer fetching the URL does not use it up."""
    token = request.query_params.get("t", "")
    return render(request, None, "login.html", {"token": token, "bad": False})


async def redeem(request: Request) -> Response:
    form = await request.form()
    token = str(form.get("t", ""))
    context = ctx(request)
    signed = await context.access.redeem_login_link(token) if token else None
    if signed is None:
        return render(request, None, "login.html", {"token": None, "bad": True}, 400)
    cookie, who = signed
    await context.audit.record(who.actor, "login", None, {"role": who.role.value})
    response = RedirectResponse("/inbox", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=context.secure_cookies,
        path="/",
    )
    return response


async def logout(request: Request) -> Response:
    who = await principal(request)
    form = await request.form()
    response = RedirectResponse("/", status_code=303)
    cookie = request.cookies.get(SESSION_COOKIE)
    if who is not None and cookie and csrf_ok(request, who, str(form.get("csrf", ""))):
        await ctx(request).access.end_session(cookie)
        await ctx(request).audit.record(who.actor, "logout")
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def language(request: Request) -> Response:
    lang = request.query_params.get("l", "id")
    back = request.headers.get("referer") or "/"
    target = back if back.startswith(str(request.base_url)) else "/"
    response = RedirectResponse(target, status_code=303)
    if lang in LOCALES:
        response.set_cookie(LOCALE_COOKIE, lang, max_age=365 * 86400, samesite="lax", path="/")
    return response


def routes() -> list[BaseRoute]:
    return [
        Route("/", home),
        Route("/login", link),
        Route("/login", redeem, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/lang", language),
    ]
