"""Turn latency of the real bot while `prakerja-bot import` of a large platform report runs against its database, on
SQLite (the embedded default) and on PostgreSQL (issue 14; `bench/import_turns.py` times a stand-in writer instead).

For each database: the demo personas with K participants linked (bench/load.py's set-up), plus --records
participants, the platforms, institutions and trainings a report refers to (bulk SQL), and a platform-report CSV from
bench/import_bench.py's generator. `prakerja-bot run` (long polling, one process) answers participants through
bench/load.py's fake Bot API server at a fixed --rate (open loop: FAQ questions and /status of linked personas); a
reply's latency runs from the update being queued for getUpdates to the last message of its answer. First
--seconds without an import, then the same rate for as long as the import runs (its process's start to its exit).

- PostgreSQL: `prakerja-bot import platform-report` of the large file (--rows), which it accepts while a bot serves.
- SQLite: the CLI refuses a file over `core.imports.live.LIVE_IMPORT_MAX_BYTES` while a bot serves from the file (its
  one transaction would hold the database's only write lock); the bench checks that it does, imports the largest
  file it accepts (just under the threshold) through the CLI, and then the large file through `run_import` in a
  separate process — what the refusal keeps participants from.

Prints the figures and ends with one JSON line. The PostgreSQL part runs when DATABASE_URL (or --database-url) is
postgresql://… — its schema is recreated: use a scratch database.

    python bench/turns_under_import.py                  # 1,000,000 rows (85 MB), 200,000 participants, 50 turns/s
    python bench/turns_under_import.py --quick          # a smoke run: 15,000 rows (1.3 MB), 2,000 participants, 1 s
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from import_bench import INSTITUTIONS, TRAININGS, write_report
from load import (
    CALIBRATION_USERS,
    SCRIPT,
    LeanBotApi,
    Participants,
    Run,
    calibrate,
    environment,
    err,
    free_port,
    prepare_database,
    process,
    warm_up,
    webhook_poster,
)
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from scaling import prepare_postgres
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import make_engine
from core.imports.live import LIVE_IMPORT_MAX_BYTES

FIRST_RECORD = 1001  # the report's participants start past the demo personas' ids
ME = [sys.executable, str(Path(__file__).resolve())]


# --- the records an import refers to ----------------------------------------------------------------------------
async def seed_records(engine: AsyncEngine, participants: int) -> None:
    """Participants FIRST_RECORD…, institutions and trainings for the report, on SQLite or PostgreSQL (bulk SQL; the
    demo already has the platforms)."""
    postgres = engine.dialect.name == "postgresql"
    last = FIRST_RECORD + participants - 1
    if postgres:
        numbers = "SELECT generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS i"
        card, nik = "'card' || lpad(i::text, 60, '0')", "'nik' || lpad(i::text, 61, '0')"
        phone, day = "'+628' || lpad(i::text, 10, '0')", "DATE '1990-01-01'"
    else:
        numbers = "WITH RECURSIVE n(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM n WHERE i < :last) SELECT i FROM n"
        card, nik, phone, day = (
            "printf('card%060d', i)",
            "printf('nik%061d', i)",
            "printf('+628%010d', i)",
            "'1990-01-01'",
        )
    accepted = "DATE '2020-05-01'" if postgres else "'2020-05-01'"
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO institutions (id, name) VALUES (:id, :name)"),
            [{"id": FIRST_RECORD + i, "name": f"Lembaga Bench {i}"} for i in range(INSTITUTIONS)],
        )
        await conn.execute(
            text("INSERT INTO trainings (code, title, institution_id) VALUES (:code, :title, :institution)"),
            [
                {"code": f"TR-{i:05d}", "title": f"Pelatihan {i}", "institution": FIRST_RECORD + i % INSTITUTIONS}
                for i in range(TRAININGS)
            ],
        )
        await conn.execute(
            text(
                f"""
                INSERT INTO participants (id, card_number_hash, card_number_last4, nik_hash, nik_last4, legal_name,
                                          birth_date, phone, email, wave, scheme, accepted_on, membership)
                SELECT i, {card}, '0000', {nik}, '0000', 'Peserta ' || i, {day}, {phone}, NULL, 1 + i % 60, '2020',
                       {accepted}, 'active'
                FROM ({numbers}) AS n
                """
            ),
            {"first": FIRST_RECORD, "last": last},
        )


def report_file(path: Path, rows: int, participants: int, first_row: int, progress: Progress) -> float:
    """The CSV (bench/import_bench.py's generator); its size in MB."""
    write_report(path, rows, participants, progress, first_participant=FIRST_RECORD, first_row=first_row)
    return path.stat().st_size / 2**20


def rows_under_threshold(tmp: Path, participants: int, progress: Progress) -> int:
    """The most rows a report file under LIVE_IMPORT_MAX_BYTES holds (the SQLite CLI's limit while a bot serves)."""
    probe = tmp / "probe.csv"
    write_report(probe, 1000, participants, progress, first_participant=FIRST_RECORD)
    per_row = probe.stat().st_size / 1000
    probe.unlink()
    return int(LIVE_IMPORT_MAX_BYTES / per_row) - 20


# --- turns ------------------------------------------------------------------------------------------------------
async def paced_turns(
    api: LeanBotApi, people: Participants, rate: float, name: str, seconds: float, during: asyncio.Task[Any] | None
) -> Run:
    """Open loop at `rate`: for `seconds`, or (with `during`) until that task ends; then every answer awaited."""
    run = Run(name)
    api.reset()
    waits = []
    users = itertools.cycle(people.users)
    started = time.perf_counter()
    for n in itertools.count():
        elapsed = time.perf_counter() - started
        if (during is None and elapsed >= seconds) or (during is not None and during.done()):
            break
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        user = next(users)
        message = people.next_message()
        waits.append(api.offer(user, message, people.expected(user, message, echo=False))[1].done)
    run.seconds = time.perf_counter() - started
    for future in waits:
        try:
            run.latencies.append(await asyncio.wait_for(future, 120))
        except TimeoutError:
            run.timeouts += 1
    return run


async def timed_command(command: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *command, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, errors = await proc.communicate()
    return {
        "exit": proc.returncode,
        "seconds": round(time.perf_counter() - started, 2),
        "output": (out.decode(errors="replace") + errors.decode(errors="replace")).strip()[-600:],
    }


def turn_figures(run: Run) -> dict[str, Any]:
    return run.figures() | {"max_ms": round(max(run.latencies, default=0) * 1000, 1)}


async def lock_waits(database_url: str, until: asyncio.Task[Any]) -> dict[str, Any]:
    """PostgreSQL: every 100 ms while `until` runs, how many other sessions wait for a lock (pg_stat_activity) —
    whether turns queue behind the import's row locks, or only for CPU."""
    engine = make_engine(database_url)
    query = text(
        "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), count(*) FILTER (WHERE state = 'active') "
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    samples = waiting = most = 0
    try:
        async with engine.connect() as conn:
            while not until.done():
                locked, _ = (await conn.execute(query)).one()
                samples, waiting, most = samples + 1, waiting + (locked > 0), max(most, locked)
                await conn.rollback()
                await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
    return {"samples": samples, "share_with_a_lock_wait": round(waiting / samples, 3) if samples else 0.0, "most": most}


async def with_import(
    api: LeanBotApi, people: Participants, rate: float, command: list[str], env: dict[str, str], cwd: Path, name: str
) -> dict[str, Any]:
    importing = asyncio.create_task(timed_command(command, env, cwd))
    postgres = env["DATABASE_URL"].startswith("postgres")
    sampling = asyncio.create_task(lock_waits(env["DATABASE_URL"], importing)) if postgres else None
    run = await paced_turns(api, people, rate, name, 0, importing)
    outcome = await importing
    if outcome["exit"] != 0:
        raise RuntimeError(f"{name}: the import failed: {outcome['output']}")
    figures = {"import_seconds": outcome["seconds"], "turns": turn_figures(run)}
    if sampling is not None:
        figures["lock_waits"] = await sampling
    return figures


async def calibrate_with_webhook(api: LeanBotApi, people: Participants, env: dict[str, str], tmp: Path) -> None:
    """How many messages each answer has: a webhook worker answers only after sending them."""
    port = free_port()
    command = [str(SCRIPT), "webhook", "--host", "127.0.0.1", "--port", str(port)]
    async with (
        process(command, env, tmp / "calibrate.log", f"http://127.0.0.1:{port}/healthz"),
        aiohttp.ClientSession() as http,
    ):
        await calibrate(api, people, webhook_poster(http, [f"http://127.0.0.1:{port}"]), at_once=True)
    api.reset()


# --- one database -----------------------------------------------------------------------------------------------
async def one_database(
    label: str, database_url: str, args: argparse.Namespace, tmp: Path, progress: Progress, people: Participants
) -> dict[str, Any]:
    users = people.users + CALIBRATION_USERS
    if label == "sqlite":
        db = await asyncio.to_thread(prepare_database, tmp, users)
        database_url = f"sqlite+aiosqlite:///{db}"
    else:
        await asyncio.to_thread(prepare_postgres, database_url, users, tmp)
    engine = make_engine(database_url)
    try:
        await seed_records(engine, args.records)
    finally:
        await engine.dispose()
    large = tmp / f"{label}-large.csv"
    large_mb = await asyncio.to_thread(report_file, large, args.rows, args.records, 0, progress)
    figures: dict[str, Any] = {"rows": args.rows, "file_mb": round(large_mb, 1), "records": args.records}
    async with LeanBotApi() as api:
        env = environment(tmp / "unused.db", api.url, DATABASE_URL=database_url)
        async with process([str(SCRIPT), "run"], env, tmp / f"{label}-polling.log") as bot:
            # While the polling bot starts (calibration's updates are posted, never queued for getUpdates).
            if not people.replies:  # the same demo personas on either database: calibrated once
                await calibrate_with_webhook(api, people, env, tmp)
            await warm_up(api, people, bot)
            await paced_turns(api, people, args.rate, "warm-up", args.warm_up, None)
            figures["without_import"] = turn_figures(
                await paced_turns(api, people, args.rate, "without", args.seconds, None)
            )
            cli = [str(SCRIPT), "import", "platform-report"]
            if label == "sqlite":
                refused = await timed_command([*cli, str(large)], env, tmp)
                figures["large_refused_by_cli"] = refused["exit"] != 0 and "the bot is running" in refused["output"]
                allowed_rows = await asyncio.to_thread(rows_under_threshold, tmp, args.records, progress)
                if args.quick:  # the path, not the figure: a smaller file the CLI accepts
                    allowed_rows = min(allowed_rows, args.rows // 4)
                allowed = tmp / "sqlite-allowed.csv"
                allowed_mb = await asyncio.to_thread(
                    report_file, allowed, allowed_rows, args.records, args.rows, progress
                )
                figures["allowed"] = {"rows": allowed_rows, "file_mb": round(allowed_mb, 2)} | await with_import(
                    api, people, args.rate, [*cli, str(allowed)], env, tmp, "allowed"
                )
                bypass = [*ME, "--import-only", database_url, str(large)]
                figures["large_bypassing_cli"] = await with_import(api, people, args.rate, bypass, env, tmp, "large")
            else:
                figures["large"] = await with_import(api, people, args.rate, [*cli, str(large)], env, tmp, "large")
    return figures


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"rate": args.rate, "participants": args.participants, "quick": args.quick}
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )
    load_before = os.getloadavg()
    # The files and databases take ~700 MB at full size: gone after the run (error messages carry the logs' tails).
    with progress, tempfile.TemporaryDirectory(prefix="prakerja-turns-import-") as folder:
        people = Participants(args.participants)
        for label in args.databases.split(","):
            url = args.database_url if label == "postgresql" else ""
            results[label] = await one_database(label, url, args, Path(folder), progress, people)
    results["load_average"] = [round(x, 2) for x in (*load_before, *os.getloadavg())]
    return results


def import_only(database_url: str, path: str) -> None:
    """`--import-only URL FILE`: run_import in this process, bypassing the CLI's refusal (the SQLite large case)."""
    from core.imports import ImportKind, run_import

    async def go() -> None:
        engine = make_engine(database_url)
        try:
            done = await run_import(engine, ImportKind.PLATFORM_REPORT, Path(path))
        finally:
            await engine.dispose()
        if done.status != "applied":
            raise SystemExit(f"import {done.status}: {done.rejected[:3]}")

    asyncio.run(go())


def report(results: dict[str, Any]) -> None:
    table = Table(title=f"Turns at {results['rate']:g}/s while a platform report is imported")
    for column in ("database", "import", "rows", "import s", "turns", "p50 ms", "p99 ms", "max ms", "timeouts"):
        table.add_column(column, justify="left" if column in ("database", "import") else "right")
    for label in ("sqlite", "postgresql"):
        if label not in results:
            continue
        f = results[label]
        cases = [("none", None, f["without_import"])]
        for key, name in (
            ("allowed", "CLI, under 1 MB"),
            ("large_bypassing_cli", "large, run_import"),
            ("large", "CLI, large"),
        ):
            if key in f:
                cases.append((name, f[key], f[key]["turns"]))
        for name, outcome, turns in cases:
            rows = outcome.get("rows", f["rows"]) if outcome else ""
            table.add_row(
                label,
                name,
                f"{rows:,}" if rows else "",
                f"{outcome['import_seconds']:.1f}" if outcome else "",
                str(turns["updates"]),
                f"{turns['p50_ms']:.1f}",
                f"{turns['p99_ms']:.1f}",
                f"{turns['max_ms']:.1f}",
                str(turns["timeouts"]),
            )
    err.print(table)
    if "sqlite" in results:
        refused = results["sqlite"]["large_refused_by_cli"]
        err.print(f"SQLite: the CLI {'refused' if refused else 'did NOT refuse'} the large file while the bot served")
    if "lock_waits" in results.get("postgresql", {}).get("large", {}):
        waits = results["postgresql"]["large"]["lock_waits"]
        err.print(
            f"PostgreSQL during the import: a session waited for a lock in {waits['share_with_a_lock_wait']:.0%} of "
            f"{waits['samples']} samples (at most {waits['most']} at once)"
        )
    err.print(f"load average {results['load_average']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the large report (85 MB)")
    parser.add_argument("--records", type=int, default=200_000, help="participants the report refers to")
    parser.add_argument("--participants", "-k", type=int, default=300, help="simulated Telegram users")
    parser.add_argument("--rate", type=float, default=50.0, help="turns a second")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the run without an import")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""), help="postgresql://… (scratch)")
    parser.add_argument("--quick", action="store_true", help="15,000 rows, 2,000 participants, 1 s without an import")
    parser.add_argument("--import-only", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--databases", help="sqlite, postgresql or both (default: both with a PostgreSQL URL, else sqlite)"
    )
    args = parser.parse_args()
    if args.import_only:
        import_only(*args.import_only)
        return
    postgres = args.database_url.startswith("postgres")
    args.databases = args.databases or ("sqlite,postgresql" if postgres else "sqlite")
    if not set(args.databases.split(",")) <= {"sqlite", "postgresql"}:
        parser.error("--databases: sqlite, postgresql or sqlite,postgresql")
    if "postgresql" in args.databases and not postgres:
        parser.error("postgresql needs DATABASE_URL=postgresql://… or --database-url")
    args.warm_up = 1.0  # seconds of turns before the measured ones
    if args.quick:  # the large file still over LIVE_IMPORT_MAX_BYTES (1 MB): the CLI's refusal is checked
        args.rows, args.records, args.seconds, args.warm_up = min(args.rows, 15_000), min(args.records, 2_000), 1.0, 0.5
    results = asyncio.run(bench(args))
    report(results)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
