"""Is the name printed on a certificate (or used at the institution, or on the payout account) the participant's
legal name?

Case, spacing, punctuation, word order and titles never count as a difference, nor does a typo; another person's
name does. Titles and thresholds come from `rules.yaml` (`name_match`).

Titles are recognised where Indonesian names carry them: honorifics before the name ("Hj.", "Prof. Dr. Ir. H.",
"drg."), and degrees after it, with or without a comma, written with dots and spaces in any of the usual ways
("S.Kom", "S. Kom", "S.I.Kom", "S.Tr.Kom", "S.Pd.I", "A.Md.Kep", "Amd.Kep", "M.Kes"). Degrees are matched by their
shape (head, infix, field, ending) on the letters alone, so a new combination of known parts needs no new entry.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz
from rapidfuzz.distance import DamerauLevenshtein

from core.rules import NameMatch

_NOT_LETTER = re.compile(r"[^a-z]")
_SEPARATOR = re.compile(r"[^a-z.,]+")  # hyphens, digits and other punctuation separate words like spaces
_LONGEST_TITLE = 4  # words: "A. Md. Kep." is the longest spaced-out title seen


@dataclass(frozen=True)
class NameCheck:
    legal_name: str
    other_name: str
    score: float  # how alike the normalised letters are, 0–100 (rapidfuzz's ratio), for people to read
    matches: bool


def _letters(words: Sequence[str]) -> str:
    return _NOT_LETTER.sub("", "".join(words))


def _alternatives(words: Sequence[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


class _Titles:
    """The title grammar of one `name_match` section."""

    def __init__(self, rules: NameMatch) -> None:
        d = rules.degrees
        degree = f"(?:{_alternatives(d.heads)})"
        if d.infixes:
            degree += f"(?:{_alternatives(d.infixes)})?"
        degree += f"(?:{_alternatives(d.fields)})"
        if d.endings:
            degree += f"(?:{_alternatives(d.endings)})?"
        if d.whole:
            degree = f"(?:{degree}|{_alternatives(d.whole)})"
        self.degrees = re.compile(f"(?:{degree})+")  # "S.Kom.M.Kom" in one word is two degrees
        self.before = frozenset(rules.before_name)
        self.after = frozenset(rules.after_name)

    def is_honorific(self, word: str) -> bool:
        """ "Hj.", "dr.", "Prof.Dr." — every dotted piece an honorific."""
        pieces = [p for p in word.split(".") if p]
        return bool(pieces) and all(p in self.before for p in pieces)

    def is_degree(self, words: Sequence[str]) -> bool:
        """ "S.Kom" or "S. Kom": a listed undotted title, or a dotted run whose letters have a degree's shape. A
        run of several words must be spaced-out pieces ("S." "Kom"): every word but the last ends with a dot, so a
        name never merges into the title after it ("Siti S.Kom" is not S.I.T.I.S.Kom)."""
        letters = _letters(words)
        if letters in self.after:
            return True
        if not all(w.endswith(".") for w in words[:-1]) or not any("." in w for w in words):
            return False
        return self.degrees.fullmatch(letters) is not None


@lru_cache(maxsize=8)
def _titles(rules: NameMatch) -> _Titles:
    return _Titles(rules)


def _drop_titles_after(words: list[str], titles: _Titles) -> list[str]:
    """Titles at the end of the name, shortest run first; the first word always stays."""
    stripped = True
    while stripped:
        stripped = False
        for size in range(1, min(_LONGEST_TITLE, len(words) - 1) + 1):
            if titles.is_degree(words[-size:]):
                del words[-size:]
                stripped = True
                break
    return words


def _names_after_comma(words: list[str], titles: _Titles) -> list[str]:
    """After a comma come titles ("Siti Nurhaliza, S. Kom, M.Kes"), and rarely a name ("Nurhaliza, Siti")."""
    kept: list[str] = []
    i = 0
    while i < len(words):
        for size in range(min(_LONGEST_TITLE, len(words) - i), 0, -1):
            run = words[i : i + size]
            if titles.is_degree(run) or (size == 1 and titles.is_honorific(run[0])):
                i += size
                break
        else:
            kept.append(words[i])
            i += 1
    return kept


def normalize_name(name: str, rules: NameMatch) -> str:
    """Lower-case ASCII letters, one space between words, titles removed."""
    return " ".join(_normalized_words(name, _titles(rules)))


# A look-up compares the legal name with the payout account's holder and each training's printed name, usually
# the same string: it is normalised once. Keyed by the title grammar object, which hashes by identity.
@lru_cache(maxsize=4096)
def _normalized_words(name: str, titles: _Titles) -> tuple[str, ...]:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    text = _SEPARATOR.sub(" ", text.replace("'", "").replace("`", ""))  # Ma'ruf is Maruf
    main, *after_commas = text.split(",")
    words = [w for w in main.split() if _letters([w])]
    while len(words) > 1 and titles.is_honorific(words[0]):
        del words[0]
    words = _drop_titles_after(words, titles)
    for part in after_commas:
        words += _names_after_comma([w for w in part.split() if _letters([w])], titles)
    return tuple(_letters([w]) for w in words)


def compare_names(legal_name: str, other_name: str, rules: NameMatch) -> NameCheck:
    """Same person when the letters are `threshold` % alike (long names) or at most `typos` edits apart (short
    names, where one typo is already a large share) — so one typo is judged alike in a name of any length."""
    titles = _titles(rules)
    a, b = _normalized_words(legal_name, titles), _normalized_words(other_name, titles)
    if not a or not b:
        return NameCheck(legal_name, other_name, 0.0, False)
    # Spaces and word order do not count ("Nur Aini" = "Nuraini", "Aini Nur"): as written, and with sorted words.
    pairs = (("".join(a), "".join(b)), ("".join(sorted(a)), "".join(sorted(b))))
    score = max(fuzz.ratio(x, y) for x, y in pairs)
    edits = min(DamerauLevenshtein.distance(x, y) for x, y in pairs)
    return NameCheck(legal_name, other_name, round(score, 1), score >= rules.threshold or edits <= rules.typos)
