"""`prakerja-bot chat`, `run` and `webhook`: the bot itself, in the terminal or on Telegram."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bot.cli.common import CliError, err, is_default_database, out, require_secrets, require_secrets_outside_demo
from bot.settings import Settings
from core.db import sqlite_path
from core.setup import DatabaseState, prepare_database


def register(sub: Any) -> None:
    chat = sub.add_parser("chat", help="chat with the bot in the terminal (piped input works: one message a line)")
    chat.add_argument("--phone", help="the phone number /contact shares, e.g. +6281200000004")
    chat.set_defaults(handler=cmd_chat)

    run = sub.add_parser("run", help="run the bot on Telegram with long polling (BOT_TOKEN, BOT_API_URL)")
    run.set_defaults(handler=cmd_run)

    hook = sub.add_parser("webhook", help="serve /webhook, /healthz and /metrics (WEBHOOK_SECRET required)")
    hook.add_argument("--host", default="127.0.0.1")
    hook.add_argument("--port", type=int, default=8080)
    hook.add_argument("--set-webhook", action="store_true", help="register WEBHOOK_URL with Telegram on start")
    hook.add_argument("--delete-webhook", action="store_true", help="remove the webhook at Telegram and exit")
    hook.set_defaults(handler=cmd_webhook)


async def _prepare_database(settings: Settings, demo: bool) -> None:
    """Bring the schema up to date (core.setup decides); tell the operator what they may need to do next."""
    state = await prepare_database(settings.database_url, settings.pii_key, demo)
    if state is DatabaseState.DEMO_CREATED:
        err.print("No demo database yet: created it (prakerja-bot demo lists the personas).")
    elif state is DatabaseState.EMPTY:
        err.print(
            "The database has no participants yet: `prakerja-bot import` loads records; "
            "`prakerja-bot demo` recreates it with the demo personas."
        )


async def cmd_chat(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import build_app
    from bot.console import ConsoleChat, stdin_reader
    from core.identity import InvalidIdentifier, normalize_phone

    phone = None
    if args.phone:
        try:
            phone = normalize_phone(args.phone)
        except InvalidIdentifier:
            raise CliError(f"--phone {args.phone!r} is not an Indonesian mobile number (e.g. +6281200000004)") from None
    await _prepare_database(settings, demo=True)
    from core.imports.live import serving

    app = build_app(settings)
    interactive = sys.stdin.isatty()
    if interactive:
        err.print("Console chat — type a message; /contact shares --phone, #N presses button N, /quit ends.")
    try:
        with serving(sqlite_path(settings.database_url)):
            await ConsoleChat(app, phone, sys.stdout).run(stdin_reader(interactive))
    finally:
        await app.close()
    return 0


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    if settings.bot_token is None:
        raise CliError("BOT_TOKEN is not set; use `prakerja-bot chat` to try the bot without Telegram")
    require_secrets_outside_demo(settings)
    # aiogram takes seconds to import (pydantic builds its models): refuse bad settings before that.
    from bot.app import build_app
    from bot.logs import configure_logging
    from bot.telegram import run_polling

    configure_logging(settings.log_format)
    # Demo data only where `./run.sh` puts it: the embedded default path, on first start.
    await _prepare_database(settings, demo=is_default_database(settings))
    from core.imports.live import serving

    app = build_app(settings)
    try:
        with serving(sqlite_path(settings.database_url)):
            await run_polling(app)
    finally:
        await app.close()
    return 0


async def cmd_webhook(settings: Settings, args: argparse.Namespace) -> int:
    if settings.bot_token is None:
        raise CliError("BOT_TOKEN is not set")
    if args.delete_webhook:
        from bot.telegram import make_bot

        bot = make_bot(settings)
        try:
            await bot.delete_webhook(drop_pending_updates=False)
        finally:
            await bot.session.close()
        out.print("Webhook deleted.")
        return 0
    try:
        settings.require_webhook_secret()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    require_secrets(settings)
    # aiogram takes seconds to import (pydantic builds its models): refuse bad settings before that.
    from bot.app import build_app
    from bot.logs import configure_logging
    from bot.webhook import serve

    configure_logging(settings.log_format)
    # Workers never migrate or seed: `prakerja-bot migrate` runs once per deployment, before them.
    from core.imports.live import serving

    app = build_app(settings)
    try:
        with serving(sqlite_path(settings.database_url)):
            await serve(app, args.host, args.port, args.set_webhook)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        await app.close()
    return 0
