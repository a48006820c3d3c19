"""Identify: the participant's own phone number (Telegram contact button), then birth date or last 4 NIK digits.

```mermaid
stateDiagram-v2
    idle --> await_contact: needs records
    await_contact --> await_second_factor: own contact, registered phone
    await_contact --> idle: someone else's contact / unknown phone
    await_second_factor --> idle: linked (resume what was asked) / locked out / cancel
    await_second_factor --> await_second_factor: wrong answer (tries left) / unreadable or a question (hint: /cancel)
    idle --> idle: a date or 4 digits typed while locked (the lock reminder)
```
"""

from __future__ import annotations

import re
from datetime import datetime

from bot.flows.callbacks import Action
from bot.flows.state import Phase
from bot.flows.turn import Turn
from bot.flows.types import Reply
from core.accounts import SecondFactorResult
from core.calendar import JAKARTA
from core.identity import digits_only, find_birth_date

_WORD = re.compile(r"[^\W\d_]{2,}")


def _say_locked(turn: Turn, until: datetime | None, lockouts: int = 0, remove_keyboard: bool = False) -> None:
    """The lock, and what to do next: when to try again, what to type then, and who helps if the records are wrong.
    A message that removes the contact keyboard cannot carry a button too: it names the complaint form only."""
    text = turn.text(
        "identify_locked",
        until=until.astimezone(JAKARTA) if until else None,
        long=lockouts > 1,
        agent=not remove_keyboard,
    )
    if remove_keyboard:
        turn.replies.append(Reply(text, remove_keyboard=True))
    else:
        turn.say_text(text, (turn.button("btn_agent", Action.AGENT),))


async def ask_contact(turn: Turn, pending: str) -> None:
    locked = await turn.services.accounts.locked_until(turn.event.user_id)
    if locked is not None:
        _say_locked(turn, locked)
        return
    turn.state.phase = Phase.AWAIT_CONTACT
    turn.state.pending = pending
    turn.replies.append(Reply(turn.text("identify_ask_contact"), request_contact=turn.text("btn_share_contact")))


async def on_contact(turn: Turn) -> str | None:
    """Returns the pending request to resume, or None. Only the sender's own contact is accepted."""
    event = turn.event
    if event.contact_user_id != event.user_id:
        turn.state.phase = Phase.IDLE
        turn.replies.append(Reply(turn.text("identify_contact_not_yours"), remove_keyboard=True))
        return None
    participant_id = await turn.services.accounts.participant_for_phone(event.contact_phone or "")
    if participant_id is None:
        turn.state.phase = Phase.IDLE
        turn.replies.append(Reply(turn.text("identify_phone_unknown"), remove_keyboard=True))
        turn.say("identify_phone_unknown_next", (turn.button("btn_agent", Action.AGENT),))
        return None
    locked = await turn.services.accounts.locked_until(event.user_id, participant_id)
    if locked is not None:
        turn.state.phase = Phase.IDLE
        _say_locked(turn, locked, remove_keyboard=True)
        return None
    turn.state.phase = Phase.AWAIT_SECOND_FACTOR
    turn.state.candidate = participant_id
    turn.replies.append(Reply(turn.text("identify_ask_second_factor"), remove_keyboard=True))
    return None


async def on_second_factor(turn: Turn) -> bool:
    """True when the account is now linked (the caller resumes `state.pending`)."""
    outcome = await turn.services.accounts.verify_second_factor(
        turn.event.user_id, turn.state.candidate, turn.event.text, locale=turn.locale
    )
    if outcome.result is SecondFactorResult.LINKED:
        turn.state.phase = Phase.IDLE
        turn.state.candidate = 0
        return True
    if outcome.result is SecondFactorResult.LOCKED:
        turn.state.phase = Phase.IDLE
        turn.state.candidate = 0
        _say_locked(turn, outcome.locked_until, outcome.lockouts)
        return False
    if outcome.result is SecondFactorResult.UNREADABLE:
        text = turn.event.text
        # Words, not a date: most likely a question typed mid-step; say how to leave the step to ask it.
        question = len(_WORD.findall(text)) >= 2 or text.rstrip().endswith("?")
        turn.say("identify_unreadable", looks_like_nik=len(digits_only(text)) == 16, question=question)
        return False
    turn.say("identify_wrong", tries_left=outcome.tries_left)
    return False


async def reminds_lock(turn: Turn) -> bool:
    """A birth date or 4 digits typed while verification is locked: the lock reminder, not an FAQ answer."""
    text = turn.event.text
    answer_like = find_birth_date(text) is not None or (len(digits_only(text)) == 4 and text.strip().isdigit())
    if not answer_like:
        return False
    locked = await turn.services.accounts.locked_until(turn.event.user_id)
    if locked is None:
        return False
    _say_locked(turn, locked)
    return True


def looks_like_phone(text: str) -> bool:
    digits = digits_only(text)
    return 9 <= len(digits) <= 14 and text.strip().lstrip("+").replace(" ", "").replace("-", "").isdigit()
