"""Compact, validated button data: `nonce|action|argument`, at most 64 bytes.

Each reply with buttons gets a fresh nonce kept in the conversation state; a press whose nonce is not the current
one (an old message, a forged payload) is "expired" and never reaches a flow.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

MAX_BYTES = 64
_ARGUMENT = re.compile(r"^[a-z0-9_]{0,40}$")
_NONCE = re.compile(r"^[0-9a-z]{4}$")


class Action(StrEnum):
    START = "s"  # main menu entries: argument = certificate / incentive / identify / help
    FAQ = "f"  # answer FAQ entry <argument>
    HELPFUL = "h"  # argument y / n
    ENROLLMENT = "e"  # troubleshoot enrollment <id>
    STEP = "t"  # argument next / solved
    AGENT = "a"
    LANG = "l"  # argument id / en
    SATISFACTION = "c"  # argument <case id>_<1..5>; sent when an agent closes a case, checked against the case


SATISFACTION_NONCE = "0000"  # satisfaction buttons outlive the conversation's nonce: the case itself is checked


@dataclass(frozen=True)
class Pressed:
    nonce: str
    action: Action
    argument: str


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


def pack(nonce: str, action: Action, argument: str = "") -> str:
    if not _ARGUMENT.match(argument):
        raise ValueError(f"bad button argument {argument!r}")
    data = f"{nonce}|{action.value}|{argument}"
    assert len(data.encode()) <= MAX_BYTES
    return data


def unpack(data: str) -> Pressed | None:
    """None for anything that is not exactly what `pack` makes."""
    if not data or len(data.encode()) > MAX_BYTES:
        return None
    parts = data.split("|")
    if len(parts) != 3 or not _NONCE.match(parts[0]) or not _ARGUMENT.match(parts[2]):
        return None
    try:
        action = Action(parts[1])
    except ValueError:
        return None
    return Pressed(parts[0], action, parts[2])
