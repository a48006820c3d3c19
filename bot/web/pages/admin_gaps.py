"""Knowledge gaps: the questions the FAQ could not answer, grouped (the same report as `/gaps`), each with a link
that opens the FAQ editor prefilled with the group's wordings."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bot.web.pages.admin_common import period_days
from bot.web.security import ctx, locale, page, render
from core.calendar import today_in_jakarta
from core.console.staff import Principal, Role
from core.gaps import find_gaps
from core.stats import jakarta_midnight

SHOWN = 20


@page(Role.ADMIN)
async def gaps(request: Request, who: Principal) -> Response:
    context = ctx(request)
    days = period_days(request)
    today = today_in_jakarta()
    start, end = jakarta_midnight(today - timedelta(days=days - 1)), jakarta_midnight(today + timedelta(days=1))
    # The admin flow's normaliser: slang expanded as the matcher does, so wordings group as in /gaps.
    report = await find_gaps(context.app.engine, start, end, normalise=context.app.admin.normalise, limit=SHOWN)
    catalog = await context.app.catalogs.catalog()
    lang = locale(request)
    clusters = [
        {
            "representative": g.representative,
            "count": g.count,
            "examples": g.examples,
            "nearest": g.nearest_faq if g.nearest_faq in catalog.entries else None,
            "nearest_title": catalog.entries[g.nearest_faq].title.get(lang, "") if g.nearest_faq in catalog.entries
            else "",
            "new_entry": "/admin/faq/new?" + urlencode([("p", q) for q in (g.representative, *g.examples)]),
        }
        for g in report.gaps
    ]  # fmt: skip
    values = {"days": days, "total": report.total, "analysed": report.analysed, "sampled": report.sampled,
              "clusters": clusters}  # fmt: skip
    return render(request, who, "admin_gaps.html", values)


def routes() -> list[BaseRoute]:
    return [Route("/admin/gaps", gaps)]
