"""Import upload: one form for every import kind; the file goes through the same `import_upload` as
`POST /api/v1/imports/{kind}` (validated, idempotent, all or nothing, audited) and the per-row report is shown.
With JavaScript the form is sent in the background with a progress bar and only the report is swapped in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bot.web.api_imports import FORMATS, SHOWN_REJECTIONS, UploadRefused, import_upload, report_figures
from bot.web.pages.admin_common import refuse
from bot.web.security import csrf_ok, ctx, page, render
from core.console.staff import Principal, Role

CHUNK = 1024 * 1024


def _kinds() -> list[str]:
    from core.imports import ImportKind

    return [k.value for k in ImportKind]


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK):
        yield chunk


@page(Role.ADMIN)
async def imports_page(request: Request, who: Principal) -> Response:
    return render(request, who, "admin_imports.html", {"kinds": _kinds(), "kind": None, "report": None})


@page(Role.ADMIN)
async def imports_upload(request: Request, who: Principal) -> Response:
    from core.imports import ImportKind

    form = await request.form(max_files=1, max_fields=5)
    if not csrf_ok(request, who, str(form.get("csrf", ""))):
        return refuse(request, who, "err_csrf", 403)
    upload = form.get("file")
    raw_kind = str(form.get("kind", ""))
    values: dict[str, Any] = {"kinds": _kinds(), "kind": raw_kind, "report": None, "error": None, "detail": ""}
    suffix = ""
    if isinstance(upload, UploadFile) and upload.filename:
        suffix = FORMATS.get(upload.filename.rsplit(".", 1)[-1].lower(), "")
    status = 200
    if raw_kind not in values["kinds"]:
        values["error"], status = "admin_import_pick_kind", 422
    elif not isinstance(upload, UploadFile) or not upload.filename:
        values["error"], status = "admin_import_pick_file", 422
    elif not suffix:
        values["error"], status = "admin_import_format", 422
    else:
        try:
            report = await import_upload(ctx(request), who, ImportKind(raw_kind), suffix, _chunks(upload))
        except UploadRefused as refused:
            values["error"], values["detail"], status = f"admin_import_refused_{refused.status}", refused.detail, 422
        else:
            values["report"] = {
                "file": upload.filename,
                **report_figures(report),
                "rejections": report.rejected[:SHOWN_REJECTIONS],
                "more": max(0, len(report.rejected) - SHOWN_REJECTIONS),
            }
    if isinstance(upload, UploadFile):
        await upload.close()
    fragment = request.headers.get("x-fragment") == "report"
    return render(request, who, "admin_import_report.html" if fragment else "admin_imports.html", values, status)


def routes() -> list[BaseRoute]:
    return [Route("/admin/imports", imports_page), Route("/admin/imports", imports_upload, methods=["POST"])]
