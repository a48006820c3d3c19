"""Every benchmark still runs against the current code (the diagnosis one broke silently when migration 0006 added a
column); `--quick` keeps this check to seconds. Its figures are not asserted: timings belong to benchmarks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import PG_URL, requires_pg

ROOT = Path(__file__).resolve().parent.parent


def _run_bench(name: str, *args: str, timeout: float = 300) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / name), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
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
