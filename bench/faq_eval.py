"""FAQ matcher accuracy and speed, against a plain rapidfuzz baseline.

    python bench/faq_eval.py [--quick] [--knowledge DIR] [--dev ../shared/dev_questions.jsonl]
        [--heldout tests/faq_heldout.jsonl] [--real tests/faq_real.jsonl] [--official tests/faq_official.jsonl]
        [--blind tests/faq_real_blind.jsonl] [--blind2 tests/faq_real_blind2.jsonl]
        [--blind3 tests/faq_real_blind3.jsonl] [--blind4 tests/faq_real_blind4.jsonl]

Sets, reported separately: dev and held-out (written here in the participants' style), real (messages participants
wrote in public, verbatim, each with its source URL), official (the questions of the programme's FAQ, 2024).
Each real message carries a split: real_dev (the matcher may be tuned on it) and real_test are reported as well as
the whole real set. real_blind (tests/faq_real_blind.jsonl) was collected after the matcher and paraphrases were
tuned, by someone who never ran the matcher on it; it was reported once and then tuned on (2026-12-04).
real_blind2 (tests/faq_real_blind2.jsonl) is a second such set, collected 2026-12-04 after real_blind had been
read for tuning, again by someone who never ran the matcher; it was reported once (README) — the next round of
tuning may read it, and needs a new blind set for its own figure. The third session read it (2026-12-04).
real_blind3 (tests/faq_real_blind3.jsonl): a third such set, collected 2026-12-04 while real_blind2 was read for
tuning, by someone who never ran the matcher; reported once (README), then open to tuning like the others.
real_blind4 (tests/faq_real_blind4.jsonl): a fourth such set, collected 2026-12-04 from public pages by someone who
never ran the matcher on it nor read the other sets' messages; reported once, then open to tuning like the others.
Besides top-1 over all questions, "on-topic" gives top-1 over the labelled (non-null) questions only.
Top-1: the matcher's verdict is right: the labelled entry (kind "answer" or "suggest"; a real message may also
name a second acceptable entry, "also"), or kind "none" for an off-topic question (label null). "Confident wrong"
counts off-topic questions answered directly (kind "answer"). --quick skips the baseline and the 1,000-entry
timing. --knowledge DIR runs the matcher over another knowledge directory (e.g. an older faq.yaml, for before/after
figures). Top-3: the labelled entry is among the three offered (kind not "none"); an
off-topic question counts as in top-1. The baseline is `process.extractOne(question, paraphrases,
scorer=fuzz.WRatio)` on raw text, mapped to the paraphrase's entry, answering "none" below BASELINE_CUTOFF.
Timing is the median per question over several passes, at the real FAQ size and at 1,000 synthetic entries.
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz import fuzz, process
from rich.progress import Progress

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:  # runnable as a script from anywhere
    sys.path.insert(0, str(PROJECT_ROOT))

from core import faq  # noqa: E402
from core.faq import FaqMatcher, load_faq, load_off_topic, load_slang  # noqa: E402
from core.faq_entries import FaqEntry  # noqa: E402

# WRatio barely separates on- from off-topic: the baseline's dev top-1 is the same for any cutoff from 65 to 85
# (and lower outside), so 75, the middle, is its cutoff.
BASELINE_CUTOFF = 75.0
SYNTHETIC_ENTRIES = 1000
TIMING_PASSES = 5


@dataclass(frozen=True)
class Question:
    text: str
    intent: str | None
    also: tuple[str, ...] = ()  # other entries that answer it as well (real messages only)
    split: str | None = None  # real messages: "dev" (the matcher may be tuned on it) or "test" (reported only)

    def accepts(self, faq_id: str | None) -> bool:
        return faq_id is not None and (faq_id == self.intent or faq_id in self.also)


@dataclass(frozen=True)
class Accuracy:
    top1: float
    top3: float
    answered: float  # share of on-topic questions answered directly (kind "answer")
    misses: list[str]
    confident_wrong: int = 0  # off-topic questions answered directly
    on_topic_top1: float = 0.0  # top-1 among the questions with a label


def read_questions(path: Path) -> list[Question]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        Question(str(row["question"]), row["intent"], tuple(row.get("also") or ()), row.get("split")) for row in rows
    ]


def evaluate(matcher: FaqMatcher, questions: Sequence[Question]) -> Accuracy:
    top1 = top3 = answered = on_topic = on_topic_right = confident_wrong = 0
    misses: list[str] = []
    for q in questions:
        result = matcher.match(q.text)
        if q.intent is None:
            right = result.kind == "none"
            top1 += right
            top3 += right
            confident_wrong += result.kind == "answer"
        else:
            on_topic += 1
            right = q.accepts(result.faq_id)
            top1 += right
            on_topic_right += right
            top3 += result.kind != "none" and any(q.accepts(c.faq_id) for c in result.top(3))
            answered += right and result.kind == "answer"
        if not right:
            best = ", ".join(f"{c.faq_id} {c.score:.0f}" for c in result.top(3))
            misses.append(f"{q.text!r}: expected {q.intent}, got {result.kind} [{best}]")
    n = max(len(questions), 1)
    return Accuracy(
        top1 / n, top3 / n, answered / max(on_topic, 1), misses, confident_wrong, on_topic_right / max(on_topic, 1)
    )


def evaluate_baseline(entries: Sequence[FaqEntry], questions: Sequence[Question]) -> tuple[float, float]:
    choices: list[str] = []
    owners: list[str] = []
    for entry in entries:
        for items in entry.paraphrases.values():
            choices.extend(items)
            owners.extend([entry.id] * len(items))
    top1 = top3 = 0
    for q in questions:
        best = process.extractOne(q.text, choices, scorer=fuzz.WRatio)
        verdict = owners[best[2]] if best is not None and best[1] >= BASELINE_CUTOFF else None
        # Top-3 for the baseline: the entries of its three best paraphrases (distinct), same null rule.
        ranked = process.extract(q.text, choices, scorer=fuzz.WRatio, limit=30)
        top_ids = list(dict.fromkeys(owners[i] for _, _, i in ranked))[:3]
        top1 += q.accepts(verdict) if q.intent is not None else verdict is None
        top3 += (q.intent is None and verdict is None) or (verdict is not None and any(q.accepts(i) for i in top_ids))
    n = max(len(questions), 1)
    return top1 / n, top3 / n


def synthetic_entries(real: Sequence[FaqEntry], count: int, seed: int = 7) -> list[FaqEntry]:
    """`count` entries whose paraphrases recombine the real vocabulary with invented words: same sizes, more words."""
    rng = random.Random(seed)
    vocabulary = sorted({w for e in real for items in e.paraphrases.values() for p in items for w in p.split()})
    syllables = ["ka", "ri", "mu", "sa", "to", "pe", "la", "ng", "an", "bu", "di", "ko", "re", "ta", "ni"]
    entries: list[FaqEntry] = []
    for n in range(count):
        invented = ["".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(3)]
        paraphrases = [
            " ".join(rng.sample(vocabulary, rng.randint(3, 7)) + rng.sample(invented, rng.randint(1, 2)))
            for _ in range(15)
        ]
        entries.append(
            FaqEntry(f"synthetic_{n}", {"id": f"S{n}"}, {"id": paraphrases[:12], "en": paraphrases[12:]}, {})
        )
    return entries


def time_per_question(matcher: FaqMatcher, questions: Sequence[str], progress: Progress, label: str) -> float:
    """Median over passes of the mean time per question, in milliseconds."""
    passes: list[float] = []
    task = progress.add_task(label, total=TIMING_PASSES)
    for _ in range(TIMING_PASSES):
        start = time.perf_counter()
        for q in questions:
            matcher.match(q)
        passes.append((time.perf_counter() - start) / len(questions) * 1000)
        progress.advance(task)
    return statistics.median(passes)


def sweep(matcher: FaqMatcher, name: str, questions: Sequence[Question]) -> None:
    """Top-1 for a range of suggest cutoffs (how SUGGEST_SCORE was chosen), and where the scores fall."""
    results = [(q, matcher.match(q.text)) for q in questions]
    on_topic = sorted(
        r.score for q, r in results if q.intent is not None and r.top(1) and r.top(1)[0].faq_id == q.intent
    )
    off_topic = sorted(r.score for q, r in results if q.intent is None)
    print(f"{name}: lowest right on-topic scores {on_topic[:5]}, off-topic scores {off_topic}")
    for cutoff in range(14, 44, 2):
        right = 0
        for q, r in results:
            vetoed = r.kind == "none" and r.score >= faq.SUGGEST_SCORE  # the off-topic class won
            best = r.top(1)
            verdict = best[0].faq_id if best and best[0].score >= cutoff and not vetoed else None
            right += verdict == q.intent
        print(f"  suggest cutoff {cutoff}: top-1 {right / len(results):.3f}")


# Greetings and thanks as participants send them (the examples plus common forms): each must be answered as
# small talk, i.e. the matcher's verdict is this entry.
SMALL_TALK = [
    ("halo", "greeting"), ("pagi kak", "greeting"), ("assalamualaikum", "greeting"),
    ("selamat siang min", "greeting"), ("hai kak", "greeting"), ("permisi kak", "greeting"), ("makasih kak", "thanks"),
    ("terima kasih banyak min", "thanks"),
    ("makasih ya", "thanks"), ("thank you", "thanks"), ("sertifikat udh muncul kak, makasih ya", "thanks"),
    ("ok", "affirm"), ("ya", "affirm"), ("wkwk", "affirm"), ("oke siap", "affirm"), ("nggak", "deny"),
]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dev", type=Path, default=PROJECT_ROOT.parent / "shared" / "dev_questions.jsonl")
    parser.add_argument("--heldout", type=Path, default=PROJECT_ROOT / "tests" / "faq_heldout.jsonl")
    parser.add_argument("--real", type=Path, default=PROJECT_ROOT / "tests" / "faq_real.jsonl")
    parser.add_argument("--official", type=Path, default=PROJECT_ROOT / "tests" / "faq_official.jsonl")
    parser.add_argument("--blind", type=Path, default=PROJECT_ROOT / "tests" / "faq_real_blind.jsonl")
    parser.add_argument("--blind2", type=Path, default=PROJECT_ROOT / "tests" / "faq_real_blind2.jsonl")
    parser.add_argument("--blind3", type=Path, default=PROJECT_ROOT / "tests" / "faq_real_blind3.jsonl")
    parser.add_argument("--blind4", type=Path, default=PROJECT_ROOT / "tests" / "faq_real_blind4.jsonl")
    parser.add_argument("--knowledge", type=Path, default=None, help="knowledge directory (default: knowledge/)")
    parser.add_argument("--quick", action="store_true", help="no baseline, no 1,000-entry timing")
    parser.add_argument("--sweep", action="store_true", help="print the threshold sweep on the dev set")
    parser.add_argument("--misses", action="store_true", help="list the questions the matcher gets wrong")
    args = parser.parse_args(argv)

    directory = args.knowledge
    entries = load_faq(directory / "faq.yaml" if directory else None)
    slang = load_slang(directory / "slang.yaml" if directory else None)
    off_topic = load_off_topic(directory / "faq.yaml" if directory else None)
    matcher = FaqMatcher(entries, slang, off_topic)
    sets = {
        name: read_questions(path) if path.exists() else []
        for name, path in (
            ("dev", args.dev),
            ("heldout", args.heldout),
            ("real", args.real),
            ("official", args.official),
            ("real_blind", args.blind),
            ("real_blind2", args.blind2),
            ("real_blind3", args.blind3),
            ("real_blind4", args.blind4),
        )
    }
    # The real set is split: tune on its dev part, quote its test part (the whole set is still reported).
    for part in ("dev", "test"):
        sets[f"real_{part}"] = [q for q in sets["real"] if q.split == part]
    results = {name: evaluate(matcher, questions) for name, questions in sets.items() if questions}
    small_talk = sum(matcher.match(text).faq_id == want for text, want in SMALL_TALK) / len(SMALL_TALK)
    if args.sweep:
        sweep(matcher, "dev", sets["dev"])
        sweep(matcher, "held-out", sets["heldout"])

    questions = [q.text for name in ("dev", "heldout", "real") for q in sets[name]]
    with Progress(transient=True) as progress:
        ms_real = time_per_question(matcher, questions, progress, f"timing at {len(entries)} entries")
        ms_big = None
        if not args.quick:
            big = FaqMatcher(list(entries) + synthetic_entries(entries, SYNTHETIC_ENTRIES), slang, off_topic)
            label = f"timing at {len(entries) + SYNTHETIC_ENTRIES} entries"
            ms_big = time_per_question(big, questions, progress, label)

    figures: dict[str, object] = {"entries": len(entries)}
    for name, acc in results.items():
        questions_in = sets[name]
        off = sum(q.intent is None for q in questions_in)
        print(
            f"{name:10} {len(questions_in):4} questions ({off} off-topic): top-1 {acc.top1:.1%}  top-3 {acc.top3:.1%}"
            f"  on-topic {acc.on_topic_top1:.1%}  answered directly {acc.answered:.1%}"
            f"  off-topic answered directly {acc.confident_wrong}"
        )
        figures[f"{name}_questions"] = len(questions_in)
        figures[f"{name}_top1"] = round(acc.top1, 4)
        figures[f"{name}_top3"] = round(acc.top3, 4)
        figures[f"{name}_on_topic_top1"] = round(acc.on_topic_top1, 4)
        figures[f"{name}_confident_wrong_off_topic"] = acc.confident_wrong
    print(f"small talk answered as such: {small_talk:.1%} of {len(SMALL_TALK)}")
    figures["small_talk"] = round(small_talk, 4)
    if not args.quick and sets["dev"]:
        base_top1, _ = evaluate_baseline(entries, sets["dev"])
        print(f"baseline (WRatio extractOne, none below {BASELINE_CUTOFF:g}) on dev: top-1 {base_top1:.1%}")
        figures["baseline_dev_top1"] = round(base_top1, 4)
        if sets["real"]:
            base_real, _ = evaluate_baseline(entries, sets["real"])
            print(f"baseline on real: top-1 {base_real:.1%}")
            figures["baseline_real_top1"] = round(base_real, 4)
        if sets["real_test"]:
            base_real_test, _ = evaluate_baseline(entries, sets["real_test"])
            print(f"baseline on real_test: top-1 {base_real_test:.1%}")
            figures["baseline_real_test_top1"] = round(base_real_test, 4)
    print(f"thresholds: suggest {faq.SUGGEST_SCORE:g}, answer {faq.ANSWER_SCORE:g} with margin {faq.ANSWER_MARGIN:g}")
    timing = f"time per question: {ms_real:.3f} ms at {len(entries)} entries"
    if ms_big is not None:
        timing += f", {ms_big:.3f} ms at {len(entries) + SYNTHETIC_ENTRIES}"
    print(timing)
    figures["ms_per_question"] = round(ms_real, 4)
    figures["ms_per_question_1000_entries"] = round(ms_big, 4) if ms_big is not None else None
    if args.misses:
        for name, acc in results.items():
            for line in acc.misses:
                print(f"  miss [{name}]:", line)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
