"""Every fact a participant acts on has a source (knowledge/sources.yaml), and every source is one we read.

A fact-bearing entry carries `sources: [id, ...]`; an entry that is our own decision (matching policy, warning
window, the desk's own words) says `kind: policy`, and FAQ small talk says `kind: smalltalk`. The rule is checked
the same way everywhere: a mapping is sourced when it has `sources` (or one of those kinds), otherwise when all its
values are; a list when all its items are; a bare value never is. Each knowledge file is classified below, so a new
file cannot slip past unchecked.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.calendar import default_calendar
from core.diagnosis import DiagnosisEngine, EnrollmentFacts, NextAction, ParticipantFacts, Stage
from core.faq import load_faq
from core.faq_entries import UNSOURCED_KINDS as UNSOURCED_FAQ_KINDS
from core.paths import knowledge_dir, read_yaml
from core.rules import default_rules

KNOWLEDGE = knowledge_dir()
SEEN_BY = date(2026, 12, 3)  # no source can have been read after today (the day this was written) — or later runs
# policy and action entries describe this helpdesk itself (e.g. the hand-over to an agent), not the programme.
UNSOURCED_KINDS = UNSOURCED_FAQ_KINDS | {"policy"}

# What each knowledge file holds, and so what it must cite.
FILES = {
    "sources.yaml": "the catalogue itself",
    "platforms.yaml": "facts: every section",
    "rules.yaml": "facts: every section, or `kind: policy`",
    "faq.yaml": "facts: every entry, or `kind: smalltalk`",
    "support.yaml": "facts: each canned reply; the desk's own settings and staff texts are ours",
    "messages.yaml": "texts only: the facts they quote come from rules.yaml and platforms.yaml",
    "admin_messages.yaml": "texts for admins: no programme facts",
    "console.yaml": "texts of the staff web console: no programme facts",
    "slang.yaml": "the matcher's vocabulary: no programme facts",
    "closing_days.yaml": "the desk's own closing days, kept by admins: no programme facts",
}
# support.yaml sections that are our own settings and texts, not programme facts.
SUPPORT_OWN = {
    "business_hours",
    "sla",
    "assignment",
    "canned_unknown_name",
    "reopen_window_hours",
    "transcript_lines",
    "messages",
}


def load(name: str) -> Any:
    return yaml.safe_load((KNOWLEDGE / name).read_text(encoding="utf-8"))


CATALOGUE: dict[str, dict[str, Any]] = load("sources.yaml")["sources"]


def unsourced(node: Any, path: str) -> list[str]:
    """The paths under `node` that state something without a source (empty: all sourced)."""
    if isinstance(node, dict):
        if node.get("kind") in UNSOURCED_KINDS:
            return []
        if "sources" in node:
            return [] if node["sources"] else [f"{path}: empty sources"]
        if not node:
            return [f"{path}: empty"]
        return [missing for key, value in node.items() for missing in unsourced(value, f"{path}.{key}")]
    if isinstance(node, list):
        if not node:
            return [f"{path}: empty"]
        return [missing for n, item in enumerate(node) for missing in unsourced(item, f"{path}.{n}")]
    return [f"{path}: no sources"]


def cited(node: Any, path: str = "") -> list[tuple[str, str]]:
    """Every (path, source id) cited anywhere under `node`."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "sources" and isinstance(value, list):
                found.extend((path, str(source)) for source in value)
            else:
                found.extend(cited(value, f"{path}.{key}" if path else str(key)))
    elif isinstance(node, list):
        for n, item in enumerate(node):
            found.extend(cited(item, f"{path}.{n}"))
    return found


def all_citations() -> list[tuple[str, str]]:
    return [
        (f"{name}:{path}", source) for name in FILES if name != "sources.yaml" for path, source in cited(load(name))
    ]


# --- the catalogue ---------------------------------------------------------------------------------------------


def test_every_knowledge_file_is_classified() -> None:
    assert {path.name for path in KNOWLEDGE.glob("*.yaml")} == set(FILES)


@pytest.mark.parametrize("source_id", sorted(CATALOGUE))
def test_each_source_says_where_and_when_it_was_read(source_id: str) -> None:
    source = CATALOGUE[source_id]
    assert {"url", "title", "publisher", "published", "seen", "official"} <= set(source), source_id
    assert str(source["url"]).startswith("https://"), source_id
    assert source["title"] and source["publisher"], source_id
    assert isinstance(source["seen"], date) and source["seen"] <= max(SEEN_BY, date.today()), source_id
    assert source["published"] is None or isinstance(source["published"], date), source_id
    assert source["published"] is None or source["published"] <= source["seen"], source_id
    assert isinstance(source["official"], bool), source_id


def test_every_cited_source_is_in_the_catalogue() -> None:
    unknown = [(where, source) for where, source in all_citations() if source not in CATALOGUE]
    assert not unknown, f"cited but not in sources.yaml: {unknown}"


def test_no_source_is_unused() -> None:
    used = {source for _, source in all_citations()}
    assert not set(CATALOGUE) - used, f"in sources.yaml but cited nowhere: {sorted(set(CATALOGUE) - used)}"


# --- the facts -------------------------------------------------------------------------------------------------


def test_every_platform_directory_entry_has_a_source() -> None:
    assert unsourced(load("platforms.yaml"), "platforms.yaml") == []


def test_every_platform_lists_each_channel_even_when_unknown() -> None:
    """A channel no source confirms is null, never missing or guessed: templates test it and say it is unknown."""
    directory = load("platforms.yaml")
    for platform in (*directory["platforms"], *directory["former_platforms"]):
        required = {"code", "name", "site", "contact_url", "phone", "whatsapp", "sources"}
        assert required <= set(platform) <= required | {"display"}, platform  # display: a renamed platform's name
        assert set(platform.get("display", {"id": 1, "en": 1})) == {"id", "en"}, platform
    assert "reply_working_days" not in directory["complaint_form"]  # no source promises a reply time


RULES = load("rules.yaml")


@pytest.mark.parametrize("section", list(RULES))
def test_every_rules_section_has_a_source_or_is_our_policy(section: str) -> None:
    assert unsourced(RULES[section], f"rules.yaml:{section}") == []


def test_support_facts_have_sources() -> None:
    support = load("support.yaml")
    assert set(support) - SUPPORT_OWN == {"canned"}, "a new support.yaml section: classify it here"
    assert unsourced(support["canned"], "support.yaml:canned") == []


def test_every_faq_entry_has_a_source_or_is_small_talk() -> None:
    assert unsourced(load("faq.yaml")["faqs"], "faq.yaml:faqs") == []


def test_the_check_catches_a_fact_without_a_source(tmp_path: Path) -> None:
    """The checker itself: a platform whose sources were removed, an empty list, a bare value are each caught."""
    directory = load("platforms.yaml")
    del directory["platforms"][0]["sources"]
    directory["payout_channels"][0]["sources"] = []
    directory["hotline"] = "0800-000-0000"
    missing = unsourced(directory, "platforms.yaml")
    assert any(item.startswith("platforms.yaml.platforms.0.") for item in missing)
    assert "platforms.yaml.payout_channels.0: empty sources" in missing
    assert "platforms.yaml.hotline: no sources" in missing
    assert unsourced({"kind": "policy", "threshold": 92}, "x") == []
    assert cited({"a": [{"sources": ["s1"]}, {"b": {"sources": ["s2"]}}]}) == [("a.0", "s1"), ("a.1.b", "s2")]


# --- facts the issue found wrong, now sourced ------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["2020", "2023"])
def test_the_incentive_is_for_the_first_training_only_in_both_schemes(scheme: str) -> None:
    """A second certificate brings no incentive schedule, whichever the scheme (the 2020 flag used to say it did)."""
    rules = default_rules()
    assert rules.schemes[scheme].incentive_first_training_only
    accepted = date(2020, 8, 1) if scheme == "2020" else date(2026, 3, 25)
    first = EnrollmentFacts(
        1,
        "tokopedia",
        "Tokopedia",
        "Barista Profesional",
        "dandan.id",
        purchased_on=accepted.replace(day=5),
        completed_on=accepted.replace(day=10),
        rated_on=accepted.replace(day=10),
        reported_on=accepted.replace(day=11),
        printed_name="Siti Nurhaliza",
        issued_on=accepted.replace(day=12),
    )
    second = replace(first, enrollment_id=2, purchased_on=accepted.replace(day=15), issued_on=accepted.replace(day=20))
    facts = ParticipantFacts(
        1, "Siti Nurhaliza", "+6281200000001", "0001", scheme, accepted, enrollments=(first, second)
    )
    d = DiagnosisEngine(rules, default_calendar()).participant_status(facts, accepted.replace(day=25)).diagnoses[1]
    assert (d.stage, d.next_action) == (Stage.CERTIFICATE_ISSUED, NextAction.CHECK_CERTIFICATE)


def test_maubelajarapa_records_still_resolve_but_it_is_no_longer_listed() -> None:
    from bot.flows.views import platform_entry

    directory = load("platforms.yaml")
    assert "maubelajarapa" not in {p["code"] for p in directory["platforms"]}
    entry = platform_entry(directory, "maubelajarapa")
    assert entry["name"] == "Maubelajarapa" and entry["contact_url"] is None
    assert platform_entry(directory, "pintaria")["name"].startswith("Pintar")  # renamed, same code


def test_a_revoked_participant_is_not_told_to_register_again() -> None:
    from bot.texts import default_renderer

    assert default_rules().membership.revoked_can_rejoin is False
    d = {"next_action": "membership_revoked", "expected_by": date(2026, 11, 8)}
    says = {
        locale: default_renderer().render("certificate_not_purchased", locale, d=d, name="Budi")
        for locale in ("id", "en")
    }
    assert "tidak bisa diikuti lagi" in says["id"] and "mendaftar lagi" not in says["id"]
    assert "cannot be joined again" in says["en"] and "register again" not in says["en"]


def test_every_faq_entry_the_bot_loads_carries_its_sources() -> None:
    """Through the one entry reader the bot, the seed and /faq_set use: the sources travel with the entry."""
    for entry in load_faq():
        assert entry.sources or entry.kind in UNSOURCED_FAQ_KINDS, entry.id
        assert set(entry.sources) <= set(CATALOGUE), entry.id


@pytest.mark.parametrize("path", sorted(knowledge_dir().glob("*.yaml")), ids=lambda path: path.name)
def test_every_knowledge_file_reads_the_same_with_the_fast_parser(path: Path) -> None:
    # core.paths.read_yaml takes libyaml's parser where it is built in; our files must mean the same to both.
    assert read_yaml(path) == yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
