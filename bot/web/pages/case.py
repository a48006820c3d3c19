"""The case page: masked participant card, diagnosis, incentives, transcript, deliveries, and the staff actions
(reply, reply and close, note, claim, assign, close, reopen) as plain forms with a CSRF token."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.web.desk import ConsoleCases
from bot.web.security import csrf_ok, ctx, locale, page, render
from bot.web.texts import ActionRefused, console_texts, text
from core.console.staff import Principal, Role


def _case_id(request: Request) -> int | None:
    raw = request.path_params["case_id"]
    return int(raw) if raw.isdecimal() and len(raw) < 12 else None


def _known_error(key: str | None) -> str | None:
    return key if key and key.startswith("err_") and key in console_texts() else None


@page()
async def case_page(request: Request, who: Principal) -> Response:
    case_id = _case_id(request)
    desk = ConsoleCases(ctx(request))
    detail = await desk.detail(case_id) if case_id is not None else None
    if detail is None:
        return render(request, who, "error.html", {"message": text("err_not_found", locale(request))}, 404)
    fragment = request.query_params.get("fragment") == "live"
    values = {
        "d": detail,
        "canned": await desk.canned(who, detail.case),
        "staff": await ctx(request).access.staff() if who.role.allows(Role.SUPERVISOR) else [],
        "flash": request.query_params.get("done"),
        "error": _known_error(request.query_params.get("error")),
    }
    return render(request, who, "_case_live.html" if fragment else "case.html", values)


@page()
async def case_action(request: Request, who: Principal) -> Response:
    case_id = _case_id(request)
    action = request.path_params["action"]
    form = await request.form()
    if case_id is None:
        return render(request, who, "error.html", {"message": text("err_not_found", locale(request))}, 404)
    if not csrf_ok(request, who, str(form.get("csrf", ""))):
        return render(request, who, "error.html", {"message": text("err_csrf", locale(request))}, 403)
    desk = ConsoleCases(ctx(request))
    try:
        match action:
            case "reply":
                await desk.reply(who, case_id, str(form.get("text", "")), close=form.get("close") == "1")
            case "note":
                await desk.note(who, case_id, str(form.get("text", "")))
            case "claim":
                await desk.claim(who, case_id)
            case "assign":
                if not who.role.allows(Role.SUPERVISOR):
                    raise ActionRefused("err_role", 403)
                raw = str(form.get("agent_id", "")).strip()
                if not raw.isdecimal() or len(raw) > 15:
                    raise ActionRefused("err_bad_agent", 422)
                await desk.claim(who, case_id, int(raw))
            case "close":
                await desk.close(who, case_id)
            case "reopen":
                await desk.reopen(who, case_id)
            case _:
                return render(request, who, "error.html", {"message": text("err_not_found", locale(request))}, 404)
    except ActionRefused as refused:
        return RedirectResponse(f"/cases/{case_id}?error={refused.key}", status_code=303)
    return RedirectResponse(f"/cases/{case_id}?done={action}", status_code=303)


@page()
async def case_media(request: Request, who: Principal) -> Response:
    """A participant's photo/file/voice note of this case, through the bot (see bot/web/media.py)."""
    case_id, message_id, number = (request.path_params[k] for k in ("case_id", "message_id", "n"))
    if not all(v.isdecimal() and len(v) < 12 for v in (case_id, message_id, number)):
        return render(request, who, "error.html", {"message": text("err_not_found", locale(request))}, 404)
    try:
        found = await ctx(request).media.fetch(int(case_id), int(message_id), int(number))
    except ActionRefused as missing:
        return render(request, who, "error.html", {"message": text(missing.key, locale(request))}, missing.status)
    inline = found.content_type.startswith(("image/", "audio/"))
    disposition = "inline" if inline else f'attachment; filename="{found.name}"'
    headers = {"cache-control": "private, max-age=300", "content-disposition": disposition}
    return Response(found.content, media_type=found.content_type, headers=headers)


def routes() -> list[BaseRoute]:
    return [
        Route("/cases/{case_id}/media/{message_id}/{n}", case_media),
        Route("/cases/{case_id}", case_page),
        Route("/cases/{case_id}/{action}", case_action, methods=["POST"]),
    ]
