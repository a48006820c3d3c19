"""The programme rules from `knowledge/rules.yaml`, typed. Code reads thresholds from here, never literals.

The whole file is validated when it is loaded: an unknown or missing key, an unknown scheme, remedy or rating place,
a date that is no date, a negative day count — each fails at start-up with `RulesError` naming the key, never later
in the middle of a participant's diagnosis.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    model_validator,
)

from core.paths import knowledge_dir


class RulesError(ValueError):
    """The rules file cannot be used; the message names the file and every offending key."""


class Remedy(StrEnum):
    """What the participant does about a failed transfer: the values `transfer_failures` may map a reason to."""

    REACTIVATE_ACCOUNT = "reactivate_account"
    CONTACT_CHANNEL = "contact_channel"
    CHANGE_PAYOUT_ACCOUNT = "change_payout_account"
    VERIFY_EWALLET = "verify_ewallet"
    RESTORE_PHONE = "restore_phone"
    FREE_BALANCE = "free_balance"
    CHECK_MONTHLY_LIMIT = "check_monthly_limit"
    CHECK_ATTENDANCE = "check_attendance"
    GIVE_RATING = "give_rating"


class RatingPlace(StrEnum):
    PLATFORM = "platform"
    DASHBOARD = "dashboard"


class RatingGate(StrEnum):
    """The step of the pipeline that waits for the participant's rating in an era."""

    PLATFORM_REPORT = "platform_report"  # 2020: no report, certificate or schedule before the rating
    INCENTIVE_SCHEDULE = "incentive_schedule"  # since 2021: the certificate comes first; the schedule waits


# The failure reason a transfer without a known reason falls back to; its remedy must always exist.
OTHER_FAILURE = "other"


def _calendar_date(value: Any) -> Any:
    """A date as YAML writes it (2021-03-18) or as an ISO string; never a number (pydantic would read it as a
    Unix timestamp)."""
    if isinstance(value, date | str):
        return value
    raise ValueError("expected a date like 2021-03-18")


CalendarDate = Annotated[date, BeforeValidator(_calendar_date)]


class _Strict(BaseModel):
    """Every key must be known: a misspelt threshold is an error, not a silently ignored line."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# The ids of the sources (knowledge/sources.yaml) a fact rests on; tests/test_knowledge_sources.py checks they exist.
SourceIds = Annotated[tuple[str, ...], Field(min_length=1)]


class YearlyDeadline(_Strict):
    """A date in each budget year, from `from_year` until a later entry."""

    from_year: int = Field(ge=2020, le=2100)
    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)
    sources: SourceIds

    def on(self, year: int) -> date:
        return date(year, self.month, self.day)

    @model_validator(mode="after")
    def _a_real_day(self) -> Self:
        date(2023, self.month, self.day)  # any non-leap year: 31 April fails here, at load time
        return self


YearlyDeadlines = Annotated[list[YearlyDeadline], Field(min_length=1)]


class NextTrainingDeadline(_Strict):
    days_after_rating: PositiveInt
    schemes: tuple[str, ...]
    sources: SourceIds


class PostTestDeadline(_Strict):
    webinar_days_after_last_meeting: PositiveInt
    self_paced_days_after_redeem: PositiveInt
    face_to_face_days_after_last_meeting: PositiveInt
    schemes: tuple[str, ...]
    sources: SourceIds


class DeadlineWarning(_Strict):
    kind: Literal["policy"] = "policy"  # when the bot warns is our decision
    days_before: NonNegativeInt
    days_after: NonNegativeInt


class MembershipRules(_Strict):
    revoked_can_rejoin: bool
    sources: SourceIds


class Deadlines(_Strict):
    """Deadlines that cost the participant money (core/deadlines.py warns before them)."""

    link_payout_account: YearlyDeadlines
    give_rating: YearlyDeadlines
    evaluation_survey: YearlyDeadlines
    next_training: NextTrainingDeadline
    post_test: PostTestDeadline
    warning: DeadlineWarning

    @model_validator(mode="after")
    def _years_differ(self) -> Self:
        for key in ("link_payout_account", "give_rating", "evaluation_survey"):
            years = [item.from_year for item in getattr(self, key)]
            if len(set(years)) != len(years):
                raise ValueError(f"{key}: two entries start in the same year")
        return self


def yearly_deadline(entries: list[YearlyDeadline], budget_year: int) -> date | None:
    """The deadline in `budget_year` by the entry in force then; None before the first entry (no rule known)."""
    in_force = [item for item in entries if item.from_year <= budget_year]
    return max(in_force, key=lambda item: item.from_year).on(budget_year) if in_force else None


class SchemeRules(_Strict):
    label: str
    training_balance: NonNegativeInt
    incentive_amount: NonNegativeInt
    incentive_installments: PositiveInt
    survey_count: NonNegativeInt
    survey_amount: NonNegativeInt
    purchase_deadline_days: NonNegativeInt
    incentive_first_training_only: bool
    sources: SourceIds


class SchemeSince(_Strict):
    valid_from: CalendarDate = Field(alias="from")
    scheme: str
    sources: SourceIds


class PipelineEra(_Strict):
    """The order of the certificate pipeline from one date on: where the rating goes and what it gates."""

    valid_from: CalendarDate = Field(alias="from")
    era: str
    rating_place: RatingPlace
    rating_gates: RatingGate
    sources: SourceIds


class TransferFailures(_Strict):
    sources: SourceIds
    reasons: dict[str, Remedy]

    @model_validator(mode="after")
    def _has_other(self) -> Self:
        if OTHER_FAILURE not in self.reasons:
            raise ValueError(f"reasons: needs an {OTHER_FAILURE!r} entry for reasons it does not list")
        return self


class Timing(_Strict):
    platform_report_expected_working_days: NonNegativeInt
    platform_report_overdue_working_days: NonNegativeInt
    pmo_processing_working_days: NonNegativeInt
    pmo_overdue_working_days: NonNegativeInt
    schedule_after_certificate_working_days: NonNegativeInt
    schedule_after_rating_working_days: NonNegativeInt
    payment_after_schedule_working_days: NonNegativeInt
    sources: SourceIds

    @model_validator(mode="after")
    def _overdue_after_expected(self) -> Self:
        if self.platform_report_overdue_working_days < self.platform_report_expected_working_days:
            raise ValueError("platform_report_overdue_working_days is before platform_report_expected_working_days")
        if self.pmo_overdue_working_days < self.pmo_processing_working_days:
            raise ValueError("pmo_overdue_working_days is before pmo_processing_working_days")
        return self


def _title_words(values: tuple[str, ...]) -> tuple[str, ...]:
    """Title words are compared without dots and case ("S.Kom" is "skom"); anything but letters is a typo."""
    words = []
    for value in values:
        word = value.replace(".", "").lower()
        if not word.isascii() or not word.isalpha():
            raise ValueError(f"{value!r} is not a title word (letters and dots only)")
        words.append(word)
    return tuple(words)


TitleWords = Annotated[tuple[str, ...], AfterValidator(_title_words)]


class Degrees(_Strict):
    """Academic degrees by their shape: head, optional infix, field, optional ending — or a whole degree."""

    heads: TitleWords = Field(min_length=1)
    infixes: TitleWords = ()
    fields: TitleWords = Field(min_length=1)
    endings: TitleWords = ()
    whole: TitleWords = ()


class NameMatch(_Strict):
    kind: Literal["policy"] = "policy"  # our matching policy, not a programme fact: it cites no source
    threshold: float = Field(ge=0, le=100)
    typos: NonNegativeInt
    before_name: TitleWords
    after_name: TitleWords
    degrees: Degrees


class Rules(_Strict):
    schemes: dict[str, SchemeRules] = Field(min_length=1)
    scheme_by_acceptance: list[SchemeSince] = Field(min_length=1)
    pipeline: list[PipelineEra] = Field(min_length=1)
    timing: Timing
    name_match: NameMatch
    transfer_failures: TransferFailures
    deadlines: Deadlines
    membership: MembershipRules

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for n, item in enumerate(self.scheme_by_acceptance):
            if item.scheme not in self.schemes:
                known = ", ".join(self.schemes)
                raise ValueError(f"scheme_by_acceptance.{n}.scheme: unknown scheme {item.scheme!r} (schemes: {known})")
        for key in ("scheme_by_acceptance", "pipeline"):
            starts = [item.valid_from for item in getattr(self, key)]
            if len(set(starts)) != len(starts):
                raise ValueError(f"{key}: two entries start on the same date")
        eras = [item.era for item in self.pipeline]
        if len(set(eras)) != len(eras):
            raise ValueError("pipeline: two entries have the same era name")
        return self

    @model_validator(mode="after")
    def _deadline_schemes_known(self) -> Self:
        for key in ("next_training", "post_test"):
            unknown = set(getattr(self.deadlines, key).schemes) - set(self.schemes)
            if unknown:
                raise ValueError(f"deadlines.{key}.schemes: unknown scheme {sorted(unknown)[0]!r}")
        return self

    def scheme_for(self, accepted_on: date) -> str:
        return _latest(self.scheme_by_acceptance, accepted_on).scheme

    def era_for(self, rated_on: date) -> PipelineEra:
        """The pipeline order a training follows: picked by the date its rating was given, or today for a rating
        still to give (see `pipeline` in rules.yaml for why not the completion date)."""
        return _latest(self.pipeline, rated_on)

    def rating_place_for(self, rated_on: date) -> RatingPlace:
        """Where a rating given (or to be given) on `rated_on` goes."""
        return self.era_for(rated_on).rating_place

    def remedy_for(self, failure_reason: str | None) -> Remedy:
        reasons = self.transfer_failures.reasons
        return reasons.get(failure_reason or OTHER_FAILURE, reasons[OTHER_FAILURE])


_Dated = TypeVar("_Dated", SchemeSince, PipelineEra)


def _latest(items: list[_Dated], on: date) -> _Dated:
    """The entry in force on `on`; a date before the first entry falls under the first."""
    ordered = sorted(items, key=lambda item: item.valid_from)
    chosen = ordered[0]
    for item in ordered:
        if item.valid_from <= on:
            chosen = item
    return chosen


class _RulesLoader(yaml.SafeLoader):
    """Leaves dates as text, so that an impossible date (2021-02-30) is reported by its key, not by the YAML
    parser without one."""


_RulesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _describe(error: ValidationError) -> str:
    """One "key.path: what is wrong (got value)" per problem."""
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        given = item.get("input")
        if item["type"] not in ("missing", "extra_forbidden") and not isinstance(given, dict | list | tuple):
            message += f" (got {given!r})"
        key = ".".join(str(part) for part in item["loc"])
        problems.append(f"{key}: {message}" if key else message)
    return "; ".join(problems)


def parse_rules(text: str, source: str = "rules.yaml") -> Rules:
    """The rules in `text`, validated whole; `RulesError` names `source` and every bad key."""
    try:
        data = yaml.load(text, Loader=_RulesLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as error:
        raise RulesError(f"{source}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise RulesError(f"{source}: expected a mapping of rule sections, got {type(data).__name__}")
    try:
        return Rules.model_validate(data)
    except ValidationError as error:
        raise RulesError(f"{source}: {_describe(error)}") from None


def load_rules(path: Path | None = None) -> Rules:
    path = path or knowledge_dir() / "rules.yaml"
    return parse_rules(path.read_text(encoding="utf-8"), str(path))


@lru_cache(maxsize=1)
def default_rules() -> Rules:
    """Loaded once per process: the bot's texts quote the same thresholds the diagnosis counts with, and both are
    wired at start-up, so an edit to `rules.yaml` takes effect on restart (closing days reload by themselves)."""
    return load_rules()
