"""Imports through the API: the same validated, idempotent, all-or-nothing imports as `prakerja-bot import`, for a
file sent as the request body. Admins only; the answer is the per-row report."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.settings import DEFAULT_DATABASE_URL
from bot.web.security import api, ctx, problem
from core.console.staff import Principal, Role

MAX_IMPORT_BYTES = 200 * 1024 * 1024
FORMATS = {"csv": ".csv", "jsonl": ".jsonl"}
SHOWN_REJECTIONS = 200


@api(Role.ADMIN)
async def import_file(request: Request, who: Principal) -> Response:
    from core.imports import ImportFileError, ImportKind, run_import

    context = ctx(request)
    try:
        kind = ImportKind(request.path_params["kind"])
    except ValueError:
        return problem(404, f"unknown import kind; use one of: {', '.join(k.value for k in ImportKind)}")
    suffix = FORMATS.get(request.query_params.get("format", "csv"))
    if suffix is None:
        return problem(422, "format must be csv or jsonl")
    settings = context.settings
    if settings.database_url != DEFAULT_DATABASE_URL:
        try:
            settings.require_production_secrets()  # participants' data: never hashed with the placeholder key
        except ValueError as error:
            return problem(503, str(error))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{suffix}"
        size = 0
        with path.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_IMPORT_BYTES:
                    return problem(413, f"the file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB")
                await asyncio.to_thread(out.write, chunk)
        try:
            report = await run_import(context.app.engine, kind, path, pii_key=settings.pii_key)
        except ImportFileError as error:
            return problem(422, str(error))
    await context.audit.record(
        who.actor,
        "import",
        f"import:{report.batch_id}",
        {"kind": kind.value, "status": report.status, "rows": report.rows_read},
    )
    return JSONResponse(
        {
            "kind": kind.value,
            "status": report.status,
            "batch_id": report.batch_id,
            "rows_read": report.rows_read,
            "applied": report.applied,
            "unchanged": report.unchanged,
            "rejected": len(report.rejected),
            "rejections": [{"line": r.line, "reason": r.reason} for r in report.rejected[:SHOWN_REJECTIONS]],
        }
    )


def routes() -> list[BaseRoute]:
    return [Route("/api/v1/imports/{kind}", import_file, methods=["POST"])]
