"""Knowledge gaps: what participants asked that the FAQ could not answer, grouped so the biggest holes come first.

A gap question is one the matcher had no answer for (kind "none") or whose answer the participant said did not
help. Questions are normalised (clean text, slang expanded, fillers dropped), exact repeats counted once, then
grouped greedily, most frequent first: a question joins the first group whose representative is similar enough
(rapidfuzz token-set ratio at or above the threshold, and not merely a few words contained in a much longer
question), otherwise it starts a new group.

Cost is bounded: when the period holds more than `sample_rows` such questions, a uniform random sample of that
many is grouped and the counts are scaled back up (the report says it is an estimate). Each question is compared
only with the groups that share one of its rarest words, so grouping is close to linear in the sample size.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rapidfuzz import fuzz, process
from sqlalchemy import false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.faq import Slang, clean_text
from core.identity import redact
from core.models import FaqAnswer

THRESHOLD = 75.0  # token-set ratio (0–100) from which two questions count as the same question
SAMPLE_ROWS = 20_000  # above this many questions in the period, group a random sample of this size
KEY_WORDS = 3  # a question is compared with the groups sharing one of its rarest words
MIN_SHARED = 0.5  # shared words ÷ words of the longer question, unless the two are near-identical strings
EXAMPLES = 3
PARTICLES = ("nya", "lah", "kah")

Normalise = Callable[[str], str]


@dataclass(frozen=True)
class Gap:
    representative: str  # the most frequent wording, as a participant wrote it
    count: int  # questions in the group (scaled up when the report is sampled)
    examples: list[str]  # other wordings, most frequent first
    nearest_faq: str | None  # the entry the matcher most often offered for them, if any


@dataclass(frozen=True)
class GapReport:
    start: datetime
    end: datetime
    total: int  # gap questions in the period
    analysed: int  # questions grouped (fewer than total when sampled)
    gaps: list[Gap] = field(default_factory=list)

    @property
    def sampled(self) -> bool:
        return self.analysed < self.total


def _without_particle(word: str) -> str:
    # "caranya", "bisakah": the enclitic changes nothing about what is asked.
    for particle in PARTICLES:
        if word.endswith(particle) and len(word) - len(particle) >= 3:
            return word[: -len(particle)]
    return word


def slang_normaliser(slang: Slang | None) -> Normalise:
    """clean_text, enclitics dropped, and the participant vocabulary: "sertif blm muncul kak" meets "sertifikat
    belum muncul"."""

    def normalise(text: str) -> str:
        words: list[str] = []
        for word in clean_text(text).split():
            if slang is None:
                words.append(_without_particle(word))
            elif word not in slang.fillers:
                words.extend(_without_particle(w) for w in slang.replacements.get(word, word).split())
        return " ".join(words)

    return normalise


@dataclass
class _Group:
    text: str  # normalised representative
    words: frozenset[str]
    count: int = 0
    wordings: Counter[str] = field(default_factory=Counter)  # as written (spaces collapsed)
    faqs: Counter[str] = field(default_factory=Counter)


def _same_question(words: frozenset[str], text: str, group: _Group, threshold: float) -> bool:
    shared = len(words & group.words) / max(len(words), len(group.words))
    # Token-set ratio is 100 for any subset: "sertifikat" must not swallow every question that mentions it.
    return shared >= MIN_SHARED or fuzz.token_sort_ratio(text, group.text) >= threshold


def group_questions(
    rows: Sequence[tuple[str, str | None]], normalise: Normalise = clean_text, threshold: float = THRESHOLD
) -> list[Gap]:
    """Group (question, offered faq id) rows; largest group first. Pure: the database part is `find_gaps`."""
    counts: Counter[str] = Counter()
    raw_counts: dict[str, Counter[str]] = defaultdict(Counter)
    faqs: dict[str, Counter[str]] = defaultdict(Counter)
    for question, faq_id in rows:
        text = normalise(question)
        if not text:
            continue
        counts[text] += 1
        raw_counts[text][" ".join(question.split())] += 1
        if faq_id:
            faqs[text][faq_id] += 1
    word_frequency: Counter[str] = Counter(w for text in counts for w in set(text.split()))

    groups: list[_Group] = []
    by_word: dict[str, list[int]] = defaultdict(list)
    for text, count in sorted(counts.items(), key=lambda pair: (-pair[1], pair[0])):
        words = frozenset(text.split())
        keys = sorted(words, key=lambda w: (word_frequency[w], w))[:KEY_WORDS]
        candidates = {index for w in keys for index in by_word.get(w, ())}
        target: _Group | None = None
        if candidates:
            choices = {index: groups[index].text for index in sorted(candidates)}
            for _, _, index in process.extract(
                text, choices, scorer=fuzz.token_set_ratio, score_cutoff=threshold, limit=5
            ):
                if _same_question(words, text, groups[index], threshold):
                    target = groups[index]
                    break
        if target is None:
            target = _Group(text, words)
            for w in words:
                by_word[w].append(len(groups))
            groups.append(target)
        target.count += count
        target.wordings.update(raw_counts[text])
        target.faqs.update(faqs[text])

    groups.sort(key=lambda g: (-g.count, g.text))
    gaps: list[Gap] = []
    for group in groups:
        representative = raw_counts[group.text].most_common(1)[0][0]
        # Examples that differ from what is already shown by more than case and punctuation.
        shown = {clean_text(representative)}
        examples: list[str] = []
        for raw, _ in group.wordings.most_common():
            if len(examples) < EXAMPLES and clean_text(raw) not in shown:
                shown.add(clean_text(raw))
                examples.append(raw)
        nearest = group.faqs.most_common(1)
        gaps.append(Gap(representative, group.count, examples, nearest[0][0] if nearest else None))
    return gaps


async def find_gaps(
    engine: AsyncEngine,
    start: datetime,
    end: datetime,
    *,
    normalise: Normalise = clean_text,
    limit: int = 10,
    sample_rows: int = SAMPLE_ROWS,
    threshold: float = THRESHOLD,
) -> GapReport:
    """The largest groups of unanswered or unhelpful questions asked in [start, end)."""
    # SQLite compares the stored UTC wall time as text: the bounds must be UTC too.
    where = (
        FaqAnswer.asked_at >= start.astimezone(UTC),
        FaqAnswer.asked_at < end.astimezone(UTC),
        or_(FaqAnswer.kind == "none", FaqAnswer.helpful == false()),
    )
    async with engine.connect() as conn:
        total = int(await conn.scalar(select(func.count()).select_from(FaqAnswer).where(*where)) or 0)
        stmt = select(FaqAnswer.question, FaqAnswer.faq_id).where(*where)
        if total > sample_rows:
            # random() exists on SQLite and PostgreSQL; the database picks the sample, only it travels.
            stmt = stmt.order_by(func.random()).limit(sample_rows)
        # Questions are stored redacted; redacting again costs little and keeps any other writer's slip out of
        # the admins' chat.
        rows = [(redact(str(q)), f) for q, f in (await conn.execute(stmt)).all()]
    # About a second of CPU for a full sample: kept off the event loop that serves participants.
    gaps = (await asyncio.to_thread(group_questions, rows, normalise, threshold))[:limit]
    if rows and total > len(rows):
        scale = total / len(rows)
        gaps = [Gap(g.representative, round(g.count * scale), g.examples, g.nearest_faq) for g in gaps]
    return GapReport(start, end, total, len(rows), gaps)
