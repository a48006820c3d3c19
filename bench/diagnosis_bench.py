"""Diagnoses per second for participants looked up by id, through the status service the bot itself uses.

Builds a fresh SQLite file with N participants (default 100,000) in every stage, then times
`StatusService.status(participant_id)` for random ids. Prints the figures and ends with one JSON line.
Target: ≥ 1,000 diagnoses/s on SQLite. `--quick`: 2,000 participants, 3 rounds of 300 lookups — a smoke run in
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
from datetime import date, timedelta
from pathlib import Path

from rich.progress import Progress

from core.calendar import default_calendar
from core.db import make_engine, migrate
from core.status import DatabaseStatusSource, StatusService

PLATFORMS = ["tokopedia", "pintaria", "bukalapak", "pijarmahir", "maubelajarapa", "sekolahmu", "kemnaker"]


def populate(path: Path, n: int, progress: Progress) -> None:
    """Bulk rows straight into the migrated schema: the benchmark measures reads, not this set-up."""
    rng = random.Random(7)
    today = date(2026, 11, 23)
    cal = default_calendar()
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    con.executemany("INSERT INTO platforms(code, name) VALUES (?, ?)", [(p, p.title()) for p in PLATFORMS])
    con.executemany("INSERT INTO institutions(id, name) VALUES (?, ?)", [(i, f"Lembaga {i}") for i in range(1, 51)])
    con.executemany(
        "INSERT INTO trainings(id, code, title, institution_id) VALUES (?, ?, ?, ?)",
        [(i, f"TR-{i:04d}", f"Pelatihan {i}", 1 + i % 50) for i in range(1, 501)],
    )
    task = progress.add_task("participants", total=n)
    participants, payouts, enrollments, certificates, installments = [], [], [], [], []
    enrollment_id = 0
    for pid in range(1, n + 1):
        accepted = today - timedelta(days=rng.randint(20, 400))
        participants.append(
            (pid, f"{pid:064x}", f"{pid % 10000:04d}", f"{pid:063x}n", f"{pid % 10000:04d}", f"Peserta {pid}",
             "1990-01-01", f"+62813{pid:08d}", 70, "2023", accepted.isoformat(), "active")
        )  # fmt: skip
        payouts.append((pid, pid, "BNI", "1234", f"Peserta {pid}", None, 1, 1))
        for _ in range(rng.choice((0, 1, 1, 1, 2))):
            enrollment_id += 1
            stage = rng.randint(0, 5)
            purchased = cal.add_working_days(today, -rng.randint(10, 40))

            def back(k: int) -> str:
                return cal.add_working_days(today, -k).isoformat()

            completed = back(rng.randint(5, 9)) if stage >= 1 else None
            rated = back(rng.randint(3, 5)) if stage >= 2 else None
            reported = back(rng.randint(1, 3)) if stage >= 3 else None
            enrollments.append(
                (enrollment_id, f"V{enrollment_id:09d}", pid, rng.randint(1, 500), rng.choice(PLATFORMS),
                 purchased.isoformat(), completed, f"Peserta {pid}", rated, reported)
            )  # fmt: skip
            if stage >= 4:
                certificates.append((enrollment_id, enrollment_id, f"C{enrollment_id}", f"Peserta {pid}", back(1)))
            if stage == 5:
                status = rng.choice(("scheduled", "transferred", "failed"))
                installments.append(
                    (pid, enrollment_id, 1, 600000, today.isoformat(), status, None, "BNI",
                     "account_inactive" if status == "failed" else None)
                )  # fmt: skip
        if pid % 10000 == 0 or pid == n:
            # Named columns: a migration that adds one (0006 added enrollments.last_report_date) breaks nothing.
            con.executemany(
                "INSERT INTO participants(id, card_number_hash, card_number_last4, nik_hash, nik_last4, legal_name, "
                "birth_date, phone, wave, scheme, accepted_on, membership) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                participants,
            )
            con.executemany(
                "INSERT INTO payout_accounts(id, participant_id, channel, account_last4, holder_name, phone, active, "
                "verified) VALUES (?,?,?,?,?,?,?,?)",
                payouts,
            )
            con.executemany(
                "INSERT INTO enrollments(id, voucher_code, participant_id, training_id, platform_code, purchased_on, "
                "completed_on, name_at_institution, rated_on, reported_on) VALUES (?,?,?,?,?,?,?,?,?,?)",
                enrollments,
            )
            con.executemany(
                "INSERT INTO certificates(id, enrollment_id, number, printed_name, issued_on) VALUES (?,?,?,?,?)",
                certificates,
            )
            con.executemany(
                "INSERT OR IGNORE INTO incentive_installments(participant_id, enrollment_id, seq, amount, "
                "scheduled_on, status, transferred_on, channel, failure_reason) VALUES (?,?,?,?,?,?,?,?,?)",
                installments,
            )
            participants, payouts, enrollments, certificates, installments = [], [], [], [], []
            progress.update(task, completed=pid)
    con.commit()
    con.close()


async def measure(path: Path, n: int, lookups: int, rounds: int, progress: Progress) -> dict[str, float]:
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    source = DatabaseStatusSource(engine)
    service = StatusService(source)
    rng = random.Random(11)
    rates, latencies = [], []
    task = progress.add_task("diagnoses", total=lookups * rounds)
    try:
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
    finally:
        source.close()
        await engine.dispose()
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
    args = parser.parse_args()
    if args.quick:
        args.participants, args.lookups, args.rounds = 2_000, 300, 3
    with tempfile.TemporaryDirectory() as tmp, Progress(transient=True) as progress:
        path = Path(tmp) / "bench.db"
        engine = make_engine(f"sqlite+aiosqlite:///{path}")
        await migrate(engine)
        await engine.dispose()
        started = time.perf_counter()
        populate(path, args.participants, progress)
        setup_s = time.perf_counter() - started
        figures = await measure(path, args.participants, args.lookups, args.rounds, progress)
    print(f"participants:        {args.participants:,} (set-up {setup_s:.1f} s)")
    print(f"diagnoses/s:         {figures['diagnoses_per_s']:,.0f} (median of {args.rounds} rounds; target ≥ 1,000)")
    print(f"latency p50 / p99:   {figures['p50_ms']:.2f} ms / {figures['p99_ms']:.2f} ms")
    print(json.dumps({"participants": args.participants, "quick": args.quick, **figures}))


if __name__ == "__main__":
    asyncio.run(main())
