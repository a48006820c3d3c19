"""SQL pieces shared by the import kinds and the database backends (kept apart so that neither imports the other)."""

from __future__ import annotations

from dataclasses import dataclass


def sql_text(value: str) -> str:
    """A string literal for SQL built from our own constants (never from file contents)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class JsonField:
    """One `"field": [old, new]` entry of a `changed` event's data; left out when `when` (SQL) is false. (A
    `created` event's data is the new row's values, `{"field": value}`: see `Backend.json_snapshot`.)"""

    name: str
    old: str  # SQL expressions
    new: str
    when: str | None = None
