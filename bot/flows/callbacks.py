"""Compact, validated button data: `nonce|action|argument`, at most 64 bytes.

Each reply with buttons gets a fresh nonce kept in the conversation state; a press whose nonce is not the current
one (an old message, a forged payload) is "expired" and never reaches a flow. Each action's argument is checked
here too, numbers included, so that no flow sees a value a button of ours could not carry.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from core.limits import CALLBACK_DATA

MAX_BYTES = CALLBACK_DATA
_NONCE = re.compile(r"[0-9a-z]{4}")
# Ids in buttons are rows of INTEGER columns (enrollments, cases; 32-bit on PostgreSQL): a larger number is forged,
# and must be refused here rather than overflow in the database driver.
MAX_ID = 2**31 - 1
_ID = r"([1-9][0-9]{0,9})"


class Action(StrEnum):
    START = "s"  # main menu entries: argument = certificate / incentive / status / agent
    FAQ = "f"  # answer FAQ entry <argument>
    HELPFUL = "h"  # argument y / n
    ENROLLMENT = "e"  # troubleshoot enrollment <id>
    STEP = "t"  # argument next / solved / fixed (a failed transfer's account is fixed)
    AGENT = "a"
    LANG = "l"  # argument id / en
    SATISFACTION = "c"  # argument <case id>_<1..5>; sent when an agent closes a case, checked against the case


# The one place a button's argument is checked: each action's whole argument, numbers in capture groups.
_ARGUMENTS: dict[Action, re.Pattern[str]] = {
    Action.START: re.compile(r"certificate|incentive|status|agent"),
    Action.FAQ: re.compile(r"[a-z][a-z0-9_]{2,39}"),
    Action.HELPFUL: re.compile(r"[yn]"),
    Action.ENROLLMENT: re.compile(_ID),
    Action.STEP: re.compile(r"next|solved|fixed"),
    Action.AGENT: re.compile(r""),
    Action.LANG: re.compile(r"id|en"),
    Action.SATISFACTION: re.compile(_ID + r"_([1-5])"),
}
assert set(_ARGUMENTS) == set(Action)


SATISFACTION_NONCE = "0000"  # satisfaction buttons outlive the conversation's nonce: the case itself is checked


@dataclass(frozen=True)
class Pressed:
    nonce: str
    action: Action
    argument: str
    numbers: tuple[int, ...] = ()  # the argument's numbers, in range: (enrollment id,) or (case id, score)


_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


_pool = bytearray()


def new_nonce() -> str:
    # The system's random source is read 4 KB at a time: a call per reply with buttons (the old way, one per
    # character) showed up in every turn's profile.
    if len(_pool) < 4:
        _pool.extend(secrets.token_bytes(4096))
    n = int.from_bytes(_pool[-4:]) % 36**4
    del _pool[-4:]
    return "".join(_BASE36[(n // 36**i) % 36] for i in range(4))


def _numbers(action: Action, argument: str) -> tuple[int, ...] | None:
    """The argument's numbers when it is one `action` takes (None: it is not)."""
    match = _ARGUMENTS[action].fullmatch(argument)
    if match is None:
        return None
    numbers = tuple(int(group) for group in match.groups())
    return numbers if all(n <= MAX_ID for n in numbers) else None


def pack(nonce: str, action: Action, argument: str = "") -> str:
    if _numbers(action, argument) is None:
        raise ValueError(f"bad button argument {argument!r} for {action.name}")
    data = f"{nonce}|{action.value}|{argument}"
    assert len(data.encode()) <= MAX_BYTES
    return data


def unpack(data: str) -> Pressed | None:
    """None for anything that is not exactly what `pack` makes: an unknown action, an argument that action never
    takes, an id out of the database's range, a rating outside 1–5."""
    if not data or len(data.encode()) > MAX_BYTES:
        return None
    parts = data.split("|")
    if len(parts) != 3 or not _NONCE.fullmatch(parts[0]):
        return None
    try:
        action = Action(parts[1])
    except ValueError:
        return None
    numbers = _numbers(action, parts[2])
    if numbers is None:
        return None
    return Pressed(parts[0], action, parts[2], numbers)
