"""The languages the helpdesk speaks, in one place: Indonesian first (required everywhere), English optional."""

from __future__ import annotations

LOCALES: tuple[str, ...] = ("id", "en")
DEFAULT_LOCALE = "id"


def known(locale: str | None) -> str:
    """`locale` when the helpdesk speaks it, else the default."""
    return locale if locale in LOCALES else DEFAULT_LOCALE
