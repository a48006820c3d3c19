"""The per-row work on personal identifiers, done in the reading process (see `RowTransform`).

A NIK is checked for a NIK's structure and for the birth date it encodes, a Kartu Prakerja number for not being
a NIK; both leave this process only as a keyed hash and their last 4 digits. Phones become E.164. A reason never
holds the value it refuses: the report and the logs must not show a NIK, a card or a phone number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from core.identity import (
    IdentifierKind,
    InvalidIdentifier,
    NikInfo,
    classify_identifier,
    digits_only,
    keyed_hash,
    normalize_phone,
    parse_nik,
)
from core.imports.reading import Record, RowProblem, as_date

_SEPARATORS = str.maketrans("", "", " -.")  # what parse_nik lets a NIK be written with


def _nik(raw: str, birth_date: date | str, today: date) -> NikInfo:
    if not raw:
        raise RowProblem("missing: nik")
    try:
        info = parse_nik(raw, today=today)
    except InvalidIdentifier as exc:
        if classify_identifier(raw, today=today) is IdentifierKind.CARD_NUMBER:
            # 16 digits without a NIK's structure: a Kartu Prakerja number in the NIK column (or a mistyped NIK).
            raise RowProblem(f"card_number_as_nik: {exc.reason}") from None
        raise RowProblem(f"bad_nik: {exc.reason}") from None
    born, coded = as_date(birth_date), info.birth_date
    # The NIK holds the year's last two digits: the birth_date column tells the century.
    if (coded.day, coded.month, coded.year % 100) != (born.day, born.month, born.year % 100):
        raise RowProblem("nik_birth_date_mismatch: birth_date")
    return info


def _card_number(raw: str, today: date) -> str:
    if not raw:
        raise RowProblem("missing: card_number")
    digits = digits_only(raw)
    if len(digits) != 16 or len(raw.translate(_SEPARATORS)) != 16:
        raise RowProblem("bad_card_number: card_number")
    if classify_identifier(digits, today=today) is IdentifierKind.NIK:
        raise RowProblem("nik_as_card_number: card_number")
    return digits


def _phone(raw: str) -> str:
    try:
        return normalize_phone(raw)
    except InvalidIdentifier as exc:
        raise RowProblem(f"bad_phone: {exc.reason}") from None


@dataclass(frozen=True)
class ParticipantIdentifiers:
    """participant_id, card_number, nik, legal_name, birth_date, phone, email, wave, accepted_on, membership →
    participant_id, card_number_hash, card_number_last4, nik_hash, nik_last4, legal_name, birth_date, phone
    (E.164), email, wave, accepted_on, membership."""

    key: bytes = field(repr=False)  # PII_HASH_KEY: never in a log line or a traceback's repr
    today: date

    def __call__(self, record: Record) -> Record:
        participant_id, card, nik, name, birth_date, phone, email, wave, accepted_on, membership, line = record
        card_digits = _card_number(card, self.today)
        info = _nik(nik, birth_date, self.today)
        if not phone:
            raise RowProblem("missing: phone")
        return (
            participant_id,
            keyed_hash(card_digits, self.key),
            card_digits[-4:],
            keyed_hash(nik, self.key),
            info.last4,
            name,
            birth_date,
            _phone(phone),
            email,
            wave,
            accepted_on,
            membership,
            line,
        )


@dataclass(frozen=True)
class PayoutAccountFields:
    """participant_id, channel, account_number, holder_name, phone, active, verified → the same with the account
    number's last 4 digits only (nothing more of it is kept) and the phone, when given, in E.164."""

    def __call__(self, record: Record) -> Record:
        participant_id, channel, account_number, holder_name, phone, active, verified, line = record
        if not account_number:
            raise RowProblem("missing: account_number")
        digits = digits_only(account_number)
        if len(digits) < 4:
            raise RowProblem("bad_value: account_number")
        return (
            participant_id,
            channel,
            digits[-4:],
            holder_name,
            _phone(phone) if phone else phone,  # an empty optional value stays as the reader wrote it
            active,
            verified,
            line,
        )
