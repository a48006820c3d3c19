"""Statistics and knowledge gaps on hand-made rows: Jakarta days, medians, deflection, stages, grouping, the CLI."""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.cli import CliError
from bot.cli.stats import cmd_stats
from bot.cli.stats import register as add_stats_parser
from bot.settings import Settings
from core.calendar import JAKARTA
from core.faq import load_slang
from core.gaps import find_gaps, group_questions, slang_normaliser
from core.models import Base, Case, FaqAnswer, Interaction
from core.stats import DayFigures, compute_stats

START, END = date(2026, 3, 2), date(2026, 3, 5)


def wib(day: int, hour: int, minute: int = 0) -> datetime:
    """A Jakarta wall-clock time in March 2026, stored as UTC like the application does."""
    return datetime(2026, 3, day, hour, minute, tzinfo=JAKARTA).astimezone(UTC)


async def add_rows(engine: AsyncEngine, model: type[Base], rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(model), rows)


def interaction(user: int, at: datetime, kind: str = "text", stage: str | None = None) -> dict[str, Any]:
    return {"telegram_user_id": user, "at": at, "kind": kind, "stage": stage, "participant_id": None}


def case(user: int, opened: datetime, **fields: Any) -> dict[str, Any]:
    row = {
        "telegram_user_id": user,
        "opened_at": opened,
        "status": "open",
        "reason": "participant_asked",
        "locale": "id",
        "steps_tried": [],
        "stage": None,
        "first_reply_at": None,
        "first_reply_due": None,
        "closed_at": None,
        "satisfaction": None,
    }
    return row | fields


@pytest.fixture
async def helpdesk_days(engine: AsyncEngine) -> AsyncEngine:
    """Three days of a small helpdesk (2–4 March 2026), plus rows just outside them."""
    await add_rows(
        engine,
        Interaction,
        [
            # 2 March: user 1 answered by the bot; user 2 asks for an agent.
            interaction(1, wib(2, 9), stage="awaiting_pmo"),
            interaction(1, wib(2, 9, 5), stage="awaiting_pmo"),
            interaction(2, wib(2, 9, 30), stage="awaiting_pmo"),
            # 3 March: user 2 still talks to the agent (relay); user 3 early in the morning (still 2 March in
            # UTC); user 4 opens a case.
            interaction(2, wib(3, 8), kind="relay", stage="awaiting_pmo"),
            interaction(3, wib(3, 6), stage="needs_rating"),
            interaction(4, wib(3, 11), stage="needs_rating"),
            # 4 March: user 5 opens a case; user 1 comes back and is answered by the bot.
            interaction(5, wib(4, 15)),
            interaction(1, wib(4, 16)),
            # Outside the period: the evening before, and just after midnight at its end.
            interaction(6, wib(1, 23, 30)),
            interaction(7, wib(5, 0, 30)),
        ],
    )
    await add_rows(
        engine,
        Case,
        [
            case(2, wib(2, 10), stage="awaiting_pmo", status="closed", first_reply_at=wib(2, 10, 10),
                 first_reply_due=wib(2, 11), closed_at=wib(2, 12), satisfaction=5),  # within the target
            case(4, wib(3, 12), stage="needs_rating", status="closed", first_reply_at=wib(3, 12, 30),
                 first_reply_due=wib(3, 12, 20), closed_at=wib(4, 12), satisfaction=3),  # answered late
            case(5, wib(4, 15, 5), first_reply_due=wib(4, 16, 5)),  # never answered, long past due
            case(7, wib(5, 0, 40), stage="awaiting_pmo"),
        ],
    )  # fmt: skip
    return engine


async def test_stats_of_three_days(helpdesk_days: AsyncEngine) -> None:
    stats = await compute_stats(helpdesk_days, START, END)
    assert stats.days == [
        DayFigures(date(2026, 3, 2), conversations=2, deflected=1, cases_opened=1),
        DayFigures(date(2026, 3, 3), conversations=3, deflected=1, cases_opened=1),
        DayFigures(date(2026, 3, 4), conversations=2, deflected=1, cases_opened=1),
    ]
    assert (stats.conversations, stats.deflected) == (7, 3)
    assert stats.deflection == pytest.approx(3 / 7)
    assert (stats.cases_opened, stats.cases_closed) == (3, 2)
    assert stats.median_first_reply == timedelta(minutes=20)  # 10 and 30 minutes
    assert stats.median_to_close == timedelta(hours=13)  # 2 and 24 hours
    assert (stats.satisfaction_average, stats.satisfaction_count) == (4.0, 2)
    assert stats.first_reply_within_sla == pytest.approx(1 / 3) and stats.sla_cases == 3
    assert stats.to_dict()["first_reply_within_sla"] == 0.3333
    assert stats.cases_by_stage == {"awaiting_pmo": 1, "needs_rating": 1, "unknown": 1}
    assert list(stats.conversations_by_stage.items()) == [("awaiting_pmo", 3), ("needs_rating", 2)]


async def test_an_empty_period_and_a_backwards_one(engine: AsyncEngine) -> None:
    stats = await compute_stats(engine, START, END)
    assert stats.conversations == 0 and stats.deflection is None and stats.median_first_reply is None
    assert [d.conversations for d in stats.days] == [0, 0, 0]
    assert stats.to_dict()["satisfaction_average"] is None
    with pytest.raises(ValueError, match="end after"):
        await compute_stats(engine, END, START)


async def test_cli_stats_json_and_chart(
    helpdesk_days: AsyncEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(_env_file=None, database_url=helpdesk_days.url.render_as_string(hide_password=False))
    parser = argparse.ArgumentParser()
    add_stats_parser(parser.add_subparsers(dest="command"))
    chart = tmp_path / "trend.png"
    args = parser.parse_args(["stats", "--from", "2026-03-02", "--to", "2026-03-05", "--json", "--chart", str(chart)])
    assert args.handler is cmd_stats

    assert await cmd_stats(settings, args) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["conversations"] == 7 and figures["deflected"] == 3
    assert figures["deflection"] == round(3 / 7, 4)
    assert figures["median_first_reply_seconds"] == 1200.0
    assert figures["median_to_close_seconds"] == 13 * 3600.0
    assert figures["satisfaction_average"] == 4.0
    assert [d["conversations"] for d in figures["days"]] == [2, 3, 2]
    assert chart.read_bytes().startswith(b"\x89PNG")

    table_args = parser.parse_args(["stats", "--from", "2026-03-02", "--to", "2026-03-05"])
    assert await cmd_stats(settings, table_args) == 0
    printed = capsys.readouterr().out
    assert "resolved without an agent" in printed and "3 (43%)" in printed and "20 min" in printed

    for wrong in (["--from", "2026-03-05", "--to", "2026-03-02"], ["--to", "2026-03-05"], ["--days", "0"]):
        with pytest.raises(CliError):
            await cmd_stats(settings, parser.parse_args(["stats", *wrong]))


def test_questions_group_by_similarity_most_frequent_first() -> None:
    rows: list[tuple[str, str | None]] = [
        *[("Cara daftar BPJS gimana?", None)] * 3,
        ("cara daftar bpjs", None),
        ("caranya daftar bpjs kesehatan", "survey"),
        ("bpjs daftar caranya gmn", None),
        ("kartu hilang", "account_access"),
        ("kartu prakerja hilang", "account_access"),
        ("harga emas", None),
        ("sertifikat", None),
        ("sertifikat belum muncul di dashboard", "certificate_missing"),
    ]
    gaps = group_questions(rows, slang_normaliser(load_slang()))
    assert [(g.representative, g.count) for g in gaps[:2]] == [("Cara daftar BPJS gimana?", 6), ("kartu hilang", 2)]
    assert len(gaps[0].examples) == 3 and "Cara daftar BPJS gimana?" not in gaps[0].examples
    assert gaps[1].nearest_faq == "account_access"
    # One word does not swallow every longer question that contains it.
    assert {g.representative for g in gaps if g.count == 1} == {
        "harga emas",
        "sertifikat",
        "sertifikat belum muncul di dashboard",
    }


async def test_gaps_read_unanswered_and_unhelpful_questions_of_the_period(engine: AsyncEngine) -> None:
    def asked(question: str, when: datetime, kind: str = "none", helpful: bool | None = None) -> dict[str, Any]:
        return {"question": question, "asked_at": when, "kind": kind, "helpful": helpful, "score": 10.0,
                "faq_id": None, "telegram_user_id": 1, "participant_id": None}  # fmt: skip

    await add_rows(
        engine,
        FaqAnswer,
        [
            asked("sertif blm muncul kak", wib(3, 9)),
            asked("sertifikat belum muncul", wib(3, 10), kind="answer", helpful=False),
            asked("sertifikat belum muncul", wib(3, 11), kind="suggest", helpful=False),
            asked("cuaca jakarta", wib(3, 12)),
            asked("sertifikat belum muncul", wib(3, 13), kind="answer", helpful=True),  # it helped
            asked("sertifikat belum muncul", wib(3, 14), kind="answer"),  # no feedback
            asked("cuaca jakarta", wib(1, 12)),  # before the period
            asked("nomor 081234567890 tidak bisa login", wib(4, 9)),  # written by something that forgot to redact
        ],
    )
    report = await find_gaps(engine, wib(2, 0), wib(5, 0), normalise=slang_normaliser(load_slang()))
    assert (report.total, report.analysed, report.sampled) == (5, 5, False)
    assert [(g.count, g.representative) for g in report.gaps] == [
        (3, "sertifikat belum muncul"),
        (1, "cuaca jakarta"),
        (1, "nomor ********7890 tidak bisa login"),
    ]
    assert report.gaps[0].examples == ["sertif blm muncul kak"]


async def test_gaps_on_a_hundred_thousand_questions_are_sampled(sqlite_engine: AsyncEngine) -> None:
    rng = random.Random(7)
    topics = ["cara daftar bpjs kesehatan", "kartu prakerja hilang", "harga emas hari ini", "jadwal sholat jakarta"]
    weights = [50, 30, 15, 5]
    rows = [
        {"question": f"{rng.choices(topics, weights)[0]} {rng.choice(['', 'kak', 'min', 'ya', 'dong'])}".strip(),
         "asked_at": wib(3, 9), "kind": "none", "score": 0.0, "telegram_user_id": n}
        for n in range(100_000)
    ]  # fmt: skip
    await add_rows(sqlite_engine, FaqAnswer, rows)
    started = time.perf_counter()
    normalise = slang_normaliser(load_slang())
    report = await find_gaps(sqlite_engine, wib(2, 0), wib(5, 0), normalise=normalise)
    elapsed = time.perf_counter() - started
    assert report.sampled and report.total == 100_000 and report.analysed == 20_000
    assert [normalise(g.representative) for g in report.gaps] == [normalise(t) for t in topics]
    assert report.gaps[0].count == pytest.approx(50_000, rel=0.05)  # scaled back up from the sample
    assert elapsed < 30  # typically 1–2 s; the bound only catches an accidental quadratic
