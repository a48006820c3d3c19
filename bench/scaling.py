"""Scaling: the same closed-loop load against 1 and then 2 `prakerja-bot webhook` workers on PostgreSQL + Redis, as
the README's Deployment runs N workers (records, cases and the update ledger in PostgreSQL; conversation state and
per-chat event isolation in Redis), side by side in one run (issue 14).

How updates are spread: every worker listens on the same port with SO_REUSEPORT (`bot/webhook.py` binds that way),
so the kernel hands each new connection to one of them — a load balancer with no hop of its own, which on a 2-core
machine matters: a proxy process would take CPU from the workers it measures. The participants post over a pool of
keep-alive connections (one per participant in flight), so both workers get a share; the CPU seconds each worker
used during the run are printed to show it.

Each round runs 1 worker then 2 (the order alternates between rounds), each after a short unmeasured warm-up, through
bench/load.py's fake Bot API server and participants (FAQ questions and /status of linked demo personas). The figures
are medians over --rounds; the ratio is 2 workers' updates/s over 1 worker's, per round. The machine has 2 cores,
shared by the load generator (this process: participants and the fake Bot API), PostgreSQL, Redis and the workers,
so 2 workers cannot double anything here: the figure says how much a second worker adds on this box, and this
process's CPU share says how close the load generator is to being the limit. Also prints each worker's memory (RSS,
USS, peak) idle after start and after the load.

100 participants by default (--participants 300 works too): at 300 a worker used to pass redis-py's 100-connection
pool (MaxConnectionsError, 500s) and to leave updates unanswered with their chat locks held; both are fixed (a
blocking Redis pool in bot/telegram.py, the lock keeper's cancellation in bot/webhook.py). A post that gets no 200 is
still counted in `failed_posts` and its reply as a timeout, so the figures show it rather than the run ending.

Needs DATABASE_URL=postgresql://… (its schema is recreated with the demo personas: use a scratch database) and
REDIS_URL (its database is flushed: use a scratch one), or --database-url / --redis-url. Ends with one JSON line.

    python bench/scaling.py                # 100 participants, 8 s a run, 3 rounds
    python bench/scaling.py --quick        # 50 participants, 1 s, 1 round (a smoke run: that every part still works)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from load import (
    CALIBRATION_USERS,
    READY_WITHIN,
    SCRIPT,
    SECRET,
    SECRET_HEADER,
    LeanBotApi,
    Participants,
    Poster,
    Run,
    calibrate,
    closed_loop,
    environment,
    err,
    free_port,
    process,
    scratch,
)
from memory import memory_of
from redis.asyncio import Redis
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import text

from core.db import make_engine

POST_TIMEOUT = 35.0  # past the worker's own 30 s wait for a busy chat
WARM_UP = 1.0  # seconds of unmeasured load after the workers start


def prepare_postgres(database_url: str, users: list[int], tmp: Path) -> None:
    """`prakerja-bot demo` on PostgreSQL (down to base, up again, the personas), then the participants linked."""
    env = environment(tmp / "unused.db", "http://127.0.0.1:9", DATABASE_URL=database_url)
    done = subprocess.run(
        [str(SCRIPT), "demo", "--json"], env=env, cwd=tmp, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"prakerja-bot demo: {done.stderr[-1000:]}")

    async def link() -> None:
        engine = make_engine(database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    text("INSERT INTO telegram_links (telegram_user_id, participant_id, locale) VALUES (:u, :p, 'id')"),
                    [{"u": u, "p": Participants.persona(u)} for u in users],
                )
        finally:
            await engine.dispose()

    asyncio.run(link())


def counting_poster(http: aiohttp.ClientSession, url: str, failures: Counter[str]) -> Poster:
    """Posts an update; an answer other than 200, or none within POST_TIMEOUT, is counted instead of ending the run
    (the participant's reply then never comes: a timeout in the run's figures)."""
    timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT)

    async def post(update: dict[str, Any]) -> None:
        try:
            async with http.post(
                url + "/webhook", json=update, headers={SECRET_HEADER: SECRET}, timeout=timeout
            ) as response:
                await response.read()
                if response.status != 200:
                    failures[str(response.status)] += 1
        except (aiohttp.ClientError, TimeoutError):
            failures["no answer"] += 1

    return post


async def transactions(database_url: str) -> int:
    """Transactions committed or rolled back in the database so far (pg_stat_database), the workers' background
    loops' too."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            query = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
            return int((await conn.execute(text(query))).scalar_one())
    finally:
        await engine.dispose()


async def _listening(log: Path, proc: subprocess.Popen[bytes]) -> None:
    """Until the worker logged that it listens (with SO_REUSEPORT a /healthz may reach another worker)."""
    for _ in range(int(READY_WITHIN * 10)):
        written = await asyncio.to_thread(log.read_text, errors="replace")
        if proc.poll() is not None:
            raise RuntimeError(f"{log.name} exited: {written[-1500:]}")
        if "listening on" in written:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{log.name}: not listening after {READY_WITHIN:.0f} s")


async def one_setting(
    n: int,
    api: LeanBotApi,
    people: Participants,
    http: aiohttp.ClientSession,
    env: dict[str, str],
    tmp: Path,
    seconds: float,
    warm_up: float,
    progress: Progress,
    calibrated: bool,
) -> dict[str, Any]:
    """n workers on one port; warm-up, then the measured closed loop. Figures, CPU seconds and memory per worker."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(SCRIPT), "webhook", "--host", "127.0.0.1", "--port", str(port)]
    async with contextlib.AsyncExitStack() as stack:
        logs = [tmp / f"worker-{n}-{i}-{time.monotonic_ns()}.log" for i in range(n)]
        procs = [await stack.enter_async_context(process(command, env, log)) for log in logs]  # starting at once
        for proc, log in zip(procs, logs, strict=True):
            await _listening(log, proc)
        idle = [memory_of(p.pid) for p in procs]
        failures: Counter[str] = Counter()
        post = counting_poster(http, url, failures)
        if not calibrated:
            await calibrate(api, people, post, at_once=True)
        await closed_loop(api, people, warm_up, False, post, f"{n} worker(s): warm-up", progress)
        workers = [psutil.Process(p.pid) for p in procs]
        xacts_before = await transactions(env["DATABASE_URL"])
        failures.clear()  # the measured run's only
        cpu_before = [sum(w.cpu_times()[:2]) for w in workers]
        own_before = time.process_time()
        run: Run = await closed_loop(api, people, seconds, False, post, f"{n} worker(s)", progress)
        own_cpu = time.process_time() - own_before
        worker_cpu = [sum(w.cpu_times()[:2]) - b for w, b in zip(workers, cpu_before, strict=True)]
        after = [memory_of(p.pid) for p in procs]
    await asyncio.sleep(1.0)  # PostgreSQL publishes a backend's counters within a second
    xacts = await transactions(env["DATABASE_URL"]) - xacts_before
    return run.figures() | {
        "failed_posts": dict(failures),
        "pg_transactions_per_update": round(xacts / len(run.latencies), 1) if run.latencies else 0.0,
        "worker_cpu_seconds": [round(c, 2) for c in worker_cpu],
        "load_generator_cpu_share": round(own_cpu / run.seconds, 2),
        "memory": [{"idle": i, "after_load": a} for i, a in zip(idle, after, strict=True)],
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    with scratch("prakerja-scaling-") as tmp:
        return await _bench(args, tmp)


async def _bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    people = Participants(args.participants)
    await asyncio.to_thread(prepare_postgres, args.database_url, people.users + CALIBRATION_USERS, tmp)
    redis = Redis.from_url(args.redis_url)
    try:
        await redis.flushdb()  # conversation state of an earlier run's participants
    finally:
        await redis.aclose()
    rounds: list[dict[str, Any]] = []
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )
    timeout = aiohttp.ClientTimeout(total=60)
    load_before = os.getloadavg()
    with progress:
        async with (
            LeanBotApi() as api,
            aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http,
        ):
            env = environment(tmp / "unused.db", api.url, DATABASE_URL=args.database_url, REDIS_URL=args.redis_url)
            calibrated = False
            for r in range(args.rounds):
                figures: dict[str, Any] = {}
                for n in (1, 2) if r % 2 == 0 else (2, 1):
                    figures[str(n)] = await one_setting(
                        n, api, people, http, env, tmp, args.seconds, args.warm_up, progress, calibrated
                    )
                    calibrated = True
                one, two = figures["1"]["updates_per_s"], figures["2"]["updates_per_s"]
                figures["ratio"] = round(two / one, 3) if one else 0.0
                rounds.append(figures)
    summary: dict[str, Any] = {}
    for workers in ("1", "2"):
        summary[workers] = {
            key: round(statistics.median(r[workers][key] for r in rounds), 1)
            for key in ("updates_per_s", "p50_ms", "p99_ms")
        } | {"timeouts": sum(r[workers]["timeouts"] for r in rounds)}
    summary["ratio"] = round(statistics.median(r["ratio"] for r in rounds), 3)
    return {
        "participants": args.participants,
        "seconds": args.seconds,
        "rounds": rounds,
        "median": summary,
        "load_average": [round(x, 2) for x in (*load_before, *os.getloadavg())],
        "cpus": os.cpu_count(),
        "quick": args.quick,
    }


def report(results: dict[str, Any]) -> None:
    table = Table(title=f"Webhook workers on PostgreSQL + Redis — {results['participants']} participants")
    columns: tuple[str, ...] = (
        "round",
        "workers",
        "updates/s",
        "p50 ms",
        "p99 ms",
        "timeouts (failed posts)",
        "worker CPU s",
    )
    columns += ("load gen CPU", "PG tx")
    for column in columns:
        table.add_column(column, justify="right")
    for i, r in enumerate(results["rounds"], 1):
        for n in ("1", "2"):
            f = r[n]
            table.add_row(
                str(i),
                n,
                f"{f['updates_per_s']:.1f}",
                f"{f['p50_ms']:.1f}",
                f"{f['p99_ms']:.1f}",
                f"{f['timeouts']} ({sum(f['failed_posts'].values())})",
                " + ".join(f"{c:.1f}" for c in f["worker_cpu_seconds"]),
                f"{f['load_generator_cpu_share']:.0%}",
                f"{f['pg_transactions_per_update']:.1f}",
            )
    err.print(table)
    m = results["median"]
    err.print(
        f"median of {len(results['rounds'])}: 1 worker {m['1']['updates_per_s']}/s (p50 {m['1']['p50_ms']} ms, "
        f"p99 {m['1']['p99_ms']} ms), 2 workers {m['2']['updates_per_s']}/s (p50 {m['2']['p50_ms']} ms, "
        f"p99 {m['2']['p99_ms']} ms); ratio 2/1 {m['ratio']:.2f} "
        f"(per round: {', '.join(str(r['ratio']) for r in results['rounds'])}); "
        f"{results['cpus']} CPUs, load average {results['load_average']}"
    )
    first = results["rounds"][0]
    for n in ("1", "2"):
        for i, mem in enumerate(first[n]["memory"]):
            idle, after = mem["idle"], mem["after_load"]
            err.print(
                f"memory, {n} worker(s), worker {i + 1}: idle RSS {idle['rss_mb']} MB (USS {idle['uss_mb']}), "
                f"after load RSS {after['rss_mb']} MB (USS {after['uss_mb']}), peak {after['peak_rss_mb']} MB"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--participants", "-k", type=int, default=100, help="simulated participants (default 100: see the docstring)"
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each measured run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (1 worker, 2 workers); medians over them")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""), help="postgresql://… (scratch)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""), help="redis://…/N (scratch)")
    parser.add_argument("--quick", action="store_true", help="50 participants, 1 s (after 0.5 s of warm-up), 1 round")
    args = parser.parse_args()
    if not args.database_url.startswith("postgres") or not args.redis_url:
        parser.error("needs a PostgreSQL DATABASE_URL and a REDIS_URL (or --database-url, --redis-url)")
    args.warm_up = WARM_UP
    if args.quick:
        args.participants, args.seconds, args.rounds, args.warm_up = min(args.participants, 50), 1.0, 1, 0.5
    results = asyncio.run(bench(args))
    report(results)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
