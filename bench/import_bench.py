"""Platform-report import speed and memory, against a bare `csv.reader` + `sqlite3.executemany` load.

    python bench/import_bench.py [--rows 1000000] [--participants 200000] [--keep DIR]

Builds a fresh SQLite database (migrated, then participants, platforms, institutions and trainings by bulk
SQL), writes N report rows for new vouchers of those participants to a CSV file, imports it with
`run_import` (every row creates an enrollment and its event), then loads the same file into a bare table.
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:  # runnable as a script from anywhere
    sys.path.insert(0, str(PROJECT_ROOT))

from core.db import Database, make_engine  # noqa: E402
from core.imports import ImportKind, run_import  # noqa: E402

PLATFORMS = ("tokopedia", "pintaria", "bukalapak", "pijarmahir", "maubelajarapa", "sekolahmu", "kemnaker")
INSTITUTIONS = 200
TRAININGS = 2000
HEADER = (
    "report_date",
    "platform",
    "voucher_code",
    "participant_id",
    "training_code",
    "purchased_on",
    "completed_on",
    "name_at_institution",
    "rated_on",
    "reported_on",
)
REPORT_DATE = date(2024, 6, 28)
TODAY = date(2024, 7, 1)
_SCRAMBLE = 2_654_435_761  # odd and not a multiple of 5: i → i·k mod 10¹⁰ is one-to-one

console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def seed_reference_data(db_path: Path, participants: int) -> None:
    """Bulk SQL: participants with distinct dummy hashes and phones, the platforms, institutions, trainings."""
    db = sqlite3.connect(db_path)
    with db:
        db.executemany("INSERT INTO platforms (code, name) VALUES (?, ?)", [(p, p.title()) for p in PLATFORMS])
        db.executemany(
            "INSERT INTO institutions (id, name) VALUES (?, ?)",
            [(i, f"Lembaga {i}") for i in range(1, INSTITUTIONS + 1)],
        )
        db.executemany(
            "INSERT INTO trainings (code, title, institution_id) VALUES (?, ?, ?)",
            [(f"TR-{i:05d}", f"Pelatihan {i}", i % INSTITUTIONS + 1) for i in range(TRAININGS)],
        )
        db.execute(
            """
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
            INSERT INTO participants (id, card_number_hash, card_number_last4, nik_hash, nik_last4, legal_name,
                                      birth_date, phone, email, wave, scheme, accepted_on, membership)
            SELECT i, printf('card%060d', i), '0000', printf('nik%061d', i), '0000', 'Peserta ' || i,
                   '1990-01-01', printf('+628%010d', i), NULL, 1 + i % 60, '2020', '2020-05-01', 'active'
            FROM n
            """,
            (participants,),
        )
    db.close()


def write_report(
    path: Path, rows: int, participants: int, progress: Progress, first_participant: int = 1, first_row: int = 0
) -> None:
    """N report rows for participants first_participant…+participants-1; rows from `first_row` on (another file's
    rows start where this one's end: new vouchers)."""
    task = progress.add_task("write CSV", total=rows)
    day = date(2024, 1, 1)
    days = [(day + timedelta(days=d)).isoformat() for d in range(180)]
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(first_row, first_row + rows):
            bought = i % 120
            participant = first_participant + (i * 7919) % participants
            completed = i % 10 < 7
            rated = completed and i % 10 < 5
            out.writerow(
                (
                    REPORT_DATE.isoformat(),
                    PLATFORMS[i % len(PLATFORMS)],
                    f"PK{(i * _SCRAMBLE) % 10**10:010d}",
                    participant,
                    f"TR-{(i * 31) % TRAININGS:05d}",
                    days[bought],
                    days[bought + 20] if completed else "",
                    f"Peserta {participant}" if completed else "",
                    days[bought + 25] if rated else "",
                    days[bought + 26] if rated and i % 2 else "",
                )
            )
            if i % 50_000 == 0:
                progress.update(task, completed=i - first_row)
    progress.remove_task(task)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def timed_import(db_path: Path, csv_path: Path, rows: int, progress: Progress) -> tuple[float, float, float, int]:
    """Wall seconds of `run_import`, CPU seconds of this process (all threads) and of its reading process, and
    the rows it applied."""
    engine = make_engine(f"sqlite:///{db_path}")
    try:
        task = progress.add_task("import", total=rows)
        started, cpu, child_cpu = time.perf_counter(), time.process_time(), children_cpu()
        report = await run_import(
            engine,
            ImportKind.PLATFORM_REPORT,
            csv_path,
            today=TODAY,
            progress=lambda n: progress.update(task, completed=n),
        )
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        child_cpu = children_cpu() - child_cpu
        progress.remove_task(task)
    finally:
        await engine.dispose()
    if report.status != "applied" or report.applied != rows:
        raise SystemExit(f"import did not apply every row: {report.status}, {report.rejected[:5]}")
    return seconds, cpu, child_cpu, report.applied


def bare_load(db_path: Path, csv_path: Path) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    db = sqlite3.connect(db_path)
    db.execute(f"CREATE TABLE bare ({', '.join(HEADER)})")
    with csv_path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        db.executemany(f"INSERT INTO bare VALUES ({', '.join('?' * len(HEADER))})", reader)
    db.commit()
    db.close()
    return time.perf_counter() - started, time.process_time() - cpu


def count(db_path: Path, table: str) -> int:
    db = sqlite3.connect(db_path)
    try:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        db.close()


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kilobytes on Linux; for children, the largest one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--participants", type=int, default=200_000)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep the files")
    args = parser.parse_args()
    rows, participants = args.rows, max(1, min(args.participants, args.rows))

    with tempfile.TemporaryDirectory() as temporary:
        work = args.keep or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        db_path, bare_path, csv_path = work / "import.db", work / "bare.db", work / "report.csv"
        for old in (db_path, bare_path, csv_path):
            old.unlink(missing_ok=True)

        async def prepare() -> None:
            async with Database.open(f"sqlite:///{db_path}") as db:
                await db.migrate()

        asyncio.run(prepare())
        seed_reference_data(db_path, participants)
        with _progress() as progress:
            write_report(csv_path, rows, participants, progress)
            size_mb = csv_path.stat().st_size / 2**20
            import_seconds, import_cpu, child_cpu, applied = asyncio.run(
                timed_import(db_path, csv_path, rows, progress)
            )
        peak = peak_rss_mb()  # before the bare load, which streams too, but measures our import
        child_peak = peak_rss_mb(resource.RUSAGE_CHILDREN)  # the import's reading process
        enrollments, events = count(db_path, "enrollments"), count(db_path, "events")
        bare_seconds, bare_cpu = bare_load(bare_path, csv_path)

    figures = {
        "rows": rows,
        "file_mb": round(size_mb, 1),
        "import_seconds": round(import_seconds, 2),
        "import_rows_per_s": round(rows / import_seconds),
        "bare_seconds": round(bare_seconds, 2),
        "bare_rows_per_s": round(rows / bare_seconds),
        "ratio": round(bare_seconds / import_seconds, 3),
        "peak_rss_mb": round(peak, 1),
        "reader_peak_rss_mb": round(child_peak, 1),
        # CPU seconds show the work done whatever else runs on the machine: the import's database work runs in
        # this process, the file is parsed in a child process (reader) at the same time.
        "import_cpu_seconds": round(import_cpu, 2),
        "reader_cpu_seconds": round(child_cpu, 2),
        "bare_cpu_seconds": round(bare_cpu, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    console.print(
        f"{rows:,} rows ({size_mb:.0f} MB): import {import_seconds:.1f} s "
        f"({figures['import_rows_per_s']:,} rows/s, {enrollments:,} enrollments, {events:,} events), "
        f"bare load {bare_seconds:.1f} s ({figures['bare_rows_per_s']:,} rows/s), "
        f"ratio {figures['ratio']:.2f}, peak RSS {peak:.0f} MB (reader {child_peak:.0f} MB); "
        f"CPU {import_cpu:.1f} s + reader {child_cpu:.1f} s vs {bare_cpu:.1f} s"
    )
    if applied != enrollments or events != rows:
        raise SystemExit("the database does not hold what the import reported")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
