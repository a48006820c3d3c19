"""What every `prakerja-bot` command shares: the consoles, the one-line error, and the secrets checks."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable, Coroutine
from datetime import date
from typing import Any

from rich.console import Console

from bot.settings import DEFAULT_DATABASE_URL, Settings
from core.db import sqlite_path

# Piped output keeps wide tables readable instead of wrapping at rich's 80-column default.
_WIDTH = shutil.get_terminal_size((160, 24)).columns
out = Console(highlight=False, width=_WIDTH)
err = Console(stderr=True, highlight=False, width=_WIDTH)

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


class CliError(Exception):
    """A problem the operator can fix; the message is the one line they see."""


def iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def is_default_database(settings: Settings) -> bool:
    path, default = sqlite_path(settings.database_url), sqlite_path(DEFAULT_DATABASE_URL)
    return path is not None and default is not None and path.resolve() == default.resolve()


def require_secrets(settings: Settings) -> None:
    try:
        settings.require_production_secrets()
    except ValueError as exc:
        raise CliError(str(exc)) from None


def require_secrets_outside_demo(settings: Settings) -> None:
    """The embedded demo database holds fictitious personas and may use the development key (`./run.sh` needs no
    secrets); any other database may hold real people."""
    if not is_default_database(settings):
        require_secrets(settings)
