"""What the admin pages share: the CSRF-checked form, the period parameter, the wording of an entry's problems and
a safe browser view of a Telegram-HTML answer."""

from __future__ import annotations

import html
import re
from typing import Any

from markupsafe import Markup
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from bot.console import html_to_text
from bot.web.security import csrf_ok, ctx, locale, render
from bot.web.texts import text
from core.console.staff import Principal
from core.faq_entries import EntryProblem
from core.stats import DEFAULT_PERIOD_DAYS, MAX_PERIOD_DAYS

# Telegram's formatting tags without attributes: shown as such in the preview; everything else stays escaped text.
_PREVIEW_TAGS = re.compile(r"&lt;(/?)(b|i|u|s|code|pre|blockquote)&gt;")
_LINK = re.compile(r"&lt;a href=&quot;(https?://(?:[^&\s]|&amp;)+)&quot;&gt;(.*?)&lt;/a&gt;", re.DOTALL)


def refuse(request: Request, who: Principal, key: str, status: int) -> Response:
    return render(request, who, "error.html", {"message": text(key, locale(request))}, status)


async def checked_form(request: Request, who: Principal) -> FormData | None:
    """The posted form, or None when its CSRF token is missing or wrong."""
    form = await request.form(max_files=0, max_fields=40, max_part_size=256 * 1024)
    return form if csrf_ok(request, who, str(form.get("csrf", ""))) else None


def period_days(request: Request) -> int:
    """`?days=N` (1–366), else the same default period as /stats and /gaps."""
    raw = request.query_params.get("days", "")
    value = int(raw) if raw.isdecimal() and len(raw) < 4 else 0
    return value if 1 <= value <= MAX_PERIOD_DAYS else DEFAULT_PERIOD_DAYS


def problem_lines(request: Request, problems: list[EntryProblem]) -> list[str]:
    """An entry's problems in the admin's words (the same messages /faq_set gives in Telegram), as plain text."""
    renderer = ctx(request).app.admin.renderer
    lang = locale(request)
    return list(dict.fromkeys(html_to_text(renderer.render(p.key, lang, **p.values)).strip() for p in problems))


def telegram_preview(answer: str) -> Markup:
    """A rendered answer as the participant's chat shows it: Telegram's tags become the browser's, with no
    attribute but an http(s) link's href; any other markup stays visible text."""
    escaped = html.escape(answer, quote=True)
    escaped = _LINK.sub(r'<a href="\1" rel="noopener noreferrer">\2</a>', escaped)
    return Markup(_PREVIEW_TAGS.sub(r"<\1\2>", escaped))


def form_values(form: FormData, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: str(form.get(name, "")) for name in names}
