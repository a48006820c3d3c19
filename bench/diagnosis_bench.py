"""Diagnoses per second for participants looked up by id, through the status service the bot itself uses.

Builds a fresh SQLite file with N participants (default 100,000) in every stage, then times
`StatusService.status(participant_id)` for random ids, one after another. Prints the figures and ends with one JSON
line. Target: ≥ 2,000 diagnoses/s on SQLite. `--database-url postgresql://…`: the same on PostgreSQL (a database the
bench may wipe). `--quick`: 2,000 participants, 3 rounds of 300 lookups — a smoke run in
seconds (its figures are not the benchmark's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from rich.progress import Progress
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.calendar import default_calendar
from core.db import Database, sqlite_path
from core.status import DatabaseStatusSource, StatusService

PLATFORMS = ["tokopedia", "pintaria", "bukalapak", "pijarmahir", "maubelajarapa", "sekolahmu", "kemnaker"]


# Named columns: a migration that adds one (0006 added enrollments.last_report_date) breaks nothing.
COLUMNS = {
    "participants": ("id", "card_number_hash", "card_number_last4", "nik_hash", "nik_last4", "legal_name",
                     "birth_date", "phone", "wave", "scheme", "accepted_on", "membership"),
    "payout_accounts": ("id", "participant_id", "channel", "account_last4", "holder_name", "phone", "active",
                        "verified"),
    "enrollments": ("id", "voucher_code", "participant_id", "training_id", "platform_code", "purchased_on",
                    "completed_on", "name_at_institution", "rated_on", "reported_on"),
    "certificates": ("id", "enrollment_id", "number", "printed_name", "issued_on"),
    "incentive_installments": ("participant_id", "enrollment_id", "seq", "amount", "scheduled_on", "status",
                               "transferred_on", "channel", "failure_reason"),
}  # fmt: skip
Batch = dict[str, list[tuple[Any, ...]]]


def batches(n: int) -> Iterator[tuple[int, Batch]]:
    """The rows, in dependency order, as (participants so far, rows for each table) every 10,000 participants."""
    rng = random.Random(7)
    today = date(2026, 11, 23)
    cal = default_calendar()
    yield (
        0,
        {
            "platforms": [(p, p.title()) for p in PLATFORMS],
            "institutions": [(i, f"Lembaga {i}") for i in range(1, 51)],
            "trainings": [(i, f"TR-{i:04d}", f"Pelatihan {i}", 1 + i % 50) for i in range(1, 501)],
        },
    )
    batch: Batch = {table: [] for table in COLUMNS}
    enrollment_id = 0
    for pid in range(1, n + 1):
        accepted = today - timedelta(days=rng.randint(20, 400))
        batch["participants"].append(
            (pid, f"{pid:064x}", f"{pid % 10000:04d}", f"{pid:063x}n", f"{pid % 10000:04d}", f"Peserta {pid}",
             date(1990, 1, 1), f"+62813{pid:08d}", 70, "2023", accepted, "active")
        )  # fmt: skip
        batch["payout_accounts"].append((pid, pid, "BNI", "1234", f"Peserta {pid}", None, True, True))
        for _ in range(rng.choice((0, 1, 1, 1, 2))):
            enrollment_id += 1
            stage = rng.randint(0, 5)
            purchased = cal.add_working_days(today, -rng.randint(10, 40))

            def back(k: int) -> date:
                return cal.add_working_days(today, -k)

            completed = back(rng.randint(5, 9)) if stage >= 1 else None
            rated = back(rng.randint(3, 5)) if stage >= 2 else None
            reported = back(rng.randint(1, 3)) if stage >= 3 else None
            batch["enrollments"].append(
                (enrollment_id, f"V{enrollment_id:09d}", pid, rng.randint(1, 500), rng.choice(PLATFORMS),
                 purchased, completed, f"Peserta {pid}", rated, reported)
            )  # fmt: skip
            if stage >= 4:
                batch["certificates"].append(
                    (enrollment_id, enrollment_id, f"C{enrollment_id}", f"Peserta {pid}", back(1))
                )
            if stage == 5:
                status = rng.choice(("scheduled", "transferred", "failed"))
                installments = batch["incentive_installments"]
                if not installments or installments[-1][0] != pid:  # one installment: the first training's
                    installments.append(
                        (pid, enrollment_id, 1, 600000, today, status, None, "BNI",
                         "account_inactive" if status == "failed" else None)
                    )  # fmt: skip
        if pid % 10000 == 0 or pid == n:
            yield pid, batch
            batch = {table: [] for table in COLUMNS}


def _columns(table: str) -> tuple[str, ...]:
    return COLUMNS.get(table) or {"platforms": ("code", "name"), "institutions": ("id", "name"),
                                  "trainings": ("id", "code", "title", "institution_id")}[table]  # fmt: skip


def populate_sqlite(path: Path, n: int, progress: Progress) -> None:
    """Bulk rows straight into the migrated schema: the benchmark measures reads, not this set-up."""
    task = progress.add_task("participants", total=n)
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    for done, batch in batches(n):
        for table, rows in batch.items():
            columns = _columns(table)
            con.executemany(
                f"INSERT INTO {table}({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                [tuple(v.isoformat() if isinstance(v, date) else v for v in row) for row in rows],
            )
        progress.update(task, completed=done)
    con.commit()
    con.close()


async def populate_postgresql(engine: AsyncEngine, n: int, progress: Progress) -> None:
    """The same rows with PostgreSQL's COPY, in one transaction."""
    task = progress.add_task("participants", total=n)
    async with engine.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        for done, batch in batches(n):
            for table, rows in batch.items():
                await raw.copy_records_to_table(table, records=rows, columns=_columns(table))
            progress.update(task, completed=done)
        await conn.execute(text("ANALYZE"))


async def measure(db: Database, n: int, lookups: int, rounds: int, progress: Progress) -> dict[str, float]:
    service = StatusService(DatabaseStatusSource(db))
    rng = random.Random(11)
    rates, latencies = [], []
    task = progress.add_task("diagnoses", total=lookups * rounds)
    await service.status(1)  # warm the pool and the calendar's year cache
    for _ in range(rounds):
        ids = [rng.randint(1, n) for _ in range(lookups)]
        started = time.perf_counter()
        for pid in ids:
            t0 = time.perf_counter()
            status = await service.status(pid)
            latencies.append(time.perf_counter() - t0)
            assert status is not None and status.diagnoses
        rates.append(lookups / (time.perf_counter() - started))
        progress.advance(task, lookups)
    latencies.sort()
    return {
        "diagnoses_per_s": round(statistics.median(rates), 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=2_000, help="lookups per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a small run: 2,000 participants, 3 × 300 lookups")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL database to measure instead of a fresh SQLite file: ALL ITS TABLES ARE DROPPED and refilled",
    )
    args = parser.parse_args()
    if args.quick:
        args.participants, args.lookups, args.rounds = 2_000, 300, 3
    with tempfile.TemporaryDirectory() as tmp, Progress(transient=True) as progress:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        db = Database.open(url)
        path = sqlite_path(url)
        if path is None:
            await db.downgrade("base")
        await db.migrate()
        started = time.perf_counter()
        if path is None:
            await populate_postgresql(db.engine, args.participants, progress)
        else:
            await db.close()
            populate_sqlite(path, args.participants, progress)
            db = Database.open(url)
        setup_s = time.perf_counter() - started
        async with db:
            figures = await measure(db, args.participants, args.lookups, args.rounds, progress)
    database = "SQLite" if path is not None else "PostgreSQL"
    print(f"participants:        {args.participants:,} on {database} (set-up {setup_s:.1f} s)")
    print(f"diagnoses/s:         {figures['diagnoses_per_s']:,.0f} (median of {args.rounds} rounds; target ≥ 2,000)")
    print(f"latency p50 / p99:   {figures['p50_ms']:.2f} ms / {figures['p99_ms']:.2f} ms")
    print(json.dumps({"participants": args.participants, "quick": args.quick, "database": database.lower(), **figures}))


if __name__ == "__main__":
    asyncio.run(main())
