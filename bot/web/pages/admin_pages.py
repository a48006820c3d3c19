"""The admin pages of the console as one page group (registered once in `bot.web.app.ROUTE_MODULES`)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from bot.web.pages import admin_faq, admin_gaps, admin_imports, admin_staff, admin_stats


def routes() -> list[BaseRoute]:
    return [*admin_faq.routes(), *admin_gaps.routes(), *admin_stats.routes(), *admin_imports.routes(),
            *admin_staff.routes()]  # fmt: skip
