"""The conversation state a flow keeps between messages, stored as a plain dict in aiogram's FSM storage."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from core.locales import LOCALES


class Phase(StrEnum):
    IDLE = "idle"
    AWAIT_CONTACT = "await_contact"
    AWAIT_SECOND_FACTOR = "await_second_factor"
    CHOOSE_ENROLLMENT = "choose_enrollment"
    TROUBLESHOOT = "troubleshoot"


@dataclass
class State:
    locale: str = "id"
    phase: Phase = Phase.IDLE
    nonce: str = ""  # the buttons of the last reply carry it; other buttons are expired
    # The nonce of the flow's own last buttons while a side question was answered in the middle of the flow: its
    # step/choice buttons keep working (only those actions), instead of expiring with the answer's new buttons.
    flow_nonce: str = ""
    pending: str = ""  # what to do once identified: certificate / incentive / status
    candidate: int = 0  # participant whose phone was shared, awaiting the second factor
    enrollment: int = 0
    steps: list[str] = field(default_factory=list)
    step_index: int = 0
    wait_until: str = ""  # ISO date the current wait step promised, fixed when it was first shown
    answer_id: int = 0  # last FAQ answer, for "did this help?"
    others: list[str] = field(default_factory=list)  # the next FAQ matches, offered on "no"
    question: str = ""  # the participant's last question (redacted), stored with the answer they pick for it
    transcript: list[str] = field(default_factory=list)  # the last lines of the chat, for an agent's case card
    linked: int = 0  # 1: the chat was linked to a participant at the end of the last turn (a hint, not a check)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, default_locale: str) -> State:
        """Tolerant: a stored state from an older version, or garbage, becomes a fresh idle state."""
        state = cls(locale=default_locale)
        if not data:
            return state
        known = {f.name for f in fields(cls)}
        for key, value in data.items():
            if key not in known:
                continue
            default = getattr(state, key)
            if isinstance(default, list):
                if isinstance(value, list):
                    setattr(state, key, [str(v) for v in value])
            elif isinstance(default, str):
                if isinstance(value, str):
                    setattr(state, key, value)
            elif isinstance(value, int) and not isinstance(value, bool):
                setattr(state, key, value)
        try:
            state.phase = Phase(state.phase)
        except ValueError:
            state.phase = Phase.IDLE
        if state.locale not in LOCALES:
            state.locale = default_locale
        return state

    def to_dict(self) -> dict[str, Any]:
        # Field by field, lists copied: `dataclasses.asdict` deep-copies generically and showed up in every turn.
        data = {f.name: getattr(self, f.name) for f in _FIELDS}
        for key, value in data.items():
            if isinstance(value, list):
                data[key] = list(value)
        data["phase"] = self.phase.value
        return data

    def reset(self) -> None:
        """Back to idle, keeping only the language."""
        locale = self.locale
        self.__init__(locale=locale)  # type: ignore[misc]


_FIELDS = fields(State)
