"""Participants and their payout accounts: who may be diagnosed, and where their incentive is paid.

The reading process checks and hashes the identifiers (see `identifiers`); here the rows meet the database. A
participant's NIK and card number never change: a row giving another is rejected, and so is one whose NIK, card
or phone number another participant holds. Name, phone, e-mail, wave, acceptance (and with it the scheme, from
the rules) and membership may change, each change an event; the event log keeps phones masked.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from core.imports.backend import Backend
from core.imports.identifiers import ParticipantIdentifiers, PayoutAccountFields
from core.imports.reading import Column, ColumnType, RowTransform, as_date
from core.imports.report import ImportKind
from core.imports.spec import Applied, Check, EventSource, ImportSpec, masked_phone_sql, rows_with_action
from core.imports.sql import sql_text
from core.imports.upsert import Fact, Upsert
from core.models import Membership, PayoutChannel
from core.rules import Rules, default_rules

# Facts a row may change; `email` besides, which an empty cell never clears.
_PARTICIPANT_FACTS = ("legal_name", "birth_date", "phone", "wave", "accepted_on", "scheme", "membership")
_PARTICIPANT_COLUMNS = (
    "card_number_hash",
    "card_number_last4",
    "nik_hash",
    "nik_last4",
    "legal_name",
    "birth_date",
    "phone",
    "email",
    "wave",
    "scheme",
    "accepted_on",
    "membership",
)
# What a `created` event keeps: no hash, the phone masked.
_PARTICIPANT_SNAPSHOT = (
    "nik_last4",
    "card_number_last4",
    "legal_name",
    "birth_date",
    "phone",
    "email",
    "wave",
    "scheme",
    "accepted_on",
    "membership",
)


def _event_value(db: Backend, table: str, column: str) -> str:
    value = f"{table}.{column}"
    if column == "phone":
        return masked_phone_sql(value)
    if column in ("active", "verified"):
        return db.json_boolean(value)
    return value


class ParticipantsImport(ImportSpec):
    kind = ImportKind.PARTICIPANTS
    key = ("participant_id",)
    work_columns = ", scheme VARCHAR(8), action VARCHAR(8)"
    stage_indexes = (("nik_hash",), ("card_number_hash",), ("phone",))
    reference_joins = (
        "LEFT JOIN participants AS p ON p.id = s.participant_id "
        "LEFT JOIN participants AS pn ON pn.nik_hash = s.nik_hash "
        "LEFT JOIN participants AS pc ON pc.card_number_hash = s.card_number_hash "
        "LEFT JOIN participants AS pp ON pp.phone = s.phone"
    )

    def __init__(self, pii_key: bytes, rules: Rules | None = None) -> None:
        self._pii_key = pii_key
        self._rules = rules or default_rules()
        membership = Column("membership", ColumnType.CHOICE, choices=tuple(Membership))
        # The file's columns, in the order `ParticipantIdentifiers` reads them.
        self.columns = (
            Column("participant_id", ColumnType.ID),
            Column("card_number", ColumnType.TEXT),
            Column("nik", ColumnType.TEXT),
            Column("legal_name", ColumnType.TEXT),
            Column("birth_date", ColumnType.PAST_DATE),
            Column("phone", ColumnType.TEXT),
            Column("email", ColumnType.OPTIONAL_TEXT, in_header=False),
            Column("wave", ColumnType.ID),
            Column("accepted_on", ColumnType.PAST_DATE),
            membership,
        )
        self._staged = (
            Column("participant_id", ColumnType.ID),
            Column("card_number_hash", ColumnType.TEXT, max_len=64),
            Column("card_number_last4", ColumnType.TEXT, max_len=4),
            Column("nik_hash", ColumnType.TEXT, max_len=64),
            Column("nik_last4", ColumnType.TEXT, max_len=4),
            Column("legal_name", ColumnType.TEXT, max_len=200),
            Column("birth_date", ColumnType.PAST_DATE),
            Column("phone", ColumnType.TEXT, max_len=20),
            Column("email", ColumnType.OPTIONAL_TEXT, max_len=200),
            Column("wave", ColumnType.ID),
            Column("accepted_on", ColumnType.PAST_DATE),
            membership,
        )

    @property
    def staged_columns(self) -> tuple[Column, ...]:
        return self._staged

    def transform(self, today: date) -> RowTransform:
        return ParticipantIdentifiers(self._pii_key, today)

    def extra_row_checks(self) -> list[Check]:
        first_day = min(item.valid_from for item in self._rules.scheme_by_acceptance)
        return [
            ("s.birth_date > s.accepted_on", sql_text("date_order: birth_date after accepted_on")),
            (
                f"s.accepted_on < {sql_text(first_day.isoformat())}",
                sql_text("date_order: accepted_on before the programme"),
            ),
            ("s.email NOT LIKE '%_@_%'", sql_text("bad_value: email")),
        ]

    def reference_checks(self) -> list[Check]:
        return [
            ("p.nik_hash <> s.nik_hash", sql_text("participant_mismatch: nik")),
            ("p.card_number_hash <> s.card_number_hash", sql_text("participant_mismatch: card_number")),
            ("pn.id <> s.participant_id", sql_text("nik_taken")),
            ("pc.id <> s.participant_id", sql_text("card_number_taken")),
            ("pp.id <> s.participant_id", sql_text("phone_taken")),
        ]

    async def resolve(self, db: Backend, stage: str) -> None:
        """The scheme of each row, by the rules, from its acceptance date (a few thousand distinct dates at most:
        one UPDATE per run of consecutive dates under one scheme)."""
        days = sorted(as_date(day) for (day,) in await db.rows(f"SELECT DISTINCT accepted_on FROM {stage}"))
        runs: list[list[Any]] = []  # [scheme, first day, last day]
        for day in days:
            scheme = self._rules.scheme_for(day)
            if runs and runs[-1][0] == scheme:
                runs[-1][2] = day
            else:
                runs.append([scheme, day, day])
        for scheme, first, last in runs:
            await db.execute(
                f"UPDATE {stage} SET scheme = :scheme WHERE accepted_on BETWEEN :first AND :last",
                {"scheme": scheme, "first": db.date_value(first), "last": db.date_value(last)},
            )

    async def file_checks(self, db: Backend, stage: str) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        for column, name in (("nik_hash", "nik"), ("card_number_hash", "card_number"), ("phone", "phone")):
            rows = await db.rows(
                f"SELECT s.line, MIN(o.line) FROM {stage} AS s JOIN {stage} AS o "
                f"ON o.{column} = s.{column} AND o.line < s.line GROUP BY s.line"
            )
            found += [(int(line), f"duplicate: {name} as line {first}") for line, first in rows]
        return found

    async def apply(self, db: Backend, stage: str, source: EventSource) -> Applied:
        await _PARTICIPANTS.apply(db, stage, source)
        created = await db.scalar(f"SELECT COUNT(*) FROM {stage} WHERE action = 'created'")
        if created and db.name == "postgresql":
            # The ids are the programme's: the table's own sequence must not hand one out again.
            await db.execute(
                "SELECT setval(pg_get_serial_sequence('participants', 'id'), (SELECT MAX(id) FROM participants))"
            )
        return await rows_with_action(db, stage)


_PARTICIPANTS = Upsert(
    table="participants",
    alias="p",
    match="p.id = s.participant_id",
    entity_id="p.id",
    participant_id="p.id",
    facts=(*(Fact(fact) for fact in _PARTICIPANT_FACTS), Fact("email", optional=True)),
    inserted=(("id", "s.participant_id"), *((column, f"s.{column}") for column in _PARTICIPANT_COLUMNS)),
    snapshot=_PARTICIPANT_SNAPSHOT,
    event_value=_event_value,
)


_ACCOUNT_FACTS = ("channel", "account_last4", "holder_name", "active", "verified")


class PayoutAccountsImport(ImportSpec):
    kind = ImportKind.PAYOUT_ACCOUNTS
    key = ("participant_id",)
    work_columns = ", account_id INTEGER, action VARCHAR(8)"
    reference_joins = "LEFT JOIN participants AS p ON p.id = s.participant_id"
    columns = (
        Column("participant_id", ColumnType.ID),
        Column("channel", ColumnType.CHOICE, choices=tuple(PayoutChannel)),
        Column("account_number", ColumnType.TEXT),
        Column("holder_name", ColumnType.TEXT, max_len=200),
        Column("phone", ColumnType.OPTIONAL_TEXT, in_header=False),
        Column("active", ColumnType.BOOLEAN),
        Column("verified", ColumnType.BOOLEAN),
    )
    _staged = (
        *columns[:2],
        Column("account_last4", ColumnType.TEXT, max_len=4),
        columns[3],
        Column("phone", ColumnType.OPTIONAL_TEXT, max_len=20),
        *columns[5:],
    )

    @property
    def staged_columns(self) -> tuple[Column, ...]:
        return self._staged

    def transform(self, today: date) -> RowTransform:
        return PayoutAccountFields()

    def extra_row_checks(self) -> list[Check]:
        ewallets = ", ".join(sql_text(channel) for channel in PayoutChannel if channel.is_ewallet)
        # The e-wallet's phone must equal the Prakerja phone: without it the diagnosis cannot tell.
        return [(f"s.channel IN ({ewallets}) AND s.phone IS NULL", sql_text("missing: phone"))]

    def reference_checks(self) -> list[Check]:
        return [("p.id IS NULL", sql_text("unknown_participant"))]

    async def apply(self, db: Backend, stage: str, source: EventSource) -> Applied:
        await db.execute(
            f"UPDATE {stage} AS s SET account_id = a.id FROM payout_accounts AS a "
            "WHERE a.participant_id = s.participant_id"
        )
        await _PAYOUT_ACCOUNTS.apply(db, stage, source)
        return await rows_with_action(db, stage)


_ACCOUNT_COLUMNS = ("participant_id", "channel", "account_last4", "holder_name", "phone", "active", "verified")
_PAYOUT_ACCOUNTS = Upsert(
    table="payout_accounts",
    alias="a",
    match="a.id = s.account_id",  # found by participant before (one account each)
    entity_id="a.id",
    participant_id="a.participant_id",
    facts=(*(Fact(fact) for fact in _ACCOUNT_FACTS), Fact("phone", optional=True)),
    inserted=tuple((column, f"s.{column}") for column in _ACCOUNT_COLUMNS),
    snapshot=_ACCOUNT_COLUMNS,
    created_match="a.participant_id = s.participant_id",
    event_value=_event_value,
)
