"""Every benchmark still runs against the current code (the diagnosis one broke silently when migration 0006 added a
column); `--quick` keeps this check to seconds. Its figures are not asserted: timings belong to benchmarks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PG_URL, REDIS_URL, requires_pg

ROOT = Path(__file__).resolve().parent.parent


def _run_bench(name: str, *args: str, timeout: float = 300, tmp: Path | None = None) -> dict[str, Any]:
    """`tmp`: the bench's temporary folder (TMPDIR), checked to hold nothing of it afterwards."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / name), *args],
        cwd=ROOT,
        env=os.environ | {"TMPDIR": str(tmp)} if tmp is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    if tmp is not None:
        assert not list(tmp.iterdir()), "the bench left its scratch folder behind"
    return figures


def test_the_diagnosis_benchmark_runs_in_its_quick_mode() -> None:
    figures = _run_bench("diagnosis_bench.py", "--quick")
    assert figures["participants"] == 2000 and figures["quick"] is True and figures["database"] == "sqlite"
    assert figures["diagnoses_per_s"] > 0 and figures["p50_ms"] > 0


@requires_pg
def test_the_diagnosis_benchmark_runs_on_postgresql() -> None:
    figures = _run_bench("diagnosis_bench.py", "--quick", "--database-url", PG_URL)
    assert figures["database"] == "postgresql" and figures["participants"] == 2000
    assert figures["diagnoses_per_s"] > 0 and figures["p50_ms"] > 0


def test_the_web_console_benchmark_runs_in_its_quick_mode() -> None:
    figures = _run_bench("web_bench.py", "--quick")
    assert figures["cases"] == 1000 and figures["quick"] is True
    assert figures["live"]["received"] == figures["live"]["clients"] == 20
    assert all(f["p50_ms"] > 0 for f in figures["inbox"].values())


def test_the_faq_benchmarks_run_in_their_quick_mode() -> None:
    figures = _run_bench("faq_eval.py", "--quick")
    assert isinstance(figures["real_blind_questions"], int) and figures["real_blind_questions"] >= 60
    assert isinstance(figures["real_blind2_questions"], int) and figures["real_blind2_questions"] >= 40
    assert isinstance(figures["official_top1"], float)
    techniques = _run_bench("faq_techniques.py", "--quick")
    assert {"matcher", "naive-bayes", "wratio"} <= set(techniques)


def test_the_import_benchmarks_run_with_small_files() -> None:
    figures = _run_bench("import_bench.py", "--rows", "5000", "--participants", "1000")
    assert figures["rows"] == 5000
    turns = _run_bench("import_turns.py", "--quick")
    assert isinstance(turns["large"], dict) and turns["large"]["rows"] == 100_000


def test_the_memory_benchmark_runs_in_its_quick_mode(tmp_path: Path) -> None:
    figures = _run_bench("memory.py", "--quick", tmp=tmp_path)
    assert figures["quick"] is True and figures["database"] == "sqlite"
    for process in ("polling", "webhook"):
        idle, after = figures[process]["idle"], figures[process]["after_load"]
        assert 0 < idle["uss_mb"] <= idle["rss_mb"] <= after["peak_rss_mb"]
        load = figures[process]["load"]
        assert load["updates"] > 0 and load["timeouts"] == 0
    idle_cpu = figures["polling"]["idle_cpu"]
    assert idle_cpu["seconds"] >= 1.0 and idle_cpu["cpu_ms_per_s"] >= 0 and idle_cpu["switches_per_s"] > 0


@pytest.mark.skipif(bool(PG_URL), reason="the test below runs it on both databases")
def test_the_turns_under_import_benchmark_runs_on_sqlite() -> None:
    _check_turns_on_sqlite(_run_bench("turns_under_import.py", "--quick", "--databases", "sqlite"))


@requires_pg
def test_the_turns_under_import_benchmark_runs_on_sqlite_and_postgresql() -> None:
    """Both databases in one run: the bench calibrates the bot's answers once for both (a webhook worker's start)."""
    both = ("--databases", "sqlite,postgresql", "--database-url", PG_URL)
    figures = _run_bench("turns_under_import.py", "--quick", *both)
    _check_turns_on_sqlite(figures)
    large = figures["postgresql"]["large"]
    assert large["import_seconds"] > 0 and large["lock_waits"]["samples"] > 0
    for turns in (figures["postgresql"]["without_import"], large["turns"]):
        assert turns["updates"] > 0 and turns["timeouts"] == 0


def _check_turns_on_sqlite(figures: dict[str, Any]) -> None:
    sqlite = figures["sqlite"]
    assert sqlite["large_refused_by_cli"] is True  # over 1 MB while the bot serves from the file
    assert 0 < sqlite["allowed"]["rows"] < sqlite["rows"] and sqlite["allowed"]["file_mb"] <= 1.0
    for turns in (sqlite["without_import"], sqlite["allowed"]["turns"], sqlite["large_bypassing_cli"]["turns"]):
        assert turns["updates"] > 0 and turns["timeouts"] == 0 and turns["p99_ms"] >= turns["p50_ms"] > 0


@pytest.mark.skipif(not (PG_URL and REDIS_URL), reason="needs DATABASE_URL=postgresql://… and REDIS_URL")
def test_the_scaling_benchmark_runs_on_postgresql_and_redis(tmp_path: Path) -> None:
    figures = _run_bench("scaling.py", "--quick", "--database-url", PG_URL, "--redis-url", REDIS_URL, tmp=tmp_path)
    (one_round,) = figures["rounds"]
    for workers in ("1", "2"):
        run = one_round[workers]
        assert run["updates"] > 0 and run["timeouts"] == 0
        assert len(run["worker_cpu_seconds"]) == len(run["memory"]) == int(workers)
        assert all(cpu > 0 for cpu in run["worker_cpu_seconds"])  # SO_REUSEPORT gave each worker a share
    assert figures["median"]["ratio"] > 0
