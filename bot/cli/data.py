"""`prakerja-bot import`, `rehash`, `migrate` and `purge`: what goes into the database, and what leaves it."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bot.cli.common import CliError, err, out, require_secrets, require_secrets_outside_demo
from bot.settings import Settings
from core.db import Database, sqlite_path


def register(sub: Any) -> None:
    imp = sub.add_parser(
        "import",
        help="import a file (CSV or JSONL): platforms, trainings, participants, payout-accounts, "
        "platform-report, pmo-results or transfers",
    )
    imp.add_argument("kind", metavar="KIND")
    imp.add_argument("file", metavar="FILE")
    imp.set_defaults(handler=cmd_import)

    rehash = sub.add_parser(
        "rehash",
        help="key rotation: re-hash stored NIK and card numbers from PII_HASH_KEY_OLD to PII_HASH_KEY, reading the "
        "identifiers from the participants file",
    )
    rehash.add_argument("file", metavar="FILE", help="the participants file (CSV or JSONL with nik, card_number)")
    rehash.set_defaults(handler=cmd_rehash)

    mig = sub.add_parser("migrate", help="apply the database migrations")
    mig.add_argument("revision", nargs="?", default="head")
    mig.set_defaults(handler=cmd_migrate)

    purge = sub.add_parser(
        "purge", help="delete personal data older than RETENTION_DAYS (a running bot does it hourly)"
    )
    purge.set_defaults(handler=cmd_purge)


async def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from core.imports import ImportFileError, ImportKind, run_import

    path = Path(args.file)
    if not await asyncio.to_thread(path.exists):
        raise CliError(f"no such file: {path}")
    # A symlink or a device may point anywhere (/etc/passwd): only a plain file the operator put there is read.
    if await asyncio.to_thread(path.is_symlink) or not await asyncio.to_thread(path.is_file):
        raise CliError(f"not a regular file (a link, a folder or a device): {path}")
    try:
        kind = ImportKind(args.kind)
    except ValueError:
        raise CliError(
            f"unknown import kind {args.kind!r}; use one of: {', '.join(k.value for k in ImportKind)}"
        ) from None
    require_secrets_outside_demo(settings)
    await _refuse_long_lock_while_serving(settings, path)
    try:
        async with Database.open(settings.database_url) as db:
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as progress:
                task = progress.add_task(f"import {kind.value}", total=None)
                report = await run_import(
                    db.engine,
                    kind,
                    path,
                    progress=lambda n: progress.update(task, completed=n),
                    pii_key=settings.pii_key,
                )
    except ImportFileError as exc:
        raise CliError(str(exc)) from None
    # markup=False: a reason or a file name may hold "[/]", which rich would read as (broken) markup.
    for row in report.rejected[:200]:
        out.print(f"line {row.line}: {row.reason}", markup=False)
    if len(report.rejected) > 200:
        out.print(f"… and {len(report.rejected) - 200} more rejected rows")
    out.print(
        f"{report.kind} {report.file_name}: {report.status} — read {report.rows_read}, applied {report.applied}, "
        f"unchanged {report.unchanged}, rejected {len(report.rejected)}",
        markup=False,
    )
    return 0 if report.status == "applied" else 1


async def _refuse_long_lock_while_serving(settings: Settings, path: Path) -> None:
    """An import is one transaction (all or nothing), and on SQLite that holds the database's only write lock: a
    large file would make every participant's turn wait for it while a bot serves from the same file."""
    from core.imports.live import LIVE_IMPORT_MAX_BYTES, bot_is_serving

    database = sqlite_path(settings.database_url)
    if database is None or (await asyncio.to_thread(path.stat)).st_size <= LIVE_IMPORT_MAX_BYTES:
        return
    if await asyncio.to_thread(bot_is_serving, database):
        raise CliError(
            f"the bot is running on this SQLite database and the file is over {LIVE_IMPORT_MAX_BYTES // 2**20} MB: "
            "importing it now would make participants wait; stop the bot for the import (or split the file, or "
            "move to PostgreSQL, where imports do not block the bot)"
        )


def _identifier_pairs(path: Path) -> list[tuple[str, str]]:
    """(nik, card_number) of every record of a participants file (CSV with a header row, or JSON Lines)."""
    import csv

    pairs: list[tuple[str, str]] = []
    with path.open(encoding="utf-8-sig", newline="") as text:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            records: Any = (json.loads(line) for line in text if line.strip())
        else:
            records = csv.DictReader(text)
            if not {"nik", "card_number"} <= set(records.fieldnames or ()):
                raise CliError("the file needs the columns nik and card_number (a participants import file)")
        for record in records:
            if not isinstance(record, dict):
                raise CliError("every line must be a JSON object")
            pairs.append((str(record.get("nik") or ""), str(record.get("card_number") or "")))
    return pairs


async def cmd_rehash(settings: Settings, args: argparse.Namespace) -> int:
    """Key rotation: the stored NIK and card hashes, from PII_HASH_KEY_OLD to PII_HASH_KEY."""
    from core.accounts import rekey_identifiers

    require_secrets(settings)
    if settings.pii_hash_key_old is None:
        raise CliError("PII_HASH_KEY_OLD is not set: the key the stored hashes were made with")
    old_key = settings.pii_hash_key_old.get_secret_value().encode()
    if old_key == settings.pii_key:
        raise CliError("PII_HASH_KEY_OLD equals PII_HASH_KEY: nothing to rotate")
    path = Path(args.file)
    if await asyncio.to_thread(path.is_symlink) or not await asyncio.to_thread(path.is_file):
        raise CliError(f"not a regular file: {path}")
    try:
        pairs = await asyncio.to_thread(_identifier_pairs, path)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CliError(f"cannot read the file: {type(exc).__name__}") from None
    async with Database.open(settings.database_url) as db:
        report = await rekey_identifiers(db.engine, pairs, old_key, settings.pii_key)
    if report.uncovered:
        shown = ", ".join(str(i) for i in report.uncovered[:20])
        raise CliError(
            f"nothing changed: {len(report.uncovered)} participants are not in the file under the old key "
            f"(participant ids {shown}{' …' if len(report.uncovered) > 20 else ''})"
        )
    out.print(f"Re-keyed {report.rekeyed} participants ({report.already} already under the new key).", markup=False)
    return 0


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    async with Database.open(settings.database_url) as db:
        await db.migrate(args.revision)
    out.print(f"Database migrated to {args.revision}.")
    return 0


async def cmd_purge(settings: Settings, args: argparse.Namespace) -> int:
    """Retention by hand (a running bot does it every hour): what is older than RETENTION_DAYS goes."""
    from core.retention import Retention

    try:
        async with Database.open(settings.database_url) as db:
            purged = await Retention(db.engine, settings.retention_days).purge()
    except ValueError as exc:
        raise CliError(f"RETENTION_DAYS: {exc}") from exc
    out.print(
        f"Older than {settings.retention_days} days: {purged.outbox_rows} outbox rows deleted, {purged.questions} "
        f"questions blanked, {purged.case_messages} case messages and {purged.cards} case cards deleted, "
        f"{purged.update_bodies} stored update bodies cleared."
    )
    return 0
