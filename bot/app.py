"""Wiring: builds the services every front end (Telegram, console, tests) shares, from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.flows.admin import AdminFlow
from bot.flows.conversation import Conversation
from bot.flows.faq_catalog import FaqCatalogProvider
from bot.flows.handoff import CaseHandoff
from bot.flows.staff import AgentRoster, StaffDesk, staff_renderer
from bot.flows.turn import FaqCatalog, FlowServices, Handoff, NoAgents
from bot.settings import Settings
from bot.texts import default_renderer, load_yaml
from core.accounts import AccountService
from core.calendar import default_calendar, today_in_jakarta
from core.cases import CaseService
from core.db import Database
from core.faq import FaqMatcher, load_faq, load_off_topic, load_slang
from core.faq_store import FaqStore
from core.feedback import FaqAnswerLog
from core.hours import default_support_desk
from core.interactions import InteractionLog
from core.rules import default_rules
from core.status import DatabaseStatusSource, StatusService
from core.turn_context import TurnContextReader
from core.writes import RowWriter


def load_catalog() -> FaqCatalog:
    entries = load_faq()
    return FaqCatalog({e.id: e for e in entries}, FaqMatcher(entries, load_slang(), load_off_topic()))


@dataclass
class App:
    settings: Settings
    db: Database  # the app's one: the services below share its engine and SQLite lanes; closed by close()
    services: FlowServices
    conversation: Conversation
    status_source: DatabaseStatusSource
    staff: StaffDesk | None  # None without a staff group
    admin: AdminFlow
    catalogs: FaqCatalogProvider
    writer: RowWriter

    @property
    def engine(self) -> AsyncEngine:
        """The database's async engine, for the services that only open sessions on it."""
        return self.db.engine

    async def close(self) -> None:
        await self.writer.close()
        await self.db.close()


def build_app(settings: Settings, db: Database | None = None) -> App:
    """The app on `db` (which it then owns and closes), or on a Database opened from the settings."""
    db = db or Database.open(settings.database_url)
    engine = db.engine
    source = DatabaseStatusSource(db)
    status = StatusService(source)  # on the process's `default_calendar()`, as the support desk below
    # The calendar's first look-up imports the holidays of every country (~80 ms of CPU): done at start-up, not in
    # the first /status that counts working days (in bench/load.py, inside the measured run).
    default_calendar().is_working_day(today_in_jakarta())
    renderer = default_renderer()
    directory = load_yaml("platforms.yaml")
    desk = default_support_desk()
    writer = RowWriter(db)  # interactions and FAQ answers of concurrent turns share a commit
    cases = CaseService(engine, settings.staff_chat_id, desk) if settings.staff_chat_id else None
    handoff: Handoff = CaseHandoff(cases, status, renderer, directory, desk) if cases else NoAgents()
    services = FlowServices(
        accounts=AccountService(engine),
        status=status,
        faq=load_catalog(),
        answers=FaqAnswerLog(db, writer),
        renderer=renderer,
        directory=directory,
        rules=default_rules(),
        handoff=handoff,
        cases=cases,
        interactions=InteractionLog(db, writer),
        default_locale=settings.default_locale,
        context=TurnContextReader(db),
    )
    # Agents read the shared messages plus the desk's own (support.yaml); participants never see the latter.
    # Who may act as an agent is the app's (one roster per process, not a module-level cache).
    roster = AgentRoster(frozenset(settings.agent_ids))
    staff = (
        StaffDesk(cases, handoff, staff_renderer(), desk, roster)
        if cases and isinstance(handoff, CaseHandoff)
        else None
    )
    # The FAQ in use lives in the database (admins edit it); every turn checks for a newer revision.
    store = FaqStore(engine)
    catalogs = FaqCatalogProvider.from_knowledge(store)
    admin = AdminFlow(store, catalogs, settings.admin_ids, locale=settings.default_locale)
    conversation = Conversation(services, catalogs)
    return App(settings, db, services, conversation, source, staff, admin, catalogs, writer)
