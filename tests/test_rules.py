"""The rules file is validated whole when it is loaded: a bad edit fails at start-up, naming the key."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from core.calendar import WorkingCalendar
from core.diagnosis import DiagnosisEngine, EnrollmentFacts, InstallmentFacts, NextAction, ParticipantFacts, Stage
from core.paths import knowledge_dir
from core.rules import RatingGate, RatingPlace, Remedy, RulesError, load_rules, parse_rules

SHIPPED = (knowledge_dir() / "rules.yaml").read_text(encoding="utf-8")


def edited(old: str, new: str) -> str:
    assert SHIPPED.count(old) == 1, old
    return SHIPPED.replace(old, new)


def test_the_shipped_rules_load() -> None:
    rules = load_rules()
    assert set(rules.schemes) == {"2020", "2023"}
    assert rules.rating_place_for(date(2021, 3, 18)) is RatingPlace.DASHBOARD
    assert rules.remedy_for("no_such_reason") is rules.transfer_failures.reasons["other"]


def test_the_pipeline_order_is_dated() -> None:
    rules = load_rules()
    old, new = rules.era_for(date(2020, 9, 25)), rules.era_for(date(2021, 3, 18))
    assert (old.era, old.rating_place, old.rating_gates) == ("2020", RatingPlace.PLATFORM, RatingGate.PLATFORM_REPORT)
    assert (new.era, new.rating_place, new.rating_gates) == (
        "2021",
        RatingPlace.DASHBOARD,
        RatingGate.INCENTIVE_SCHEDULE,
    )
    assert rules.era_for(date(2021, 3, 17)).era == "2020"
    assert rules.timing.schedule_after_rating_working_days == 1


def test_dated_rules_and_failures_carry_their_sources() -> None:
    rules = load_rules()
    catalogue = yaml.safe_load((knowledge_dir() / "sources.yaml").read_text(encoding="utf-8"))["sources"]
    cited = [*rules.timing.sources, *rules.transfer_failures.sources]
    for era in rules.pipeline:
        assert era.sources, era
        cited.extend(era.sources)
    assert cited and set(cited) <= set(catalogue)
    # The reasons the sources name are all there: the e-wallet's monthly limit and incomplete attendance too.
    assert {"monthly_limit", "attendance_incomplete", "balance_cap", "account_blocked"} <= set(
        rules.transfer_failures.reasons
    )


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        # The audit's crash: a remedy nobody handles was only found at diagnosis time.
        (
            "    account_inactive: reactivate_account\n",
            "    account_inactive: reactivate_account\n    account_frozen: unfreeze_account\n",
            ["transfer_failures.reasons.account_frozen", "unfreeze_account"],
        ),
        ("    other: contact_channel\n", "", ["transfer_failures", "'other'"]),
        ("  sources: [official_faq_2024, liputan6", "  sourcez: [official_faq_2024, liputan6", ["sourcez"]),
        ("  pmo_overdue_working_days: 1 ", "  # gone ", ["timing.pmo_overdue_working_days", "Field required"]),
        (
            "  pmo_processing_working_days: 1 ",
            "  pmo_procesing_working_days: 1 ",
            ["timing.pmo_procesing_working_days"],
        ),
        (
            "  pmo_processing_working_days: 1 ",
            "  pmo_processing_working_days: -1 ",
            ["timing.pmo_processing_working_days", "-1"],
        ),
        (
            "    purchase_deadline_days: 15\n",
            "    purchase_deadline_days: -15\n",
            ["schemes.2023.purchase_deadline_days"],
        ),
        (
            "  platform_report_overdue_working_days: 3 ",
            "  platform_report_overdue_working_days: 0 ",
            ["platform_report_overdue_working_days"],
        ),
        ("  - from: 2021-03-18\n", "  - from: 2021-02-30\n", ["pipeline.1.from", "2021-02-30"]),
        ("  - from: 2021-03-18\n", "  - from: 18-03-2021\n", ["pipeline.1.from", "18-03-2021"]),
        ("    rating_gates: incentive_schedule ", "    rating_gates: certificate ", ["pipeline.1.rating_gates"]),
        ('    era: "2021"\n', '    era: "2020"\n', ["pipeline", "same era"]),
        ("  - from: 2023-01-01\n", "  - from: 20230101\n", ["scheme_by_acceptance.1.from", "20230101"]),
        ("    rating_place: dashboard ", "    rating_place: website ", ["pipeline.1.rating_place", "website"]),
        ('    scheme: "2023"\n', '    scheme: "2024"\n', ["scheme_by_acceptance.1.scheme", "'2024'"]),
        ("  threshold: 92\n", "  threshold: 192\n", ["name_match.threshold"]),
        ("    endings: [i] ", "    endings: [i, S.Pd-I] ", ["name_match.degrees.endings", "S.Pd-I"]),
    ],
)
def test_a_bad_edit_is_refused_naming_the_key(old: str, new: str, named: list[str]) -> None:
    with pytest.raises(RulesError) as refused:
        parse_rules(edited(old, new), "knowledge/rules.yaml")
    message = str(refused.value)
    assert message.startswith("knowledge/rules.yaml: ")
    for part in named:
        assert part in message, message


@pytest.mark.parametrize(("text", "why"), [("timing: [1, 2\n", "not valid YAML"), ("- 1\n- 2\n", "a mapping")])
def test_a_file_that_is_no_rules_file_is_refused(text: str, why: str) -> None:
    with pytest.raises(RulesError, match=why):
        parse_rules(text)


def test_load_rules_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(edited("    balance_cap: free_balance\n", "    balance_cap: top_up\n"), encoding="utf-8")
    with pytest.raises(RulesError, match=rf"^{path}: transfer_failures\.reasons\.balance_cap: "):
        load_rules(path)


def test_a_new_failure_reason_with_a_known_remedy_is_diagnosed() -> None:
    rules = parse_rules(
        edited("    other: contact_channel\n", "    account_frozen: contact_channel\n    other: contact_channel\n")
    )
    engine = DiagnosisEngine(rules, WorkingCalendar())
    facts = ParticipantFacts(
        participant_id=1,
        legal_name="Siti Nurhaliza",
        phone="+6281200000001",
        nik_last4="0001",
        scheme="2023",
        accepted_on=date(2026, 3, 25),
        enrollments=(
            EnrollmentFacts(
                1,
                "tokopedia",
                "Tokopedia",
                "Barista Profesional",
                "dandan.id",
                purchased_on=date(2026, 4, 1),
                completed_on=date(2026, 4, 6),
                rated_on=date(2026, 4, 6),
                reported_on=date(2026, 4, 7),
                printed_name="Siti Nurhaliza",
                issued_on=date(2026, 4, 8),
            ),
        ),
        installments=(
            InstallmentFacts(1, 600_000, date(2026, 4, 14), "failed", enrollment_id=1, failure_reason="account_frozen"),
        ),
    )
    (d,) = engine.participant_status(facts, date(2026, 4, 15)).diagnoses
    assert (d.stage, d.next_action, d.failure_reason) == (
        Stage.INCENTIVE_FAILED,
        NextAction.CONTACT_CHANNEL,
        "account_frozen",
    )


def test_remedies_and_rating_places_are_the_ones_the_bot_handles() -> None:
    rules = load_rules()
    assert set(rules.transfer_failures.reasons.values()) <= set(Remedy)
    assert {item.rating_place for item in rules.pipeline} <= set(RatingPlace)
