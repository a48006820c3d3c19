"""Which matching technique wins on held-out real messages: the measurement behind core/faq.py's design.

    python bench/faq_techniques.py [--quick]

Compares, on the same entries and sets as bench/faq_eval.py (real, official, held-out):
  matcher      core/faq.py as shipped (slang, affix stripping against the FAQ's own vocabulary, IDF + rapidfuzz,
               long messages scored part by part)
  +sastrawi    the same matcher, every word of paraphrases and questions first stemmed by Sastrawi (if installed)
  char-ngrams  TF-IDF over character 3–5-grams of the cleaned text, nearest paraphrase by cosine
  naive-bayes  a multinomial naive Bayes classifier trained on the paraphrases (words + character 4-grams)
  wratio       rapidfuzz extractOne with WRatio on raw text (the baseline)
Each technique answers "none" below its own cutoff, chosen as the best top-1 on the held-out set (not on the real
set). Ends with one JSON line of top-1 figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from rapidfuzz import fuzz, process

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from faq_eval import Question, read_questions  # noqa: E402

from core.faq import FaqMatcher, clean_text, load_faq, load_off_topic, load_slang  # noqa: E402
from core.faq_entries import FaqEntry  # noqa: E402

Ranker = Callable[[str], list[tuple[str, float]]]  # question → (entry id, score) best first


def paraphrase_pairs(entries: Sequence[FaqEntry]) -> list[tuple[str, str]]:
    return [(e.id, p) for e in entries for items in e.paraphrases.values() for p in items]


def char_ngram_ranker(entries: Sequence[FaqEntry]) -> Ranker:
    pairs = paraphrase_pairs(entries)

    def grams(text: str) -> Counter[str]:
        padded = f" {clean_text(text)} "
        return Counter(padded[i : i + n] for n in (3, 4, 5) for i in range(len(padded) - n + 1))

    docs = [grams(p) for _, p in pairs]
    df: Counter[str] = Counter(g for d in docs for g in d)
    idf = {g: math.log(1 + len(docs) / c) for g, c in df.items()}

    def vector(counts: Counter[str]) -> dict[str, float]:
        v = {g: (1 + math.log(c)) * idf.get(g, 0.0) for g, c in counts.items()}
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        return {g: x / norm for g, x in v.items()}

    vectors = [vector(d) for d in docs]
    postings: dict[str, list[int]] = defaultdict(list)
    for i, v in enumerate(vectors):
        for g in v:
            postings[g].append(i)

    def rank(question: str) -> list[tuple[str, float]]:
        q = vector(grams(question))
        sims: dict[int, float] = defaultdict(float)
        for g, x in q.items():
            for i in postings.get(g, ()):
                sims[i] += x * vectors[i][g]
        best: dict[str, float] = {}
        for i, sim in sims.items():
            faq_id = pairs[i][0]
            best[faq_id] = max(best.get(faq_id, 0.0), 100 * sim)
        return sorted(best.items(), key=lambda p: p[1], reverse=True)

    return rank


def naive_bayes_ranker(entries: Sequence[FaqEntry]) -> Ranker:
    slang = load_slang()

    def features(text: str) -> list[str]:
        words = [w for w in clean_text(text).split() if w not in slang.fillers]
        words = [slang.replacements.get(w, w) for w in words]
        joined = " ".join(words)
        return words + [joined[i : i + 4] for i in range(max(len(joined) - 3, 0))]

    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for faq_id, p in paraphrase_pairs(entries):
        counts[faq_id].update(features(p))
    vocabulary = {f for c in counts.values() for f in c}
    totals = {k: sum(c.values()) for k, c in counts.items()}

    def rank(question: str) -> list[tuple[str, float]]:
        fs = [f for f in features(question) if f in vocabulary]
        if not fs:
            return []
        logp = {
            k: sum(math.log((counts[k][f] + 0.1) / (totals[k] + 0.1 * len(vocabulary))) for f in fs) for k in counts
        }
        top = max(logp.values())
        z = sum(math.exp(v - top) for v in logp.values())
        return sorted(((k, 100 * math.exp(v - top) / z) for k, v in logp.items()), key=lambda p: p[1], reverse=True)

    return rank


def wratio_ranker(entries: Sequence[FaqEntry]) -> Ranker:
    pairs = paraphrase_pairs(entries)
    choices = [p for _, p in pairs]

    def rank(question: str) -> list[tuple[str, float]]:
        best: dict[str, float] = {}
        for _, score, i in process.extract(question, choices, scorer=fuzz.WRatio, limit=30):
            best.setdefault(pairs[i][0], score)
        return list(best.items())

    return rank


def matcher_ranker(matcher: FaqMatcher, transform: Callable[[str], str] = lambda t: t) -> Ranker:
    def rank(question: str) -> list[tuple[str, float]]:
        result = matcher.match(transform(question))
        return [] if result.kind == "none" else [(c.faq_id, c.score) for c in result.candidates]

    return rank


def rerank_ranker(matcher: FaqMatcher, bayes: Ranker) -> Ranker:
    """The matcher decides answer/suggest/none; on a close call ("suggest") its top 3 are re-ordered by the
    classifier's probabilities."""

    def rank(question: str) -> list[tuple[str, float]]:
        result = matcher.match(question)
        if result.kind == "none":
            return []
        ranked = [(c.faq_id, c.score) for c in result.candidates]
        if result.kind == "answer":
            return ranked
        probability = dict(bayes(question))
        top = sorted(ranked[:3], key=lambda pair: probability.get(pair[0], 0.0), reverse=True)
        return top + ranked[3:]

    return rank


def top1(rank: Ranker, questions: Sequence[Question], cutoff: float) -> float:
    right = 0
    for q in questions:
        ranked = rank(q.text)
        verdict = ranked[0][0] if ranked and ranked[0][1] >= cutoff else None
        right += q.accepts(verdict) if q.intent is not None else verdict is None
    return right / max(len(questions), 1)


def best_cutoff(rank: Ranker, tuning: Sequence[Question], grid: Sequence[float]) -> float:
    return max(grid, key=lambda c: (top1(rank, tuning, c), -c))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer cutoffs tried")
    args = parser.parse_args(argv)
    entries = load_faq()
    slang = load_slang()
    off_topic = load_off_topic()
    sets = {n: read_questions(PROJECT_ROOT / "tests" / f"faq_{n}.jsonl") for n in ("real", "official", "heldout")}
    techniques: dict[str, tuple[Ranker, Sequence[float]]] = {
        "matcher": (matcher_ranker(FaqMatcher(entries, slang, off_topic)), [0.0]),
        "char-ngrams": (char_ngram_ranker(entries), [10, 20, 25, 30, 35, 40, 50]),
        "naive-bayes": (naive_bayes_ranker(entries), [20, 30, 40, 50, 60, 70, 80, 90]),
        "wratio": (wratio_ranker(entries), [50, 60, 65, 70, 75, 80, 85, 90]),
    }
    techniques["matcher+bayes"] = (
        rerank_ranker(FaqMatcher(entries, slang, off_topic), techniques["naive-bayes"][0]),
        [0.0],
    )
    try:
        # Not a dependency: measured here only (it lost, see README), so imported by name when installed.
        stemmer = importlib.import_module("Sastrawi.Stemmer.StemmerFactory").StemmerFactory().create_stemmer()
        cache: dict[str, str] = {}

        def stem(text: str) -> str:
            if text not in cache:
                cache[text] = stemmer.stem(text)
            return cache[text]

        stemmed = [
            FaqEntry(e.id, e.title, {k: [stem(p) for p in v] for k, v in e.paraphrases.items()}, e.answer)
            for e in entries
        ]
        sastrawi = FaqMatcher(stemmed, slang, [stem(q) for q in off_topic])
        techniques["+sastrawi"] = (matcher_ranker(sastrawi, stem), [0.0])
    except ImportError:
        print("Sastrawi not installed: +sastrawi skipped")
    figures: dict[str, object] = {}
    for name, (rank, grid) in techniques.items():
        grid = grid[::2] if args.quick else grid
        cutoff = best_cutoff(rank, sets["heldout"], grid)
        start = time.perf_counter()
        row = {n: top1(rank, qs, cutoff) for n, qs in sets.items()}
        ms = (time.perf_counter() - start) * 1000 / sum(len(qs) for qs in sets.values())
        print(
            f"{name:12} cutoff {cutoff:>4g}: real {row['real']:.1%}  official {row['official']:.1%}"
            f"  held-out {row['heldout']:.1%}  ({ms:.2f} ms/question)"
        )
        figures[name] = {k: round(v, 4) for k, v in row.items()} | {"ms": round(ms, 3)}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
