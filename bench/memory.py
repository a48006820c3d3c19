"""Memory per bot process: RSS, USS and peak RSS of one `prakerja-bot run` (polling) and one `prakerja-bot webhook`
worker, idle after start and after a closed-loop load (issue 14).

On a fresh SQLite demo database (the embedded default), through bench/load.py's fake Bot API server and participants:
each process is started, left idle for a moment and measured, then driven by K participants in a closed loop for
--seconds and measured again. RSS and the peak (VmHWM) come from /proc/<pid>/status, USS (the pages only this process
holds: what stopping it gives back) and PSS from /proc/<pid>/smaps_rollup. The polling bot (no staff group: the
participants' expected replies assume none) is also measured idle for --idle-seconds: its threads' run time from
/proc/<pid>/task/*/schedstat (nanoseconds; /proc/<pid>/stat counts 10 ms ticks, which overcharge a process that wakes
on a timer) and its context switches, per second. `bench/scaling.py` reports memory for webhook workers on
PostgreSQL + Redis. Prints a table and ends with one JSON line.

    python bench/memory.py                # 300 participants, 8 s of load each
    python bench/memory.py --quick        # 50 participants, 1 s (a smoke run: that every part still works)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
from load import (
    CALIBRATION_USERS,
    SCRIPT,
    LeanBotApi,
    Participants,
    calibrate,
    closed_loop,
    environment,
    err,
    free_port,
    prepare_database,
    process,
    scratch,
    warm_up,
    webhook_poster,
)
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

IDLE_SETTLE = 2.0  # seconds after start before the idle figure: start-up's own allocations are done
IDLE_SECONDS = 10.0  # the polling bot's idle CPU is measured over this long


def memory_of(pid: int) -> dict[str, float]:
    """MB: rss and peak_rss (VmHWM) from /proc/<pid>/status; uss (private pages) and pss from smaps_rollup."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    private = pss = 0.0
    with contextlib.suppress(OSError):  # smaps_rollup: Linux 4.14+
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("Private_Clean", "Private_Dirty"):
                private += int(value.split()[0]) / 1024
            elif name == "Pss":
                pss = int(value.split()[0]) / 1024
    return {
        "rss_mb": round(fields["VmRSS"], 1),
        "uss_mb": round(private, 1),
        "pss_mb": round(pss, 1),
        "peak_rss_mb": round(fields["VmHWM"], 1),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    with scratch("prakerja-memory-") as tmp:
        return await _measure(args, tmp)


async def _measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    people = Participants(args.participants)
    db = await asyncio.to_thread(prepare_database, tmp, people.users + CALIBRATION_USERS)
    results: dict[str, Any] = {"participants": args.participants, "seconds": args.seconds, "database": "sqlite"}
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )
    timeout = aiohttp.ClientTimeout(total=60)
    with progress:
        async with (
            LeanBotApi() as api,
            aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http,
        ):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            command = [str(SCRIPT), "webhook", "--host", "127.0.0.1", "--port", str(port)]
            async with process(command, environment(db, api.url), tmp / "webhook.log", url + "/healthz") as proc:
                await asyncio.sleep(args.settle)
                idle = memory_of(proc.pid)
                post = webhook_poster(http, [url])
                await calibrate(api, people, post)
                run = await closed_loop(api, people, args.seconds, False, post, "webhook worker", progress)
                results["webhook"] = {"idle": idle, "after_load": memory_of(proc.pid), "load": run.figures()}

            async with process([str(SCRIPT), "run"], environment(db, api.url), tmp / "polling.log") as proc:
                await warm_up(api, people, proc)  # it has started polling: one /status answered
                await asyncio.sleep(args.settle)
                idle = memory_of(proc.pid)
                idle_cpu = await cpu_while_idle(proc.pid, args.idle_seconds)
                run = await closed_loop(api, people, args.seconds, False, None, "polling bot", progress)
                results["polling"] = {
                    "idle": idle,
                    "idle_cpu": idle_cpu,
                    "after_load": memory_of(proc.pid),
                    "load": run.figures(),
                }
    results["load_average_1min"] = round(os.getloadavg()[0], 2)
    results["quick"] = args.quick
    return results


async def cpu_while_idle(pid: int, seconds: float) -> dict[str, float]:
    """CPU milliseconds and context switches per second of the process's threads while nothing is sent to it."""
    before, started = _threads(pid), time.monotonic()
    await asyncio.sleep(seconds)
    after, span = _threads(pid), time.monotonic() - started
    return {
        "cpu_ms_per_s": round((after[0] - before[0]) / 1e6 / span, 2),
        "switches_per_s": round((after[1] - before[1]) / span, 1),
        "seconds": round(span, 1),
    }


def _threads(pid: int) -> tuple[int, int]:
    """Run time (ns) and context switches summed over the process's threads; a thread gone meanwhile is left out."""
    run_ns = switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            run_ns += int((task / "schedstat").read_text().split()[0])
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(line.split()[1])
    return run_ns, switches


def report(results: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    for column in ("process", "when", "RSS MB", "USS MB", "PSS MB", "peak RSS MB", "load: updates/s"):
        table.add_column(column, justify="left" if column in ("process", "when") else "right")
    for name, figures in results.items():
        for when in ("idle", "after_load"):
            m = figures[when]
            rate = f"{figures['load']['updates_per_s']:.1f}" if when == "after_load" and "load" in figures else ""
            table.add_row(
                name,
                when.replace("_", " "),
                f"{m['rss_mb']:.1f}",
                f"{m['uss_mb']:.1f}",
                f"{m['pss_mb']:.1f}",
                f"{m['peak_rss_mb']:.1f}",
                rate,
            )
    err.print(table)
    cpu = results["polling"]["idle_cpu"]
    err.print(
        f"polling bot idle: {cpu['cpu_ms_per_s']} ms of CPU a second, {cpu['switches_per_s']} context switches a"
        f" second (over {cpu['seconds']} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", "-k", type=int, default=300, help="simulated participants (default 300)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the load on each process")
    parser.add_argument("--idle-seconds", type=float, default=IDLE_SECONDS, help="the polling bot's idle CPU window")
    parser.add_argument("--quick", action="store_true", help="50 participants, 1 s of load, 1 s to settle and idle")
    args = parser.parse_args()
    args.settle = IDLE_SETTLE
    if args.quick:
        args.participants, args.seconds, args.settle = min(args.participants, 50), 1.0, 1.0
        args.idle_seconds = min(args.idle_seconds, 1.0)
    started = time.perf_counter()
    results = asyncio.run(measure(args))
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    report(
        {k: results[k] for k in ("polling", "webhook")},
        f"Memory per process — SQLite, {args.participants} participants",
    )
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
