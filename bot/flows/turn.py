"""One turn of a conversation: the event, the state, the services, and the replies being built."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot.flows.callbacks import Action, new_nonce, pack
from bot.flows.state import State
from bot.flows.types import Button, Incoming, Reply
from bot.flows.views import platform_entry
from bot.texts import Renderer
from core.accounts import AccountService
from core.cases import CaseService, CaseView
from core.diagnosis import ParticipantStatus
from core.faq import FaqMatcher
from core.faq_entries import FaqEntry
from core.feedback import FaqAnswerLog
from core.interactions import InteractionLog
from core.rules import Rules
from core.status import StatusService
from core.turn_context import TurnContextReader


@dataclass(frozen=True)
class HandoffResult:
    opened: bool  # a human will take the chat over
    answer_by: datetime | None = None  # outside business hours: when an agent will answer
    already_open: bool = False
    queued: bool = False  # the participant's acknowledgement went into the outbox with the case: say nothing more


@dataclass(frozen=True)
class HandoffRequest:
    user_id: int
    participant_id: int | None
    reason: str  # participant_asked / unresolved / overdue
    locale: str
    steps_tried: list[str]
    transcript: list[str]
    display_name: str = ""  # the Telegram name, for the topic of someone not yet identified
    message_id: int | None = None  # the participant's message that asked for the person


class Handoff(Protocol):
    """Hands a participant's chat to a human agent (cases in the staff group implement it)."""

    async def request(self, request: HandoffRequest) -> HandoffResult: ...


class NoAgents:
    """Used when no staff group is configured: the participant is sent to the complaint form instead."""

    async def request(self, request: HandoffRequest) -> HandoffResult:
        return HandoffResult(opened=False)


@dataclass
class FaqCatalog:
    """The FAQ in use; admins replace it at runtime without a deploy."""

    entries: dict[str, FaqEntry]
    matcher: FaqMatcher


@dataclass
class FlowServices:
    accounts: AccountService
    status: StatusService
    faq: FaqCatalog
    answers: FaqAnswerLog
    renderer: Renderer
    directory: dict[str, Any]
    rules: Rules
    handoff: Handoff = field(default_factory=NoAgents)
    cases: CaseService | None = None  # None without a staff group: no relaying
    interactions: InteractionLog | None = None
    default_locale: str = "id"
    context: TurnContextReader | None = None  # one read per turn for the link and the FAQ revision

    def platform(self, code: str, locale: str = "id") -> dict[str, Any]:
        return platform_entry(self.directory, code, locale)


class Turn:
    def __init__(self, services: FlowServices, event: Incoming, state: State) -> None:
        self.services = services
        self.event = event
        self.state = state
        self.replies: list[Reply] = []
        self.notice: str | None = None
        self.relay_case: CaseView | None = None
        self.participant_id: int | None = None  # set once the flow knows who this is
        self.link_read = False  # participant_id is what the database says now (None: not linked)
        self.stage: str | None = None  # the headline stage, when a flow looked at the records
        self.answered_second_factor = False  # this turn's text is a secret: keep it out of the transcript
        self.also: str | None = None  # a message's second request (an FAQ id), offered after the flow it started
        self._nonce: str | None = None

    @property
    def locale(self) -> str:
        return self.state.locale

    def text(self, key: str, **context: Any) -> str:
        return self.services.renderer.render(key, self.locale, **context)

    def button(self, label_key: str, action: Action, argument: str = "", **context: Any) -> Button:
        return self.raw_button(self.text(label_key, **context), action, argument)

    def raw_button(self, label: str, action: Action, argument: str = "") -> Button:
        if self._nonce is None:
            # A fresh nonce for this turn's buttons: every older button becomes "expired".
            self._nonce = new_nonce()
            self.state.nonce = self._nonce
        return Button(label[:60], pack(self._nonce, action, argument))

    async def records(self, participant_id: int) -> ParticipantStatus | None:
        """The participant's diagnosis for a flow to show; if the records are gone, an apology and an agent."""
        status = await self.services.status.status(participant_id)
        if status is None:
            self.say("records_missing", (self.button("btn_agent", Action.AGENT),))
            return None
        self.stage = status.headline.stage.value
        return status

    def say(self, key: str, *rows: tuple[Button, ...], **context: Any) -> None:
        self.replies.append(Reply(self.text(key, **context), tuple(row for row in rows if row)))

    def say_text(self, text: str, *rows: tuple[Button, ...]) -> None:
        self.replies.append(Reply(text, tuple(row for row in rows if row)))
