"""FAQ: free text goes to the matcher; a confident match answers, a close call offers the top 3, no match an agent.

Every answer asks "did this help?"; a "no" offers the next matches and an agent. Answers and feedback are stored.
"""

from __future__ import annotations

from bot.flows.callbacks import Action
from bot.flows.turn import Turn
from bot.flows.views import participant_view
from bot.metrics import observe_faq
from core.faq import FaqEntry

# Intents that start a flow on the participant's records instead of a canned answer.
FLOW_INTENTS = {"certificate_missing": "certificate", "incentive_not_received": "incentive", "agent_request": "agent"}


async def answer_question(turn: Turn, participant_id: int | None) -> str | None:
    """Answer free text. Returns a flow to start (certificate / incentive / agent) when the intent asks for one."""
    catalog = turn.services.faq
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
    if result.kind == "answer" and best is not None:
        if best.faq_id in FLOW_INTENTS:
            return FLOW_INTENTS[best.faq_id]
        others = [c.faq_id for c in result.candidates[1:4] if c.faq_id in catalog.entries]
        await show_answer(turn, catalog.entries[best.faq_id], participant_id, answer_id, others)
        return None
    if result.kind == "suggest":
        rows = [
            (turn.raw_button(catalog.entries[c.faq_id].title.get(turn.locale, c.faq_id), Action.FAQ, c.faq_id),)
            for c in result.top(3)
            if c.faq_id in catalog.entries
        ]
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
    # One message: the answer with its "did this help?" under it (Telegram allows about one message a second per
    # chat, and every message is a notification on the participant's phone).
    turn.say_text(
        f"{text}\n\n{turn.text('faq_helpful_question')}",
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
    answer_id = await turn.services.answers.record(
        entry.title.get("id", faq_id), "answer", faq_id, 100.0, turn.event.user_id, participant_id
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
    catalog = turn.services.faq
    rows = [
        (turn.raw_button(catalog.entries[o].title.get(turn.locale, o), Action.FAQ, o),)
        for o in state.others
        if o in catalog.entries
    ]
    turn.say("faq_not_helpful", *rows, (turn.button("btn_agent", Action.AGENT),), has_others=bool(rows))
