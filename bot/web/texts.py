"""The console's texts, Indonesian and English, from `knowledge/console.yaml`."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from bot.texts import load_yaml
from core.locales import LOCALES


@lru_cache(maxsize=1)
def console_texts() -> dict[str, dict[str, str]]:
    texts: dict[str, dict[str, str]] = load_yaml("console.yaml")["texts"]
    return texts


def text(key: str, locale: str, **values: Any) -> str:
    entry = console_texts()[key]
    template = entry.get(locale) or entry["id"]
    return template.format(**values) if values else template


def pick_locale(cookie: str | None, accept_language: str, default: str) -> str:
    """The reader's language: their choice (cookie), else the browser's first known language, else the default."""
    if cookie is not None and cookie in LOCALES:
        return cookie
    for part in accept_language.split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LOCALES:
            return code
    return default


class ActionRefused(Exception):
    """A console action or request that cannot be done; `key` is the console text that says why, `status` the HTTP
    status to answer with."""

    def __init__(self, key: str, status: int = 409) -> None:
        super().__init__(key)
        self.key = key
        self.status = status
