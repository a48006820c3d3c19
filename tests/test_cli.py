"""The operator's command line, run as the installed `prakerja-bot` script against a real SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from core.db import make_engine
from core.demo import PERSONAS
from core.diagnosis import Stage
from core.faq_entries import FaqEntry
from core.faq_store import FaqStore
from tests.fake_bot_api import FakeBotApi
from tests.harness import TOKEN, environment, start_bot, stop, wait_until_polling

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


# --- faq match --------------------------------------------------------------------------------------------------------
def faq_match(tmp_path: Path, questions: list[str]) -> list[dict[str, Any]]:
    result = run(tmp_path, "faq", "match", stdin="".join(f"{q}\n" for q in questions))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(list(row) == ["question", "faq_id", "score"] for row in rows)  # DESIGN.md §4
    return rows


def test_faq_match_answers_every_line_in_order(tmp_path: Path) -> None:
    questions = ["sertif blm muncul gmn kak", "", "   ", "resep sambal terasi", "kapan insentif cair"]
    rows = faq_match(tmp_path, questions)
    assert [row["question"] for row in rows] == questions  # blank lines too: output line N answers input line N
    assert rows[1] == {"question": "", "faq_id": None, "score": 0} and rows[2]["faq_id"] is None
    assert rows[0]["faq_id"] == "certificate_missing" and rows[0]["score"] > 0
    assert rows[3]["faq_id"] is None
    assert not (tmp_path / "cli.db").exists()  # no database yet: the knowledge file, and none is created


def test_faq_match_uses_the_faq_the_admins_edited(tmp_path: Path) -> None:
    question = "apakah cs tetap buka saat libur lebaran"
    assert run(tmp_path, "migrate").returncode == 0
    [before] = faq_match(tmp_path, [question])  # a database the bot never seeded: the knowledge file
    assert before["faq_id"] != "holiday_service"

    async def edit() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
        try:
            store = FaqStore(engine)
            await store.seed_from_knowledge()
            holiday = FaqEntry(
                id="holiday_service",
                title={"id": "Layanan saat libur", "en": "Service on holidays"},
                paraphrases={"id": ["apakah layanan buka saat libur lebaran", "cs libur lebaran buka tidak"]},
                answer={"id": "Buka setiap hari.", "en": "Open every day."},
            )
            await store.save(holiday, author_id=1)
            await store.delete("survey", author_id=1)
        finally:
            await engine.dispose()

    asyncio.run(edit())
    after, survey = faq_match(tmp_path, [question, "cara mengisi survei evaluasi prakerja"])
    assert after["faq_id"] == "holiday_service"
    assert survey["faq_id"] != "survey"  # deleted by an admin: the bot no longer answers with it


# --- run: never seeds or wipes a database it did not create -----------------------------------------------------------
async def run_until_polling(cwd: Path, env: dict[str, str]) -> str:
    """`prakerja-bot run` against a fake Telegram until it polls, then stopped; returns what it printed."""
    async with FakeBotApi(TOKEN) as api:
        log = cwd / "run.log"
        process = start_bot(cwd, env | {"BOT_API_URL": api.url}, log)
        try:
            await wait_until_polling(api, process, log)
            assert process.poll() is None, log.read_text()
        finally:
            await stop(process, kill=True)  # what it did to the database is done before it polls
    return log.read_text()


def participants(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as conn:
        count: int = conn.execute("SELECT count(*) FROM participants").fetchone()[0]
        return count


async def test_run_creates_demo_data_only_for_the_default_database_on_first_start(tmp_path: Path) -> None:
    # A production database, migrated and waiting for its first import, and a new file somewhere else (a
    # deployment's database too): run fills neither with demo personas.
    production, elsewhere = tmp_path / "prod.db", tmp_path / "new" / "bot.db"
    assert run(tmp_path, "migrate", env={"DATABASE_URL": f"sqlite+aiosqlite:///{production}"}).returncode == 0
    (tmp_path / "new").mkdir()
    printed, _ = await asyncio.gather(
        run_until_polling(tmp_path, environment(f"sqlite+aiosqlite:///{production}")),
        run_until_polling(tmp_path / "new", environment(f"sqlite+aiosqlite:///{elsewhere}")),
    )
    assert participants(production) == 0 and participants(elsewhere) == 0
    assert "no participants yet" in printed and "No demo database yet" not in printed

    # ./run.sh's first start (no DATABASE_URL, no database yet): the demo personas.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    # …with no secrets set: the demo's fictitious personas may use the development key.
    default_env = {k: v for k, v in environment("").items() if k not in ("DATABASE_URL", "PII_HASH_KEY")}
    assert "No demo database yet" in await run_until_polling(fresh, default_env)
    assert participants(fresh / "data" / "prakerja.db") == len(PERSONAS)


# --- secrets: no real participant's data behind a guessable key or an open webhook -----------------------------------
GOOD_SECRET = "a" * 16 + "B_-9" * 4
GOOD_KEY = "k" * 40


def refused(result: subprocess.CompletedProcess[str], setting: str) -> None:
    assert result.returncode != 0
    assert setting in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("secret", ["", "short-secret", "x" * 31, "a" * 32 + " ", "ä" * 40])
def test_webhook_refuses_an_empty_short_or_malformed_secret(tmp_path: Path, secret: str) -> None:
    env = {"BOT_TOKEN": TOKEN, "WEBHOOK_SECRET": secret, "PII_HASH_KEY": GOOD_KEY}
    refused(subprocess_run_quick(tmp_path, env, "webhook", "--port", "1"), "WEBHOOK_SECRET")


@pytest.mark.parametrize("key", ["dev-only-change-me", "short"])
def test_webhook_refuses_the_development_pii_key(tmp_path: Path, key: str) -> None:
    env = {"BOT_TOKEN": TOKEN, "WEBHOOK_SECRET": GOOD_SECRET, "PII_HASH_KEY": key}
    refused(subprocess_run_quick(tmp_path, env, "webhook", "--port", "1"), "PII_HASH_KEY")


def test_run_and_import_refuse_the_development_key_outside_the_demo_database(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("code,name\ntokopedia,Tokopedia\n")
    env = {"BOT_TOKEN": TOKEN, "BOT_API_URL": "http://127.0.0.1:1", "PII_HASH_KEY": "dev-only-change-me"}
    refused(subprocess_run_quick(tmp_path, env, "run"), "PII_HASH_KEY")
    refused(subprocess_run_quick(tmp_path, env, "import", "platforms", "p.csv"), "PII_HASH_KEY")
    assert not (tmp_path / "cli.db").exists()  # refused before touching the database
    # With a real key the same import goes through.
    assert subprocess_run_quick(tmp_path, env, "migrate").returncode == 0
    assert (
        subprocess_run_quick(tmp_path, env | {"PII_HASH_KEY": GOOD_KEY}, "import", "platforms", "p.csv").returncode == 0
    )


def subprocess_run_quick(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cleared = {k: v for k, v in os.environ.items() if k not in ("WEBHOOK_SECRET", "PII_HASH_KEY", "BOT_TOKEN")}
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=cleared | {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", "COLUMNS": "200"} | env,
        cwd=tmp_path,
        timeout=120,
    )


# --- import: never echoes file contents -------------------------------------------------------------------------------
def imported(tmp_path: Path, kind: str, name: str) -> subprocess.CompletedProcess[str]:
    env = {"PII_HASH_KEY": GOOD_KEY}
    assert subprocess_run_quick(tmp_path, env, "migrate").returncode == 0
    return subprocess_run_quick(tmp_path, env, "import", kind, name)


def test_import_without_a_header_row_does_not_echo_the_first_record(tmp_path: Path) -> None:
    row = "1,8800000000000004,3273011708950004,Budi Santoso,1995-08-17,+6281200000004,b@x.id,1,2021-03-01,active"
    (tmp_path / "p.csv").write_text(row + "\n")
    result = imported(tmp_path, "participants", "p.csv")
    assert result.returncode != 0 and "no header row" in result.stderr
    printed = result.stdout + result.stderr
    for secret in ("8800000000000004", "3273011708950004", "81200000004", "Budi", "0004"):
        assert secret not in printed


@pytest.mark.parametrize("header", ["[/]", "[bold]x", "nik,[/red]"])
def test_import_prints_rich_markup_in_a_header_as_text(tmp_path: Path, header: str) -> None:
    (tmp_path / "p.csv").write_text(header + "\n")
    result = imported(tmp_path, "platforms", "p.csv")
    assert result.returncode != 0 and "Traceback" not in result.stderr and "MarkupError" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_import_refuses_a_symlink_and_a_device(tmp_path: Path) -> None:
    (tmp_path / "link.csv").symlink_to("/etc/passwd")
    for name in ("link.csv", "/dev/null"):
        result = imported(tmp_path, "platforms", name)
        assert result.returncode != 0 and "not a regular file" in result.stderr
        assert "root" not in result.stdout + result.stderr


# --- key rotation -----------------------------------------------------------------------------------------------------
def stored_hashes(database: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(database)) as conn:
        return dict(conn.execute("SELECT nik_last4 || card_number_last4, nik_hash FROM participants").fetchall())


def test_rehash_rotates_the_pii_key_all_or_nothing(tmp_path: Path) -> None:
    from core.identity import keyed_hash

    old, new = "o" * 40, "n" * 40
    assert subprocess_run_quick(tmp_path, {"PII_HASH_KEY": old}, "demo").returncode == 0
    database = tmp_path / "cli.db"
    before = stored_hashes(database)
    rows = ["nik,card_number", *(f"{p.nik},{p.card_number}" for p in PERSONAS)]
    (tmp_path / "partial.csv").write_text("\n".join(rows[:-1]) + "\n")
    (tmp_path / "all.csv").write_text("\n".join(rows) + "\n")
    env = {"PII_HASH_KEY": new, "PII_HASH_KEY_OLD": old}

    partial = subprocess_run_quick(tmp_path, env, "rehash", "partial.csv")
    assert partial.returncode != 0 and "nothing changed: 1 participants" in partial.stderr
    assert stored_hashes(database) == before
    assert PERSONAS[-1].nik not in partial.stderr  # ids only, never an identifier

    done = subprocess_run_quick(tmp_path, env, "rehash", "all.csv")
    assert done.returncode == 0 and f"Re-keyed {len(PERSONAS)} participants" in done.stdout
    with contextlib.closing(sqlite3.connect(database)) as conn:
        stored = dict(conn.execute("SELECT nik_hash, card_number_hash FROM participants").fetchall())
    assert stored == {keyed_hash(p.nik, new.encode()): keyed_hash(p.card_number, new.encode()) for p in PERSONAS}
    again = subprocess_run_quick(tmp_path, env, "rehash", "all.csv")  # harmless when repeated
    assert again.returncode == 0 and f"({len(PERSONAS)} already under the new key)" in again.stdout
    refused = subprocess_run_quick(
        tmp_path, {"PII_HASH_KEY": "dev-only-change-me", "PII_HASH_KEY_OLD": old}, "rehash", "all.csv"
    )
    assert refused.returncode != 0 and "PII_HASH_KEY" in refused.stderr


# --- a large import does not stall a bot serving from the same SQLite file -------------------------------------------
async def test_a_large_import_is_refused_while_a_bot_serves_from_the_sqlite_file(tmp_path: Path) -> None:
    from core.imports.live import LIVE_IMPORT_MAX_BYTES

    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    rows = (LIVE_IMPORT_MAX_BYTES // 20) + 1  # 26 bytes a row
    (tmp_path / "large.csv").write_text("code,name\n" + "".join(f"p{i:07d},Platform {i:07d}\n" for i in range(rows)))
    (tmp_path / "small.csv").write_text("code,name\ntokopedia,Tokopedia\n")
    assert (tmp_path / "large.csv").stat().st_size > LIVE_IMPORT_MAX_BYTES
    assert (await asyncio.to_thread(subprocess_run_quick, tmp_path, env, "migrate")).returncode == 0
    async with FakeBotApi(TOKEN) as api:
        process = start_bot(tmp_path, env | {"BOT_API_URL": api.url}, tmp_path / "run.log")
        try:
            await wait_until_polling(api, process, tmp_path / "run.log")
            large = await asyncio.to_thread(subprocess_run_quick, tmp_path, env, "import", "platforms", "large.csv")
            assert large.returncode != 0 and "the bot is running on this SQLite database" in large.stderr
            small = await asyncio.to_thread(subprocess_run_quick, tmp_path, env, "import", "platforms", "small.csv")
            assert small.returncode == 0, small.stderr  # small files go in while it serves
        finally:
            await stop(process)
    large = await asyncio.to_thread(subprocess_run_quick, tmp_path, env, "import", "platforms", "large.csv")
    assert "the bot is running" not in large.stderr  # with the bot stopped, the whole file goes in
