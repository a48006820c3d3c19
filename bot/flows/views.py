"""Diagnoses as template context: the facts a message may quote, with the platform's directory entry attached."""

from __future__ import annotations

from datetime import date
from typing import Any

from core.diagnosis import Diagnosis, InstallmentStatusView, ParticipantStatus, Stage

# The contact fields of a directory entry; each is None where no source confirms a channel.
_CONTACT_FIELDS = ("site", "contact_url", "phone", "whatsapp")


def platform_entry(directory: dict[str, Any], code: str, locale: str = "id") -> dict[str, Any]:
    """A platform's directory entry (its confirmed channels, None where unknown), a former platform's for old
    records, or a bare stand-in for an unknown code. Every contact field is present, so a template can test it;
    `name` is the one shown in `locale` (a renamed platform: "Pintar (formerly Pintaria)")."""
    defaults = {field: None for field in _CONTACT_FIELDS} | {"rating_steps": directory.get("platform_rating_steps", {})}
    for platform in (*directory["platforms"], *directory.get("former_platforms", ())):
        if platform["code"] == code:
            found: dict[str, Any] = defaults | platform
            if "display" in platform:
                found["name"] = platform["display"].get(locale, platform["name"])
            return found
    return defaults | {"code": code, "name": code}


def diagnosis_view(directory: dict[str, Any], d: Diagnosis, locale: str) -> dict[str, Any]:
    e = d.enrollment
    platform = platform_entry(directory, e.platform_code, locale) if e else None
    rating_steps = ""
    if d.rating_place == "dashboard":
        rating_steps = directory["dashboard_rating_steps"][locale]
    elif platform is not None:
        rating_steps = platform.get("rating_steps", {}).get(locale, "")
    return {
        "enrollment_id": d.enrollment_id,
        "stage": d.stage.value,
        "holder": d.holder.value,
        "next_action": d.next_action.value,
        "expected_by": d.expected_by,
        "on_time_until": d.on_time_until,
        "overdue": d.overdue,
        "done": [step.value for step in d.done],
        "training": e.training_title if e else "",
        "institution": e.institution_name if e else "",
        "platform": platform or {},
        "purchased_on": e.purchased_on if e else None,
        "completed_on": e.completed_on if e else None,
        "rated_on": e.rated_on if e else None,
        "reported_on": e.reported_on if e else None,
        "issued_on": e.issued_on if e else None,
        "certificate_number": e.certificate_number if e else None,
        "printed_name": e.printed_name if e else None,
        "other_name": d.name_check.other_name if d.name_check else None,
        "rating_place": d.rating_place,
        "rating_steps": rating_steps,
        "failure_reason": d.failure_reason,
        "era": d.era,
        # "incentive_schedule": since 2021 the certificate comes first and the rating holds the schedule back;
        # "platform_report": in 2020 the rating came before the platform's report.
        "rating_gates": d.rating_gates,
        "certificate_issued": d.certificate_issued,
        "name_matches": d.name_check.matches if d.name_check else None,
        "voucher_code": e.voucher_code if e else None,
    }


def installment_view(i: InstallmentStatusView) -> dict[str, Any]:
    return {
        "seq": i.seq,
        "amount": i.amount,
        "scheduled_on": i.scheduled_on,
        "status": i.status,
        "transferred_on": i.transferred_on,
        "channel": i.channel,
        "failure_reason": i.failure_reason,
        "remedy": i.remedy.value,
        "expected_by": i.expected_by,
        "overdue": i.overdue,
    }


def name_checks(status: ParticipantStatus) -> list[dict[str, Any]]:
    """Per training, the name the institution used (printed on the certificate once issued) and whether it is the
    participant's registered name, as the diagnosis judged it (titles, case and spacing never count)."""
    checks = []
    for d in status.diagnoses:
        if d.enrollment is None or d.name_check is None:
            continue
        checks.append(
            {
                "training": d.enrollment.training_title,
                "institution": d.enrollment.institution_name,
                "other_name": d.name_check.other_name,
                "on_certificate": d.enrollment.issued_on is not None,
                "matches": d.name_check.matches,
            }
        )
    return checks


def participant_view(directory: dict[str, Any], status: ParticipantStatus) -> dict[str, Any]:
    """The `participant` context of FAQ answers and summaries (SAMPLE_PARTICIPANTS has the same keys), derived from
    the diagnosis so that no answer contradicts it.

    `next_incentive_date`: the date of the next scheduled payment still on time (an overdue one is not "next");
    `incentive_state`: one of IncentiveState's values (none, not_eligible, waiting_rating, waiting_schedule,
    scheduled, overdue, transferred, failed); `incentive_date`: the date that goes with it (the schedule expected
    by, the payment scheduled on, the date it was due by, the last payment, the failed transfer)."""
    facts = status.facts
    headline = status.headline
    platform = platform_entry(directory, headline.enrollment.platform_code) if headline.enrollment else None
    upcoming = [i.scheduled_on for i in status.incentives if i.status == "scheduled" and not i.overdue]
    return {
        "name": facts.legal_name,
        "scheme": facts.scheme,
        "membership": facts.membership,
        "platform_name": platform["name"] if platform else "",
        "platform_contact_url": platform["contact_url"] if platform else "",
        "next_incentive_date": min(upcoming) if upcoming else None,
        "incentive_state": status.incentive.state.value,
        "incentive_date": status.incentive.on,
        "payout_channel": facts.payout.channel if facts.payout else "",
        "payout_warnings": list(status.payout_warnings),
        "names": name_checks(status),
        "to_rate": ratings_due(directory, status),
    }


def ratings_due(directory: dict[str, Any], status: ParticipantStatus) -> list[dict[str, Any]]:
    """The trainings waiting for the participant's rating and where it goes, as the diagnosis decided by era: a 2020
    training never rated is rated the way ratings work today (rules.yaml `pipeline`), so no answer may send it to
    the platform while the diagnosis says the dashboard."""
    due = []
    for d in status.diagnoses:
        if d.stage is not Stage.NEEDS_RATING or d.enrollment is None:
            continue
        platform = platform_entry(directory, d.enrollment.platform_code)
        due.append(
            {
                "training": d.enrollment.training_title,
                "place": d.rating_place or "dashboard",
                "platform_name": platform["name"] if platform else "",
            }
        )
    return due


# Made-up participants an admin's FAQ answer must render for before it is saved: every key `participant_view`
# gives, once filled in and once as sparse as real records can be.
SAMPLE_PARTICIPANTS: tuple[dict[str, Any], ...] = (
    {
        "name": "Siti Rahayu",
        "scheme": "2023",
        "membership": "active",
        "platform_name": "Pijar Mahir",
        "platform_contact_url": "https://pijarmahir.id/bantuan",
        "next_incentive_date": date(2026, 4, 6),
        "incentive_state": "scheduled",
        "incentive_date": date(2026, 4, 6),
        "payout_channel": "OVO",
        "payout_warnings": ["ewallet_unverified"],
        "names": [
            {
                "training": "Barista Profesional",
                "institution": "Vokasi Nusantara",
                "other_name": "Siti Rahayu S.Kom",
                "on_certificate": True,
                "matches": True,
            },
            {
                "training": "Tata Rias Pengantin",
                "institution": "dandan.id",
                "other_name": "Sita Rahma",
                "on_certificate": False,
                "matches": False,
            },
        ],
        "to_rate": [{"training": "Tata Rias Pengantin", "place": "dashboard", "platform_name": "Pijar Mahir"}],
    },
    {
        "name": "Budi",
        "scheme": "2020",
        "membership": "revoked",
        "platform_name": "",
        "platform_contact_url": "",
        "next_incentive_date": None,
        "incentive_state": "not_eligible",
        "incentive_date": None,
        "payout_channel": "",
        "payout_warnings": [],
        "names": [],
        "to_rate": [],
    },
)
