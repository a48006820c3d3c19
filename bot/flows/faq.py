"""FAQ: free text goes to the matcher; a confident match answers, a close call offers the top 3, no match an agent.

Every answer asks "did this help?"; a "no" offers the next matches and an agent. Answers and feedback are stored.
"""

from __future__ import annotations

from bot.flows.callbacks import Action
from bot.flows.turn import Turn
from bot.flows.types import Button
from bot.flows.views import participant_view
from bot.metrics import observe_faq
from core.faq import FaqEntry
from core.identity import redact_free_text

# Intents that start a flow on the participant's records instead of a canned answer.
FLOW_INTENTS = {"certificate_missing": "certificate", "incentive_not_received": "incentive", "agent_request": "agent"}
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
    answer_id = await turn.services.answers.record(
        turn.event.text,
        result.kind,
        best.faq_id if best else None,
        best.score if best else 0.0,
        turn.event.user_id,
        participant_id,
    )
    # An entry picked from the buttons below is recorded against these words, not against its own title.
    state.question = redact_free_text(turn.event.text)[:MAX_KEPT_QUESTION]
    state.others = []
    if result.kind == "answer" and best is not None:
        if best.faq_id in FLOW_INTENTS:
            return FLOW_INTENTS[best.faq_id]
        others = [c.faq_id for c in result.candidates[1:4] if c.faq_id in catalog.entries]
        await show_answer(turn, catalog.entries[best.faq_id], participant_id, answer_id, others)
        return None
    if result.kind == "suggest":
        suggested = [c.faq_id for c in result.top(3) if c.faq_id in catalog.entries]
        # After one of them is picked, a "no" offers the other suggestions (then an agent).
        state.others = suggested
        rows = [(_entry_button(turn, faq_id),) for faq_id in suggested]
        turn.say("faq_suggest", *rows, (turn.button("btn_agent", Action.AGENT),))
        return None
    turn.say(
        "faq_none",
        (
            turn.button("btn_menu_certificate", Action.START, "certificate"),
            turn.button("btn_menu_incentive", Action.START, "incentive"),
        ),
        (turn.button("btn_agent", Action.AGENT),),
    )
    return None


def _entry_button(turn: Turn, faq_id: str) -> Button:
    entry = turn.services.faq.entries[faq_id]
    return turn.raw_button(entry.title.get(turn.locale, faq_id), Action.FAQ, faq_id)


async def show_answer(
    turn: Turn, entry: FaqEntry, participant_id: int | None, answer_id: int, others: list[str]
) -> None:
    source = entry.answer.get(turn.locale) or entry.answer["id"]
    renderer = turn.services.renderer
    participant = None
    if participant_id is not None and renderer.uses(source, "participant"):  # most answers are the same for all
        status = await turn.services.status.status(participant_id)
        participant = participant_view(turn.services.directory, status) if status else None
    text = renderer.render_source(source, turn.locale, participant=participant)
    turn.state.answer_id = answer_id
    turn.state.others = others
    action = ANSWER_BUTTONS.get(entry.id)
    # One message: the answer with its "did this help?" under it (Telegram allows about one message a second per
    # chat, and every message is a notification on the participant's phone).
    turn.say_text(
        f"{text}\n\n{turn.text('faq_helpful_question')}",
        (turn.button(action[0], action[1], action[2]),) if action else (),
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
