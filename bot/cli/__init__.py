"""The `prakerja-bot` command: operator tools (demo, status, import, faq, migrate, stats) and the bot's entry
points, one module per group of commands; a new group is one line in COMMAND_GROUPS (the web console's
commands live with it, in bot/web/cli.py).

Every failure prints a one-line reason and exits non-zero; no traceback reaches the operator.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from bot.cli import data, faq, records, serve, stats
from bot.cli.common import CliError, Command, err
from bot.cli.records import status_to_dict
from bot.settings import Settings
from bot.web import cli as web

__all__ = ["CliError", "build_parser", "main", "status_to_dict"]

# Each group registers its sub-commands on the `add_subparsers` result; the order is the order of `--help`.
COMMAND_GROUPS = (records.register, data.register, serve.register, stats.register, web.add_web_parsers, faq.register)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prakerja-bot", description="Prakerja Helpdesk bot and operator tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMAND_GROUPS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        err.print(f"error: setting {'.'.join(str(p) for p in first['loc']).upper()}: {first['msg']}", markup=False)
        return 2
    handler: Command = args.handler
    try:
        return asyncio.run(handler(settings, args))
    # Messages carry file names, column names and database errors: printed as they are, never as rich markup.
    except CliError as exc:
        err.print(f"error: {exc}", markup=False)
    except SQLAlchemyError as exc:
        err.print(f"error: database: {str(exc.orig if hasattr(exc, 'orig') else exc).splitlines()[0]}", markup=False)
    except OSError as exc:
        err.print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), markup=False)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:  # the last guard: one line, never a traceback
        err.print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", markup=False)
    return 1
