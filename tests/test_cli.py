"""The operator's command line, run as the installed `prakerja-bot` script against a real SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from core.diagnosis import Stage

SCRIPT = Path(sys.executable).parent / "prakerja-bot"


def run(
    tmp_path: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = os.environ | {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [str(SCRIPT), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment | (env or {}),
        cwd=tmp_path,
        timeout=120,
    )


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, object]]]:
    tmp_path = tmp_path_factory.mktemp("cli")
    result = run(tmp_path, "demo", "--json")
    assert result.returncode == 0, result.stderr
    return tmp_path, json.loads(result.stdout)


def test_demo_has_a_persona_for_every_stage(demo_db: tuple[Path, list[dict[str, object]]]) -> None:
    _, personas = demo_db
    assert {p["stage"] for p in personas} == {stage.value for stage in Stage}
    for persona in personas:
        assert set(persona) == {"participant_id", "name", "phone", "birth_date", "stage"}
        assert str(persona["phone"]).startswith("+628")


def status_json(tmp_path: Path, participant_id: object, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """`status --json` in-process (one subprocess per persona would cost a second each)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", url)
        assert main(["status", str(participant_id), "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def test_demo_covers_every_incentive_outcome(
    demo_db: tuple[Path, list[dict[str, object]]], capsys: pytest.CaptureFixture[str]
) -> None:
    tmp_path, personas = demo_db
    outcomes: set[tuple[str, str | None]] = set()
    for persona in personas:
        data = status_json(tmp_path, persona["participant_id"], capsys)
        assert data["participant_id"] == persona["participant_id"]
        for enrollment in data["enrollments"]:
            assert set(enrollment) >= {
                "enrollment_id",
                "platform",
                "stage",
                "holder",
                "next_action",
                "expected_by",
                "overdue",
            }
        outcomes |= {(i["status"], i["failure_reason"]) for i in data["incentives"]}
    assert {"scheduled", "transferred"} <= {status for status, _ in outcomes}
    assert {reason for status, reason in outcomes if status == "failed"} >= {
        "account_inactive",
        "phone_changed",
        "ewallet_unverified",
    }


def test_demo_includes_an_overdue_case_and_two_enrollments(
    demo_db: tuple[Path, list[dict[str, object]]], capsys: pytest.CaptureFixture[str]
) -> None:
    tmp_path, personas = demo_db
    statuses = [status_json(tmp_path, p["participant_id"], capsys) for p in personas]
    assert any(e["overdue"] for s in statuses for e in s["enrollments"])
    assert any(len({e["stage"] for e in s["enrollments"]}) > 1 for s in statuses)


def test_status_text_view_masks_the_phone(demo_db: tuple[Path, list[dict[str, object]]]) -> None:
    tmp_path, personas = demo_db
    result = run(tmp_path, "status", str(personas[0]["participant_id"]))
    assert result.returncode == 0
    assert str(personas[0]["phone"]) not in result.stdout
    assert "not_purchased" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("status", "99999"), "no participant with id 99999"),
        (("import", "platform-report", "missing.csv"), "no such file"),
        (("import", "nonsense", "cli.db"), "unknown import kind"),
    ],
)
def test_errors_are_one_line_and_non_zero(
    demo_db: tuple[Path, list[dict[str, object]]], args: tuple[str, ...], expected: str
) -> None:
    tmp_path, _ = demo_db
    result = run(tmp_path, *args)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    result = run(tmp_path, "status", "1", env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_setting_is_one_line(tmp_path: Path) -> None:
    result = run(tmp_path, "status", "1", env={"DEFAULT_LOCALE": "fr"})
    assert result.returncode == 2
    assert "DEFAULT_LOCALE" in result.stderr and "Traceback" not in result.stderr
