"""Is the name printed on a certificate (or used at the institution) the participant's legal name?

Case, spacing, punctuation and academic titles ("S.Kom", "Hj.") never count as a difference; a different person's
name does. Judged with rapidfuzz on normalised names, the threshold from `rules.yaml`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz import fuzz

from core.rules import NameMatch

_NON_LETTERS = re.compile(r"[^a-z\s]")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class NameCheck:
    legal_name: str
    other_name: str
    score: float
    matches: bool


def normalize_name(name: str, titles: frozenset[str]) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    # Titles are matched on comma/space separated tokens, with and without their dots ("S.Kom" / "SKom").
    tokens = [token.strip(" .") for token in re.split(r"[,\s]+", text)]
    kept = [t for t in tokens if t and t not in titles and t.replace(".", "") not in titles]
    cleaned = _NON_LETTERS.sub(" ", " ".join(kept))
    return _SPACES.sub(" ", cleaned).strip()


def compare_names(legal_name: str, other_name: str, rules: NameMatch) -> NameCheck:
    titles = frozenset(t.lower() for t in rules.titles)
    a, b = normalize_name(legal_name, titles), normalize_name(other_name, titles)
    # Spaces do not count ("Nur Aini" = "Nuraini"): compare the joined letters too and take the better score.
    score = max(fuzz.token_sort_ratio(a, b), fuzz.ratio(a.replace(" ", ""), b.replace(" ", "")))
    return NameCheck(legal_name, other_name, round(score, 1), bool(a) and score >= rules.threshold)
