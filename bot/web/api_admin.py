"""Admin API: staff and roles, integration tokens, the audit log (the console's admin pages build on these)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.web.security import api, ctx, problem
from core.console.staff import Principal, Role

MAX_BODY = 16 * 1024
MAX_TELEGRAM_ID = 2**53  # Telegram ids fit in 52 bits


async def _body(request: Request) -> dict[str, Any] | None:
    raw = await request.body()
    try:
        data = json.loads(raw or b"{}") if len(raw) <= MAX_BODY else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _role(value: object) -> Role | None:
    return Role(value) if isinstance(value, str) and value in {r.value for r in Role} else None


@api(Role.ADMIN)
async def staff_list(request: Request, who: Principal) -> Response:
    rows = await ctx(request).access.staff()
    return JSONResponse(
        {
            "staff": [
                {
                    "telegram_id": s.telegram_id,
                    "role": s.role.value,
                    "name": s.name,
                    "active": s.active,
                    "from_settings": s.from_settings,
                }
                for s in rows
            ]
        }
    )


@api(Role.ADMIN)
async def staff_set(request: Request, who: Principal) -> Response:
    """Add a person or change their role / name / whether they may sign in (ADMIN_IDS stay admins)."""
    body = await _body(request)
    if body is None:
        return problem(400, "expected a JSON object")
    telegram_id, role, name, active = (
        body.get("telegram_id"),
        _role(body.get("role")),
        body.get("name"),
        body.get("active", True),
    )
    if not isinstance(telegram_id, int) or isinstance(telegram_id, bool) or not 0 < telegram_id < MAX_TELEGRAM_ID:
        return problem(422, "'telegram_id' must be a Telegram user id")
    if (
        role is None
        or not isinstance(active, bool)
        or not (name is None or (isinstance(name, str) and len(name) <= 128))
    ):
        return problem(
            422, "'role' must be agent, supervisor or admin; 'active' a boolean; 'name' up to 128 characters"
        )
    await ctx(request).access.set_member(telegram_id, role, name, active, who.agent_id)
    await ctx(request).audit.record(
        who.actor, "staff.set", f"staff:{telegram_id}", {"role": role.value, "active": active}
    )
    return JSONResponse({"telegram_id": telegram_id, "role": role.value, "name": name, "active": active})


@api(Role.ADMIN)
async def tokens_list(request: Request, who: Principal) -> Response:
    rows = await ctx(request).access.api_tokens()
    return JSONResponse(
        {
            "tokens": [
                {
                    "id": t.id,
                    "name": t.name,
                    "role": t.role,
                    "created_by": t.created_by,
                    "created_at": t.created_at.isoformat(),
                    "revoked": t.revoked_at is not None,
                }
                for t in rows
            ]
        }
    )


@api(Role.ADMIN)
async def tokens_create(request: Request, who: Principal) -> Response:
    """A new integration token: shown in this answer only, stored hashed."""
    body = await _body(request)
    if body is None:
        return problem(400, "expected a JSON object")
    name, role = body.get("name"), _role(body.get("role"))
    if not isinstance(name, str) or not name.strip() or len(name) > 64 or role is None:
        return problem(422, "'name' (1–64 characters) and 'role' (agent, supervisor or admin) are required")
    token_id, token = await ctx(request).access.create_api_token(name.strip(), role, who.agent_id)
    await ctx(request).audit.record(who.actor, "token.create", f"token:{token_id}", {"name": name, "role": role.value})
    return JSONResponse({"id": token_id, "name": name.strip(), "role": role.value, "token": token})


@api(Role.ADMIN)
async def tokens_revoke(request: Request, who: Principal) -> Response:
    raw = request.path_params["token_id"]
    token_id = int(raw) if raw.isdecimal() and len(raw) < 10 else 0
    if not await ctx(request).access.revoke_api_token(token_id):
        return problem(404, "no such active token")
    await ctx(request).audit.record(who.actor, "token.revoke", f"token:{token_id}")
    return JSONResponse({"id": token_id, "revoked": True})


@api(Role.ADMIN)
async def audit_list(request: Request, who: Principal) -> Response:
    raw = request.query_params.get("limit", "100")
    if not raw.isdecimal() or not 1 <= int(raw) <= 1000:
        return problem(422, "limit must be 1–1000")
    actor = request.query_params.get("actor") or None
    lines = await ctx(request).audit.recent(int(raw), actor)
    return JSONResponse(
        {
            "entries": [
                {
                    "id": a.id,
                    "at": a.at.isoformat(),
                    "actor": a.actor,
                    "action": a.action,
                    "target": a.target,
                    "data": a.data,
                }
                for a in lines
            ]
        }
    )


async def staff(request: Request) -> Response:
    return await (staff_set(request) if request.method == "POST" else staff_list(request))


async def tokens(request: Request) -> Response:
    return await (tokens_create(request) if request.method == "POST" else tokens_list(request))


def routes() -> list[BaseRoute]:
    """One route per path, so that a 405 names every method the path has."""
    return [
        Route("/api/v1/staff", staff, methods=["GET", "POST"]),
        Route("/api/v1/tokens", tokens, methods=["GET", "POST"]),
        Route("/api/v1/tokens/{token_id}", tokens_revoke, methods=["DELETE"]),
        Route("/api/v1/audit", audit_list),
    ]
