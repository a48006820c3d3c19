"""The FAQ editor: the entries in use, an edit form (paraphrases and answer per language, sources, kind), a preview
of the answer for a chosen persona, the matcher's top 5 for a test question, history with a diff, rollback.

Every check is the one `/faq_set` and `PUT /api/v1/faq/{id}` run: the one entry reader (`read_entry`), the render
checks in the render worker (`answer_problems`), the store's own validation; a save or rollback is audited.
"""

from __future__ import annotations

import asyncio
import difflib
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.flows.admin import answer_problems
from bot.flows.views import SAMPLE_PARTICIPANTS, participant_view
from bot.texts import RENDER_WORKER
from bot.web.context import WebContext
from bot.web.pages.admin_common import checked_form, form_values, problem_lines, refuse, telegram_preview
from bot.web.security import ctx, locale, page, render
from core.console.staff import Principal, Role
from core.demo import PERSONAS
from core.faq_entries import UNSOURCED_KINDS, EntryProblem, FaqEntry, FaqProblem, read_entry
from core.faq_store import FaqStoreError, FaqValidationError, entry_yaml
from core.locales import LOCALES

FIELDS = (
    "faq_id",
    "sources",
    "kind",
    *(f"{name}_{lang}" for name in ("title", "paraphrases", "answer") for lang in LOCALES),
)
MAX_QUESTION = 500  # characters of a test question
TOP = 5


@dataclass(frozen=True)
class Persona:
    value: str  # "none", "sample:N" or "demo:KEY"
    name: str  # empty for "nobody identified"
    detail: str = ""  # the demo persona's stage


@dataclass(frozen=True)
class Preview:
    persona: str
    language: str
    kind: str  # ok / error / unsafe / slow / too_long / not_in_database
    text: Any = ""  # Markup of the rendered answer
    size: int = 0
    detail: str = ""


def personas() -> list[Persona]:
    """Nobody identified, the made-up participants every answer is checked for, and the demo personas (one per
    stage; found in a database that `prakerja-bot demo` filled)."""
    return [
        Persona("none", ""),
        *(Persona(f"sample:{n}", str(p["name"])) for n, p in enumerate(SAMPLE_PARTICIPANTS)),
        *(Persona(f"demo:{p.key}", p.name, p.stage.value) for p in PERSONAS),
    ]


async def _participant(context: WebContext, choice: str) -> tuple[dict[str, Any] | None, bool]:
    """The `participant` an answer is rendered with for a persona (the bot's own view of their records), and
    whether the persona was found."""
    kind, _, key = choice.partition(":")
    if kind == "sample" and key.isdecimal() and int(key) < len(SAMPLE_PARTICIPANTS):
        return SAMPLE_PARTICIPANTS[int(key)], True
    if kind == "demo":
        persona = next((p for p in PERSONAS if str(p.key) == key), None)
        services = context.app.services
        found = await services.accounts.participant_for_phone(persona.phone) if persona else None
        status = await services.status.status(found) if found is not None else None
        if status is None:
            return None, False
        return participant_view(services.directory, status), True
    return None, True


async def preview(context: WebContext, entry: FaqEntry, choice: str, language: str) -> Preview:
    """The answer as the bot would send it to this persona, rendered in the render worker (sandboxed, limited)."""
    participant, found = await _participant(context, choice)
    if not found:
        return Preview(choice, language, "not_in_database")
    source = entry.answer.get(language) or entry.answer.get("id", "")
    result = (await asyncio.to_thread(RENDER_WORKER.check, [(source, language, participant)]))[0]
    if result.kind != "ok":
        return Preview(choice, language, result.kind, detail=result.detail[:300])
    return Preview(choice, language, "ok", telegram_preview(result.text), len(result.text))


async def matcher_test(context: WebContext, question: str, lang: str) -> dict[str, Any] | None:
    """The matcher in use (the bot's own, with every saved edit) on one question: verdict and top 5 with scores."""
    question = question.strip()[:MAX_QUESTION]
    if not question:
        return None
    catalog = await context.app.catalogs.catalog()
    result = catalog.matcher.match(question)
    rows = [
        {
            "id": c.faq_id,
            "score": round(c.score, 1),
            "title": catalog.entries[c.faq_id].title.get(lang) or catalog.entries[c.faq_id].title.get("id", "")
            if c.faq_id in catalog.entries
            else "",
        }
        for c in result.top(TOP)
    ]
    return {"question": question, "verdict": result.kind, "normalized": result.normalized, "candidates": rows}


def entry_values(entry: FaqEntry) -> dict[str, str]:
    values = {"faq_id": entry.id, "sources": " ".join(entry.sources), "kind": entry.kind or ""}
    for lang in LOCALES:
        values[f"title_{lang}"] = entry.title.get(lang, "")
        values[f"paraphrases_{lang}"] = "\n".join(entry.paraphrases.get(lang, []))
        values[f"answer_{lang}"] = entry.answer.get(lang, "")
    return values


def submitted(values: dict[str, str]) -> dict[str, Any]:
    """The form as the mapping the one entry reader takes (what a YAML entry parses to). Browsers send CRLF."""
    raw: dict[str, Any] = {"title": {}, "paraphrases": {}, "answer": {}}
    for lang in LOCALES:
        title = values[f"title_{lang}"].strip()
        answer = values[f"answer_{lang}"].replace("\r\n", "\n")
        lines = [line.strip() for line in values[f"paraphrases_{lang}"].splitlines() if line.strip()]
        if title:
            raw["title"][lang] = title
        if answer.strip():
            raw["answer"][lang] = answer
        if lines:
            raw["paraphrases"][lang] = lines
    sources = values["sources"].replace(",", " ").split()
    if sources:
        raw["sources"] = sources
    if values["kind"].strip():
        raw["kind"] = values["kind"].strip()
    return raw


def _editor(request: Request, who: Principal, values: dict[str, str], mode: str, **more: Any) -> dict[str, Any]:
    return {
        "v": values,
        "mode": mode,
        "locales": LOCALES,
        "kinds": sorted(UNSOURCED_KINDS),
        "personas": personas(),
        "persona": more.pop("persona", "none"),
        "preview_lang": more.pop("preview_lang", locale(request)),
        "problems": more.pop("problems", []),
        "error": more.pop("error", None),
        "preview": more.pop("preview", None),
        "test": more.pop("test", None),
        "version": more.pop("version", None),
        "saved": more.pop("saved", None),
    } | more


@page(Role.ADMIN)
async def faq_list(request: Request, who: Principal) -> Response:
    context = ctx(request)
    catalog = await context.app.catalogs.catalog()  # seeds a fresh database's FAQ, as the bot's first turn does
    lang = locale(request)
    test = await matcher_test(context, request.query_params.get("q", ""), lang)
    entries = [
        {
            "id": e.id,
            "title": e.title.get(lang) or e.title.get("id", ""),
            "paraphrases": sum(len(items) for items in e.paraphrases.values()),
            "kind": e.kind or "",
        }
        for e in catalog.entries.values()
    ]
    return render(request, who, "admin_faq_list.html", {"entries": entries, "test": test})


@page(Role.ADMIN)
async def faq_new(request: Request, who: Principal) -> Response:
    """An empty form; `?id=` and `?p=` (repeated) prefill it, e.g. from a knowledge-gap cluster."""
    q = request.query_params
    values = dict.fromkeys(FIELDS, "") | {
        "faq_id": q.get("id", "")[:64],
        "paraphrases_id": "\n".join(p[:300] for p in q.getlist("p")[:50]),
    }
    return render(request, who, "admin_faq_edit.html", _editor(request, who, values, "create"))


@page(Role.ADMIN)
async def faq_entry(request: Request, who: Principal) -> Response:
    context = ctx(request)
    await context.app.catalogs.catalog()
    faq_id = request.path_params["faq_id"]
    entry = await context.faq.get(faq_id)
    version = await context.faq.current_version(faq_id)
    if entry is None or version is None:
        return refuse(request, who, "err_not_found", 404)
    saved = request.query_params.get("saved", "")
    values = _editor(
        request,
        who,
        entry_values(entry),
        "edit",
        version=version,
        saved=int(saved) if saved.isdecimal() and len(saved) < 10 else None,
        test=await matcher_test(context, request.query_params.get("q", ""), locale(request)),
    )
    return render(request, who, "admin_faq_edit.html", values)


@page(Role.ADMIN)
async def faq_save(request: Request, who: Principal) -> Response:
    """Save (`do=save`) or only preview (`do=preview`) the submitted form; problems come back on the form."""
    form = await checked_form(request, who)
    if form is None:
        return refuse(request, who, "err_csrf", 403)
    context = ctx(request)
    # A fresh database's FAQ is seeded first: an edit made before any turn must not become its first revision.
    await context.app.catalogs.catalog()
    values = form_values(form, FIELDS)
    mode = "edit" if form.get("mode") == "edit" else "create"
    faq_id = values["faq_id"] = values["faq_id"].strip()
    persona = str(form.get("persona", "none"))
    language = str(form.get("preview_lang", "id"))
    language = language if language in LOCALES else "id"
    problems: list[EntryProblem]
    if faq_id:
        entry, problems = read_entry(submitted(values), faq_id)
    else:
        entry, problems = None, [FaqProblem("bad_id", "id").as_entry_problem()]
    if entry is not None and not problems:
        problems = await answer_problems(entry)  # the render checks /faq_set and the API run
    shown = None
    error = None
    if form.get("do") == "preview":
        shown = await preview(context, entry, persona, language) if entry is not None else None
    elif entry is not None and not problems:
        before = await context.faq.current_version(faq_id)
        try:
            version = await context.faq.save(entry, who.agent_id, "edit" if mode == "edit" else "create")
        except FaqValidationError as invalid:
            problems = [p.as_entry_problem() for p in invalid.problems]
        except FaqStoreError as refused:
            error = f"admin_faq_{refused.code}"
        else:
            if version != before:
                await context.audit.record(who.actor, "faq.put", f"faq:{faq_id}", {"version": version})
            return RedirectResponse(f"/admin/faq/entry/{faq_id}?saved={version}", status_code=303)
    shown_values = _editor(
        request,
        who,
        values,
        mode,
        persona=persona,
        preview_lang=language,
        problems=problem_lines(request, problems),
        error=error,
        preview=shown,
        version=await context.faq.current_version(faq_id) if mode == "edit" and faq_id else None,
    )
    status = 200 if form.get("do") == "preview" else 422
    return render(request, who, "admin_faq_edit.html", shown_values, status)


def _diff_class(line: str) -> str:
    if line.startswith(("---", "+++", "@@")):
        return "hunk"
    return {"+": "add", "-": "del"}.get(line[:1], "")


def _version_param(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdecimal() and len(raw) < 10 else None


async def _yaml_at(context: WebContext, faq_id: str, version: int | None) -> str:
    entry = await context.faq.entry_at(faq_id, version) if version else None
    return entry_yaml(entry) if entry is not None else ""


@page(Role.ADMIN)
async def faq_history(request: Request, who: Principal) -> Response:
    """Every version, and a line diff of two of them (`?a=` older, `?b=` newer; by default the newest change)."""
    context = ctx(request)
    faq_id = request.path_params["faq_id"]
    versions = await context.faq.history(faq_id)
    if not versions:
        return refuse(request, who, "err_not_found", 404)
    newest = versions[0].version
    b = _version_param(request.query_params.get("b")) or newest
    a = _version_param(request.query_params.get("a")) or b - 1
    before, after = await _yaml_at(context, faq_id, a), await _yaml_at(context, faq_id, b)
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), fromfile=f"v{a}", tofile=f"v{b}", lineterm="", n=3
    )
    diff = [(_diff_class(line), line) for line in lines]
    values = {
        "faq_id": faq_id,
        "versions": versions,
        "newest": newest,
        "a": a,
        "b": b,
        "diff": diff,
        "live": await context.faq.current_version(faq_id),
        "rolled": _version_param(request.query_params.get("rolled")),
        "deleted": _version_param(request.query_params.get("deleted")),
        "problems": [],
    }
    return render(request, who, "admin_faq_history.html", values)


@page(Role.ADMIN)
async def faq_rollback(request: Request, who: Principal) -> Response:
    """Put an older version back in use, if it still renders (the same refusal as /faq_rollback)."""
    form = await checked_form(request, who)
    if form is None:
        return refuse(request, who, "err_csrf", 403)
    context = ctx(request)
    faq_id = request.path_params["faq_id"]
    target = _version_param(str(form.get("version", "")))
    old = await context.faq.entry_at(faq_id, target) if target else None
    if target is None or old is None:
        return refuse(request, who, "err_not_found", 404)
    problems = await answer_problems(old)
    if problems:
        versions = await context.faq.history(faq_id)
        values = {
            "faq_id": faq_id, "versions": versions, "newest": versions[0].version, "a": None, "b": None, "diff": [],
            "live": await context.faq.current_version(faq_id), "rolled": None, "deleted": None,
            "problems": problem_lines(request, problems),
        }  # fmt: skip
        return render(request, who, "admin_faq_history.html", values, 422)
    try:
        version = await context.faq.rollback(faq_id, target, who.agent_id)
    except FaqStoreError:
        return refuse(request, who, "err_not_found", 404)
    await context.audit.record(who.actor, "faq.rollback", f"faq:{faq_id}", {"to": target, "version": version})
    return RedirectResponse(f"/admin/faq/entry/{faq_id}/history?rolled={version}", status_code=303)


@page(Role.ADMIN)
async def faq_delete(request: Request, who: Principal) -> Response:
    """Take an entry out of use (a version marked deleted: its history keeps it, and a rollback restores it)."""
    form = await checked_form(request, who)
    if form is None:
        return refuse(request, who, "err_csrf", 403)
    context = ctx(request)
    faq_id = request.path_params["faq_id"]
    try:
        version = await context.faq.delete(faq_id, who.agent_id)
    except FaqStoreError:
        return refuse(request, who, "err_not_found", 404)
    await context.audit.record(who.actor, "faq.delete", f"faq:{faq_id}", {"version": version})
    return RedirectResponse(f"/admin/faq/entry/{faq_id}/history?deleted={version}", status_code=303)


@page(Role.ADMIN)
async def faq_export(request: Request, who: Principal) -> Response:
    """The FAQ in use in the knowledge file's format (what `/faq_export` sends)."""
    context = ctx(request)
    await context.app.catalogs.catalog()
    body = await context.faq.export_yaml()
    headers = {"content-disposition": 'attachment; filename="faq.yaml"', "cache-control": "no-store"}
    return Response(body, media_type="application/yaml; charset=utf-8", headers=headers)


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/faq", faq_list),
        Route("/admin/faq/new", faq_new),
        Route("/admin/faq/save", faq_save, methods=["POST"]),
        Route("/admin/faq/export", faq_export),
        Route("/admin/faq/entry/{faq_id}", faq_entry),
        Route("/admin/faq/entry/{faq_id}/history", faq_history),
        Route("/admin/faq/entry/{faq_id}/rollback", faq_rollback, methods=["POST"]),
        Route("/admin/faq/entry/{faq_id}/delete", faq_delete, methods=["POST"]),
    ]
