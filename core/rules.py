"""The programme rules from `knowledge/rules.yaml`, typed. Code reads thresholds from here, never literals."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, Field

from core.paths import knowledge_dir


class SchemeRules(BaseModel):
    label: str
    training_balance: int
    incentive_amount: int
    incentive_installments: int
    survey_count: int
    survey_amount: int
    purchase_deadline_days: int
    incentive_first_training_only: bool


class DatedValue(BaseModel):
    valid_from: date = Field(alias="from")
    scheme: str | None = None
    place: str | None = None


class Timing(BaseModel):
    platform_report_expected_working_days: int
    platform_report_overdue_working_days: int
    pmo_processing_working_days: int
    pmo_overdue_working_days: int
    schedule_after_certificate_working_days: int
    payment_after_schedule_working_days: int


class NameMatch(BaseModel):
    threshold: float
    titles: list[str]


class Rules(BaseModel):
    schemes: dict[str, SchemeRules]
    scheme_by_acceptance: list[DatedValue]
    rating_place: list[DatedValue]
    timing: Timing
    name_match: NameMatch
    transfer_failures: dict[str, str]

    def scheme_for(self, accepted_on: date) -> str:
        return _latest(self.scheme_by_acceptance, accepted_on).scheme or next(iter(self.schemes))

    def rating_place_for(self, completed_on: date) -> str:
        return _latest(self.rating_place, completed_on).place or "dashboard"

    def remedy_for(self, failure_reason: str | None) -> str:
        return self.transfer_failures.get(failure_reason or "other", self.transfer_failures["other"])


def _latest(items: list[DatedValue], on: date) -> DatedValue:
    ordered = sorted(items, key=lambda item: item.valid_from)
    chosen = ordered[0]
    for item in ordered:
        if item.valid_from <= on:
            chosen = item
    return chosen


def load_rules(path: Path | None = None) -> Rules:
    path = path or knowledge_dir() / "rules.yaml"
    return Rules.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def default_rules() -> Rules:
    return load_rules()
