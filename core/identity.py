"""Personal identifiers: NIK and Kartu Prakerja numbers, phone numbers, and how we keep them safe.

A NIK is never stored readable: we keep a keyed hash (to verify what a participant types) and the last 4 digits
(to show a masked form to agents). Phone numbers are normalised to E.164 so that every input form compares equal.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

import phonenumbers

# Province codes (Kemendagri) that open a NIK; the Papua codes include the 2022 new provinces.
PROVINCE_CODES = frozenset(
    {11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53, 61, 62, 63, 64, 65}
    | {71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96}
)

_NON_DIGITS = re.compile(r"\D")


class InvalidIdentifier(ValueError):
    """Raised with a reason code a front end can turn into a sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


@dataclass(frozen=True)
class NikInfo:
    province_code: int
    birth_date: date
    sex: Sex
    last4: str


class IdentifierKind(StrEnum):
    NIK = "nik"
    CARD_NUMBER = "card_number"
    INVALID = "invalid"


def digits_only(text: str) -> str:
    return _NON_DIGITS.sub("", text)


def parse_nik(raw: str, *, today: date | None = None) -> NikInfo:
    """Validate a NIK's structure: 16 digits, a real province, a real birth date (day +40 for women)."""
    nik = digits_only(raw)
    if len(nik) != 16 or len(raw.strip().replace(" ", "").replace("-", "").replace(".", "")) != 16:
        raise InvalidIdentifier("nik_length")
    province = int(nik[:2])
    if province not in PROVINCE_CODES:
        raise InvalidIdentifier("nik_province")
    if nik[2:4] == "00" or nik[4:6] == "00":
        raise InvalidIdentifier("nik_region")
    day, month, yy = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    sex = Sex.FEMALE if day > 40 else Sex.MALE
    if sex is Sex.FEMALE:
        day -= 40
    today = today or date.today()
    # Two-digit year: the most recent century that does not put the birth in the future.
    year = 2000 + yy if 2000 + yy <= today.year else 1900 + yy
    try:
        born = date(year, month, day)
    except ValueError as exc:
        raise InvalidIdentifier("nik_birth_date") from exc
    if born > today:
        raise InvalidIdentifier("nik_birth_date")
    if nik[12:] == "0000":
        raise InvalidIdentifier("nik_serial")
    return NikInfo(province_code=province, birth_date=born, sex=sex, last4=nik[12:])


def classify_identifier(raw: str, *, today: date | None = None) -> IdentifierKind:
    """Tell a NIK from a Kartu Prakerja number: both are 16 digits, only a NIK has the NIK structure."""
    digits = digits_only(raw)
    if len(digits) != 16:
        return IdentifierKind.INVALID
    try:
        parse_nik(digits, today=today)
    except InvalidIdentifier:
        return IdentifierKind.CARD_NUMBER
    return IdentifierKind.NIK


def keyed_hash(secret: str, key: bytes) -> str:
    """HMAC-SHA256 of a digits-only identifier: verifiable, not reversible without the key."""
    return hmac.new(key, digits_only(secret).encode(), hashlib.sha256).hexdigest()


def verify_keyed_hash(secret: str, key: bytes, expected: str) -> bool:
    return hmac.compare_digest(keyed_hash(secret, key), expected)


def normalize_phone(raw: str) -> str:
    """Indonesian mobile number in E.164 (+628…), from 08…, 628…, +62 8…, with any spacing or dashes."""
    text = raw.strip()
    if not text or len(text) > 32:
        raise InvalidIdentifier("phone_format")
    if text.startswith("62"):
        text = "+" + text
    try:
        number = phonenumbers.parse(text, "ID")
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentifier("phone_format") from exc
    if number.country_code != 62 or not phonenumbers.is_valid_number(number):
        raise InvalidIdentifier("phone_format")
    if phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise InvalidIdentifier("phone_not_mobile")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str) -> str:
    """+6281234567890 → +62812******90: enough for a person to recognise, useless to anyone else."""
    if len(e164) < 8:
        return "*" * len(e164)
    return e164[:6] + "*" * (len(e164) - 8) + e164[-2:]


def mask_nik_last4(last4: str) -> str:
    return "*" * 12 + last4


# Digits joined by the separators people write numbers with: "3273/0117/0895/0004", "(0812) 0000-0004",
# "8800_0000_0000_0004". Unbounded: a longer run must be masked too, not skipped because it outgrew a length cap.
_SECRET_DIGITS = re.compile(r"(?<!\d)(\+?\(?\d[\d\s./()_-]*\d)")


def redact(text: str) -> str:
    """Mask every run of 10+ digits (NIKs, card and phone numbers) in free text before it is logged."""

    def _mask(match: re.Match[str]) -> str:
        digits = digits_only(match.group(1))
        if len(digits) < 10:
            return match.group(0)
        return "*" * (len(digits) - 4) + digits[-4:]

    return _SECRET_DIGITS.sub(_mask, text)


_MONTHS = {
    **dict.fromkeys(("januari", "jan", "january"), 1),
    **dict.fromkeys(("februari", "feb", "pebruari", "february"), 2),
    **dict.fromkeys(("maret", "mar", "march"), 3),
    **dict.fromkeys(("april", "apr"), 4),
    **dict.fromkeys(("mei", "may"), 5),
    **dict.fromkeys(("juni", "jun", "june"), 6),
    **dict.fromkeys(("juli", "jul", "july"), 7),
    **dict.fromkeys(("agustus", "agu", "agt", "ags", "agst", "agus", "agust", "aug", "august"), 8),
    **dict.fromkeys(("september", "sep", "sept", "spt"), 9),
    **dict.fromkeys(("oktober", "okt", "oct", "october"), 10),
    **dict.fromkeys(("november", "nov", "nop", "nopember"), 11),
    **dict.fromkeys(("desember", "des", "dec", "december"), 12),
}
_NUMERIC_DATE = re.compile(r"^\s*(\d{1,4})\s*[-/.\s]\s*(\d{1,2})\s*[-/.\s]\s*(\d{1,4})\s*$")
_WORD_DATE = re.compile(r"^\s*(\d{1,2})\s+([a-zA-Z]+)\.?\s+(\d{4}|\d{2})\s*$")
_COMPACT_DATE = re.compile(r"^\s*(\d{8})\s*$")  # 17081995 (or 19950817)


# Date-shaped spans inside free text; `parse_birth_date` decides whether each is a date the identify flow accepts.
_DATE_IN_TEXT = re.compile(
    r"(?<![\d/.-])(\d{1,4}[ \t]*[-/.][ \t]*\d{1,2}[ \t]*[-/.][ \t]*\d{1,4}"
    r"|\d{1,2}[ \t]+\d{1,2}[ \t]+\d{4}|\d{1,2}[ \t]+[a-zA-Z]+\.?[ \t]+(?:\d{4}|\d{2})|\d{8})(?![\d/-]|\.\d)"
)
_NIK_LAST4 = re.compile(r"(\bnik\b[^\d\n]{0,30})(\d{4})(?!\d)", re.IGNORECASE)
_ONLY_4_DIGITS = re.compile(r"^\s*\d{4}\s*$")
_ANY_DIGIT = re.compile(r"\d")  # every pattern below needs one: most messages have none and skip four scans
MASKED_DATE = "[tanggal]"


def redact_free_text(text: str) -> str:
    """What a participant typed, fit to store or show an agent: `redact` plus what answers the second factor —
    any date the identify flow would take as a birth date, a whole NIK (its last 4 digits are one), the 4 digits
    after "NIK", a message of just 4 digits. Other numbers stay: "insentif 2023 berapa" must still read as a
    question."""
    if not _ANY_DIGIT.search(text):
        return text
    if _ONLY_4_DIGITS.match(text):
        return "****"
    text = _DATE_IN_TEXT.sub(lambda m: MASKED_DATE if parse_birth_date(m.group(1)) else m.group(0), text)
    text = _SECRET_DIGITS.sub(_mask_whole_nik, text)
    text = _NIK_LAST4.sub(lambda m: m.group(1) + "****", text)
    return redact(text)


def _mask_whole_nik(match: re.Match[str]) -> str:
    digits = digits_only(match.group(1))
    return "*" * 16 if classify_identifier(digits) is IdentifierKind.NIK else match.group(0)


def parse_birth_date(text: str, *, today: date | None = None) -> date | None:
    """A birth date written any usual way: 17-08-1990, 17/08/1990, 17.08.1990, 1990-08-17, 17 Agustus 1990,
    17 Agst 90, 17-8-95, 17081995. A two-digit year is the latest century that does not put the birth ahead."""
    if len(text) > 40:
        return None
    today = today or date.today()
    day = month = year = 0
    if match := _NUMERIC_DATE.match(text):
        a, b, c = match.groups()
        if len(a) == 4:
            year, month, day = int(a), int(b), int(c)
        elif len(c) in (2, 4) and len(a) <= 2:
            day, month, year = int(a), int(b), _full_year(c, today)
        else:
            return None
    elif match := _WORD_DATE.match(text):
        month = _MONTHS.get(match.group(2).lower(), 0)
        day, year = int(match.group(1)), _full_year(match.group(3), today)
    elif match := _COMPACT_DATE.match(text):
        digits = match.group(1)
        # Day first is how Indonesians write dates; year first only when that reading is no date at all.
        return _valid_birth_date(int(digits[4:]), int(digits[2:4]), int(digits[:2]), today) or _valid_birth_date(
            int(digits[:4]), int(digits[4:6]), int(digits[6:]), today
        )
    else:
        return None
    return _valid_birth_date(year, month, day, today)


def _full_year(written: str, today: date) -> int:
    if len(written) != 2:
        return int(written)
    year = 2000 + int(written)
    return year if year <= today.year else year - 100


def _valid_birth_date(year: int, month: int, day: int, today: date) -> date | None:
    try:
        born = date(year, month, day)
    except ValueError:
        return None
    return born if date(1900, 1, 1) <= born <= today else None


# Words around a date in an answer: "tgl lahir 17-08-1995", "lahir 17 agustus 1995 kak".
_FILLER = re.compile(
    r"\b(?:tgl|tanggal|tangal|lahir|lhr|ttl|tl|saya|sy|aku|ku|kak|ka|kakak|min|mimin|gan|pak|bu|mas|mbak|ya|yah|"
    r"yaa|nih|ini|itu|adalah|di|pada|tahun|thn|date|of|birth|my|is|born|on)\b[:.,]?",
    re.IGNORECASE,
)


def find_birth_date(text: str, *, today: date | None = None) -> date | None:
    """The birth date in a second-factor answer, also with the words people put around it; None if the answer
    holds anything else (a question is not an answer)."""
    if len(text) > 80:
        return None
    if (born := parse_birth_date(text, today=today)) is not None:
        return born
    stripped = _FILLER.sub(" ", text).strip(" \t.,!?:;-🙏")
    return parse_birth_date(stripped, today=today) if stripped and stripped != text.strip() else None
