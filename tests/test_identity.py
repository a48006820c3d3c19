"""NIK and card numbers, phone numbers, hashing and masking of personal data."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.identity import (
    IdentifierKind,
    InvalidIdentifier,
    Sex,
    classify_identifier,
    keyed_hash,
    mask_phone,
    normalize_phone,
    parse_birth_date,
    parse_nik,
    redact,
    redact_free_text,
    verify_keyed_hash,
)

TODAY = date(2026, 11, 23)


def test_nik_structure_and_the_plus_40_for_women() -> None:
    man = parse_nik("3273011708900001", today=TODAY)
    assert (man.province_code, man.birth_date, man.sex, man.last4) == (
        32,
        date(1990, 8, 17),
        Sex.MALE,
        "0001",
    )
    woman = parse_nik("3273 0157 0890 0002", today=TODAY)
    assert (woman.birth_date, woman.sex) == (date(1990, 8, 17), Sex.FEMALE)
    assert parse_nik("3171010101050003", today=TODAY).birth_date == date(2005, 1, 1)


@pytest.mark.parametrize(
    ("nik", "reason"),
    [
        ("327301170890001", "nik_length"),
        ("32730117089000012", "nik_length"),
        ("9973011708900001", "nik_province"),
        ("3273013202900001", "nik_birth_date"),  # 32 February
        ("3273017213900001", "nik_birth_date"),  # women: 72-40 = 32
        ("3273011708900000", "nik_serial"),
        ("3273011708a90001", "nik_length"),
    ],
)
def test_invalid_niks_are_refused_with_a_reason(nik: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier) as exc:
        parse_nik(nik, today=TODAY)
    assert exc.value.reason == reason


def test_a_card_number_is_told_apart_from_a_nik() -> None:
    assert classify_identifier("3273011708900001", today=TODAY) is IdentifierKind.NIK
    assert classify_identifier("8800000000000004", today=TODAY) is IdentifierKind.CARD_NUMBER
    assert classify_identifier("12345", today=TODAY) is IdentifierKind.INVALID


@pytest.mark.parametrize(
    "raw",
    [
        "081234567890",
        "6281234567890",
        "+6281234567890",
        "+62 812-3456-7890",
        "0812 3456 7890",
        "(0812)34567890",
    ],
)
def test_phone_numbers_normalise_to_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+6281234567890"


@pytest.mark.parametrize("raw", ["", "12", "+6581234567", "0221234567", "hello", "0812" * 20])
def test_bad_phone_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidIdentifier):
        normalize_phone(raw)


def test_keyed_hash_verifies_without_storing_the_nik() -> None:
    digest = keyed_hash("3273-0117-0890-0001", b"k1")
    assert "3273011708900001" not in digest and len(digest) == 64
    assert verify_keyed_hash("3273011708900001", b"k1", digest)
    assert not verify_keyed_hash("3273011708900001", b"k2", digest)
    assert not verify_keyed_hash("3273011708900002", b"k1", digest)


def test_masking() -> None:
    assert mask_phone("+6281234567890") == "+62812******90"
    text = redact("NIK saya 3273011708900001, hp 0812-3456-7890, tgl 17-08-1990")
    assert "3273011708900001" not in text and "0812-3456-7890" not in text
    assert text.endswith("tgl 17-08-1990")
    assert "0001" in text and "7890" in text


@given(st.text(max_size=300))
def test_redact_never_leaves_a_long_digit_run(text: str) -> None:
    digits_run = 0
    for ch in redact(text):
        digits_run = digits_run + 1 if ch.isascii() and ch.isdigit() else 0
        assert digits_run < 10


_MONTHS_ID = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
              "November", "Desember")  # fmt: skip


def written(day: date) -> list[str]:
    """A birth date the ways the identify step takes it (README: 17-08-1990, 17/08/1990, 1990-08-17, …)."""
    return [
        f"{day:%d-%m-%Y}",
        f"{day:%d/%m/%Y}",
        f"{day:%Y-%m-%d}",
        f"{day:%d.%m.%Y}",
        f"{day.day}-{day.month}-{day.year}",
        f"{day:%d %m %Y}",
        f"{day.day} {_MONTHS_ID[day.month - 1]} {day.year}",
        f"{day.day} {_MONTHS_ID[day.month - 1][:3].lower()} {day.year}",
    ]


@given(st.dates(date(1930, 1, 1), date(2010, 12, 31)))
def test_a_birth_date_in_free_text_is_masked_whichever_way_it_is_written(day: date) -> None:
    for form in written(day):
        assert parse_birth_date(form) == day, form  # a second-factor answer...
        kept = redact_free_text(f"kak lahir saya {form}, sertifikat kok belum muncul?")
        assert kept == "kak lahir saya [tanggal], sertifikat kok belum muncul?", form  # ...never kept


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("0004", "****"),
        ("nik saya 0004 kak", "nik saya **** kak"),
        ("4 digit terakhir NIK: 0004", "4 digit terakhir NIK: ****"),
        ("NIK 3273-0117-0895-0004 salah?", "NIK **************** salah?"),  # a whole NIK: its last 4 answer too
        ("hp 081234567890", "hp ********7890"),  # as `redact`: a phone keeps its last 4 for the agent
        ("insentif 2023 berapa", "insentif 2023 berapa"),  # ordinary questions keep their numbers
        ("skema 2020-2022 dapat 4 kali", "skema 2020-2022 dapat 4 kali"),
        ("jadwal saya 12-05-2099", "jadwal saya 12-05-2099"),  # no birth date: in the future
        ("Rp600.000 untuk 3 survei", "Rp600.000 untuk 3 survei"),
        ("modul 3 dari 10 selesai 2024", "modul 3 dari 10 selesai 2024"),
    ],
)
def test_free_text_keeps_what_is_not_a_second_factor(typed: str, kept: str) -> None:
    assert redact_free_text(typed) == kept


@given(st.text(max_size=200))
def test_free_text_redaction_is_at_least_redact(text: str) -> None:
    digits_run = 0
    for ch in redact_free_text(text):
        digits_run = digits_run + 1 if ch.isascii() and ch.isdigit() else 0
        assert digits_run < 10


@pytest.mark.parametrize(
    ("typed", "hidden"),
    [
        ("NIK 3273/0117/0895/0004", "3273/0117/0895"),
        ("hp (0812) 0000-0004", "(0812) 0000"),
        ("rekening 8800_0000_0000_0004", "8800_0000_0000"),
        ("kartu 8800.0000.0000.0004", "8800.0000.0000"),
        ("+62 (812) 0000 0004", "(812) 0000"),
    ],
)
def test_redact_masks_digit_runs_across_separators(typed: str, hidden: str) -> None:
    masked = redact(typed)
    assert hidden not in masked and masked.endswith("0004")
    assert sum(ch.isdigit() for ch in masked) == 4


@pytest.mark.parametrize(
    "typed",
    [
        "lahir 17/08/95",
        "tgl lahir 17-8-95 kak",
        "lahir 17 Agst 1995",
        "lahir 17 agustus 95",
        "tgl 17081995",
        "NIK 3273/0117/0895/0004",
        "nik saya (3273) 0117 0895 0004",
    ],
)
def test_second_factor_material_never_survives_free_text_redaction(typed: str) -> None:
    kept = redact_free_text(typed)
    assert "0004" not in kept and "17" not in kept and "95" not in kept, kept
