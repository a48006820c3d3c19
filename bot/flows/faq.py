"""FAQ: free text goes to the matcher; a confident match answers, a close call offers the top 3, no match an agent.

Every answer asks "did this help?"; a "no" offers the next matches and an agent. Answers and feedback are stored.
"""

from __future__ import annotations

from dataclasses import replace

from bot.flows.callbacks import Action
from bot.flows.turn import Turn
from bot.flows.types import Button
from bot.flows.views import participant_view
from bot.metrics import observe_faq
from core.faq_entries import FaqEntry
from core.identity import redact_free_text

# Intents that start a flow on the participant's records instead of a canned answer.
FLOW_INTENTS = {"certificate_missing": "certificate", "incentive_not_received": "incentive", "agent_request": "agent"}
# For a participant already identified, questions about their own status go to their records too: the flow's
# diagnosis is the one source of their dates, so no FAQ text can contradict it.
OWN_STATUS_INTENTS = {"incentive_schedule": "incentive"}
# Small talk: answered in a line, without "did this help?"; after an answer, yes/no/thanks are its feedback.
SMALL_TALK = frozenset({"greeting", "thanks", "affirm", "deny"})
FEEDBACK_WORDS = {"affirm": True, "thanks": True, "deny": False}
FRUSTRATION = "frustration"
# Answers that promise an action come with its button: (label key, action, argument).
ANSWER_BUTTONS: dict[str, tuple[str, Action, str]] = {
    "complaint_form": ("btn_agent", Action.AGENT, ""),
    "incentive_schedule": ("btn_check_incentive", Action.START, "incentive"),
}
MAX_KEPT_QUESTION = 500  # characters of the question kept in the conversation state until an answer is picked


async def answer_question(turn: Turn, participant_id: int | None) -> str | None:
    """Answer free text. Returns a flow to start (certificate / incentive / agent) when the intent asks for one."""
    catalog = turn.services.faq
    state = turn.state
    result = catalog.matcher.match(turn.event.text)
    best = result.candidates[0] if result.candidates else None
    observe_faq(result.kind, best.score if best else 0.0)
    if result.kind == "answer" and best is not None and state.answer_id and best.faq_id in FEEDBACK_WORDS:
        # "ya" / "makasih" / "nggak" right after "did this help?": that answer's feedback, not a question of its own.
        await feedback(turn, FEEDBACK_WORDS[best.faq_id])
        return None
    answer_id = await turn.services.answers.record(
        turn.event.text,
        result.kind,
        best.faq_id if best else None,
        best.score if best else 0.0,
        turn.event.user_id,
        participant_id,
    )
    if result.kind == "answer" and best is not None and best.faq_id in SMALL_TALK:
        await _small_talk(turn, best.faq_id, participant_id)
        return None
    if result.frustrated:
        # Fed up about a concrete problem: sorry first, then its answer or its flow (the participant's status).
        turn.say("faq_frustrated")
    # An entry picked from the buttons below is recorded against these words, not against its own title.
    state.question = redact_free_text(turn.event.text)[:MAX_KEPT_QUESTION]
    state.others = []
    if result.kind == "answer" and best is not None:
        also = result.second.faq_id if result.second and result.second.faq_id in catalog.entries else None
        flow = FLOW_INTENTS.get(best.faq_id) or (
            OWN_STATUS_INTENTS.get(best.faq_id) if participant_id is not None else None
        )
        if flow is not None:
            turn.also = also  # the flow speaks first; the other request then waits under a button (offer_also)
            return flow
        if best.faq_id == FRUSTRATION:
            await _frustration(turn, participant_id)
            return "status" if participant_id is not None else None
        others = [c.faq_id for c in result.candidates[1:4] if c.faq_id in catalog.entries]
        await show_answer(turn, catalog.entries[best.faq_id], participant_id, answer_id, others, also)
        return None
    if result.kind == "suggest":
        suggested = [c.faq_id for c in result.top(3) if c.faq_id in catalog.entries]
        # After one of them is picked, a "no" offers the other suggestions (then an agent).
        state.others = suggested
        rows = [(_entry_button(turn, faq_id),) for faq_id in suggested]
        turn.say("faq_suggest", *rows, (turn.button("btn_agent", Action.AGENT),))
        return None
    turn.say(
        "faq_statement" if result.statement else "faq_none",
        (
            turn.button("btn_menu_certificate", Action.START, "certificate"),
            turn.button("btn_menu_incentive", Action.START, "incentive"),
        ),
        (turn.button("btn_agent", Action.AGENT),),
    )
    return None


async def _small_talk(turn: Turn, faq_id: str, participant_id: int | None) -> None:
    """A greeting, thanks, yes or no (not feedback, see answer_question): a short reply in kind; a greeting also
    shows the menu."""
    entry = turn.services.faq.entries.get(faq_id)
    if entry is None:  # an admin deleted it: fall back to the plain "not understood" reply
        turn.say("faq_none", (turn.button("btn_agent", Action.AGENT),))
        return
    turn.say_text(await _render(turn, entry, participant_id))
    if faq_id == "greeting":
        turn.replies[-1] = replace(
            turn.replies[-1],
            buttons=(
                (
                    turn.button("btn_menu_certificate", Action.START, "certificate"),
                    turn.button("btn_menu_incentive", Action.START, "incentive"),
                ),
            ),
        )


async def _frustration(turn: Turn, participant_id: int | None) -> None:
    """Empathy first; an identified participant then sees their records (the caller starts the status flow)."""
    entry = turn.services.faq.entries.get(FRUSTRATION)
    if entry is not None:
        turn.say_text(await _render(turn, entry, participant_id))
    if participant_id is None:
        turn.say(
            "faq_frustration_check",
            (
                turn.button("btn_menu_certificate", Action.START, "certificate"),
                turn.button("btn_menu_incentive", Action.START, "incentive"),
            ),
            (turn.button("btn_agent", Action.AGENT),),
        )


async def _render(turn: Turn, entry: FaqEntry, participant_id: int | None) -> str:
    source = entry.answer.get(turn.locale) or entry.answer["id"]
    renderer = turn.services.renderer
    participant = None
    if participant_id is not None and renderer.uses(source, "participant"):  # most answers are the same for all
        status = await turn.services.status.status(participant_id)
        participant = participant_view(turn.services.directory, status) if status else None
    return renderer.render_source(source, turn.locale, participant=participant)


def offer_also(turn: Turn) -> None:
    """After a flow started by one request of a message, the message's other request as a button."""
    if turn.also is not None and turn.also in turn.services.faq.entries:
        turn.say("faq_also", (_also_button(turn, turn.also),))


def _also_button(turn: Turn, faq_id: str) -> Button:
    entry = turn.services.faq.entries[faq_id]
    title = entry.title.get(turn.locale, faq_id)
    return turn.raw_button(turn.text("btn_faq_also", title=title), Action.FAQ, faq_id)


def _entry_button(turn: Turn, faq_id: str) -> Button:
    entry = turn.services.faq.entries[faq_id]
    return turn.raw_button(entry.title.get(turn.locale, faq_id), Action.FAQ, faq_id)


async def show_answer(
    turn: Turn,
    entry: FaqEntry,
    participant_id: int | None,
    answer_id: int,
    others: list[str],
    also: str | None = None,
) -> None:
    text = await _render(turn, entry, participant_id)
    turn.state.answer_id = answer_id
    turn.state.others = others
    action = ANSWER_BUTTONS.get(entry.id)
    # One message: the answer with its "did this help?" under it (Telegram allows about one message a second per
    # chat, and every message is a notification on the participant's phone).
    turn.say_text(
        f"{text}\n\n{turn.text('faq_helpful_question')}",
        (turn.button(action[0], action[1], action[2]),) if action else (),
        (_also_button(turn, also),) if also else (),
        (turn.button("btn_yes", Action.HELPFUL, "y"), turn.button("btn_no", Action.HELPFUL, "n")),
    )


async def picked(turn: Turn, faq_id: str, participant_id: int | None) -> str | None:
    """A "did you mean" or "other answers" button: answer that entry (or start its flow)."""
    catalog = turn.services.faq
    entry = catalog.entries.get(faq_id)
    if entry is None:
        turn.notice = turn.text("button_expired")
        return None
    if faq_id in FLOW_INTENTS:
        return FLOW_INTENTS[faq_id]
    # The participant's own words (a state from before they were kept has only the entry's title to go by).
    question = turn.state.question or entry.title.get("id", faq_id)
    answer_id = await turn.services.answers.record(
        question, "answer", faq_id, 100.0, turn.event.user_id, participant_id
    )
    await show_answer(turn, entry, participant_id, answer_id, [o for o in turn.state.others if o != faq_id])
    return None


async def feedback(turn: Turn, helpful: bool) -> None:
    state = turn.state
    if state.answer_id:
        await turn.services.answers.feedback(state.answer_id, helpful, turn.event.user_id)
    state.answer_id = 0
    if helpful:
        turn.say("faq_thanks")
        return
    rows = [(_entry_button(turn, o),) for o in state.others if o in turn.services.faq.entries]
    turn.say("faq_not_helpful", *rows, (turn.button("btn_agent", Action.AGENT),), has_others=bool(rows))
