"""The `prakerja-bot` command: operator tools (demo, status, import, faq, migrate) and the bot's entry points.

Every failure prints a one-line reason and exits non-zero; no traceback reaches the operator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from bot.cli_stats import add_stats_parser
from bot.settings import DEFAULT_DATABASE_URL, Settings
from bot.web.cli import add_web_parsers
from core.calendar import default_calendar, today_in_jakarta
from core.db import make_engine, migrate, sqlite_path
from core.demo import recreate_database, seed_demo
from core.diagnosis import ParticipantStatus
from core.identity import mask_phone
from core.rules import default_rules
from core.status import DatabaseStatusSource, StatusService

if TYPE_CHECKING:
    from core.faq import FaqEntry

# Piped output keeps wide tables readable instead of wrapping at rich's 80-column default.
_WIDTH = shutil.get_terminal_size((160, 24)).columns
out = Console(highlight=False, width=_WIDTH)
err = Console(stderr=True, highlight=False, width=_WIDTH)


class CliError(Exception):
    """A problem the operator can fix; the message is the one line they see."""


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def status_to_dict(status: ParticipantStatus) -> dict[str, Any]:
    """The operator's JSON view of a participant's diagnosis (DESIGN.md §4)."""
    return {
        "participant_id": status.facts.participant_id,
        "scheme": status.facts.scheme,
        "membership": status.facts.membership,
        "enrollments": [
            {
                "enrollment_id": d.enrollment_id,
                "platform": d.enrollment.platform_code if d.enrollment else None,
                "training": d.enrollment.training_title if d.enrollment else None,
                "institution": d.enrollment.institution_name if d.enrollment else None,
                "stage": d.stage.value,
                "holder": d.holder.value,
                "next_action": d.next_action.value,
                "expected_by": _iso(d.expected_by),
                "overdue": d.overdue,
                "done": [step.value for step in d.done],
                "rating_place": d.rating_place,
                "era": d.era,
                "rating_gates": d.rating_gates,
                "certificate_issued": d.certificate_issued,
                "failure_reason": d.failure_reason,
                "brings_incentive": d.brings_incentive,
            }
            for d in status.diagnoses
        ],
        "incentives": [
            {
                "seq": i.seq,
                "amount": i.amount,
                "scheduled_on": _iso(i.scheduled_on),
                "status": i.status,
                "transferred_on": _iso(i.transferred_on),
                "channel": i.channel,
                "failure_reason": i.failure_reason,
                "remedy": i.remedy.value,
                "expected_by": _iso(i.expected_by),
                "overdue": i.overdue,
            }
            for i in status.incentives
        ],
        "incentive_state": status.incentive.state.value,
        "incentive_date": _iso(status.incentive.on),
        "payout_warnings": list(status.payout_warnings),
        "needs_agent": status.needs_agent,
    }


async def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    engine = make_engine(settings.database_url)
    try:
        with err.status("Creating the demo database…"):
            await recreate_database(engine)
            today = today_in_jakarta()
            created = await seed_demo(engine, default_rules(), default_calendar(), settings.pii_key, today)
        source = DatabaseStatusSource(engine)
        service = StatusService(source)
        rows: list[dict[str, Any]] = []
        for participant_id, persona in created:
            status = await service.status(participant_id, today)
            assert status is not None
            rows.append(
                {
                    "participant_id": participant_id,
                    "name": persona.name,
                    "phone": persona.phone,
                    "birth_date": persona.birth_date.isoformat(),
                    "stage": status.headline.stage.value,
                }
            )
        source.close()
    finally:
        await engine.dispose()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    table = Table(title=f"Demo personas ({len(rows)}) — database {settings.database_url}")
    for column in ("id", "name", "phone", "birth date", "stage"):
        table.add_column(column)
    for row in rows:
        # Demo phones are fictitious; shown in full so that a tester can type them into `chat --phone`.
        table.add_row(str(row["participant_id"]), row["name"], row["phone"], row["birth_date"], row["stage"])
    out.print(table)
    out.print("Try one: [bold]prakerja-bot chat --phone " + rows[3]["phone"] + "[/bold]")
    return 0


async def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    engine = make_engine(settings.database_url)
    source = DatabaseStatusSource(engine)
    try:
        status = await StatusService(source).status(args.participant_id)
    finally:
        source.close()
        await engine.dispose()
    if status is None:
        raise CliError(f"no participant with id {args.participant_id}")
    data = status_to_dict(status)
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
        return 0
    facts = status.facts
    out.print(
        f"Participant {facts.participant_id}: {facts.legal_name}, phone {mask_phone(facts.phone)}, "
        f"NIK ****{facts.nik_last4}, scheme {facts.scheme}, membership {facts.membership}",
        markup=False,
    )
    table = Table(
        "enrollment", "platform", "training", "era", "stage", "holder", "next action", "expected by", "overdue"
    )
    for e in data["enrollments"]:
        table.add_row(
            str(e["enrollment_id"] or "—"),
            e["platform"] or "—",
            e["training"] or "—",
            e["era"] or "—",
            e["stage"],
            e["holder"],
            e["next_action"],
            e["expected_by"] or "—",
            "YES" if e["overdue"] else "no",
        )
    out.print(table)
    if data["incentives"]:
        incentives = Table("#", "amount", "scheduled", "status", "reason", "remedy", "overdue")
        for i in data["incentives"]:
            incentives.add_row(
                str(i["seq"]),
                f"Rp{i['amount']:,}".replace(",", "."),
                i["scheduled_on"],
                i["status"],
                i["failure_reason"] or "—",
                i["remedy"],
                "YES" if i["overdue"] else "no",
            )
        out.print(incentives)
    if data["payout_warnings"]:
        out.print("Payout account warnings: " + ", ".join(data["payout_warnings"]))
    return 0


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    engine = make_engine(settings.database_url)
    try:
        await migrate(engine, args.revision)
    finally:
        await engine.dispose()
    out.print(f"Database migrated to {args.revision}.")
    return 0


async def cmd_purge(settings: Settings, args: argparse.Namespace) -> int:
    """Retention by hand (a running bot does it every hour): what is older than RETENTION_DAYS goes."""
    from core.retention import Retention

    engine = make_engine(settings.database_url)
    try:
        purged = await Retention(engine, settings.retention_days).purge()
    except ValueError as exc:
        raise CliError(f"RETENTION_DAYS: {exc}") from exc
    finally:
        await engine.dispose()
    out.print(
        f"Older than {settings.retention_days} days: {purged.outbox_rows} outbox rows deleted, {purged.questions} "
        f"questions blanked, {purged.case_messages} case messages and {purged.cards} case cards deleted."
    )
    return 0


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
    _require_secrets_outside_demo(settings)
    await _refuse_long_lock_while_serving(settings, path)
    engine = make_engine(settings.database_url)
    try:
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
                engine, kind, path, progress=lambda n: progress.update(task, completed=n), pii_key=settings.pii_key
            )
    except ImportFileError as exc:
        raise CliError(str(exc)) from None
    finally:
        await engine.dispose()
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

    _require_secrets(settings)
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
    engine = make_engine(settings.database_url)
    try:
        report = await rekey_identifiers(engine, pairs, old_key, settings.pii_key)
    finally:
        await engine.dispose()
    if report.uncovered:
        shown = ", ".join(str(i) for i in report.uncovered[:20])
        raise CliError(
            f"nothing changed: {len(report.uncovered)} participants are not in the file under the old key "
            f"(participant ids {shown}{' …' if len(report.uncovered) > 20 else ''})"
        )
    out.print(f"Re-keyed {report.rekeyed} participants ({report.already} already under the new key).", markup=False)
    return 0


async def _faq_in_use(settings: Settings) -> list[FaqEntry]:
    """The FAQ the bot answers from: the database's, which admins edit, when it holds entries; else the knowledge
    file (no database yet, or one the bot has not seeded). Never creates or changes a database."""
    from sqlalchemy import inspect

    from core.faq import load_faq
    from core.faq_store import FaqStore
    from core.models import FaqVersion

    path = sqlite_path(settings.database_url)
    if path is None or await asyncio.to_thread(path.is_file):
        engine = make_engine(settings.database_url)
        try:
            async with engine.connect() as conn:
                seeded = await conn.run_sync(lambda sync: inspect(sync).has_table(FaqVersion.__tablename__))
            entries = await FaqStore(engine).current() if seeded else []
        finally:
            await engine.dispose()
        if entries:
            return entries
    return load_faq()


async def cmd_faq_match(settings: Settings, args: argparse.Namespace) -> int:
    from core.faq import FaqMatcher, load_off_topic, load_slang

    matcher = FaqMatcher(await _faq_in_use(settings), load_slang(), load_off_topic())
    for line in sys.stdin:
        question = line.rstrip("\r\n")
        # One output line per input line, blank ones included, so that the two files pair up line by line.
        result = matcher.match(question)
        # A close call ("did you mean") still names its best entry; only "no match" is null.
        print(
            json.dumps(
                {"question": question, "faq_id": result.faq_id, "score": round(result.score, 1)},
                ensure_ascii=False,
            ),
            flush=True,
        )
    return 0


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


def _is_default_database(settings: Settings) -> bool:
    path, default = sqlite_path(settings.database_url), sqlite_path(DEFAULT_DATABASE_URL)
    return path is not None and default is not None and path.resolve() == default.resolve()


def _require_secrets(settings: Settings) -> None:
    try:
        settings.require_production_secrets()
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _require_secrets_outside_demo(settings: Settings) -> None:
    """The embedded demo database holds fictitious personas and may use the development key (`./run.sh` needs no
    secrets); any other database may hold real people."""
    if not _is_default_database(settings):
        _require_secrets(settings)


async def _prepare_database(settings: Settings, demo: bool) -> None:
    """Bring the schema up to date. `demo`: an SQLite file that does not exist yet is created with the demo
    personas (the console chat and `./run.sh` work out of the box). An existing database is never recreated or
    seeded: an empty one may be a production database waiting for its first import."""
    from sqlalchemy import func, select

    from core.models import Participant

    path = sqlite_path(settings.database_url)
    new_file = path is not None and not await asyncio.to_thread(path.exists)
    engine = make_engine(settings.database_url)
    try:
        if new_file and demo:
            err.print("No demo database yet: creating it (prakerja-bot demo lists the personas).")
            await recreate_database(engine)
            await seed_demo(engine, default_rules(), default_calendar(), settings.pii_key, today_in_jakarta())
            return
        await migrate(engine)
        async with engine.connect() as conn:
            if not await conn.scalar(select(func.count()).select_from(Participant)):
                err.print(
                    "The database has no participants yet: `prakerja-bot import` loads records; "
                    "`prakerja-bot demo` recreates it with the demo personas."
                )
    finally:
        await engine.dispose()


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
    _require_secrets_outside_demo(settings)
    # aiogram takes seconds to import (pydantic builds its models): refuse bad settings before that.
    from bot.app import build_app
    from bot.logs import configure_logging
    from bot.telegram import run_polling

    configure_logging(settings.log_format)
    # Demo data only where `./run.sh` puts it: the embedded default path, on first start.
    await _prepare_database(settings, demo=_is_default_database(settings))
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
    _require_secrets(settings)
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


Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prakerja-bot", description="Prakerja Helpdesk bot and operator tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="(re)create the database with demo personas and print them")
    demo.add_argument("--json", action="store_true", help="print the personas as JSON")
    demo.set_defaults(handler=cmd_demo)

    status = sub.add_parser("status", help="the diagnosis of one participant")
    status.add_argument("participant_id", type=int, metavar="ID")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

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

    add_stats_parser(sub)
    add_web_parsers(sub)

    faq = sub.add_parser("faq", help="FAQ tools")
    faq_sub = faq.add_subparsers(dest="faq_command", required=True, metavar="FAQ_COMMAND")
    match = faq_sub.add_parser("match", help="match questions from stdin, one JSON line each")
    match.set_defaults(handler=cmd_faq_match)
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
