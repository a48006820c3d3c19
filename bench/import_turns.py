"""Turn latency while a platform-report import runs on SQLite (issue 11, item 4).

    python bench/import_turns.py [--rows 1000000] [--quick]

A separate process stands in for the bot: every 20 ms it writes one row the way a turn logs its interaction (its own
connection, busy_timeout 60 s) and times it. Two imports run under it: a large file (what `prakerja-bot import`
refuses while a bot serves from the same SQLite file), and a file just under the refusal threshold
(`core.imports.live.LIVE_IMPORT_MAX_BYTES`), which it lets through. `--quick`: 100,000 rows instead of 1,000,000.
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sqlite3
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

from rich.progress import Progress

PROJECT_ROOT = Path(__file__).resolve().parent.parent
for folder in (PROJECT_ROOT, PROJECT_ROOT / "bench"):  # runnable as a script from anywhere
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from import_bench import _progress, seed_reference_data, timed_import, write_report  # noqa: E402

from core.db import Database  # noqa: E402
from core.imports.live import LIVE_IMPORT_MAX_BYTES  # noqa: E402

TURN_EVERY = 0.02


def turns(db_path: str, pipe: Connection) -> None:
    """The stand-in bot: a turn's write every TURN_EVERY s until told to stop; sends back the latencies (s)."""
    db = sqlite3.connect(db_path, timeout=60, isolation_level=None)
    db.execute("CREATE TABLE IF NOT EXISTS bench_turns (at REAL)")
    pipe.send("ready")
    latencies: list[float] = []
    while not pipe.poll(TURN_EVERY):
        started = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO bench_turns VALUES (?)", (started,))
        db.execute("COMMIT")
        latencies.append(time.perf_counter() - started)
    pipe.send(latencies)
    db.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def measure(db_path: Path, csv_path: Path, rows: int, progress: Progress) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    bot = context.Process(target=turns, args=(str(db_path), theirs))
    bot.start()
    mine.recv()
    seconds, *_ = asyncio.run(timed_import(db_path, csv_path, rows, progress))
    mine.send("stop")
    latencies: list[float] = mine.recv()
    bot.join()
    return {
        "rows": rows,
        "import_seconds": round(seconds, 2),
        "turns": len(latencies),
        "turn_p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "turn_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "turn_max_ms": round(max(latencies, default=0) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 rows")
    args = parser.parse_args()
    large = 100_000 if args.quick else args.rows
    figures: dict[str, object] = {"threshold_bytes": LIVE_IMPORT_MAX_BYTES}
    with tempfile.TemporaryDirectory() as temporary, _progress() as progress:
        work = Path(temporary)
        for label, rows in (("large", large), ("allowed", None)):
            db_path, csv_path = work / f"{label}.db", work / f"{label}.csv"
            participants = 200_000 if not args.quick else 20_000

            async def prepare(path: Path = db_path) -> None:
                async with Database.open(f"sqlite:///{path}") as db:
                    await db.migrate()

            asyncio.run(prepare())
            seed_reference_data(db_path, participants)
            if rows is None:  # the most rows a file under the threshold holds
                write_report(csv_path, 1000, participants, progress)
                per_row = csv_path.stat().st_size / 1000
                rows = int(LIVE_IMPORT_MAX_BYTES / per_row) - 10
            write_report(csv_path, rows, participants, progress)
            figures[label] = measure(db_path, csv_path, rows, progress) | {
                "file_mb": round(csv_path.stat().st_size / 2**20, 2)
            }
            print(f"{label}: {figures[label]}", file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
