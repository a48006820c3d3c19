"""The admin conversation: FAQ editing without a deploy, knowledge gaps and statistics. Plain async code, no aiogram.

Only users in ADMIN_IDS get past the first line; everyone else gets a polite refusal and nothing changes. An FAQ
is saved only if its YAML has the right shape, passes the store's checks, and every answer renders — in both
languages, for an anonymous visitor and for sample participants — as HTML that Telegram accepts.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

import yaml
from markupsafe import Markup

from bot.charts import ChartLabels, trend_chart
from bot.flows.faq import FLOW_INTENTS
from bot.flows.faq_catalog import FaqCatalogProvider
from bot.flows.types import Incoming, Reply
from bot.flows.views import SAMPLE_PARTICIPANTS
from bot.texts import (
    RENDER_OUTPUT_LIMIT,
    RENDER_TIME_LIMIT,
    RENDER_WORKER,
    RenderCheck,
    Renderer,
    load_yaml,
)
from core.calendar import JAKARTA, today_in_jakarta
from core.faq import Slang
from core.faq_entries import EntryProblem, FaqEntry, YamlRefused, load_untrusted_yaml, read_entry
from core.faq_store import FaqStore, FaqStoreError, FaqValidationError, entry_yaml
from core.gaps import find_gaps, slang_normaliser
from core.limits import MESSAGE_TEXT
from core.locales import LOCALES
from core.stats import DEFAULT_PERIOD_DAYS, MAX_PERIOD_DAYS, compute_stats, jakarta_midnight, period_ending

MAX_DOCUMENT_BYTES = 256 * 1024  # an FAQ entry is a few KB; the whole export of a large FAQ well under this
SHOW_INLINE = 3000  # longer entries go out as a file: a <pre> block must not be split across messages
HISTORY_SHOWN = 20
QUOTE_CHARS = 160  # questions quoted in reports are cut to this
MAX_ENTRY_SOURCE = 32 * 1024  # characters of one entry's YAML: answers ≤ 3,500 each, paraphrases a few KB
# What Telegram's HTML parse mode accepts (https://core.telegram.org/bots/api#html-style).
TELEGRAM_TAGS = frozenset({"b", "i", "u", "s", "a", "code", "pre", "tg-spoiler", "blockquote"})
TELEGRAM_ENTITIES = frozenset({"lt", "gt", "amp", "quot"})
MAX_RENDERED = MESSAGE_TEXT


@dataclass(frozen=True)
class Attachment:
    """A file to send with the replies: a document (YAML export) or a photo (chart)."""

    filename: str
    data: bytes
    kind: Literal["document", "photo"]
    caption: str = ""  # Telegram HTML, already escaped


@dataclass
class AdminOutcome:
    replies: list[Reply] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


# Something wrong with a submitted entry, as a template key and its values (the one entry reader's problems).
_Problem = EntryProblem


class _EntryRefused(Exception):
    def __init__(self, problems: list[_Problem]) -> None:
        super().__init__(", ".join(p.key for p in problems))
        self.problems = problems


def admin_renderer(folder: Path | None = None) -> Renderer:
    return Renderer(load_yaml("admin_messages.yaml", folder)["messages"])


class AdminFlow:
    """Turns an admin's command (plus an uploaded YAML file, if any) into replies and attachments."""

    def __init__(
        self,
        store: FaqStore,
        catalogs: FaqCatalogProvider,
        admin_ids: Collection[int],
        *,
        renderer: Renderer | None = None,
        slang: Slang | None = None,
        locale: str = "id",
        today: Callable[[], date] = today_in_jakarta,
    ) -> None:
        self.store = store
        self.catalogs = catalogs
        self.admin_ids = frozenset(admin_ids)
        self.renderer = renderer or admin_renderer()
        # FAQ answers are checked in RENDER_WORKER, with the renderer participants' answers go through.
        self.normalise = slang_normaliser(slang if slang is not None else catalogs.slang)
        self.locale = locale
        self.today = today

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admin_ids

    def refusal(self) -> AdminOutcome:
        return self._say("admin_refused")

    def document_too_large(self) -> AdminOutcome:
        return self._say("faq_file_too_large", limit_kb=MAX_DOCUMENT_BYTES // 1024)

    async def handle(self, event: Incoming, document: bytes | None = None) -> AdminOutcome:
        """One admin command: `event.text` is the command name, `event.argument` what follows it."""
        if not self.is_admin(event.user_id):
            return self.refusal()
        # On a fresh database the FAQ is seeded from knowledge/ when first used: an admin's edit made before any
        # participant asked must not be the first revision, or the seed would never come.
        await self.catalogs.catalog()
        command = event.text.lower()
        argument = event.argument.strip()
        if document is not None and len(document) > MAX_DOCUMENT_BYTES:
            return self.document_too_large()
        if command == "faq_set":
            return await self._faq_set(event.user_id, event.argument, document)
        if command in ("gaps", "stats"):
            days = _days(argument)
            if days is None:
                return self._usage(command)
            return await (self._gaps(days) if command == "gaps" else self._stats(days))
        handlers = {
            "faq": self._faq_list,
            "faq_show": self._faq_show,
            "faq_test": self._faq_test,
            "faq_history": self._faq_history,
            "faq_rollback": self._faq_rollback,
            "faq_delete": self._faq_delete,
            "faq_export": self._faq_export,
        }
        handler = handlers.get(command)
        if handler is None:
            return self._usage("faq")
        if command in ("faq_show", "faq_test", "faq_history", "faq_rollback", "faq_delete") and not argument:
            return self._usage(command)
        return await handler(event.user_id, argument)

    # --- FAQ -----------------------------------------------------------------------------------------------
    async def _faq_list(self, user_id: int, argument: str) -> AdminOutcome:
        entries = await self.store.current()
        rows = [{"id": e.id, "title": e.title.get(self.locale) or e.title.get("id", "")} for e in entries]
        return self._say("faq_list", entries=rows)

    async def _faq_show(self, user_id: int, argument: str) -> AdminOutcome:
        faq_id = argument.split()[0]
        entry = await self.store.get(faq_id)
        version = await self.store.current_version(faq_id)
        if entry is None or version is None:
            return self._say("faq_not_found", faq_id=faq_id)
        source = entry_yaml(entry)
        inline = len(html.escape(source)) <= SHOW_INLINE
        outcome = self._say(
            "faq_show",
            faq_id=faq_id,
            version=version,
            title=entry.title,
            paraphrases={lang: len(items) for lang, items in entry.paraphrases.items()},
            yaml=source if inline else None,
        )
        if not inline:
            caption = self._text("faq_show_file_caption", faq_id=faq_id, version=version)
            outcome.attachments.append(Attachment(f"{faq_id}.yaml", source.encode(), "document", caption))
        return outcome

    async def _faq_set(self, user_id: int, argument: str, document: bytes | None) -> AdminOutcome:
        head, _, body = argument.strip().partition("\n")
        faq_id = head.strip().split()[0] if head.strip() else ""
        if document is not None:
            try:
                body = document.decode("utf-8-sig")
            except UnicodeDecodeError:
                return self._say("faq_file_not_utf8")
        if not faq_id or not body.strip():
            return self._usage("faq_set")
        try:
            entry = await self._parse_entry(faq_id, body)
            before = await self.store.current_version(faq_id)
            version = await self.store.save(entry, user_id)
        except _EntryRefused as refused:
            return self._refused(faq_id, refused.problems)
        except FaqValidationError as invalid:
            return self._refused(faq_id, [p.as_entry_problem() for p in invalid.problems])
        except FaqStoreError as error:
            return self._say("faq_store_error", code=error.code, faq_id=faq_id, version=error.version)
        catalog = await self.catalogs.catalog()
        # How the matcher now treats the entry's own paraphrases: a low count means another entry overlaps.
        own = [p for items in entry.paraphrases.values() for p in items]
        first = sum(1 for p in own if (top := catalog.matcher.top(p, 1)) and top[0].faq_id == faq_id)
        action = "unchanged" if version == before else "created" if before is None else "edited"
        return self._say("faq_saved", faq_id=faq_id, version=version, action=action, first=first, total=len(own))

    async def _faq_test(self, user_id: int, argument: str) -> AdminOutcome:
        catalog = await self.catalogs.catalog()
        result = catalog.matcher.match(argument)
        candidates = [
            {
                "id": c.faq_id,
                "score": c.score,
                "title": catalog.entries[c.faq_id].title.get(self.locale, c.faq_id)
                if c.faq_id in catalog.entries
                else "",
            }
            for c in result.top(5)
        ]
        return self._say(
            "faq_test",
            question=_short(argument),
            verdict=result.kind,
            normalized=result.normalized,
            candidates=candidates,
        )

    async def _faq_history(self, user_id: int, argument: str) -> AdminOutcome:
        faq_id = argument.split()[0]
        versions = await self.store.history(faq_id)
        if not versions:
            return self._say("faq_not_found", faq_id=faq_id)
        rows = [
            {
                "version": v.version,
                "action": v.action,
                "author": v.author_id,
                "when": v.created_at.astimezone(JAKARTA).strftime("%Y-%m-%d %H:%M"),
                "deleted": v.deleted,
            }
            for v in versions[:HISTORY_SHOWN]
        ]
        return self._say("faq_history", faq_id=faq_id, versions=rows, older=max(0, len(versions) - HISTORY_SHOWN))

    async def _faq_rollback(self, user_id: int, argument: str) -> AdminOutcome:
        parts = argument.split()
        version = _version(parts[1]) if len(parts) == 2 else None
        if version is None:
            return self._usage("faq_rollback")
        faq_id = parts[0]
        old = await self.store.entry_at(faq_id, version)
        # What rendered when it was saved may not any more (a template feature or a value since taken away).
        problems = await answer_problems(old) if old is not None else []
        if problems:
            lines = [Markup(line) for line in dict.fromkeys(self._text(p.key, **p.values) for p in problems)]
            return self._say("faq_rollback_refused", faq_id=faq_id, version=version, problems=lines)
        try:
            new_version = await self.store.rollback(faq_id, version, user_id)
        except FaqStoreError as error:
            return self._say("faq_store_error", code=error.code, faq_id=faq_id, version=error.version)
        await self.catalogs.catalog()
        return self._say("faq_rolled_back", faq_id=faq_id, version=version, new_version=new_version)

    async def _faq_delete(self, user_id: int, argument: str) -> AdminOutcome:
        faq_id = argument.split()[0]
        try:
            version = await self.store.delete(faq_id, user_id)
        except FaqStoreError as error:
            return self._say("faq_store_error", code=error.code, faq_id=faq_id, version=error.version)
        await self.catalogs.catalog()
        return self._say(
            "faq_deleted", faq_id=faq_id, version=version, restore=version - 1, flow=FLOW_INTENTS.get(faq_id)
        )

    async def _faq_export(self, user_id: int, argument: str) -> AdminOutcome:
        source = await self.store.export_yaml()
        count = len(await self.store.current())
        caption = self._text("faq_export_caption", count=count)
        filename = f"faq-{self.today().isoformat()}.yaml"
        return AdminOutcome(attachments=[Attachment(filename, source.encode(), "document", caption)])

    # --- gaps and statistics -------------------------------------------------------------------------------
    async def _gaps(self, days: int) -> AdminOutcome:
        today = self.today()
        start = jakarta_midnight(today - timedelta(days=days - 1))
        end = jakarta_midnight(today + timedelta(days=1))
        report = await find_gaps(self.store.engine, start, end, normalise=self.normalise)
        catalog = await self.catalogs.catalog()
        gaps = [
            {
                "question": _short(g.representative),
                "count": g.count,
                "examples": [_short(x) for x in g.examples],
                "nearest": g.nearest_faq,
                "nearest_title": catalog.entries[g.nearest_faq].title.get(self.locale, "")
                if g.nearest_faq in catalog.entries
                else "",
            }
            for g in report.gaps
        ]
        return self._say(
            "gaps_report", days=days, total=report.total, analysed=report.analysed, sampled=report.sampled, gaps=gaps
        )

    async def _stats(self, days: int) -> AdminOutcome:
        start, end = period_ending(self.today(), days)
        stats = await compute_stats(self.store.engine, start, end)
        text = self._text("stats_summary", **stats_context(stats.to_dict()), days=days)
        png = await asyncio.to_thread(trend_chart, stats.days, chart_labels(self.renderer, self.locale, days))
        caption = self._text("stats_chart_caption", days=days)
        return AdminOutcome([Reply(text)], [Attachment(f"stats-{end.isoformat()}.png", png, "photo", caption)])

    # --- checking a submitted entry ------------------------------------------------------------------------
    async def _parse_entry(self, faq_id: str, source: str) -> FaqEntry:
        if len(source) > MAX_ENTRY_SOURCE:
            raise _EntryRefused([_Problem("faq_yaml_too_large", {"size": len(source), "limit": MAX_ENTRY_SOURCE})])
        try:
            data = load_untrusted_yaml(source)
        except YamlRefused:
            raise _EntryRefused([_Problem("faq_yaml_alias")]) from None
        except yaml.YAMLError as exc:
            raise _EntryRefused([_Problem("faq_yaml_invalid", {"detail": _short(str(exc), 300)})]) from None
        parsed, problems = read_entry(data, faq_id)
        if parsed is None:
            raise _EntryRefused(problems)
        entry = parsed
        problems += await answer_problems(entry)  # all at once: the admin fixes everything in one round
        if problems:
            raise _EntryRefused(problems)
        return entry

    # --- rendering -----------------------------------------------------------------------------------------
    def _text(self, key: str, **context: Any) -> str:
        return self.renderer.render(key, self.locale, **context)

    def _say(self, key: str, **context: Any) -> AdminOutcome:
        return AdminOutcome([Reply(self._text(key, **context))])

    def _usage(self, command: str) -> AdminOutcome:
        return self._say("admin_usage", command=command)

    def _refused(self, faq_id: str, problems: list[_Problem]) -> AdminOutcome:
        # Each line is already rendered (escaped) HTML: Markup keeps the outer template from escaping it again.
        lines = [Markup(line) for line in dict.fromkeys(self._text(p.key, **p.values) for p in problems)]
        return self._say("faq_refused", faq_id=faq_id, problems=lines)


def chart_labels(renderer: Renderer, locale: str, days: int) -> ChartLabels:
    """The chart's words from the admin templates (plain text: the chart is not HTML)."""

    def label(key: str) -> str:
        return html.unescape(renderer.render(key, locale, days=days))

    return ChartLabels(
        label("chart_title"),
        label("chart_conversations"),
        label("chart_cases_opened"),
        label("chart_deflection"),
        label("chart_count_axis"),
    )


def stats_context(figures: Mapping[str, Any]) -> dict[str, Any]:
    """`Stats.to_dict()` with durations split for the templates (days, hours, minutes)."""

    def parts(seconds: float | None) -> dict[str, int] | None:
        if seconds is None:
            return None
        minutes = round(seconds / 60)
        return {"d": minutes // 1440, "h": minutes % 1440 // 60, "m": minutes % 60}

    context = {key: value for key, value in figures.items() if key != "days"}  # the series is for the chart
    context["start"] = date.fromisoformat(figures["from"])
    context["last"] = date.fromisoformat(figures["to"]) - timedelta(days=1)
    context["first_reply"] = parts(figures["median_first_reply_seconds"])
    context["to_close"] = parts(figures["median_to_close_seconds"])
    return context


async def answer_problems(entry: FaqEntry) -> list[_Problem]:
    """Every answer renders in each language, for nobody and for sample participants, as valid Telegram HTML —
    in a separate process (`RENDER_WORKER`), within RENDER_TIME_LIMIT and RENDER_OUTPUT_LIMIT each: an answer
    that is slow or huge to render is refused, so no participant can ever trigger it."""
    problems: list[_Problem] = []
    if not entry.answer.get("id"):
        return problems  # reported as missing already
    for locale in LOCALES:
        # A missing English answer falls back to the Indonesian one, rendered with English dates.
        language = locale if entry.answer.get(locale) else "id"
        source = entry.answer[language]
        samples = (None, *SAMPLE_PARTICIPANTS)
        jobs = [(source, locale, participant) for participant in samples]
        try:
            results = await asyncio.to_thread(RENDER_WORKER.check, jobs)
        except RuntimeError as exc:  # the worker could not start: save nothing unchecked
            return [_Problem("faq_template_error", {"language": language, "who": "none", "detail": str(exc)})]
        for participant, result in zip(samples, results, strict=True):
            who = "none" if participant is None else str(participant["name"])
            if result.kind != "ok":
                # One report per answer: the same mistake would be reported for every sample.
                problems.append(_render_problem(language, who, result))
                break
            text = result.text
            for code, detail in _telegram_html_problems(text):
                problems.append(
                    _Problem("faq_html_problem", {"language": language, "who": who, "code": code, "detail": detail})
                )
            if not text.strip() or len(text) > MAX_RENDERED:
                problems.append(_Problem("faq_rendered_size", {"language": language, "who": who, "size": len(text)}))
    return problems


def _render_problem(language: str, who: str, result: RenderCheck) -> _Problem:
    """An answer that does not render within the limits: the sandbox's refusal (reaching into Python's internals),
    too slow, too long, or any other error."""
    if result.kind == "unsafe":
        return _Problem("faq_template_unsafe", {"language": language})
    if result.kind == "slow":
        return _Problem("faq_template_slow", {"language": language, "limit_ms": round(RENDER_TIME_LIMIT * 1000)})
    if result.kind == "too_long":
        return _Problem("faq_template_too_long", {"language": language, "limit": RENDER_OUTPUT_LIMIT})
    return _Problem("faq_template_error", {"language": language, "who": who, "detail": _short(result.detail, 300)})


class _TelegramHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.open: list[str] = []
        self.problems: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TELEGRAM_TAGS:
            self.problems.append(("tag", tag))
        elif tag == "a" and not dict(attrs).get("href"):
            self.problems.append(("link", tag))
        self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.problems.append(("tag", tag))

    def handle_endtag(self, tag: str) -> None:
        if self.open and self.open[-1] == tag:
            self.open.pop()
        else:
            self.problems.append(("unbalanced", tag))

    def handle_entityref(self, name: str) -> None:
        if name not in TELEGRAM_ENTITIES:
            self.problems.append(("entity", name))

    def handle_data(self, data: str) -> None:
        for char in "<>&":
            if char in data:
                self.problems.append(("raw", char))


def _telegram_html_problems(text: str) -> list[tuple[str, str]]:
    """Why Telegram's HTML parse mode would refuse the text: (code, detail) pairs, empty when it is fine."""
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    problems = parser.problems + [("unclosed", tag) for tag in parser.open]
    return list(dict.fromkeys(problems))


def _days(argument: str) -> int | None:
    if not argument:
        return DEFAULT_PERIOD_DAYS
    value = argument.split()[0]
    return int(value) if value.isdecimal() and 1 <= int(value) <= MAX_PERIOD_DAYS else None


def _version(value: str) -> int | None:
    value = value.lower().removeprefix("v")
    return int(value) if value.isdecimal() else None


def _short(text: str, limit: int = QUOTE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
