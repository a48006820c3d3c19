"""`prakerja-bot web` (the console and the API) and `prakerja-bot web-link TELEGRAM_ID` (a one-time login link)."""

from __future__ import annotations

import argparse
from typing import Any

from bot.settings import Settings
from core.db import Database, sqlite_path


def login_url(settings: Settings, token: str) -> str:
    return f"{settings.web_url.rstrip('/')}/login?t={token}"


async def _migrate_sqlite(settings: Settings) -> None:
    """An SQLite file (one process) is brought up to date here; PostgreSQL deployments run `prakerja-bot migrate`
    once, before their workers, as for the webhook."""
    if sqlite_path(settings.database_url) is None:
        return
    async with Database.open(settings.database_url) as db:
        await db.migrate()


async def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from bot.logs import configure_logging
    from bot.web.app import make_web_app
    from bot.web.context import build_context

    configure_logging(settings.log_format)
    await _migrate_sqlite(settings)
    app = make_web_app(build_context(settings))
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", proxy_headers=True)
    await uvicorn.Server(config).serve()
    return 0


async def cmd_web_link(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.common import CliError
    from core.console.staff import StaffAccess

    await _migrate_sqlite(settings)
    async with Database.open(settings.database_url) as db:
        token = await StaffAccess(db.engine, settings.agent_ids, settings.admin_ids).issue_login_link(args.telegram_id)
    if token is None:
        raise CliError(f"{args.telegram_id} is not staff (AGENT_IDS, ADMIN_IDS or added in the console)")
    print(login_url(settings, token))
    return 0


def add_web_parsers(sub: Any) -> None:
    web = sub.add_parser("web", help="serve the staff web console and the REST API (/api/v1/)")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=8080)
    web.set_defaults(handler=cmd_web)
    link = sub.add_parser("web-link", help="print a one-time console login link for a staff member")
    link.add_argument("telegram_id", type=int, metavar="TELEGRAM_ID")
    link.set_defaults(handler=cmd_web_link)
