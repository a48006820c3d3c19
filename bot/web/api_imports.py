"""Imports through the API: the same validated, idempotent, all-or-nothing imports as `prakerja-bot import`, for a
file sent as the request body. Admins only; the answer is the per-row report. The console's upload page
(pages/admin_imports.py) runs the same `import_upload`."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.settings import DEFAULT_DATABASE_URL
from bot.web.context import WebContext
from bot.web.security import api, ctx, problem
from core.console.staff import Principal, Role

if TYPE_CHECKING:
    from core.imports import ImportKind, ImportReport

MAX_IMPORT_BYTES = 200 * 1024 * 1024
FORMATS = {"csv": ".csv", "jsonl": ".jsonl"}
SHOWN_REJECTIONS = 200


class UploadRefused(Exception):
    """The upload as a whole is refused: `status` and a one-line `detail` (English, for the API)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def report_figures(report: ImportReport) -> dict[str, object]:
    """An import's outcome as the API answers it and the upload page shows it (the rejections are added by each)."""
    return {
        "status": report.status,
        "batch_id": report.batch_id,
        "rows_read": report.rows_read,
        "applied": report.applied,
        "unchanged": report.unchanged,
        "rejected": len(report.rejected),
    }


async def import_upload(
    context: WebContext, who: Principal, kind: ImportKind, suffix: str, chunks: AsyncIterator[bytes]
) -> ImportReport:
    """Write the uploaded file to a temporary file, import it, record it in the audit log; raises UploadRefused."""
    from core.imports import ImportFileError, run_import

    settings = context.settings
    if settings.database_url != DEFAULT_DATABASE_URL:
        try:
            settings.require_production_secrets()  # participants' data: never hashed with the placeholder key
        except ValueError as error:
            raise UploadRefused(503, str(error)) from None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{suffix}"
        size = 0
        with path.open("wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > MAX_IMPORT_BYTES:
                    raise UploadRefused(413, f"the file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB")
                await asyncio.to_thread(out.write, chunk)
        try:
            report = await run_import(context.app.engine, kind, path, pii_key=settings.pii_key)
        except ImportFileError as error:
            raise UploadRefused(422, str(error)) from None
    await context.audit.record(
        who.actor,
        "import",
        f"import:{report.batch_id}",
        {"kind": kind.value, "status": report.status, "rows": report.rows_read},
    )
    return report


@api(Role.ADMIN)
async def import_file(request: Request, who: Principal) -> Response:
    from core.imports import ImportKind

    try:
        kind = ImportKind(request.path_params["kind"])
    except ValueError:
        return problem(404, f"unknown import kind; use one of: {', '.join(k.value for k in ImportKind)}")
    suffix = FORMATS.get(request.query_params.get("format", "csv"))
    if suffix is None:
        return problem(422, "format must be csv or jsonl")
    try:
        report = await import_upload(ctx(request), who, kind, suffix, request.stream())
    except UploadRefused as refused:
        return problem(refused.status, refused.detail)
    return JSONResponse(
        {
            "kind": kind.value,
            **report_figures(report),
            "rejections": [{"line": r.line, "reason": r.reason} for r in report.rejected[:SHOWN_REJECTIONS]],
        }
    )


def routes() -> list[BaseRoute]:
    return [Route("/api/v1/imports/{kind}", import_file, methods=["POST"])]
