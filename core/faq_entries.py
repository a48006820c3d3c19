"""The one reader and checker of FAQ entries: the knowledge file's load, the seed, an admin's /faq_set, a rollback
and the tests all take an entry through here, so they agree on what an entry is (YAML `yes` is refused everywhere,
never turned into "True" by one reader and refused by another).

A problem is a message key of `knowledge/admin_messages.yaml` with its values, so an admin reads every problem of
a submitted entry at once; the knowledge load turns the same problems into one error naming the entry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from core.locales import LOCALES

FAQ_ID = re.compile(r"^[a-z][a-z0-9_]{2,63}$")
ENTRY_KEYS = frozenset({"id", "title", "paraphrases", "answer", "sources", "kind"})
# Entries that state no programme fact and so cite no source: small talk, our own policy, the agent hand-over.
UNSOURCED_KINDS = frozenset({"smalltalk", "policy", "action"})
MAX_TITLE = 60  # a button label: Telegram shows about this much
MAX_PARAPHRASE = 300
MAX_PARAPHRASES = 200  # per language
MAX_ANSWER = 3500  # template source; the rendered answer must also fit one 4,096-character message
MAX_SOURCES = 20


@dataclass(frozen=True)
class FaqEntry:
    """One FAQ: its id (an intent in INTENTS.md), button titles, paraphrases and answer templates by language."""

    id: str
    title: dict[str, str]
    paraphrases: dict[str, list[str]]
    answer: dict[str, str]
    sources: tuple[str, ...] = ()  # ids in knowledge/sources.yaml
    kind: str | None = None  # smalltalk / policy / action: states no programme fact, so cites no source


@dataclass(frozen=True)
class FaqProblem:
    """One reason an entry's content cannot be saved, as data: the front end words it (`code` picks the words)."""

    code: str  # bad_id / bad_kind / missing / empty / unknown_language / too_long / too_many
    field: str  # "id", "title.id", "paraphrases.en", "answer.id", …
    limit: int | None = None

    def as_entry_problem(self) -> EntryProblem:
        return EntryProblem("faq_problem", {"code": self.code, "field": self.field, "limit": self.limit})


@dataclass(frozen=True)
class EntryProblem:
    """Something wrong with an entry: a message key (admin_messages.yaml) and its values."""

    key: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.key} {dict(self.values)}"


class FaqDocumentError(ValueError):
    """The knowledge file holds an entry that is not one: names the entry and each problem."""

    def __init__(self, faq_id: str, problems: list[EntryProblem]) -> None:
        super().__init__(f"FAQ entry {faq_id!r}: " + "; ".join(map(str, problems)))
        self.faq_id = faq_id
        self.problems = problems


class YamlRefused(yaml.YAMLError):
    pass


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: an FAQ entry never needs them, and a few hundred bytes of nested aliases
    expand to gigabytes (a "billion laughs")."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise YamlRefused("aliases are not allowed")
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if getattr(event, "anchor", None) is not None:
            raise YamlRefused("anchors are not allowed")
        return super().compose_node(parent, index)


def load_untrusted_yaml(source: str) -> Any:
    """YAML an admin sent: safe types only, no anchors or aliases (raises YamlRefused, or yaml.YAMLError)."""
    return yaml.load(source, Loader=_NoAliasLoader)


def read_entry(raw: object, faq_id: str | None = None) -> tuple[FaqEntry | None, list[EntryProblem]]:
    """An entry from its parsed YAML (a mapping), with every problem found; `faq_id` is the id it must have (an
    admin's command names it; the knowledge file's entries carry their own). The entry is None when its shape is
    wrong; with only content problems (too long, missing language …) it is returned for a preview, problems listed."""
    if isinstance(raw, list) and len(raw) == 1:
        raw = raw[0]  # an entry copied from the knowledge file's `faqs:` list ("- id: …")
    if not isinstance(raw, Mapping):
        return None, [EntryProblem("faq_yaml_not_entry")]
    problems: list[EntryProblem] = []
    unknown = sorted(str(k) for k in raw if k not in ENTRY_KEYS)
    if unknown:
        problems.append(EntryProblem("faq_yaml_unknown_keys", {"keys": unknown}))
    own_id = raw.get("id")
    if faq_id is None:
        if not isinstance(own_id, str) or not own_id:
            return None, [*problems, FaqProblem("bad_id", "id").as_entry_problem()]
        faq_id = own_id
    elif own_id is not None and str(own_id) != faq_id:
        problems.append(EntryProblem("faq_yaml_id_mismatch", {"faq_id": faq_id, "other": str(own_id)}))
    title = _texts(raw.get("title"), "title", problems)
    answer = _texts(raw.get("answer"), "answer", problems)
    paraphrases = _lists(raw.get("paraphrases"), "paraphrases", problems)
    sources = _sources(raw.get("sources"), problems)
    kind = raw.get("kind")
    if kind is not None and not (isinstance(kind, str) and kind in UNSOURCED_KINDS):
        problems.append(FaqProblem("bad_kind", "kind").as_entry_problem())
        kind = None
    if problems:
        return None, problems
    entry = FaqEntry(faq_id, title, paraphrases, answer, sources, kind)
    return entry, [p.as_entry_problem() for p in validate_entry(entry)]


def read_document(data: object) -> list[FaqEntry]:
    """The entries of a whole FAQ document (`faqs:` list), as the knowledge file and an export hold them; raises
    FaqDocumentError on the first entry with a problem, ValueError on a repeated id."""
    if not isinstance(data, Mapping):
        raise ValueError("an FAQ document is a mapping with a `faqs:` list")
    entries: list[FaqEntry] = []
    seen: set[str] = set()
    for n, raw in enumerate(data.get("faqs") or []):
        entry, problems = read_entry(raw)
        if entry is None or problems:
            name = str(raw.get("id")) if isinstance(raw, Mapping) else f"#{n + 1}"
            raise FaqDocumentError(name, problems)
        if entry.id in seen:
            raise ValueError(f"duplicate FAQ id {entry.id!r}")
        seen.add(entry.id)
        entries.append(entry)
    return entries


def validate_entry(entry: FaqEntry) -> list[FaqProblem]:
    """Everything wrong with an entry's content before it may be saved (empty: it is fine)."""
    problems: list[FaqProblem] = []

    def problem(code: str, where: str, limit: int | None = None) -> None:
        problems.append(FaqProblem(code, where, limit))

    if not FAQ_ID.fullmatch(entry.id):
        problem("bad_id", "id")
    for name, texts in (("title", entry.title), ("answer", entry.answer)):
        for lang in texts:
            if lang not in LOCALES:
                problem("unknown_language", f"{name}.{lang}")
        if not texts.get("id", "").strip():
            problem("missing", f"{name}.id")
        if "en" in texts and not texts["en"].strip():
            problem("empty", f"{name}.en")
        limit = MAX_TITLE if name == "title" else MAX_ANSWER
        for lang, text in texts.items():
            if len(text) > limit:
                problem("too_long", f"{name}.{lang}", limit)
    paraphrases = entry.paraphrases
    for lang in paraphrases:
        if lang not in LOCALES:
            problem("unknown_language", f"paraphrases.{lang}")
    if not [p for p in paraphrases.get("id", []) if p.strip()]:
        # The matcher learns the participants' (Indonesian) words from these; without them nobody reaches the entry.
        problem("missing", "paraphrases.id")
    for lang, items in paraphrases.items():
        if any(not p.strip() for p in items):
            problem("empty", f"paraphrases.{lang}")
        if any(len(p) > MAX_PARAPHRASE for p in items):
            problem("too_long", f"paraphrases.{lang}", MAX_PARAPHRASE)
        if len(items) > MAX_PARAPHRASES:
            problem("too_many", f"paraphrases.{lang}", MAX_PARAPHRASES)
    if len(entry.sources) > MAX_SOURCES:
        problem("too_many", "sources", MAX_SOURCES)
    return problems


def entry_document(entry: FaqEntry) -> dict[str, Any]:
    """An entry as the knowledge file writes it (without its id): what read_entry takes back."""
    document: dict[str, Any] = {"title": entry.title}
    if entry.kind:
        document["kind"] = entry.kind
    if entry.sources:
        document["sources"] = list(entry.sources)
    return document | {"paraphrases": entry.paraphrases, "answer": entry.answer}


def _texts(value: object, name: str, problems: list[EntryProblem]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or any(isinstance(v, dict | list) or v is None for v in value.values()):
        problems.append(EntryProblem("faq_yaml_shape", {"field": name, "shape": "texts"}))
        return {}
    if not _all_text(name, value.items(), problems):
        return {}
    return dict(value)


def _lists(value: object, name: str, problems: list[EntryProblem]) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, list) for v in value.values()):
        problems.append(EntryProblem("faq_yaml_shape", {"field": name, "shape": "lists"}))
        return {}
    if any(isinstance(item, dict | list) or item is None for v in value.values() for item in v):
        problems.append(EntryProblem("faq_yaml_shape", {"field": name, "shape": "lists"}))
        return {}
    if not _all_text(name, ((k, item) for k, v in value.items() for item in v), problems):
        return {}
    return {str(k): list(v) for k, v in value.items()}


def _sources(value: object, problems: list[EntryProblem]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append(EntryProblem("faq_yaml_shape", {"field": "sources", "shape": "ids"}))
        return ()
    return tuple(value)


def _all_text(name: str, pairs: Iterable[tuple[object, object]], problems: list[EntryProblem]) -> bool:
    """YAML reads `yes`, `no`, `12` or a date as something other than text: refused (with a hint to quote it),
    never saved as "True"."""
    wrong = [(k, v) for k, v in pairs if not isinstance(k, str) or not isinstance(v, str)]
    for language, value in wrong[:3]:
        problems.append(
            EntryProblem("faq_yaml_not_text", {"field": name, "language": str(language), "value": str(value)})
        )
    return not wrong
