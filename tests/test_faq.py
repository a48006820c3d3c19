"""FAQ knowledge and matcher: every intent answered and renderable, accuracy on the dev and held-out sets, any
text safe to match."""

from __future__ import annotations

import ast
import asyncio
import html
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.flows.views import participant_view, platform_entry
from bot.texts import default_renderer, load_yaml
from core import faq
from core.calendar import default_calendar, today_in_jakarta
from core.db import Database
from core.demo import PERSONAS, recreate_database, seed_demo
from core.faq import FaqMatcher, clean_text, load_faq, load_off_topic, load_slang
from core.faq_entries import FaqEntry
from core.paths import PROJECT_ROOT
from core.rules import default_rules
from core.status import DatabaseStatusSource, StatusService

INTENTS = [
    "certificate_missing",
    "certificate_wrong_name",
    "training_completion",
    "rating_review",
    "platform_contact",
    "complaint_form",
    "incentive_schedule",
    "incentive_not_received",
    "incentive_amount",
    "payout_account_change",
    "phone_change",
    "account_access",
    "training_purchase",
    "membership_revoked",
    "survey",
    "agent_request",
]
# The team's shared folder sits beside the checkout (../shared); a git worktree nested deeper finds it further up,
# so that these checks run there too instead of skipping.
SHARED = next(
    (d / "shared" for d in PROJECT_ROOT.parents if (d / "shared" / "dev_questions.jsonl").exists()),
    PROJECT_ROOT.parent / "shared",
)
DEV_SET = SHARED / "dev_questions.jsonl"
# Questions written for these tests in the participants' style, never used to write the paraphrases' wording.
HELDOUT_SET = Path(__file__).with_name("faq_heldout.jsonl")
REAL_SET = Path(__file__).with_name("faq_real.jsonl")


@pytest.fixture(scope="module")
def entries() -> list[FaqEntry]:
    return load_faq()


@pytest.fixture(scope="module")
def matcher() -> FaqMatcher:
    return FaqMatcher.from_knowledge()


def read_questions(path: Path) -> list[tuple[str, str | None]]:
    if not path.exists():
        pytest.skip(f"{path} not present")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(row["question"], row["intent"]) for row in rows]


def accuracy(matcher: FaqMatcher, questions: list[tuple[str, str | None]]) -> tuple[float, float]:
    """(top-1, top-3) as bench/faq_eval.py counts them: off-topic is right when the verdict is "none"."""
    top1 = top3 = 0
    for question, intent in questions:
        result = matcher.match(question)
        if intent is None:
            top1 += result.kind == "none"
            top3 += result.kind == "none"
        else:
            top1 += result.faq_id == intent
            top3 += result.kind != "none" and intent in [c.faq_id for c in result.top(3)]
    return top1 / len(questions), top3 / len(questions)


# --- the knowledge -------------------------------------------------------------------------------------------


def test_every_intent_keeps_its_entry_and_the_faq_covers_more(entries: list[FaqEntry]) -> None:
    ids = [e.id for e in entries]
    assert set(INTENTS) <= set(ids) and len(ids) == len(set(ids))
    assert len(ids) >= 40


def test_intents_file_lists_the_original_ids() -> None:
    intents_md = SHARED / "INTENTS.md"
    if not intents_md.exists():
        pytest.skip("shared/INTENTS.md not present")
    listed = re.findall(r"^\| `([a-z_]+)` \|", intents_md.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert set(listed) <= {e.id for e in load_faq()}


def raw_entries() -> list[dict[str, Any]]:
    return list(load_yaml("faq.yaml")["faqs"])


def test_every_fact_bearing_entry_names_catalogued_sources() -> None:
    catalogue = set(load_yaml("sources.yaml")["sources"])
    for raw in raw_entries():
        if raw.get("kind") in ("smalltalk", "action"):
            continue  # greetings, thanks, handing over to a person: no programme fact to source
        assert raw.get("sources"), raw["id"]
        assert set(raw["sources"]) <= catalogue, raw["id"]


def test_entries_are_complete(entries: list[FaqEntry]) -> None:
    small_talk = {raw["id"] for raw in raw_entries() if raw.get("kind") == "smalltalk"}
    for entry in entries:
        assert set(entry.title) == {"id", "en"} and set(entry.answer) == {"id", "en"}, entry.id
        assert all(0 < len(t) <= 40 for t in entry.title.values()), entry.id
        assert (2 if entry.id in small_talk else 5) <= len(entry.paraphrases["id"]) <= 60, entry.id
        assert 1 <= len(entry.paraphrases["en"]) <= 8, entry.id


def test_no_answer_says_a_revoked_participant_may_register_again(entries: list[FaqEntry]) -> None:
    for entry in entries:
        for text in entry.answer.values():
            lowered = text.lower()
            assert "mendaftar lagi</b> di gelombang" not in lowered and "register again</b> in a later" not in lowered
    revoked = next(e for e in entries if e.id == "membership_revoked")
    assert "tidak bisa mendaftar Prakerja lagi" in revoked.answer["id"]
    assert "cannot register for Prakerja again" in revoked.answer["en"]


def test_paraphrases_are_not_the_dev_questions(entries: list[FaqEntry]) -> None:
    dev = {clean_text(q) for q, _ in read_questions(DEV_SET)}
    copied = [p for e in entries for items in e.paraphrases.values() for p in items if clean_text(p) in dev]
    assert copied == []


def test_paraphrases_are_not_the_evaluation_messages(entries: list[FaqEntry]) -> None:
    # The real messages (every tests/faq_real*.jsonl: blind sets, gaps) and the official FAQ's questions measure
    # the matcher; a paraphrase that copies one would measure nothing.
    paths = [*sorted(Path(__file__).parent.glob("faq_real*.jsonl")), Path(__file__).with_name("faq_official.jsonl")]
    assert len(paths) >= 3
    rows = [json.loads(line) for path in paths for line in path.read_text(encoding="utf-8").splitlines() if line]
    evaluation = {clean_text(row["question"]) for row in rows}
    copied = [p for e in entries for items in e.paraphrases.values() for p in items if clean_text(p) in evaluation]
    assert copied == []


ALLOWED_TAG = re.compile(r"<(/?)(b|i|code|a)(\s+href=\"[^\"<>]+\")?>")
ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|amp|lt|gt|quot);")


def assert_telegram_html(text: str) -> None:
    """Only the tags Telegram's HTML mode accepts, balanced; no stray <, > or &; no Markdown."""
    stack: list[str] = []
    for match in ALLOWED_TAG.finditer(text):
        closing, tag, href = match.groups()
        if closing:
            assert stack and stack.pop() == tag, f"unbalanced </{tag}> in {text!r}"
        else:
            assert tag != "a" or href, "a link needs its href"
            stack.append(tag)
    assert not stack, f"unclosed tags {stack}"
    bare = ENTITY.sub("", ALLOWED_TAG.sub("", text))
    assert not re.search(r"[<>&]", bare), f"raw <, > or & in {text!r}"
    assert "**" not in text and "__" not in text and "](" not in text


@pytest.fixture(scope="module")
def persona_contexts(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, dict[str, Any]]]:
    """The `participant` context the bot gives FAQ answers, for each demo persona (seeded into an SQLite file)."""

    async def build(path: Path) -> list[tuple[str, dict[str, Any]]]:
        async with Database.open(f"sqlite+aiosqlite:///{path}") as db:
            await recreate_database(db)
            created = await seed_demo(db.engine, default_rules(), default_calendar(), b"k", today_in_jakarta())
            service = StatusService(DatabaseStatusSource(db))
            statuses = [(persona.name, await service.status(pid)) for pid, persona in created]
        directory = load_yaml("platforms.yaml")
        return [(name, participant_view(directory, status)) for name, status in statuses if status is not None]

    contexts = asyncio.run(build(tmp_path_factory.mktemp("faq") / "faq.db"))
    assert len(contexts) == len(PERSONAS)
    return contexts


_TAG = re.compile(r"<[^>]+>")
# A sentence or bullet run into the next: "beda nama.Kak", "pertama• Insentif", "(Tokopedia)Kontak".
_GLUED = re.compile(r"(?<=[a-z0-9])[.!?)](?=[A-Z•])|\)(?=[A-Za-z])|\S•")


def assert_nothing_glued(text: str, what: str) -> None:
    plain = html.unescape(_TAG.sub("", text))
    glued = [plain[max(m.start() - 20, 0) : m.end() + 20] for m in _GLUED.finditer(plain)]
    assert glued == [], what


@pytest.mark.parametrize("lang", ["id", "en"])
def test_every_answer_renders_for_nobody_and_every_persona(
    entries: list[FaqEntry], persona_contexts: list[tuple[str, dict[str, Any]]], lang: str
) -> None:
    """Through the bot's own renderer, with the context the bot builds: whole sentences on their own lines."""
    renderer = default_renderer()
    for who, participant in [("nobody", None), *persona_contexts]:
        for entry in entries:
            text = renderer.render_source(entry.answer[lang], lang, participant=participant)
            what = f"{entry.id}/{lang}/{who}"
            assert 20 < len(text) < 4096, what
            assert "None" not in text, what
            assert not re.search(r"\d{4}-\d\d-\d\d", text), f"{what}: a date left in ISO form"
            assert_telegram_html(text)
            assert_nothing_glued(text, what)


def test_names_in_answers_are_escaped(
    entries: list[FaqEntry], persona_contexts: list[tuple[str, dict[str, Any]]]
) -> None:
    participant = dict(persona_contexts[-1][1], name="Siti <b>Aminah</b> & Co")
    for entry in entries:
        text = default_renderer().render_source(entry.answer["id"], "id", participant=participant)
        assert "<b>Aminah" not in text
        if "Siti" in text:
            assert "&lt;b&gt;Aminah&lt;/b&gt; &amp; Co" in text


def answer_for(entries: list[FaqEntry], faq_id: str, participant: dict[str, Any] | None, lang: str = "id") -> str:
    entry = next(e for e in entries if e.id == faq_id)
    return default_renderer().render_source(entry.answer[lang], lang, participant=participant)


def test_the_reported_glued_sentences_are_apart(
    entries: list[FaqEntry], persona_contexts: list[tuple[str, dict[str, Any]]]
) -> None:
    by_name = dict(persona_contexts)
    assert "beda nama.\n" in answer_for(entries, "certificate_wrong_name", by_name["Citra Dewi"])
    assert "pelatihan pertama</b>.\nKak Lukman Hakim, tekan" in answer_for(
        entries, "incentive_schedule", by_name["Lukman Hakim"]
    )
    assert "untuk pelatihan pertama\n• Insentif survei" in answer_for(entries, "incentive_amount", None)
    assert "for the first training\n• Survey incentive" in answer_for(entries, "incentive_amount", None, "en")


def test_the_wrong_name_answer_compares_the_participants_own_names(
    entries: list[FaqEntry], persona_contexts: list[tuple[str, dict[str, Any]]]
) -> None:
    by_name = dict(persona_contexts)
    tika = answer_for(entries, "certificate_wrong_name", by_name["Kartika Sari"])
    assert "Nama terdaftarmu: <b>Kartika Sari</b>" in tika
    assert re.search(r'\n• .+: nama di (sertifikat|lembaga) "Tika Permata" — <b>berbeda</b>', tika)
    # A title is no different name: the diagnosis's own judgement, not an exact comparison.
    lukman = answer_for(entries, "certificate_wrong_name", by_name["Lukman Hakim"], "en")
    assert 'the name on the certificate is "Lukman Hakim S.Kom" — it matches' in lukman
    nobody = answer_for(entries, "certificate_wrong_name", by_name["Ayu Lestari"])
    assert "belum ada nama dari lembaga" in nobody
    assert "Nama terdaftarmu" not in answer_for(entries, "certificate_wrong_name", None)


def test_the_schedule_answer_states_no_record_derived_date(
    entries: list[FaqEntry], persona_contexts: list[tuple[str, dict[str, Any]]]
) -> None:
    # The participant's own schedule comes from the diagnosis (the incentive flow), never from the FAQ text, so the
    # two cannot disagree; a linked participant asking about it is taken to the flow (tests/test_flows.py).
    lukman = dict(persona_contexts)["Lukman Hakim"]
    day: date = lukman["next_incentive_date"]
    text = answer_for(entries, "incentive_schedule", lukman)
    assert str(day.year) not in text and "1×24 jam" in text


def test_amounts_come_from_the_rules(entries: list[FaqEntry]) -> None:
    text = answer_for(entries, "incentive_amount", None)
    assert "Rp600.000" in text and "Rp2.400.000" in text and "Rp3.500.000" in text and "Rp50.000" in text


# --- normalisation -------------------------------------------------------------------------------------------


def test_clean_text_strips_noise() -> None:
    assert clean_text("Sertif BLM nongol2!!! 😭🙏") == "sertif blm nongol"
    assert clean_text("tombol abu-abu, e-wallet\x00\u202e ok") == "tombol abu ewallet ok"
    assert clean_text("bangeeeeet") == "bangeet"  # the matcher finishes the job against its vocabulary
    assert clean_text("") == ""


@pytest.mark.parametrize(
    ("messy", "clean"),
    [
        ("sertiiif blm nongol2", "sertifikat belum muncul"),  # stretched letters, slang, reduplication
        ("gmn kak", "bagaimana"),  # slang, filler
        ("sertifkat pelatiham", "sertifikat pelatihan"),  # listed typos
        ("pengadaun", "pengaduan"),  # unlisted typo, corrected against the vocabulary
        ("insentfi", "insentif"),  # transposition
        ("sertifikatnya", "sertifikat"),  # suffix
        ("dicairkan", "pencairan"),  # affixes: one root
        ("udh ga bs login", "sudah tidak bisa login"),
        ("certificate not showing", "sertifikat tidak muncul"),  # English words reuse the Indonesian ones
        ("HALO MIN, INSENTIF SAYA KOK BELUM MASUK YA???", "insentif belum masuk"),
        ("seluruh modul sudah tuntas", "semua modul sudah selesai"),  # synonyms: one word each
    ],
)
def test_normalisation(matcher: FaqMatcher, messy: str, clean: str) -> None:
    understood = matcher.match(messy).normalized
    assert understood and understood == matcher.match(clean).normalized


def test_normalised_words(matcher: FaqMatcher) -> None:
    assert matcher.match("gmn kak 🙏").normalized == "bagaimana"
    assert matcher.match("sertiiif blm nongol2").normalized == "sertifikat belum muncul"
    # A typo keeps its first letter, so "sayangnya" is not "magangnya" (a confident "about the programme" answer
    # came from "Sayangnya tidak gan"); spoken nasal forms and "ku-" still reach their root.
    assert "magang" not in matcher.match("sayangnya tidak gan").normalized
    assert matcher.match("nambah").normalized == matcher.match("tambah").normalized
    assert matcher.match("kudaftarkan").normalized == matcher.match("daftarkan").normalized
    # men-, mem-, meny- (and pe-) before a vowel swallowed a consonant: "menerima" is "terima", not a root "erima";
    # "menyelesaikan" is "selesai"; "menurut" is not "urut".
    assert matcher.match("penerima").normalized == matcher.match("menerima").normalized == "terima"
    assert matcher.match("menyelesaikan").normalized == matcher.match("selesai").normalized
    assert matcher.match("menurut").normalized != matcher.match("urutan").normalized
    # "-nya" never changes a word: "sistem" is known because a paraphrase says "sistemnya" (it was unknown, and
    # "berasa" was corrected to "berapa").
    assert matcher.match("sistem").normalized == matcher.match("sistemnya").normalized
    assert matcher.match("berasa").normalized != matcher.match("berapa").normalized


# --- matching ------------------------------------------------------------------------------------------------


def test_dev_set_accuracy(matcher: FaqMatcher) -> None:
    top1, top3 = accuracy(matcher, read_questions(DEV_SET))
    assert top1 >= 0.90 and top3 >= 0.97, (top1, top3)


def test_heldout_set_accuracy(matcher: FaqMatcher) -> None:
    questions = read_questions(HELDOUT_SET)
    assert len(questions) >= 100
    top1, top3 = accuracy(matcher, questions)
    assert top1 >= 0.90 and top3 >= 0.95, (top1, top3)


@pytest.mark.parametrize(
    "question",
    [
        "resep sambal terasi",
        "ramalan cuaca besok",
        "hasil pertandingan timnas",
        "beli token listrik dimana",
        "kapan lebaran tahun depan",
        "tell me something funny",
        "what time is it",
        "hehehe",
        "🙂🙂🙂",
        "",
    ],
)
def test_off_topic_gets_no_answer(matcher: FaqMatcher, question: str) -> None:
    result = matcher.match(question)
    assert result.kind == "none" and result.faq_id is None


def test_what_is_missing_wins_over_what_is_reported_done(matcher: FaqMatcher) -> None:
    # The modules are done, the certificate is missing: the question is the certificate, not finishing the training.
    result = matcher.match("udh selesai semua modul tp sertifikatnya ga nongol2")
    assert result.kind != "none" and result.faq_id == "certificate_missing"


def test_verdicts(matcher: FaqMatcher) -> None:
    confident = matcher.match("sertifikat saya belum muncul di dasbor padahal udah rating")
    assert confident.kind == "answer" and confident.faq_id == "certificate_missing"
    assert confident.candidates == sorted(confident.candidates, key=lambda c: c.score, reverse=True)
    assert all(0 <= c.score <= 100 for c in confident.candidates)
    assert len(matcher.top("insentif", 5)) == 5
    # One word shared by several entries is a close call: offer the choices.
    vague = matcher.match("insentif")
    assert vague.kind == "suggest" and len(vague.top(3)) == 3


_VERDICTS_SCRIPT = """
import json, sys
from core.faq import FaqMatcher
matcher = FaqMatcher.from_knowledge()
for line in sys.stdin:
    result = matcher.match(json.loads(line)["question"])
    print(result.kind, [(c.faq_id, c.score) for c in result.candidates])
"""


def test_verdicts_do_not_depend_on_the_hash_seed() -> None:
    # A typo equally close to two FAQ words was once corrected by the order of a set, so the same message got
    # another verdict in another process.
    messages = "".join(path.read_text(encoding="utf-8") for path in (REAL_SET, HELDOUT_SET) if path.exists())
    outputs = []
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", _VERDICTS_SCRIPT],
            input=messages,
            capture_output=True,
            text=True,
            check=True,
            cwd=PROJECT_ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        outputs.append(done.stdout)
    assert outputs[0] and outputs[0] == outputs[1]


def test_rebuild_swaps_entries(matcher: FaqMatcher, entries: list[FaqEntry]) -> None:
    local = FaqMatcher(entries, load_slang(), load_off_topic())
    extra = FaqEntry(
        id="libur_lebaran",
        title={"id": "Layanan saat libur", "en": "Service on holidays"},
        paraphrases={"id": ["apakah layanan buka saat libur lebaran", "cs libur lebaran buka tidak"], "en": []},
        answer={"id": "Buka.", "en": "Open."},
    )
    assert local.match("libur lebaran cs buka?").faq_id != "libur_lebaran"
    local.rebuild([*entries, extra])
    assert "libur_lebaran" in local.faq_ids
    assert local.match("libur lebaran cs buka?").faq_id == "libur_lebaran"
    assert matcher.match("libur lebaran cs buka?").faq_id != "libur_lebaran"  # other matchers untouched


def test_empty_knowledge_matches_nothing() -> None:
    empty = FaqMatcher([], load_slang())
    assert empty.match("sertifikat belum muncul").kind == "none"


NASTY = [
    "",
    " ",
    "a" * 5000,
    "sertifikat " * 1000,
    "😀" * 4096,
    "مرحبا كيف حالك شهادة",
    "שלום \u202etext\u202c",
    "\x00\x01\x02\x1b[31m\x7f",
    "'; DROP TABLE participants; --",
    "<script>alert('x')</script><b>sertifikat</b>",
    "{{ rules }} {% for x in y %}",
    "2" * 4096,
    "\ud7ff\ufffd\U0010ffff",
    "-" * 300 + "abu-abu-abu" + "2222",
]


@pytest.mark.parametrize("text", NASTY)
def test_known_nasty_inputs(matcher: FaqMatcher, text: str) -> None:
    result = matcher.match(text)
    assert result.kind in ("answer", "suggest", "none")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=5000))
def test_no_text_crashes_match(text: str) -> None:
    result = _MATCHER.match(text)
    assert result.kind in ("answer", "suggest", "none")
    assert all(0 <= c.score <= 100 for c in result.candidates)


_MATCHER = FaqMatcher.from_knowledge()


def test_speed_at_a_thousand_entries(entries: list[FaqEntry], monkeypatch: pytest.MonkeyPatch) -> None:
    # The bench's own synthetic entries; loaded by path because bench/ is a folder of scripts, not a package.
    spec = importlib.util.spec_from_file_location("faq_eval", PROJECT_ROOT / "bench" / "faq_eval.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # its dataclasses look their module up there
    spec.loader.exec_module(bench)
    synthetic: list[FaqEntry] = bench.synthetic_entries(entries, 1000)
    big = FaqMatcher([*entries, *synthetic], load_slang(), load_off_topic())
    questions = [q for q, _ in read_questions(HELDOUT_SET)]
    big.match(questions[0])
    start = time.perf_counter()
    for question in questions:
        big.match(question)
    per_question_ms = (time.perf_counter() - start) / len(questions) * 1000
    # The bench measures well under 1 ms; the bound leaves room for a loaded CI machine.
    assert per_question_ms < 5, per_question_ms


def test_core_faq_knows_nothing_of_telegram() -> None:
    tree = ast.parse(Path(faq.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"aiogram", "telegram", "bot"}


def test_small_talk_is_reached_only_by_its_own_words(matcher: FaqMatcher) -> None:
    # The small-talk paraphrases ("baik", "siap", "sudah beres") once matched inside real questions.
    reported = "masa gak bisa selanjutnya dikatakan salah. Hellow ini web kenapa? tolong diperbaiki"
    assert matcher.match(reported).faq_id not in SMALL_TALK_IDS
    assert matcher.match("sudah beres semua tapi insentif belum cair").faq_id not in SMALL_TALK_IDS
    for message, entry in (
        ("halo kak", "greeting"),
        ("makasih banyak min", "thanks"),
        ("okee", "affirm"),
        ("met pagi", "greeting"),
        ("misi kak", "greeting"),
        ("good morning", "greeting"),
        ("tengkyu", "thanks"),
        # Asking to ask: greet back and invite the question (it got "not understood", or a scam warning for "izin").
        ("hai min, mau tanya", "greeting"),
        ("izin bertanya kak", "greeting"),
        ("numpang nanya min", "greeting"),
    ):
        result = matcher.match(message)
        assert (result.kind, result.faq_id) == ("answer", entry), message
    assert matcher.match("sertifikat udh muncul kak, makasih ya").faq_id == "thanks"
    assert matcher.match("sertifikat belum muncul, makasih").faq_id != "thanks"
    assert matcher.match("mau tanya sertifikat belum muncul").faq_id not in SMALL_TALK_IDS
    assert matcher.match("terima kasih banyak min").faq_id == "thanks"
    # "terima" alone is "receive": an official FAQ question was once answered "you're welcome".
    question = matcher.match("Di mana saya bisa mengecek jumlah insentif yang akan saya terima?")
    assert question.faq_id != "thanks" and question.kind != "none"


def test_the_story_around_a_question_does_not_drown_it(matcher: FaqMatcher) -> None:
    # The examples: the incentive is what is asked about, not the certificate already received; a bare
    # clause ("sampai sekarang belum ada juga") does not outvote the one that names the subject.
    for message in (
        "Sertifikat sudah diterima dan di dashboard pra kerja saya sudah masuk insentif tapi masih proses terus "
        "sampai sekarang. Jadinya pusing. Saya juga sudah email tapi zonk",
        "Bulan kedua belum cair, dijadwalkan tanggal 10 Juni, tapi sampai sekarang belum ada juga",
        "Assalamualaikum, minta info nya dong insentif suami gagal cair, ini apa harus lewat BNI apa ganti e-walet yah",
    ):
        result = matcher.match(message)
        assert result.kind != "none" and result.faq_id == "incentive_not_received", message


@pytest.mark.parametrize(
    "message",
    [
        "Program ini bagus sekali, saya ikut pelatihan memasak kemarin dan ilmunya langsung saya pakai buat jualan",
        "Alhamdulillah insentifnya kemarin saya pakai buat modal usaha jualan gorengan di depan rumah",
        "Saya ikut gelombang kemarin, pelatihannya seru dan mentornya ramah banget, sekarang lagi praktek di rumah",
    ],
)
def test_an_opinion_or_a_story_gets_no_choices(matcher: FaqMatcher, message: str) -> None:
    # Nothing asked, no problem reported: "did you mean" buttons would answer a question nobody asked; the flow
    # thanks them for it instead of saying it did not understand.
    result = matcher.match(message)
    assert result.kind == "none" and result.statement


def test_a_question_nobody_answers_is_not_a_statement(matcher: FaqMatcher) -> None:
    for message in (
        "berapa harga cabai rawit di pasar hari ini?",
        "asdf qwerty zxcv",
        "siapa juara piala dunia sepak bola tahun lalu?",
    ):
        result = matcher.match(message)
        assert result.kind == "none" and not result.statement, message


@pytest.mark.parametrize(
    "message",
    [
        "Kelasnya kemahalan, isinya sama aja kayak video gratis di youtube, gak sebanding sama harganya",
        "Menurut saya programnya bagus. Cuma ya materinya gitu gitu aja, saya tidak dapat manfaat lebih dari "
        "pelatihannya.",
        "Pelatihan online begini gak seefektif belajar langsung, mending uangnya dikasih langsung aja",
    ],
)
def test_an_opinion_with_a_negation_is_not_answered(matcher: FaqMatcher, message: str) -> None:
    # A "gak" or "tidak" makes these look like complaints; the off-topic examples in faq.yaml hold opinions of the
    # programme like them. The first two were answered directly (the amount, eligibility) before those examples.
    assert matcher.match(message).kind == "none"


def test_one_clause_does_not_answer_for_an_off_topic_message(matcher: FaqMatcher) -> None:
    # The whole message reads as an opinion (the off-topic examples); its last clause alone looks like a question
    # about who may benefit. It was answered with eligibility.
    for message in (
        "Ikut prakerja alasannya cuma buat dapat insentif, pelatihannya sekadar formalitas. Saya tidak dapat "
        "manfaat lebih.",
        "Daftar prakerja cuma buat insentifnya, kelasnya formalitas aja. Aku gak dapat manfaat lebih dari "
        "pelatihan itu.",
    ):
        assert matcher.match(message).kind != "answer", message
    # A weak clause ("mau ngelamar ke mana juga bingung" reads like "bingung mau mengadu ke mana") offers nothing.
    for message in (
        "Ya pelatihannya lumayan berguna sih, siapa tau nanti bisa cari kerja yang lebih bagus. Cuma sekarang mau "
        "ngelamar kemana juga bingung, yang penting ikut dulu biar dapat duitnya",
        "Kalau dipikir pikir pelatihannya penting juga sih buat nyari kerja ke depannya, cuma sekarang mau ngelamar "
        "ke mana juga bingung, ya yang penting ikut dulu biar dapat duit",
    ):
        assert matcher.match(message).kind == "none", message


def test_a_question_mark_before_a_short_tail_still_asks() -> None:
    # A tail of one or two words joins the clause before it; that clause keeps its "?" (it used to take the tail's
    # ending, none, and count as a plain statement).
    slang = load_slang()
    asked = faq._parts("pelatihan sudah selesai semua kemarin. sertifikat saya masih begitu terus ya?? hmm", slang)
    told = faq._parts("pelatihan sudah selesai semua kemarin. sertifikat saya masih begitu terus ya. hmm", slang)
    assert asked[-1][1] == faq.PART_WEIGHT_ASKS and told[-1][1] != faq.PART_WEIGHT_ASKS


def test_a_story_with_a_problem_still_gets_its_entry(matcher: FaqMatcher) -> None:
    # The same kind of story, but something is missing: participants with a problem say so without a "?".
    for message, entry in (
        ("Saya ikut pelatihan memasak kemarin, semua video sudah selesai dan rating juga, sertifikatnya belum muncul",
         "certificate_missing"),
        ("Kemarin saya coba sambungkan e-wallet ke akun prakerja tapi ditolak terus katanya NIK tidak valid",
         "payout_link_failed"),
    ):  # fmt: skip
        result = matcher.match(message)
        assert result.kind != "none" and result.faq_id == entry, message


SMALL_TALK_IDS = frozenset({"greeting", "thanks", "affirm", "deny"})


def test_the_rating_answer_sends_each_persona_where_the_diagnosis_does(
    entries: list[FaqEntry], persona_contexts: list[tuple[str, dict[str, Any]]]
) -> None:
    """An unrated 2020 training is rated on the dashboard today (rules.yaml `pipeline`): the FAQ answer used to tell
    that participant to rate on the platform while /status said the dashboard."""
    waiting = [(name, p) for name, p in persona_contexts if p["to_rate"]]
    assert {p["scheme"] for _, p in waiting} >= {"2020", "2023"}  # both eras have a persona waiting for a rating
    for name, participant in waiting:
        for lang, dashboard in (("id", "di dashboard Prakerja"), ("en", "on the Prakerja dashboard")):
            text = answer_for(entries, "rating_review", participant, lang)
            for training in participant["to_rate"]:
                line = next(x for x in text.splitlines() if x.startswith(f"• {training['training']}"))
                assert (dashboard in line) == (training["place"] == "dashboard"), (name, lang, line)
    generic = answer_for(entries, "rating_review", None)
    assert "dulu dinilai di platform" in generic and "diberikan di dashboard" in generic


def test_the_complaint_answer_promises_no_reply_channel_or_time_without_a_source(entries: list[FaqEntry]) -> None:
    """No public source says how (or how fast) the programme answers a complaint: the answer used to promise a reply
    by e-mail."""
    for lang in ("id", "en"):
        text = answer_for(entries, "complaint_form", None, lang).lower()
        assert "email" not in text and "e-mail" not in text and "3 hari" not in text, text


def test_a_renamed_platform_is_named_in_the_readers_language(entries: list[FaqEntry]) -> None:
    """English readers got "Pintar (dulu Pintaria)" untranslated."""
    directory = load_yaml("platforms.yaml")
    assert platform_entry(directory, "pintaria", "en")["name"] == "Pintar (formerly Pintaria)"
    assert platform_entry(directory, "pintaria", "id")["name"] == "Pintar (dulu Pintaria)"
    english = answer_for(entries, "platform_contact", None, "en")
    assert "Pintar (formerly Pintaria)" in english and "dulu" not in english
    assert "Pintar (dulu Pintaria)" in answer_for(entries, "platform_contact", None, "id")


def test_a_long_story_without_a_request_is_not_answered_directly(matcher: FaqMatcher) -> None:
    # A past failure inside a story that ended well, and other people's behaviour: a negation is all they share
    # with a complaint. real_blind2 had two such stories answered directly; at most their entry is a choice.
    for message in (
        "Dulu saya daftar dari gelombang 3 dan selalu gagal karena kuota penuh, akhirnya di gelombang 10 saya dapat "
        "kartu prakerja dan langsung ikut pelatihan",
        "Katanya di twitter banyak orang yang hidupnya cuma nunggu insentif prakerja tapi gak ikut pelatihan dan gak "
        "cari kerja juga",
    ):
        assert matcher.match(message).kind != "answer", message
    # The same length with a question or an open problem is still answered.
    for message, entry in (
        ("Saya sudah daftar dari gelombang 3 sampai gelombang 10 dan selalu gagal karena kuota penuh, kenapa ya saya "
         "tidak pernah lolos seleksi prakerja", "selection_result"),
    ):  # fmt: skip
        result = matcher.match(message)
        assert (result.kind, result.faq_id) == ("answer", entry), message


@pytest.mark.parametrize(
    "message",
    [
        "Materi pelatihannya tidak lebih dari video presentasi biasa yang dibacakan oleh pengajarnya",
        "Saya tidak terlalu berharap waktu daftar, ternyata langsung diterima di gelombang pertama",
    ],
)
def test_a_negation_in_an_opinion_is_not_a_problem(matcher: FaqMatcher, message: str) -> None:
    # "tidak lebih dari", "tidak terlalu berharap": a negation reports a problem only before a status word.
    result = matcher.match(message)
    assert result.kind == "none" and result.statement, message


def test_a_negated_status_is_still_a_problem(matcher: FaqMatcher) -> None:
    for message in (
        "Saya sudah ikut pelatihan sampai selesai dan kasih ulasan, sertifikat saya gak muncul di dashboard prakerja",
        "Saya sudah ikut pelatihan sampai selesai dan kasih ulasan tapi sertifikatnya tidak pernah ada di dashboard",
    ):
        result = matcher.match(message)
        assert result.kind != "none" and result.faq_id == "certificate_missing", message


@pytest.mark.parametrize(
    ("message", "faq_id"),
    [
        ("udah seminggu sertifikat belum juga muncul, penipuan ya??", "certificate_missing"),
        ("kecewa banget, sertifikat gak muncul2", "certificate_missing"),
        ("kesal banget akun saya tidak bisa login dari kemarin", "account_access"),
        ("udah sebulan insentif belum masuk, ini penipuan ya", "incentive_not_received"),  # won outright: still sorry
    ],
)
def test_a_fed_up_message_is_answered_about_its_problem(matcher: FaqMatcher, message: str, faq_id: str) -> None:
    # Frustration is the mood, the certificate the question: the concrete entry answers, flagged for an apology.
    result = matcher.match(message)
    assert result.kind == "answer" and result.faq_id == faq_id and result.frustrated, message


@pytest.mark.parametrize(
    "message",
    ["kecewa banget sama prakerja", "pelayanan prakerja lambat sekali", "sabar ada batasnya sudah lama menunggu"],
)
def test_plain_frustration_stays_frustration(matcher: FaqMatcher, message: str) -> None:
    result = matcher.match(message)
    assert result.faq_id == "frustration" and not result.frustrated, message


def test_a_problem_or_a_plain_question_decides_between_close_incentive_entries(matcher: FaqMatcher) -> None:
    # Close scores, same subject: reporting nothing wrong asks for the schedule; "belum" reports the missing money.
    when = matcher.match("sertifikat udah ada, insentifnya kapan masuk")
    assert when.faq_id == "incentive_schedule"
    missing = matcher.match("sertifikat udah ada, insentifnya belum masuk")
    assert missing.faq_id == "incentive_not_received"
    assert when.candidates == sorted(when.candidates, key=lambda c: c.score, reverse=True)


def test_no_mood_word_no_apology(matcher: FaqMatcher) -> None:
    # "cs" is in the frustration entry's paraphrases, but asking for customer service is not being fed up.
    for message in ("tolong hubungkan ke customer service", "email pengaduan udh seminggu ga ada jawaban"):
        assert not matcher.match(message).frustrated, message
