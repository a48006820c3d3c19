"""The demo personas cover every stage and every incentive outcome the rules know, on any day they are created."""

from __future__ import annotations

import json
from datetime import date

import pytest

from bot.cli import status_to_dict
from core.calendar import WorkingCalendar
from core.db import Database
from core.demo import PERSONAS, seed_demo
from core.diagnosis import NextAction, ParticipantStatus, Stage
from core.rules import default_rules
from core.status import DatabaseStatusSource, StatusService

# README and end-to-end tests type these in: they never change.
FIRST_PERSONAS = {
    1: ("Ayu Lestari", date(1998, 4, 12)),
    2: ("Bambang Wijaya", date(1990, 1, 3)),
    3: ("Citra Dewi", date(2000, 9, 21)),
    4: ("Dedi Kurniawan", date(1995, 8, 17)),
    5: ("Fitri Handayani", date(1997, 2, 28)),
    6: ("Gilang Ramadhan", date(1993, 11, 5)),
    7: ("Hana Safitri", date(1999, 6, 9)),
    8: ("Indra Gunawan", date(1991, 3, 14)),
    9: ("Joko Susilo", date(1988, 12, 1)),
    10: ("Kartika Sari", date(1996, 7, 30)),
    11: ("Lukman Hakim", date(1994, 5, 19)),
    12: ("Maya Anggraini", date(1992, 10, 10)),
    13: ("Nur Aini", date(1998, 1, 25)),
    14: ("Oki Setiawan", date(1997, 8, 8)),
    15: ("Putri Maharani", date(2001, 3, 3)),
    16: ("Rudi Hartono", date(1989, 9, 9)),
    17: ("Eko Prasetyo", date(1990, 2, 14)),
    18: ("Taufik Hidayat", date(1986, 6, 21)),
}


def test_personas_keep_their_numbers_and_birth_dates() -> None:
    by_key = {p.key: p for p in PERSONAS}
    assert len(by_key) == len(PERSONAS)
    for key, (name, born) in FIRST_PERSONAS.items():
        assert (by_key[key].name, by_key[key].birth_date, by_key[key].phone) == (name, born, f"+62812000000{key:02d}")
    assert sorted(by_key) == list(range(1, len(PERSONAS) + 1))  # new ones continue the numbering
    assert len({p.phone for p in PERSONAS}) == len(PERSONAS)


# A Wednesday, a Monday after a weekend, a Saturday in the Idul Fitri closure of 2026, a Friday before a long weekend.
@pytest.fixture(params=[date(2026, 4, 8), date(2026, 4, 13), date(2026, 3, 21), date(2026, 5, 29)], ids=str)
async def demo(request: pytest.FixtureRequest, sqlite_db: Database) -> list[tuple[ParticipantStatus, int]]:
    today: date = request.param
    created = await seed_demo(sqlite_db.engine, default_rules(), WorkingCalendar(), b"k", today)
    service = StatusService(DatabaseStatusSource(sqlite_db), default_rules(), WorkingCalendar())
    statuses = []
    for participant_id, persona in created:
        status = await service.status(participant_id, today)
        assert status is not None
        statuses.append((status, persona.key))
    return statuses


async def test_each_persona_is_at_its_stage_on_any_day(demo: list[tuple[ParticipantStatus, int]]) -> None:
    by_key = {p.key: p for p in PERSONAS}
    for status, key in demo:
        assert status.headline.stage is by_key[key].stage, by_key[key].name
    assert {status.headline.stage for status, _ in demo} == set(Stage)


async def test_every_incentive_outcome_has_a_persona(demo: list[tuple[ParticipantStatus, int]]) -> None:
    failures = {i.failure_reason for status, _ in demo for i in status.incentives if i.status == "failed"}
    assert failures == set(default_rules().transfer_failures.reasons)
    statuses = {i.status for status, _ in demo for i in status.incentives}
    assert statuses == {"scheduled", "transferred", "failed"}

    waiting = [
        s.headline
        for s, _ in demo
        if s.headline.stage is Stage.CERTIFICATE_ISSUED and s.headline.next_action is NextAction.WAIT_INCENTIVE_SCHEDULE
    ]
    assert waiting and not any(d.overdue for d in waiting)
    scheduled = [i for s, _ in demo for i in s.incentives if i.status == "scheduled"]
    assert any(i.overdue for i in scheduled) and any(not i.overdue for i in scheduled)


async def test_failed_transfers_agree_with_the_records(demo: list[tuple[ParticipantStatus, int]]) -> None:
    for status, _ in demo:
        reasons = {i.failure_reason or "other" for i in status.incentives if i.status == "failed"}
        if reasons & {"account_inactive", "account_blocked", "account_closed"}:
            assert "account_inactive" in status.payout_warnings
        if "name_mismatch" in reasons:
            assert "name_mismatch" in status.payout_warnings
        if "rating_missing" in reasons:
            assert all(d.enrollment is not None and d.enrollment.rated_on is None for d in status.diagnoses)
        if reasons:
            assert status.headline.next_action.value == default_rules().transfer_failures.reasons[reasons.pop()].value


async def test_personas_cover_both_eras(demo: list[tuple[ParticipantStatus, int]]) -> None:
    eras = {d.era for status, _ in demo for d in status.diagnoses if d.enrollment is not None}
    assert eras == {"2020", "2021"}
    # Since 2021 a certificate can be on the dashboard before the rating: the schedule waits for the rating.
    waiting = [
        status
        for status, _ in demo
        if status.headline.stage is Stage.NEEDS_RATING and status.headline.certificate_issued
    ]
    assert waiting and any(s.incentive.state == "waiting_rating" for s in waiting)


async def test_status_json_shows_the_era_aware_stage(demo: list[tuple[ParticipantStatus, int]]) -> None:
    by_key = {key: status for status, key in demo}
    dian = status_to_dict(by_key[26])
    [training] = dian["enrollments"]
    assert (training["stage"], training["era"], training["rating_gates"], training["certificate_issued"]) == (
        "needs_rating",
        "2021",
        "incentive_schedule",
        True,
    )
    assert dian["incentive_state"] == "waiting_rating"
    fajar = status_to_dict(by_key[27])
    assert [e["era"] for e in fajar["enrollments"]] == ["2020", "2021"]
    assert [e["rating_place"] for e in fajar["enrollments"]] == ["platform", "dashboard"]
    # The incentive is paid for the first training only (both schemes): his second certificate brings none.
    assert [e["brings_incentive"] for e in fajar["enrollments"]] == [True, False]
    assert training["brings_incentive"] is True
    json.dumps(fajar)  # plain JSON
