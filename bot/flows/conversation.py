"""The conversation: routes each event to a flow and returns the replies and the new state.

Commands work from any state. Button presses are checked against the current nonce before any flow sees them.
Nobody reads records without having proved who they are (see `identify`).
"""

from __future__ import annotations

import html
import re
from dataclasses import replace
from typing import Any

from bot.flows import certificate, faq, identify, incentive
from bot.flows.agent import hand_over
from bot.flows.callbacks import Action, unpack
from bot.flows.commands import AGENT_ONLY_COMMANDS, PARTICIPANT_COMMANDS
from bot.flows.faq_catalog import FaqCatalogProvider
from bot.flows.state import Phase, State
from bot.flows.turn import FlowServices, Turn
from bot.flows.types import EventKind, Incoming, Outcome, Reply
from core.cases import CaseView
from core.identity import redact, redact_free_text
from core.limits import MESSAGE_TEXT
from core.locales import LOCALES

MAX_TEXT = MESSAGE_TEXT  # longer input is cut, never refused
TRANSCRIPT_LINES = 12
_TAGS = re.compile(r"<[^>]+>")
# Phases whose buttons survive a side question, and the actions those buttons carry.
FLOW_PHASES = frozenset({Phase.CHOOSE_ENROLLMENT, Phase.TROUBLESHOOT})
FLOW_ACTIONS = frozenset({Action.ENROLLMENT, Action.STEP})


class Conversation:
    def __init__(self, services: FlowServices, catalogs: FaqCatalogProvider | None = None) -> None:
        self.services = services
        self.catalogs = catalogs

    def may_look_up(self, event: Incoming, stored: dict[str, Any] | None) -> bool:
        """Whether this event may read records (the front end shows "typing…" meanwhile)."""
        if event.kind in (EventKind.BUTTON, EventKind.CONTACT):
            return True
        if event.kind is EventKind.COMMAND:
            return event.text.lower() in ("status", "start")
        if stored is None:
            return False
        # A linked participant's question may lead to their records (an answer about them, or a flow).
        return stored.get("phase") == Phase.AWAIT_SECOND_FACTOR or bool(stored.get("linked"))

    async def handle(self, event: Incoming, stored: dict[str, Any] | None) -> Outcome:
        state = State.from_dict(stored, self.services.default_locale)
        if len(event.text) > MAX_TEXT or len(event.argument) > MAX_TEXT:
            event = replace(event, text=event.text[:MAX_TEXT], argument=event.argument[:MAX_TEXT])
        context = await self.services.context.read(event.user_id) if self.services.context else None
        if context is not None and context.blocked:
            await self.services.accounts.unblocked(event.user_id)
        # One FAQ catalog per turn: an admin's edit is seen at once, and never half-way through a turn.
        services = self.services
        if self.catalogs is not None:
            catalog = await self.catalogs.catalog(context.faq_revision if context else None)
            services = replace(services, faq=catalog) if catalog is not services.faq else services
        turn = Turn(services, event, state)
        if context is not None:
            turn.participant_id, turn.link_read = context.participant_id, True
        may_have_a_person = self.services.cases is not None and (context is None or context.had_case)
        if may_have_a_person and await self._with_a_person(turn):
            await self._log(turn, "relay" if turn.relay_case else event.kind.value)
            self._note_link(turn)
            return Outcome(turn.replies, state.to_dict(), turn.notice, turn.relay_case)
        match event.kind:
            case EventKind.COMMAND:
                await self._command(turn)
            case EventKind.CONTACT:
                await self._contact(turn)
            case EventKind.BUTTON:
                await self._button(turn)
            case EventKind.TEXT:
                await self._text(turn)
            case _:
                turn.say("not_understood_media")
        self._remember(turn)
        await self._log(turn, event.kind.value)
        self._note_link(turn)
        return Outcome(turn.replies, state.to_dict(), turn.notice)

    @staticmethod
    def _note_link(turn: Turn) -> None:
        """Whether the chat is linked, as this turn last knew it: the front end's hint for `may_look_up`."""
        if turn.link_read:
            turn.state.linked = int(turn.participant_id is not None)

    async def _participant(self, turn: Turn, refresh: bool = False) -> int | None:
        if refresh or not turn.link_read:
            turn.participant_id = await self.services.accounts.linked_participant(turn.event.user_id)
            turn.link_read = True
        return turn.participant_id

    async def _log(self, turn: Turn, kind: str) -> None:
        if self.services.interactions is not None:
            await self.services.interactions.record(turn.event.user_id, turn.participant_id, kind, turn.stage)

    def _remember(self, turn: Turn) -> None:
        """Keep the last lines of the chat (redacted) for the card an agent reads if this is handed over."""
        lines = turn.state.transcript
        event = turn.event
        if event.kind is EventKind.TEXT and turn.answered_second_factor:
            lines.append("👤 [verifikasi]")  # a birth date or NIK digits: never shown to anyone
        elif event.kind is EventKind.TEXT:
            lines.append("👤 " + redact_free_text(event.text)[:200])
        elif event.kind is EventKind.COMMAND:
            lines.append(f"👤 /{event.text[:32]}")
        elif event.kind is EventKind.CONTACT:
            lines.append("👤 [contact]")
        if turn.replies:
            first = html.unescape(_TAGS.sub("", turn.replies[0].text)).strip().split("\n")[0]
            lines.append("🤖 " + redact(first)[:200])
        del lines[:-TRANSCRIPT_LINES]

    async def _with_a_person(self, turn: Turn) -> bool:
        """While a case is open the bot stays out of the way: messages go to the agent. The participant's own
        commands are answered here and never relayed (/cancel closes the case)."""
        cases = self.services.cases
        assert cases is not None
        event = turn.event
        pressed = unpack(event.text) if event.kind is EventKind.BUTTON else None
        if pressed is not None and pressed.action is Action.SATISFACTION:
            case_id, score = pressed.numbers  # in range: `unpack` refuses anything else
            if await cases.rate(case_id, event.user_id, score):
                turn.say("satisfaction_thanks")
            else:
                turn.notice = turn.text("button_expired")
            return True
        case = await cases.active_case(event.user_id)
        if case is None and event.kind in (EventKind.TEXT, EventKind.OTHER):
            case = await cases.reopen_recent(event.user_id)
            if case is not None:
                turn.say("case_reopened")
        if case is None:
            return False
        match event.kind:
            case EventKind.COMMAND if event.text.lower() in PARTICIPANT_COMMANDS:
                await self._command_with_a_person(turn, case)
            case EventKind.BUTTON:
                current = pressed is not None and bool(turn.state.nonce) and pressed.nonce == turn.state.nonce
                if pressed is not None and current and pressed.action is Action.LANG:
                    await self._set_locale(turn, pressed.argument)
                else:
                    turn.notice = turn.text("case_in_progress" if current else "button_expired")
            case EventKind.CONTACT:
                turn.say("case_in_progress")
            case EventKind.TEXT if event.message_id is not None and event.message_id == case.opened_message_id:
                # The message that asked for a person, delivered again: its first turn stored the case and failed
                # before the reply went out. Answer it as then, instead of relaying the request to the agent.
                await hand_over(turn, case.participant_id, case.reason)
            case _:
                turn.relay_case = case
        return True

    async def _command_with_a_person(self, turn: Turn, case: CaseView) -> None:
        cases = self.services.cases
        assert cases is not None
        name, user_id = turn.event.text.lower(), turn.event.user_id
        if name == "cancel":
            # One transaction: the case closes exactly when the agents are told.
            await cases.close_by_participant(case.id, user_id, turn.text("case_closed_by_participant_staff"))
            turn.state.reset()
            turn.say("case_closed_by_participant")
        elif name == "logout":
            # Unlinked, this Telegram account may be in other hands now: the agent must not go on talking about the
            # records with it, so the case closes too (the participant is told) — all in one transaction.
            if await cases.logout_and_close(case.id, user_id, turn.text("case_closed_by_logout_staff")):
                turn.participant_id, turn.link_read = None, True
                turn.state.reset()
                turn.replies.append(Reply(turn.text("logout_done_case_closed"), remove_keyboard=True))
            else:
                turn.say("logout_not_linked")
                turn.say("case_in_progress")
        elif name == "status":
            participant_id = await self._participant(turn)
            if participant_id is None:
                # Verifying would send the second factor to the agent: it waits until the case is closed.
                turn.say("case_status_not_linked")
            else:
                await certificate.overview(turn, participant_id)
        elif name == "lang":
            await self._lang(turn)
        elif name == "help":
            turn.say("help")
            turn.say("case_in_progress")
        else:  # start
            turn.say("case_in_progress")

    # --- entry points -------------------------------------------------------------------------------------
    async def _command(self, turn: Turn) -> None:
        name = turn.event.text.lower()
        participant_id = await self._participant(turn)
        if name == "start":
            turn.state.reset()
            name_of = None
            if participant_id is not None:
                status = await self.services.status.status(participant_id)
                name_of = status.facts.legal_name if status else None
            turn.replies.append(Reply(turn.text("welcome", name=name_of), remove_keyboard=True))
            self._menu(turn)
        elif name == "help":
            turn.say("help")
            self._menu(turn)
        elif name == "cancel":
            turn.state.reset()
            turn.replies.append(Reply(turn.text("cancelled"), remove_keyboard=True))
        elif name == "status":
            await self._with_identity(turn, "status", participant_id)
        elif name == "lang":
            await self._lang(turn)
        elif name == "logout":
            turn.state.reset()
            done = await self.services.accounts.logout(turn.event.user_id)
            turn.participant_id, turn.link_read = None, True
            turn.replies.append(Reply(turn.text("logout_done" if done else "logout_not_linked"), remove_keyboard=True))
        elif name in AGENT_ONLY_COMMANDS:
            turn.say("agent_only_command")
        else:
            turn.say("unknown_command")

    async def _contact(self, turn: Turn) -> None:
        if turn.state.phase is not Phase.AWAIT_CONTACT:
            turn.state.pending = turn.state.pending or "status"
        await identify.on_contact(turn)

    async def _text(self, turn: Turn) -> None:
        state = turn.state
        if state.phase is Phase.AWAIT_SECOND_FACTOR:
            turn.answered_second_factor = True
            if await identify.on_second_factor(turn):
                participant_id = await self._participant(turn, refresh=True)
                pending, state.pending = state.pending, ""
                turn.say("identify_linked")
                await self._linked(turn, participant_id, pending or "status")
            return
        if state.phase is Phase.AWAIT_CONTACT and identify.looks_like_phone(turn.event.text):
            # A typed number proves nothing: only the contact button shows the number is the sender's own.
            await identify.ask_contact(turn, state.pending)
            turn.replies.insert(0, Reply(turn.text("identify_typed_number")))
            return
        if not turn.event.text.strip():
            turn.say("not_understood_media")
            return
        participant_id = await self._participant(turn)
        if participant_id is None and await identify.reminds_lock(turn):
            return
        in_flow = state.phase in FLOW_PHASES and bool(state.nonce)
        if in_flow and not state.flow_nonce:
            state.flow_nonce = state.nonce  # the answer's buttons get a new nonce; the flow's keep theirs
        start = await faq.answer_question(turn, participant_id)
        if start is not None:
            await self._start_flow(turn, start, participant_id)
            faq.offer_also(turn)

    async def _button(self, turn: Turn) -> None:
        pressed = unpack(turn.event.text)
        state = turn.state
        current = pressed is not None and bool(state.nonce) and pressed.nonce == state.nonce
        # A step/choice button of a flow interrupted by a side question (see State.flow_nonce).
        resumed = (
            pressed is not None
            and not current
            and pressed.action in FLOW_ACTIONS
            and state.phase in FLOW_PHASES
            and bool(state.flow_nonce)
            and pressed.nonce == state.flow_nonce
        )
        if pressed is None or not (current or resumed):
            turn.notice = turn.text("button_expired")
            return
        if pressed.action in FLOW_ACTIONS or pressed.action is Action.START:
            state.flow_nonce = ""  # the flow answers with buttons of its own now
        participant_id = await self._participant(turn)
        match pressed.action:
            case Action.START:
                await self._start_flow(turn, pressed.argument, participant_id)
            case Action.FAQ:
                start = await faq.picked(turn, pressed.argument, participant_id)
                if start is not None:
                    await self._start_flow(turn, start, participant_id)
            case Action.HELPFUL:
                await faq.feedback(turn, pressed.argument == "y")
            case Action.ENROLLMENT if participant_id is not None:
                await certificate.choose(turn, participant_id, pressed.argument)
            case Action.STEP if participant_id is not None:
                await certificate.step(turn, participant_id, pressed.argument)
            case Action.AGENT:
                await hand_over(turn, participant_id, "participant_asked")
            case Action.LANG:
                await self._set_locale(turn, pressed.argument)
            case _:
                turn.notice = turn.text("button_expired")

    # --- shared steps -------------------------------------------------------------------------------------
    async def _lang(self, turn: Turn) -> None:
        argument = turn.event.argument.strip().lower()
        if argument in LOCALES:
            await self._set_locale(turn, argument)
            return
        turn.say(
            "lang_choose",
            (
                turn.button("btn_lang_id", Action.LANG, "id"),
                turn.button("btn_lang_en", Action.LANG, "en"),
            ),
        )

    async def _set_locale(self, turn: Turn, locale: str) -> None:
        turn.state.locale = locale
        await self.services.accounts.set_locale(turn.event.user_id, locale)
        turn.say("lang_set")

    def _menu(self, turn: Turn) -> None:
        turn.say(
            "menu",
            (
                turn.button("btn_menu_certificate", Action.START, "certificate"),
                turn.button("btn_menu_incentive", Action.START, "incentive"),
            ),
            (
                turn.button("btn_menu_status", Action.START, "status"),
                turn.button("btn_agent", Action.AGENT),
            ),
        )

    async def _start_flow(self, turn: Turn, flow: str, participant_id: int | None) -> None:
        if flow == "agent":
            await hand_over(turn, participant_id, "participant_asked")
            return
        await self._with_identity(turn, flow, participant_id)

    async def _with_identity(self, turn: Turn, flow: str, participant_id: int | None) -> None:
        if participant_id is None:
            turn.say("identify_needed")
            await identify.ask_contact(turn, flow)
            return
        await self._linked(turn, participant_id, flow)

    async def _linked(self, turn: Turn, participant_id: int | None, flow: str) -> None:
        if participant_id is None:
            return
        if flow == "incentive":
            await incentive.start(turn, participant_id)
        else:  # "certificate" and "status" both lead with the summary of every training; status adds the incentive
            await certificate.start(turn, participant_id, with_incentive=flow == "status")
