"""What every page and API route shares, built once per process from the settings (nothing at import time)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from bot.app import App, build_app
from bot.flows.staff import staff_renderer
from bot.settings import Settings
from bot.web.events import EventBus
from bot.web.media import CaseMedia
from core.console.assignment import Assigner
from core.console.audit import AuditLog
from core.console.inbox import Inbox
from core.console.staff import StaffAccess
from core.faq_store import FaqStore
from core.hours import SupportDesk, default_support_desk

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class WebContext:
    settings: Settings
    app: App
    access: StaffAccess
    audit: AuditLog
    inbox: Inbox
    events: EventBus
    faq: FaqStore
    desk: SupportDesk
    templates: Environment
    media: CaseMedia

    @property
    def secure_cookies(self) -> bool:
        return self.settings.web_url.startswith("https://")

    def assigner(self) -> Assigner | None:
        """Automatic assignment, when cases exist (a staff group is set) and support.yaml turns it on."""
        cases, staff = self.app.services.cases, self.app.staff
        if cases is None or staff is None or not self.desk.assignment.automatic:
            return None

        def notice(key: str, values: dict[str, object]) -> str:
            return staff.text(key, **values)

        return Assigner(
            self.app.engine, cases, self.access, self.audit, self.desk.assignment, notice, self.events.publish
        )

    async def close(self) -> None:
        await self.events.stop()
        await self.media.close()
        await self.app.close()


def build_context(settings: Settings, app: App | None = None) -> WebContext:
    app = app or build_app(settings)
    engine = app.engine
    templates = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), enable_async=False
    )
    staff_renderer()  # the staff group's texts load once, before the first request
    return WebContext(
        settings=settings,
        app=app,
        access=StaffAccess(engine, settings.agent_ids, settings.admin_ids),
        audit=AuditLog(engine),
        inbox=Inbox(engine),
        events=EventBus(engine, settings.redis_url),
        faq=FaqStore(engine),
        desk=default_support_desk(),
        templates=templates,
        media=CaseMedia(engine, settings),
    )
