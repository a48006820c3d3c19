"""`prakerja-bot demo` and `status`: the demo personas, and one participant's diagnosis."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from bot.cli.common import CliError, err, iso, out
from bot.settings import Settings
from core.calendar import default_calendar, today_in_jakarta
from core.db import Database
from core.demo import recreate_database, seed_demo
from core.diagnosis import ParticipantStatus
from core.identity import mask_phone
from core.rules import default_rules
from core.status import DatabaseStatusSource, StatusService


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="(re)create the database with demo personas and print them")
    demo.add_argument("--json", action="store_true", help="print the personas as JSON")
    demo.set_defaults(handler=cmd_demo)

    status = sub.add_parser("status", help="the diagnosis of one participant")
    status.add_argument("participant_id", type=int, metavar="ID")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)


def status_to_dict(status: ParticipantStatus) -> dict[str, Any]:
    """The operator's JSON view of a participant's diagnosis (DESIGN.md §4)."""
    return {
        "participant_id": status.facts.participant_id,
        "scheme": status.facts.scheme,
        "membership": status.facts.membership,
        "enrollments": [
            {
                "enrollment_id": d.enrollment_id,
                "platform": d.enrollment.platform_code if d.enrollment else None,
                "training": d.enrollment.training_title if d.enrollment else None,
                "institution": d.enrollment.institution_name if d.enrollment else None,
                "stage": d.stage.value,
                "holder": d.holder.value,
                "next_action": d.next_action.value,
                "expected_by": iso(d.expected_by),
                "overdue": d.overdue,
                "done": [step.value for step in d.done],
                "rating_place": d.rating_place,
                "era": d.era,
                "rating_gates": d.rating_gates,
                "certificate_issued": d.certificate_issued,
                "failure_reason": d.failure_reason,
                "brings_incentive": d.brings_incentive,
            }
            for d in status.diagnoses
        ],
        "incentives": [
            {
                "seq": i.seq,
                "amount": i.amount,
                "scheduled_on": iso(i.scheduled_on),
                "status": i.status,
                "transferred_on": iso(i.transferred_on),
                "channel": i.channel,
                "failure_reason": i.failure_reason,
                "remedy": i.remedy.value,
                "expected_by": iso(i.expected_by),
                "overdue": i.overdue,
            }
            for i in status.incentives
        ],
        "incentive_state": status.incentive.state.value,
        "incentive_date": iso(status.incentive.on),
        "payout_warnings": list(status.payout_warnings),
        "needs_agent": status.needs_agent,
    }


async def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    async with Database.open(settings.database_url) as db:
        with err.status("Creating the demo database…"):
            await recreate_database(db)
            today = today_in_jakarta()
            created = await seed_demo(db.engine, default_rules(), default_calendar(), settings.pii_key, today)
        service = StatusService(DatabaseStatusSource(db))
        rows: list[dict[str, Any]] = []
        for participant_id, persona in created:
            status = await service.status(participant_id, today)
            assert status is not None
            rows.append(
                {
                    "participant_id": participant_id,
                    "name": persona.name,
                    "phone": persona.phone,
                    "birth_date": persona.birth_date.isoformat(),
                    "stage": status.headline.stage.value,
                }
            )
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    table = Table(title=f"Demo personas ({len(rows)}) — database {settings.database_url}")
    for column in ("id", "name", "phone", "birth date", "stage"):
        table.add_column(column)
    for row in rows:
        # Demo phones are fictitious; shown in full so that a tester can type them into `chat --phone`.
        table.add_row(str(row["participant_id"]), row["name"], row["phone"], row["birth_date"], row["stage"])
    out.print(table)
    out.print("Try one: [bold]prakerja-bot chat --phone " + rows[3]["phone"] + "[/bold]")
    return 0


async def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    async with Database.open(settings.database_url) as db:
        status = await StatusService(DatabaseStatusSource(db)).status(args.participant_id)
    if status is None:
        raise CliError(f"no participant with id {args.participant_id}")
    data = status_to_dict(status)
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
        return 0
    facts = status.facts
    out.print(
        f"Participant {facts.participant_id}: {facts.legal_name}, phone {mask_phone(facts.phone)}, "
        f"NIK ****{facts.nik_last4}, scheme {facts.scheme}, membership {facts.membership}",
        markup=False,
    )
    table = Table(
        "enrollment", "platform", "training", "era", "stage", "holder", "next action", "expected by", "overdue"
    )
    for e in data["enrollments"]:
        table.add_row(
            str(e["enrollment_id"] or "—"),
            e["platform"] or "—",
            e["training"] or "—",
            e["era"] or "—",
            e["stage"],
            e["holder"],
            e["next_action"],
            e["expected_by"] or "—",
            "YES" if e["overdue"] else "no",
        )
    out.print(table)
    if data["incentives"]:
        incentives = Table("#", "amount", "scheduled", "status", "reason", "remedy", "overdue")
        for i in data["incentives"]:
            incentives.add_row(
                str(i["seq"]),
                f"Rp{i['amount']:,}".replace(",", "."),
                i["scheduled_on"],
                i["status"],
                i["failure_reason"] or "—",
                i["remedy"],
                "YES" if i["overdue"] else "no",
            )
        out.print(incentives)
    if data["payout_warnings"]:
        out.print("Payout account warnings: " + ", ".join(data["payout_warnings"]))
    return 0
