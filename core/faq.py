"""Which FAQ entry a participant's free-text question is about.

Participants write "sertif blm nongol2 gmn kak": slang, typos, stretched letters, no punctuation. Both the
question and every paraphrase in `knowledge/faq.yaml` go through the same normalisation (slang list, affix
stripping against the paraphrase vocabulary, typo correction), then each entry is scored by a blend of
IDF-weighted keyword evidence and rapidfuzz similarity to its closest paraphrase. Off-topic questions are caught
by a low score or by a closer match to the "off_topic" examples in the FAQ file.
"""

from __future__ import annotations

import heapq
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from core.faq_entries import FaqEntry, read_document
from core.paths import knowledge_dir, read_yaml

MatchKind = Literal["answer", "suggest", "none"]

# Decision thresholds on the 0–100 score, chosen with `bench/faq_eval.py --sweep` on the dev set, the held-out
# set (tests/faq_heldout.jsonl) and the real messages' dev part: 20 is best on real_dev (78% against 75% at 24)
# and within one question of the best on the others; off-topic questions there score at most ~16 unless they share
# a word with an FAQ. At 40 with a 6-point lead about 90% of on-topic
# questions are answered directly and ~1% of them wrongly; the rest get "did you mean".
SUGGEST_SCORE = 20.0  # below: no FAQ answers this (off-topic); an agent is offered instead
ANSWER_SCORE = 40.0  # at or above, with the margin below: confident enough to answer directly
ANSWER_MARGIN = 6.0  # points the best entry must lead the second by to answer without asking
# A question must also say enough to be answered without asking: its known words must weigh at least this many
# "words only one entry uses". A lone common word ("insentif", "sertifikat") gets choices, not a guess.
MIN_ANSWER_EVIDENCE = 0.8

# Blend of the three signals (each 0–1) into the score; see _Index.score.
WEIGHT_PARAPHRASE = 0.60  # IDF-weighted overlap with the single closest paraphrase
WEIGHT_ENTRY = 0.20  # IDF-weighted vote of each question word for the entries that use it
WEIGHT_FUZZ = 0.20  # rapidfuzz token similarity to the closest paraphrase (order, partial words)
# How much the paraphrase's words missing from the question count against it, relative to the question's own
# words missing from the paraphrase (questions are often shorter than paraphrases).
PARAPHRASE_EXTRA_PENALTY = 0.35
# A long message is measured against the paraphrase as if it weighed at most this many "words only one entry uses":
# the story around a question must not dilute the words it shares with the paraphrase.
LONG_QUESTION_CAP = 6.0
# A word the FAQ never uses weighs this fraction of the rarest known word: it dilutes the evidence, which is what
# makes "resep nasi goreng" or "cuaca jakarta" score low.
UNKNOWN_WORD_WEIGHT = 1.0

# A Telegram message may be 4,096 characters; a question is in its first few sentences, and a cap keeps the cost
# of one match bounded whatever is pasted.
MAX_QUESTION_CHARS = 400
MAX_QUESTION_WORDS = 40
RERANK_ENTRIES = 8  # entries scored in full, picked by the cheap keyword vote
SHORTLIST_POSTINGS = 48  # per word, the entries it votes for most, when shortlisting
CANDIDATES_KEPT = 5

OFF_TOPIC_ID = "_off_topic"
FRUSTRATION_ID = "frustration"
# A term is the frustration entry's (a mood word) when at least this share of its vote goes to that entry.
AFFECT_VOTE_SHARE = 0.5
# Without its mood words a frustrated message must still weigh this many "words only one entry uses" to be answered
# about its concrete problem ("sertifikat belum muncul" does, "prakerja" alone does not).
MIN_CONCRETE_EVIDENCE = 1.0
# ... and its concrete entry must have scored, with them, at least this share of the frustration entry's score: a
# message that is mostly mood ("pelayanan prakerja lambat sekali", 83 against helpdesk_info's 50) stays frustration.
CONCRETE_SHARE_OF_MOOD = 0.65
# Two entries within this many points whose paraphrases report a problem (a `not_done` word) in shares at least
# PROBLEM_SHARE_GAP apart: the one that fits the message (reports a problem or not) comes first (see
# FaqMatcher._problem_or_question).
PROBLEM_TIE_POINTS = 10.0
# ... when the first scores at least this: below it the message hardly names the subject, and on real_dev its
# negations ("enggaknya gelombang baru", "tidak ditemukan gelombang") swapped next_wave for selection_result.
PROBLEM_TIE_MIN_SCORE = 35.0
PROBLEM_SHARE_GAP = 0.4
MIN_ROOT_LENGTH = 4

# Every prefix and suffix combination is tried; the shortest root the FAQ knows wins (see _Normalizer).
_PREFIXES: tuple[str, ...] = (
    "memper", "diper", "meng", "meny", "peng", "peny", "mem", "men", "pem", "pen", "per", "ber", "ter",
    "di", "ke", "ku", "me", "pe", "be",
)  # fmt: skip
# Nasal prefixes swallow the root's first consonant: meng+kirim = mengirim, meny+sambung = menyambung.
_RECODE = {"meng": "k", "peng": "k", "meny": "s", "peny": "s", "mem": "p", "pem": "p", "men": "t", "pen": "t"}
# Before a vowel these always swallowed a consonant (memakai = pakai, menulis = tulis, menyapu = sapu); meng-/peng-
# may not have (mengambil = ambil, mengirim = kirim).
_SWALLOWING = frozenset({"meny", "peny", "mem", "pem", "men", "pen"})
_PARTICLES = ("lah", "kah", "pun")
_POSSESSIVES = ("nya", "ku", "mu")
_DERIVATIONAL = ("kan", "an", "i", "ed", "ing")

# Spoken Indonesian drops the prefix but keeps its nasal: nambah (tambah), mikir (pikir), nyelesaiin (selesaiin); a
# paraphrase may hold either form (nonton / tonton). The typo search may change a first letter only this way.
_NASAL_START: dict[str, tuple[str, ...]] = {
    "ng": ("k",), "ny": ("s", "c"), "n": ("t",), "m": ("p",), "t": ("n",), "p": ("m",), "k": ("n",), "s": ("n",),
    "c": ("n",),
}  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]")
_APOSTROPHE = re.compile(r"['’`]")
_HYPHEN_REDUP = re.compile(r"\b(\w+)-\1\b")  # abu-abu, hari-hari
_HYPHEN = re.compile(r"(?<=\w)-(?=\w)")  # e-wallet, post-test
_NUMBER_REDUP = re.compile(r"\b([^\W\d_]{2,})2\b")  # nongol2, hari2
_NON_WORD = re.compile(r"[\W_]+")
_LONG_RUN = re.compile(r"(\w)\1{2,}")  # bangeeet, sertiiif
_DOUBLE = re.compile(r"(\w)\1")


@dataclass(frozen=True)
class Slang:
    """The participant vocabulary from `knowledge/slang.yaml`."""

    phrases: dict[str, str]
    replacements: dict[str, str]
    fillers: frozenset[str]
    keep: frozenset[str]
    small_talk: dict[str, frozenset[str]] = field(default_factory=dict)  # FAQ id → its words, in preference order
    small_talk_company: frozenset[str] = frozenset()  # words that may stand beside small talk (forms of address)
    asks: frozenset[str] = frozenset()  # a part of a message with one of these asks or complains
    done: frozenset[str] = frozenset()  # ... with one of these (and no not_done word) reports something done
    not_done: frozenset[str] = frozenset()
    requests: frozenset[str] = frozenset()  # besides asks / not_done, words that make a message a request or complaint
    direct: frozenset[str] = frozenset()  # a long message needs one of these (or "?") to be answered directly
    negations: frozenset[str] = frozenset()  # report a problem only before a `status` word (see _is_statement)
    status: frozenset[str] = frozenset()
    mood: frozenset[str] = frozenset()  # words or phrases that say "I am fed up" (kecewa, penipuan, putus asa)


@dataclass(frozen=True)
class Candidate:
    faq_id: str
    score: float  # 0–100


@dataclass(frozen=True)
class MatchResult:
    """The matcher's verdict: answer the best entry, suggest the top few, or none (off-topic)."""

    kind: MatchKind
    candidates: list[Candidate]  # best first; present even for "none" so admins can see the near misses
    normalized: str  # the question as the matcher understood it, for admin testing
    # Another request in the same message (a different entry, from another part of it), offered as a button.
    second: Candidate | None = None
    # "none" for a message that asks nothing and reports no problem (an opinion, a story): thanked, not told it
    # was not understood.
    statement: bool = False
    # The message is also fed up ("penipuan ya??") about the concrete problem it names: the reply says sorry first.
    frustrated: bool = False

    @property
    def faq_id(self) -> str | None:
        """The best entry, unless the question is off-topic."""
        return self.candidates[0].faq_id if self.kind != "none" and self.candidates else None

    @property
    def score(self) -> float:
        return self.candidates[0].score if self.candidates else 0.0

    def top(self, n: int = 3) -> list[Candidate]:
        return self.candidates[:n]


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def parse_faq_entries(data: Mapping[str, Any]) -> list[FaqEntry]:
    """Entries from the parsed FAQ document (the `faqs:` list), through the one entry reader (core.faq_entries)."""
    return read_document(data)


def load_faq(path: Path | None = None) -> list[FaqEntry]:
    return parse_faq_entries(_read_yaml(path or knowledge_dir() / "faq.yaml"))


def load_off_topic(path: Path | None = None) -> list[str]:
    """Example questions the FAQ must not answer (the `off_topic:` list of the FAQ file)."""
    return [str(q) for q in _read_yaml(path or knowledge_dir() / "faq.yaml").get("off_topic") or []]


def load_slang(path: Path | None = None) -> Slang:
    data = _read_yaml(path or knowledge_dir() / "slang.yaml")

    def words(key: str) -> frozenset[str]:
        return frozenset(str(w).lower() for w in data.get(key) or [])

    small_talk = {
        str(faq_id): frozenset(w for item in items or [] for w in str(item).lower().split())
        for faq_id, items in (data.get("small_talk") or {}).items()
    }
    return Slang(
        phrases={str(k).lower(): str(v).lower() for k, v in (data.get("phrases") or {}).items()},
        replacements={str(k).lower(): str(v).lower() for k, v in (data.get("replacements") or {}).items()},
        fillers=words("fillers"),
        keep=words("keep"),
        small_talk=small_talk,
        small_talk_company=words("small_talk_company"),
        asks=words("asks"),
        done=words("done"),
        not_done=words("not_done"),
        requests=words("requests"),
        direct=words("direct"),
        negations=words("negations"),
        status=words("status"),
        mood=words("mood"),
    )


def clean_text(text: str) -> str:
    """Lowercase letters, digits and single spaces; emoji, punctuation and control characters gone."""
    if len(text) > MAX_QUESTION_CHARS:
        head = text[:MAX_QUESTION_CHARS]
        text = head.rsplit(" ", 1)[0] if " " in head else head  # don't leave half a word
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _CONTROL.sub(" ", text)
    text = _APOSTROPHE.sub("", text)
    text = _HYPHEN_REDUP.sub(r"\1", text)
    text = _HYPHEN.sub("", text)
    text = _NUMBER_REDUP.sub(r"\1", text)
    text = _NON_WORD.sub(" ", text)
    # Stretched letters shrink to two; _Normalizer tries one if two is not a word ("bangeet" → "banget").
    text = _LONG_RUN.sub(r"\1\1", text)
    return " ".join(text.split()[:MAX_QUESTION_WORDS])


def _affix_candidates(word: str) -> set[str]:
    """Possible roots of an Indonesian (or English) word: affixes stripped, nasal prefixes undone."""
    bases = {word}
    for group in (_PARTICLES, _POSSESSIVES, _DERIVATIONAL):
        bases |= {b[: -len(s)] for b in bases for s in group if b.endswith(s) and len(b) - len(s) >= 3}
    found = set(bases)
    for base in bases:
        for prefix in _PREFIXES:
            if base.startswith(prefix) and len(base) - len(prefix) >= 3:
                rest = base[len(prefix) :]
                if prefix in _RECODE and rest[0] in "aiueo":
                    found.add(_RECODE[prefix] + rest)
                    if prefix in _SWALLOWING:
                        continue  # men+erima is menerima = terima: no root "erima"
                found.add(rest)
    found.discard(word)
    return {c for c in found if len(c) >= MIN_ROOT_LENGTH}


class _Normalizer:
    """Turns text into canonical terms; its vocabulary is the words of the paraphrases."""

    def __init__(self, slang: Slang, paraphrase_words: Iterable[str]) -> None:
        self.slang = slang
        self._phrase_re = (
            re.compile(r"\b(" + "|".join(re.escape(p) for p in sorted(slang.phrases, key=len, reverse=True)) + r")\b")
            if slang.phrases
            else None
        )
        vocab = set(paraphrase_words)
        # A root counts if the FAQ uses it, or if two different FAQ words share it (sambungkan, sambungan).
        producers: Counter[str] = Counter()
        for word in vocab - slang.keep:
            producers.update(_affix_candidates(word))
        roots = vocab | {c for c, n in producers.items() if n >= 2}
        # "-nya" never changes the word: "sistemnya" in a paraphrase makes "sistem" a root too. (Not "-lah" or "-ku":
        # sekolah, masalah, waktu.)
        roots |= {w[:-3] for w in vocab - slang.keep if w.endswith("nya") and len(w) - 3 >= MIN_ROOT_LENGTH}
        self._vocab = vocab
        self._producers = producers
        self.canonical: dict[str, str] = {}
        for word in roots:
            self.canonical[word] = self._root(word, roots)
        by_start: dict[tuple[str, int], list[str]] = defaultdict(list)
        # Sorted, so that a typo equally close to two words is corrected the same way in every process (a set's
        # order changes with the hash seed).
        for word in sorted(vocab):
            if word.isalpha():
                by_start[word[0], len(word)].append(word)
        self._by_start = dict(by_start)

    def _root(self, word: str, roots: set[str]) -> str:
        if word in self.slang.keep or word.isdigit():
            return word
        options = [c for c in _affix_candidates(word) if c in roots]
        return min(options, key=self._preference) if options else word

    def _preference(self, root: str) -> tuple[int, bool, int, str]:
        """The shortest root wins; of two as short, a word the FAQ itself uses, then the one more FAQ words share
        (menerima, penerima, diterima: "terima", not "nerima")."""
        return len(root), root not in self._vocab, -self._producers[root], root

    def expand(self, word: str, depth: int = 0) -> list[str]:
        """Slang replacement (followed through chains), fillers dropped."""
        if word in self.slang.fillers:
            return []
        replacement = self.slang.replacements.get(word)
        if replacement is None or replacement == word or depth > 3:
            return [word]
        return [w for part in replacement.split() for w in self.expand(part, depth + 1)]

    def words(self, text: str) -> list[str]:
        """Cleaned words with phrases joined and slang expanded; paraphrases stop here."""
        cleaned = clean_text(text)
        if self._phrase_re is not None:
            cleaned = self._phrase_re.sub(lambda m: self.slang.phrases[m.group(1)], cleaned)
        return [w for token in cleaned.split() for w in self.expand(self._unstretched(token))]

    def _unstretched(self, token: str) -> str:
        # "kakk", "yaa", "sertiif": doubled letters hide a filler or slang word; real words ("maaf") are listed.
        if token in self.slang.fillers or token in self.slang.replacements:
            return token
        single = _DOUBLE.sub(r"\1", token)
        return single if single in self.slang.fillers or single in self.slang.replacements else token

    def term(self, word: str) -> tuple[str, bool]:
        """The canonical term for a word and whether the FAQ knows it."""
        known = self.canonical.get(word)
        if known is not None:
            return known, True
        single = _DOUBLE.sub(r"\1", word)
        if single != word:
            for w in self.expand(single) or [single]:
                if w in self.canonical:
                    return self.canonical[w], True
        options = [c for c in _affix_candidates(word) if c in self.canonical]
        if options:
            return self.canonical[min(options, key=self._preference)], True
        fixed = self._typo(word)
        if fixed is not None:
            return self.canonical[fixed], True
        return word, False

    def _typo(self, word: str) -> str | None:
        # Short words are too easily another word ("resep"/"reset"), so only longer ones get corrected.
        if not word.isalpha() or len(word) < 6:
            return None
        max_edits = 2 if len(word) >= 9 else 1
        # A typo rarely hits the first letter ("sayang" is not "magang"); spoken nasal forms do: nambah = tambah.
        starts = [word[0], *_NASAL_START.get(word[:2], _NASAL_START.get(word[0], ()))]
        best: tuple[int, str] | None = None
        for length in range(len(word) - max_edits, len(word) + max_edits + 1):
            for start in starts:
                bucket = self._by_start.get((start, length))
                if not bucket:
                    continue
                found = process.extractOne(word, bucket, scorer=OSA.distance, score_cutoff=max_edits)
                if found is not None and (best is None or found[1] < best[0]):
                    best = (int(found[1]), found[0])
        return best[1] if best else None

    def terms(self, text: str, memo: dict[str, tuple[str, bool]] | None = None) -> tuple[list[str], list[str]]:
        """(known terms, unknown words) of a question, in order, without repeats. `memo` keeps each word's term for
        the parts of the same message (the typo search is the costly step)."""
        known: dict[str, None] = {}
        unknown: dict[str, None] = {}
        for word in self.words(text):
            found = memo.get(word) if memo is not None else None
            if found is None:
                found = self.term(word)
                if memo is not None:
                    memo[word] = found
            term, is_known = found
            if is_known:
                known[term] = None
            elif not word.isdigit():
                unknown[term] = None
        return list(known), list(unknown)


@dataclass(frozen=True)
class _Paraphrase:
    terms: frozenset[str]
    weight: float  # sum of its terms' weights
    text: str  # canonical terms joined, for rapidfuzz


@dataclass(frozen=True)
class _Scores:
    candidates: list[Candidate]  # best first, the off-topic class included
    normalized: str
    evidence: float  # the known words' weight, in words-only-one-entry-uses


class _Index:
    """Everything precomputed from one set of entries; replaced whole on rebuild."""

    def __init__(self, entries: Sequence[FaqEntry], slang: Slang, off_topic: Sequence[str]) -> None:
        self.ids = [e.id for e in entries] + ([OFF_TOPIC_ID] if off_topic else [])
        texts = [[p for items in e.paraphrases.values() for p in items] for e in entries]
        if off_topic:
            texts.append(list(off_topic))
        slang_only = _Normalizer(slang, ())
        words_per_entry = [[slang_only.words(p) for p in group] for group in texts]
        self.normalizer = _Normalizer(slang, (w for group in words_per_entry for ws in group for w in ws))
        canonical = self.normalizer.canonical
        term_sets = [[frozenset(canonical[w] for w in ws) for ws in group] for group in words_per_entry]

        n_entries = max(len(self.ids), 1)
        doc_freq: Counter[str] = Counter(t for group in term_sets for t in frozenset().union(*group))
        self.weights = {t: math.log(1 + n_entries / df) for t, df in doc_freq.items()}
        self.rarest_weight = math.log(1 + n_entries)  # a word only one entry uses
        self.unknown_weight = UNKNOWN_WORD_WEIGHT * self.rarest_weight

        # Each term votes for entries in proportion to how often (per paraphrase) each uses it.
        share: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for index, group in enumerate(term_sets):
            if not group:
                continue
            counts = Counter(t for terms in group for t in terms)
            for term, count in counts.items():
                share[term].append((index, count / len(group)))
        self.votes: dict[str, dict[int, float]] = {}
        self.strongest_votes: dict[str, list[tuple[int, float]]] = {}
        for term, pairs in share.items():
            total = sum(f for _, f in pairs)
            normalised = sorted(((i, f / total) for i, f in pairs), key=lambda pair: pair[1], reverse=True)
            self.votes[term] = dict(normalised)
            self.strongest_votes[term] = normalised[:SHORTLIST_POSTINGS]

        # Per entry, the share of its paraphrases that report a problem (belum, gagal...): see _problem_or_question.
        self.problem_share = {
            self.ids[index]: sum(any(w in slang.not_done for w in ws) for ws in group) / len(group)
            for index, group in enumerate(words_per_entry)
            if group
        }
        # The words that mostly say "I am fed up" (kecewa, penipuan, php, sabar...): see FaqMatcher.match.
        frustration = self.ids.index(FRUSTRATION_ID) if FRUSTRATION_ID in self.ids else -1
        self.affect_terms = frozenset(
            t for t, v in self.votes.items() if v.get(frustration, 0.0) >= AFFECT_VOTE_SHARE and frustration >= 0
        )

        self.paraphrases = [
            [
                _Paraphrase(terms, sum(self.weights[t] for t in terms), " ".join(sorted(terms)))
                for terms in group
                if terms
            ]
            for group in term_sets
        ]
        self.paraphrase_texts = [[para.text for para in group] for group in self.paraphrases]
        # Per entry, which of its paraphrases use each term: only those sharing a word with the question are scored.
        self.postings: list[dict[str, list[int]]] = []
        for paraphrases in self.paraphrases:
            postings: dict[str, list[int]] = defaultdict(list)
            for number, para in enumerate(paraphrases):
                for term in para.terms:
                    postings[term].append(number)
            self.postings.append(dict(postings))

    def score(
        self, question: str, memo: dict[str, tuple[str, bool]] | None = None, without: frozenset[str] = frozenset()
    ) -> _Scores:
        """The entries closest to the question; `without`: known terms left out (the frustration entry's words)."""
        known, unknown = self.normalizer.terms(question, memo)
        if without:
            known = [t for t in known if t not in without]
        normalized = " ".join(known + unknown)
        weights = {t: self.weights.get(t, 0.0) for t in known}
        total = sum(weights.values()) + self.unknown_weight * len(unknown)
        if not known or total <= 0:
            return _Scores([], normalized, 0.0)
        evidence = sum(weights.values()) / self.rarest_weight

        # Shortlist from each term's strongest entries only (a common word's long tail cannot win), then the
        # full vote for the shortlisted entries.
        rough: dict[int, float] = defaultdict(float)
        for term, weight in weights.items():
            for index, share in self.strongest_votes.get(term, ()):
                rough[index] += weight * share
        shortlist = heapq.nlargest(RERANK_ENTRIES, rough, key=rough.__getitem__)
        vote = {i: sum(w * self.votes.get(t, {}).get(i, 0.0) for t, w in weights.items()) for i in shortlist}

        question_text = " ".join(sorted(known))
        capped = min(total, LONG_QUESTION_CAP * self.rarest_weight)
        coverage = sum(weights.values()) / total  # unknown words dilute the fuzzy signal as they do the others
        scored: list[Candidate] = []
        for index in shortlist:
            shared_by: dict[int, float] = defaultdict(float)
            postings = self.postings[index]
            for term, weight in weights.items():
                for number in postings.get(term, ()):
                    shared_by[number] += weight
            paraphrases = self.paraphrases[index]
            best_overlap = max(
                (
                    shared / (capped + PARAPHRASE_EXTRA_PENALTY * (paraphrases[number].weight - shared))
                    for number, shared in shared_by.items()
                ),
                default=0.0,
            )
            # Both sides are sorted canonical terms, so plain ratio is token_sort_ratio without re-sorting.
            closest = process.extractOne(question_text, self.paraphrase_texts[index], scorer=fuzz.ratio)
            best_fuzz = closest[1] / 100 if closest is not None else 0.0
            value = (
                WEIGHT_PARAPHRASE * best_overlap
                + WEIGHT_ENTRY * vote[index] / total
                + WEIGHT_FUZZ * best_fuzz * coverage
            )
            scored.append(Candidate(self.ids[index], round(100 * value, 1)))
        scored.sort(key=lambda c: c.score, reverse=True)
        return _Scores(scored, normalized, evidence)


class FaqMatcher:
    """Matches free-text questions to FAQ entries. Safe on any input; rebuilt in place when admins edit FAQs."""

    def __init__(self, entries: Sequence[FaqEntry], slang: Slang, off_topic: Sequence[str] = ()) -> None:
        self._slang = slang
        self._off_topic = list(off_topic)
        self._index, self._small_talk_ids = self._build(entries)

    @classmethod
    def from_knowledge(cls, directory: Path | None = None) -> FaqMatcher:
        """The matcher over the FAQ and slang files in `knowledge/` (or another directory)."""
        directory = directory or knowledge_dir()
        faq_path = directory / "faq.yaml"
        return cls(load_faq(faq_path), load_slang(directory / "slang.yaml"), load_off_topic(faq_path))

    def rebuild(self, entries: Sequence[FaqEntry], off_topic: Sequence[str] | None = None) -> None:
        """Swap in a new set of entries (the off-topic examples stay unless given)."""
        if off_topic is not None:
            self._off_topic = list(off_topic)
        # Built aside and swapped in one assignment, so a concurrent match sees the old or the new index.
        self._index, self._small_talk_ids = self._build(entries)

    def _build(self, entries: Sequence[FaqEntry]) -> tuple[_Index, frozenset[str]]:
        """The index, without the small-talk entries: those are reached by their word lists only (their
        paraphrases, "baik", "siap", "sudah beres", would otherwise match inside real questions)."""
        talk = frozenset(e.id for e in entries if e.id in self._slang.small_talk)
        return _Index([e for e in entries if e.id not in talk], self._slang, self._off_topic), talk

    @property
    def faq_ids(self) -> list[str]:
        return [i for i in self._index.ids if i != OFF_TOPIC_ID] + sorted(self._small_talk_ids)

    def match(self, question: str) -> MatchResult:
        text = question if isinstance(question, str) else ""
        index = self._index
        talk = _small_talk(text, self._slang)
        if talk is not None and talk in self._small_talk_ids:
            return MatchResult("answer", [Candidate(talk, 100.0)], talk)
        memo: dict[str, tuple[str, bool]] = {}
        scores, ranked, evidence, best_part, parts = self._ranked(index, text, memo)
        if any(i == FRUSTRATION_ID for i, _ in ranked[:2]) and index.affect_terms:
            # Frustration is a mood, not a topic: "udah seminggu sertifikat belum juga muncul, penipuan ya??" is
            # answered about the certificate (the bot says sorry first, and the status flow follows), if what is
            # left of the message without the mood's words still names a subject of its own.
            mood = dict(ranked)[FRUSTRATION_ID]
            plain = self._ranked(index, text, memo, index.affect_terms)
            concrete = [(i, v) for i, v in plain[1] if i != FRUSTRATION_ID]
            if (
                concrete
                and concrete[0][0] != OFF_TOPIC_ID
                and concrete[0][1] >= SUGGEST_SCORE
                and plain[2] >= MIN_CONCRETE_EVIDENCE
                and dict(ranked).get(concrete[0][0], 0.0) >= CONCRETE_SHARE_OF_MOOD * mood
            ):
                scores, ranked, evidence, best_part, parts = plain[0], concrete, plain[2], plain[3], plain[4]
        off_topic_first = bool(ranked) and ranked[0][0] == OFF_TOPIC_ID
        candidates = [Candidate(i, v) for i, v in ranked if i != OFF_TOPIC_ID][:CANDIDATES_KEPT]
        candidates = self._problem_or_question(index, text, candidates)
        kind = _decide(candidates, off_topic_first, evidence)
        if kind != "none" and scores.candidates and scores.candidates[0].faq_id == OFF_TOPIC_ID:
            # The message as a whole reads most like an off-topic example: one clause of it may offer its entry
            # but not answer for the whole ("...formalitas saja. Aku tidak mendapatkan manfaat lebih.").
            kind = "suggest" if candidates[0].score >= ANSWER_SCORE else "none"
        if kind == "answer" and not _asks_or_pending(text, self._slang):
            kind = "suggest"  # a story or an opinion: its entry is a choice at most
        if kind == "suggest" and candidates[0].score < STATEMENT_MAX_SCORE and _is_statement(text, self._slang):
            kind = "none"  # an opinion or a story: choices would answer a question nobody asked
        second = None
        if kind == "answer" and parts:
            # Only from another part of the message, and itself strong enough to be answered directly.
            main_part = best_part.get(candidates[0].faq_id, -1)
            second = next(
                (
                    c
                    for c in candidates[1:]
                    if c.score >= ANSWER_SCORE
                    and best_part.get(c.faq_id, -1) not in (-1, main_part)
                    and c.faq_id not in self._slang.small_talk
                ),
                None,
            )
        statement = kind == "none" and _is_statement(text, self._slang)
        # Sorry first when a message answered about its problem also says it is fed up (a `mood` word): whether
        # the concrete entry won outright or only once the mood's words were set aside above.
        frustrated = kind != "none" and candidates[0].faq_id != FRUSTRATION_ID and self._fed_up(index, text)
        return MatchResult(kind, candidates, scores.normalized, second, statement, frustrated)

    def _fed_up(self, index: _Index, text: str) -> bool:
        if not self._slang.mood:
            return False
        words = f" {' '.join(index.normalizer.words(text))} "
        return any(f" {mood} " in words for mood in self._slang.mood)

    def _problem_or_question(self, index: _Index, text: str, candidates: list[Candidate]) -> list[Candidate]:
        """A near tie between an entry about a problem and one about a plain question on the same subject
        (incentive_not_received / incentive_schedule: "insentifnya kapan masuk" against "insentif belum masuk") is
        decided by whether the message reports a problem (belum, gagal, tidak...): the entry whose paraphrases do so
        as the message does takes the first place and its score (the two swap scores; no score is made up)."""
        if (
            len(candidates) < 2
            or candidates[0].score < PROBLEM_TIE_MIN_SCORE
            or candidates[0].score - candidates[1].score > PROBLEM_TIE_POINTS
        ):
            return candidates
        first, second = candidates[0], candidates[1]
        shares = index.problem_share.get(first.faq_id, 0.0), index.problem_share.get(second.faq_id, 0.0)
        if abs(shares[0] - shares[1]) < PROBLEM_SHARE_GAP:
            return candidates
        words = index.normalizer.words(text)
        reports = any(w in self._slang.not_done or _DOUBLE.sub(r"\1", w) in self._slang.not_done for w in words)
        if (shares[1] > shares[0]) != reports:
            return candidates
        return [Candidate(second.faq_id, first.score), Candidate(first.faq_id, second.score), *candidates[2:]]

    def _ranked(
        self, index: _Index, text: str, memo: dict[str, tuple[str, bool]], without: frozenset[str] = frozenset()
    ) -> tuple[_Scores, list[tuple[str, float]], float, dict[str, int], list[tuple[str, float]]]:
        """The whole message's scores; every entry's best score over the message and its parts, best first; the
        evidence; which part each entry's best came from; the parts."""
        scores = index.score(text, memo, without)
        merged: dict[str, float] = {c.faq_id: c.score for c in scores.candidates}
        evidence = scores.evidence
        # Long messages: each part is scored on its own too, weighted by whether it asks or complains; an entry's
        # score is its best. A greeting or a story around the question no longer dilutes it.
        parts = _parts(text, self._slang) if len(scores.normalized.split()) >= MIN_WORDS_TO_SEGMENT else []
        best_part: dict[str, int] = {}
        for number, (part, weight) in enumerate(parts):
            part_scores = index.score(part, memo, without)
            if part_scores.candidates and weight >= 1.0:
                evidence = max(evidence, part_scores.evidence)
            damp = min(1.0, part_scores.evidence / PART_FULL_EVIDENCE)
            for c in part_scores.candidates:
                value = round(c.score * weight * damp, 1)
                if value > merged.get(c.faq_id, 0.0):
                    merged[c.faq_id] = value
                    best_part[c.faq_id] = number
        ranked = sorted(merged.items(), key=lambda pair: pair[1], reverse=True)
        return scores, ranked, evidence, best_part, parts

    def top(self, question: str, n: int = 5) -> list[Candidate]:
        """The best n entries with their scores, whatever the verdict (for the admin's "test a question")."""
        return self.match(question).top(n)


# Segmenting long messages (see FaqMatcher.match).
MIN_WORDS_TO_SEGMENT = 7  # known and unknown words of the whole message
MAX_PARTS = 4
MIN_PART_WORDS = 3
PART_WEIGHT_ASKS = 1.0  # a part with a question or complaint word
PART_WEIGHT_TELLS = 0.85  # a plain statement
PART_WEIGHT_DONE = 0.6  # something reported done ("sertifikat sudah diterima"): rarely what is asked about
# A part counts fully only when its known words weigh this many "words only one entry uses": a bare "enggak bisa"
# or "sampai sekarang belum" must not outvote the part that names the subject.
PART_FULL_EVIDENCE = 2.5
_PART_SPLIT = re.compile(
    r"[.!?;\n…]+|,|\s-\s|\b(?:tapi|tp|tetapi|namun|padahal|pdhl|sedangkan|malah|kemudian|lalu)\b",
    re.IGNORECASE,
)


def _parts(text: str, slang: Slang) -> list[tuple[str, float]]:
    """The message's clauses with their weights: a clause that asks or complains counts fully. At most MAX_PARTS:
    the asking ones first, then the latest (the question and the newest status usually come last)."""
    head = text[:MAX_QUESTION_CHARS]
    pieces: list[tuple[str, str]] = []  # (clause, the punctuation or word that ended it)
    start = 0
    for found in _PART_SPLIT.finditer(head):
        pieces.append((head[start : found.start()], found.group()))
        start = found.end()
    pieces.append((head[start:], ""))
    # A clause of one or two words ("masih proses", "enggak bisa") says too little alone: it joins the one before.
    merged: list[tuple[str, str]] = []
    for raw, end in pieces:
        if merged and len(clean_text(raw).split()) < MIN_PART_WORDS:
            before, joint = merged[-1]
            merged[-1] = (f"{before} {joint} {raw}", joint + end)  # a "?" before the joint still asks
        else:
            merged.append((raw, end))
    pieces = merged
    parts: list[tuple[int, str, float]] = []
    for position, (raw, end) in enumerate(pieces):
        words = clean_text(raw).split()
        if len(words) < 2:
            continue
        vocabulary = set(words)
        if "?" in end or vocabulary & slang.asks:
            weight = PART_WEIGHT_ASKS
        elif vocabulary & slang.done and not vocabulary & slang.not_done:
            weight = PART_WEIGHT_DONE
        else:
            weight = PART_WEIGHT_TELLS
        parts.append((position, raw, weight))
    if len(parts) < 2:
        return []
    kept = sorted(parts, key=lambda part: (part[2], part[0]), reverse=True)[:MAX_PARTS]
    return [(raw, weight) for _, raw, weight in sorted(kept)]


# A long message that asks nothing and reports no problem is an opinion or a story, not a request (see _is_statement).
# Both numbers were chosen on real_dev and real_blind (the figures are in the commit that added them).
MIN_STATEMENT_WORDS = 8
STATEMENT_MAX_SCORE = 35.0  # at or above this, a story that names its subject plainly still gets its choices


def _is_statement(text: str, slang: Slang) -> bool:
    """True for a message of several sentences' length with no "?", no question or request word and no word that
    reports a problem (belum, gagal, susah, ditolak, padahal...): "Program ini berguna, saya ambil pelatihan
    kemarin itu untuk penjualan online". Participants with a problem say so, even without a question mark. A bare
    negation reports a problem only before a status word (tidak bisa, gak muncul, belum masuk, tidak lolos): "tidak
    lebih dari", "tidak menaruh harapan", "tidak mau jemput bola" are how opinions and stories are told."""
    words = clean_text(text).split()
    if len(words) < MIN_STATEMENT_WORDS or "?" in text[:MAX_QUESTION_CHARS]:
        return False
    cues = (slang.asks | slang.not_done | slang.requests) - slang.negations
    for position, word in enumerate(words):
        if word in cues or word.endswith("kah"):
            return False
        if word in slang.negations and any(
            after in slang.status or _DOUBLE.sub(r"\1", after) in slang.status
            for after in words[position + 1 : position + 3]
        ):
            return False
    return True


# From this length a message must ask or report an open problem to be answered directly (see _asks_or_pending).
# Shorter chat messages ("nomer hp ilang, mau ganti nomor di prakerja", 8 words) are requests even without a
# question word; every message of the dev and held-out sets has fewer than 20 words.
MIN_DIRECT_GUARD_WORDS = 20
_CANNOT = re.compile(r"\b(?:tidak|tak|gak|ga|gk|nggak|ngga|enggak|engga|tdk|ndak|kagak) (?:bisa|bs|dapat|dpt)\b")


def _asks_or_pending(text: str, slang: Slang) -> bool:
    """Whether a message may be answered directly: short, or it asks ("?", a question or request word) or reports
    a problem still open (belum, masih, "tidak bisa"). A negation alone does not do: stories and opinions have them
    ("di gelombang ini saya gagal karena kuota sudah penuh" after "saya mendapatkan kartu di gelombang 10")."""
    cleaned = clean_text(text)
    words = cleaned.split()
    if len(words) < MIN_DIRECT_GUARD_WORDS or "?" in text[:MAX_QUESTION_CHARS] or not slang.direct:
        return True
    return any(w in slang.direct or w.endswith("kah") for w in words) or _CANNOT.search(cleaned) is not None


def _small_talk(text: str, slang: Slang) -> str | None:
    """The small-talk entry a message is, if it is nothing else: a greeting, thanks, yes or no (and forms of
    address); or thanks beside statements of things done ("sertifikat udah muncul kak, makasih ya")."""
    if not slang.small_talk:
        return None
    words = clean_text(text).replace("terima kasih", "terimakasih").split()  # "terima" alone is "receive"
    if not words or len(words) > 12:
        return None
    talk_words = frozenset().union(*slang.small_talk.values())
    known = talk_words | slang.small_talk_company
    words = [w if w in known else _DOUBLE.sub(r"\1", w) for w in words]  # "makasihh", "okee"
    if all(w in talk_words or w in slang.small_talk_company for w in words):
        counts = {faq_id: sum(w in vocab for w in words) for faq_id, vocab in slang.small_talk.items()}
        best = max(counts.values())
        return next((faq_id for faq_id, n in counts.items() if n == best), None) if best else None
    thanks = slang.small_talk.get("thanks", frozenset())
    if any(w in thanks for w in words):
        others = [p for p in _PART_SPLIT.split(text) if clean_text(p)]
        asks = "?" in text or any(set(clean_text(p).split()) & (slang.asks | slang.not_done) for p in others)
        if not asks:
            return "thanks"
    return None


def _decide(candidates: Sequence[Candidate], off_topic_first: bool, evidence: float) -> MatchKind:
    if off_topic_first or not candidates or candidates[0].score < SUGGEST_SCORE:
        return "none"
    best = candidates[0].score
    runner_up = candidates[1].score if len(candidates) > 1 else 0.0
    if best >= ANSWER_SCORE and best - runner_up >= ANSWER_MARGIN and evidence >= MIN_ANSWER_EVIDENCE:
        return "answer"
    return "suggest"
