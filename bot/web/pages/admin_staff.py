"""Staff and roles (add a person, change a role or name, disable), integration tokens, and the audit log, paged.
The same `StaffAccess` use cases and audit records as `POST /api/v1/staff` and `/api/v1/tokens`; ADMIN_IDS stay
admins whatever is set here."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.web.api_admin import MAX_TELEGRAM_ID
from bot.web.pages.admin_common import checked_form, refuse
from bot.web.security import ctx, page, render
from core.console.staff import Principal, Role

AUDIT_PAGE = 50
MAX_NAME = 128
MAX_TOKEN_NAME = 64


@page(Role.ADMIN)
async def staff_page(request: Request, who: Principal) -> Response:
    rows = await ctx(request).access.staff()
    error = request.query_params.get("error")
    values = {
        "staff": rows,
        "roles": list(Role),
        "done": request.query_params.get("done"),
        "error": error if error in ("admin_staff_bad_id", "admin_staff_bad_role", "admin_staff_self") else None,
    }
    return render(request, who, "admin_staff.html", values)


@page(Role.ADMIN)
async def staff_set(request: Request, who: Principal) -> Response:
    form = await checked_form(request, who)
    if form is None:
        return refuse(request, who, "err_csrf", 403)
    raw_id = str(form.get("telegram_id", "")).strip()
    raw_role = str(form.get("role", ""))
    name = str(form.get("name", "")).strip()[:MAX_NAME] or None
    active = form.get("active", "1") == "1"
    if not raw_id.isdecimal() or len(raw_id) > 16 or not 0 < int(raw_id) < MAX_TELEGRAM_ID:
        return RedirectResponse("/admin/staff?error=admin_staff_bad_id", status_code=303)
    if raw_role not in {r.value for r in Role}:
        return RedirectResponse("/admin/staff?error=admin_staff_bad_role", status_code=303)
    telegram_id, role = int(raw_id), Role(raw_role)
    if telegram_id == who.telegram_id and (role is not Role.ADMIN or not active):
        # An admin who demotes or disables themselves locks the door behind them.
        return RedirectResponse("/admin/staff?error=admin_staff_self", status_code=303)
    context = ctx(request)
    await context.access.set_member(telegram_id, role, name, active, who.agent_id)
    await context.audit.record(who.actor, "staff.set", f"staff:{telegram_id}", {"role": role.value, "active": active})
    return RedirectResponse(f"/admin/staff?done={telegram_id}", status_code=303)


async def _tokens_page(request: Request, who: Principal, new_token: str | None = None, status: int = 200) -> Response:
    values = {"tokens": await ctx(request).access.api_tokens(), "roles": list(Role), "new_token": new_token,
              "revoked": request.query_params.get("revoked")}  # fmt: skip
    return render(request, who, "admin_tokens.html", values, status)


@page(Role.ADMIN)
async def tokens_page(request: Request, who: Principal) -> Response:
    return await _tokens_page(request, who)


@page(Role.ADMIN)
async def tokens_create(request: Request, who: Principal) -> Response:
    """A new token is shown in this answer only (never in a URL or a log), and stored hashed."""
    form = await checked_form(request, who)
    if form is None:
        return refuse(request, who, "err_csrf", 403)
    name, raw_role = str(form.get("name", "")).strip(), str(form.get("role", ""))
    if not name or len(name) > MAX_TOKEN_NAME or raw_role not in {r.value for r in Role}:
        return await _tokens_page(request, who, status=422)
    role = Role(raw_role)
    token_id, token = await ctx(request).access.create_api_token(name, role, who.agent_id)
    await ctx(request).audit.record(who.actor, "token.create", f"token:{token_id}", {"name": name, "role": role.value})
    return await _tokens_page(request, who, token)


@page(Role.ADMIN)
async def tokens_revoke(request: Request, who: Principal) -> Response:
    form = await checked_form(request, who)
    if form is None:
        return refuse(request, who, "err_csrf", 403)
    raw = request.path_params["token_id"]
    token_id = int(raw) if raw.isdecimal() and len(raw) < 10 else 0
    if not await ctx(request).access.revoke_api_token(token_id):
        return refuse(request, who, "err_not_found", 404)
    await ctx(request).audit.record(who.actor, "token.revoke", f"token:{token_id}")
    return RedirectResponse(f"/admin/tokens?revoked={token_id}", status_code=303)


@page(Role.ADMIN)
async def audit_page(request: Request, who: Principal) -> Response:
    """Newest first, AUDIT_PAGE a page; `?before=ID` is the next page, `?actor=staff:ID` one person's actions."""
    q = request.query_params
    raw = q.get("before", "")
    before = int(raw) if raw.isdecimal() and len(raw) < 19 else None
    actor = q.get("actor", "")[:64] or None
    lines = await ctx(request).audit.recent(AUDIT_PAGE + 1, actor, before)
    values = {
        "lines": lines[:AUDIT_PAGE],
        "next_before": lines[AUDIT_PAGE - 1].id if len(lines) > AUDIT_PAGE else None,
        "actor": actor or "",
        "paged": before is not None,
    }
    return render(request, who, "admin_audit.html", values)


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/staff", staff_page),
        Route("/admin/staff", staff_set, methods=["POST"]),
        Route("/admin/tokens", tokens_page),
        Route("/admin/tokens", tokens_create, methods=["POST"]),
        Route("/admin/tokens/{token_id}/revoke", tokens_revoke, methods=["POST"]),
        Route("/admin/audit", audit_page),
    ]
