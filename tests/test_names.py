"""Name comparison: titles in every way Indonesians write them, typos judged alike at any length, other people not."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from core.names import compare_names, normalize_name
from core.rules import default_rules

RULES = default_rules().name_match
LEGAL = "Siti Nurhaliza"


@pytest.mark.parametrize(
    "written",
    [
        "Siti Nurhaliza, S. Kom",  # a space inside the title
        "Siti Nurhaliza, S.Kom.",
        "Siti Nurhaliza S.Kom",
        "Siti Nurhaliza SKom",
        "Siti Nurhaliza, S Kom",
        "Siti Nurhaliza, A.Md.Kom",
        "Siti Nurhaliza, A. Md. Kep.",
        "Siti Nurhaliza, Amd.Kep",
        "Siti Nurhaliza, A.Md",
        "Siti Nurhaliza, S.Tr.Kom",
        "Siti Nurhaliza, S.I.Kom",
        "Siti Nurhaliza, S.IKom",
        "Siti Nurhaliza, S.Pd.I",
        "Siti Nurhaliza, S.Pd., M.Pd.",
        "Siti Nurhaliza, M.Kes",
        "Siti Nurhaliza, S.Kes",
        "Siti Nurhaliza, S.Ds",
        "Siti Nurhaliza, S.Gz",
        "Siti Nurhaliza, S.E., M.M.",
        "Siti Nurhaliza, S.H., M.H.",
        "Siti Nurhaliza, S.T., M.T.",
        "Siti Nurhaliza, Sp.OG",
        "Siti Nurhaliza, B.Sc., MBA",
        "Siti Nurhaliza, Ph.D.",
        "Siti Nurhaliza, Lc.",
        "drg. Siti Nurhaliza",
        "drg Siti Nurhaliza",
        "dr. Siti Nurhaliza, Sp.A",
        "Hj. Siti Nurhaliza",
        "Prof. Dr. Ir. Hj. Siti Nurhaliza, S.Kom., M.Kom.",
        "Prof.Dr. Siti Nurhaliza",
        "SITI NURHALIZA",
        "siti  nurhaliza",
        "Siti Nur Haliza",
        "Nurhaliza, Siti",
        "Sitī Nurhalizá",
    ],
)
def test_titles_case_spacing_and_accents_never_count(written: str) -> None:
    check = compare_names(LEGAL, written, RULES)
    assert check.matches, (written, normalize_name(written, RULES))


@pytest.mark.parametrize(
    ("legal", "other"),
    [
        ("Siti Nurhaliza", "Dewi Lestari"),
        ("Siti Nurhaliza", "Siti Nurhayati"),
        ("Siti Nurhaliza", "Siti"),
        ("Siti Nurhaliza", "Siti Nurhaliza Putri"),
        ("Siti Nurhaliza", "Siti Aminah, S.Kom"),
        ("Siti Nurhaliza", "dr. Siti Rahmawati"),
        ("Budi Santoso", "Budi Susanto"),
        ("Budi Santoso", "Budi Hartono"),
        ("Muhammad Rizky Pratama", "Muhammad Rizky Pratomo"),
        ("Kartika Sari", "Tika Permata"),
        ("Ahmad Fauzi", "Ahmad Fauzan Hidayat"),
        ("Siti Nurhaliza", "S.Kom"),
    ],
)
def test_another_persons_name_is_a_mismatch(legal: str, other: str) -> None:
    assert not compare_names(legal, other, RULES).matches
    assert not compare_names(other, legal, RULES).matches


@pytest.mark.parametrize(
    ("legal", "other"),
    [
        ("Rizki", "Rizky"),
        ("Budi Santoso", "Budi Santosa"),
        ("Santoso", "Santosa"),
        ("Siti Nurhaliza", "Siti Nurhalizah"),
        ("Nur Aini", "Nuraini"),
        ("Rizki", "Rikzi"),  # two letters swapped
        ("Muhammad Rizky Pratama", "Muhamad Rizki Pratama"),
        ("Ma'ruf Amin", "Maruf Amin"),
    ],
)
def test_one_typo_passes_in_short_and_long_names(legal: str, other: str) -> None:
    assert compare_names(legal, other, RULES).matches


def test_titles_are_not_taken_out_of_names_that_look_like_them() -> None:
    # Without a dot, "Mei" is a name, not M.E.I; "Siti" is not S.I.T.I; a dotted initial stays in the name.
    assert normalize_name("Siti Mei", RULES) == "siti mei"
    assert normalize_name("Rudi S. Hartono", RULES) == "rudi s hartono"
    assert normalize_name("Nurhaliza, Siti S.Kom", RULES) == "nurhaliza siti"
    assert not compare_names("Siti Nurhaliza", "Siti Nurhaliza Mei", RULES).matches
    assert normalize_name("H.", RULES) == "h"  # a name is never all title


def test_an_empty_name_never_matches() -> None:
    assert not compare_names("Siti Nurhaliza", "", RULES).matches
    assert not compare_names("", "", RULES).matches


# --- properties -------------------------------------------------------------------------------------------------------
_TITLE_WORDS = set(RULES.before_name) | set(RULES.after_name)
word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=12).filter(lambda w: w not in _TITLE_WORDS)
names = st.lists(word, min_size=1, max_size=4).map(" ".join)


@st.composite
def one_typo(draw: st.DrawFn, name: str) -> str:
    """`name` with one wrong, missing, extra or swapped letter (never touching the spaces)."""
    positions = [i for i, c in enumerate(name) if c != " "]
    i = draw(st.sampled_from(positions))
    letter = draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz"))
    kind = draw(st.sampled_from(["wrong", "missing", "extra", "swapped"]))
    if kind == "wrong":
        return name[:i] + letter + name[i + 1 :]
    if kind == "missing":
        return name[:i] + name[i + 1 :]
    if kind == "extra":
        return name[:i] + letter + name[i:]
    if i + 1 < len(name) and name[i + 1] != " ":
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    return name


@given(st.data(), names)
def test_one_typo_is_the_same_person_whatever_the_length(data: st.DataObject, name: str) -> None:
    typo = data.draw(one_typo(name))
    assume(all(len(w) >= 2 and w not in _TITLE_WORDS for w in typo.split()))
    check = compare_names(name, typo, RULES)
    assert check.matches, (name, typo, check.score)


_DEGREES = [
    "S.Kom",
    "S. Kom",
    "S.I.Kom",
    "S.Tr.Kom",
    "S.Pd.I",
    "M.Kes",
    "A.Md.Kep",
    "Amd.Kep",
    "S.Ds",
    "S.Gz",
    "M.B.A",
    "S.E.",
    "SE",
]
_HONORIFICS = ["dr.", "drg.", "Ir.", "H.", "Hj.", "Prof. Dr.", "Dr."]


@given(
    names,
    st.lists(st.sampled_from(_HONORIFICS), max_size=2),
    st.lists(st.sampled_from(_DEGREES), max_size=3),
    st.booleans(),
)
def test_any_titles_around_a_name_never_count(name: str, before: list[str], after: list[str], comma: bool) -> None:
    titled = " ".join([*before, name.upper()])
    if after:
        titled += (", " if comma else " ") + (", " if comma else " ").join(after)
    assert normalize_name(titled, RULES) == normalize_name(name, RULES)
    assert compare_names(name, titled, RULES).matches


@given(names, names)
def test_the_verdict_does_not_depend_on_which_name_is_the_legal_one(a: str, b: str) -> None:
    assert compare_names(a, b, RULES).matches == compare_names(b, a, RULES).matches
