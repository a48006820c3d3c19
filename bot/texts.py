"""The one renderer of everything a person reads: Jinja2 templates from `knowledge/`, Indonesian first.

Templates render with StrictUndefined (a missing value is a bug, not an empty string) and HTML autoescape, so that
anything interpolated — names, questions, platform names — cannot break Telegram's HTML parse mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, StrictUndefined, Template, meta, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from core.paths import knowledge_dir

LOCALES = ("id", "en")
_DAYS = {
    "id": ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS = {
    "id": ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
           "November", "Desember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
}  # fmt: skip


@pass_context
def rupiah(context: Context, amount: int) -> str:
    """ "Rp600.000" in Indonesian, "Rp600,000" in English: each reader's thousands separator."""
    grouped = f"{int(amount):,}"
    return "Rp" + (grouped if context.get("locale", "id") == "en" else grouped.replace(",", "."))


@pass_context
def long_date(context: Context, value: date | datetime | None) -> str:
    """ "Rabu, 25 Maret 2026" / "Wednesday, 25 March 2026" in the reader's language."""
    if value is None:
        return "—"
    locale = context.get("locale", "id")
    return f"{_DAYS[locale][value.weekday()]}, {value.day} {_MONTHS[locale][value.month - 1]} {value.year}"


@pass_context
def short_date(context: Context, value: date | datetime | None) -> str:
    if value is None:
        return "—"
    locale = context.get("locale", "id")
    return f"{value.day} {_MONTHS[locale][value.month - 1]} {value.year}"


def make_environment(keep_line_breaks: bool = False, sandboxed: bool = False) -> Environment:
    """`keep_line_breaks`: block tags leave the text around them as written (FAQ answers, see `render_source`);
    otherwise a line that ends in a block tag loses its line break (trim_blocks), as messages.yaml expects.
    `sandboxed`: for templates written at runtime (admins' FAQ answers) — Jinja2's immutable sandbox refuses
    Python internals (`__class__`, `__globals__`…), methods that change data, and `range` beyond 100,000."""
    trim = not keep_line_breaks
    kind = ImmutableSandboxedEnvironment if sandboxed else Environment
    env = kind(undefined=StrictUndefined, autoescape=True, trim_blocks=trim, lstrip_blocks=trim)
    env.filters["rupiah"] = rupiah
    env.filters["long_date"] = long_date
    env.filters["short_date"] = short_date
    return env


MAX_CACHED_SOURCES = 2048  # FAQ answers in use, a few versions each; admins' edits add new texts


class TemplateError(ValueError):
    """A template that does not parse or render; the message says which and why."""


class Renderer:
    """Renders message keys from `knowledge/messages.yaml` and any template text (FAQ answers) in a locale."""

    def __init__(self, messages: Mapping[str, Mapping[str, str]], globals_: Mapping[str, Any] | None = None) -> None:
        self.env = make_environment()
        self.env.globals.update(globals_ or {})
        # FAQ answers (faq.yaml, admins' edits) keep each line break where it is written and drop one with "{%-"
        # before an optional sentence: trim_blocks would also eat the break after every block tag, running
        # sentences and bullets together.
        self.answer_env = make_environment(keep_line_breaks=True, sandboxed=True)
        self.answer_env.globals.update(globals_ or {})
        self._templates: dict[tuple[str, str], Template] = {}
        self._sources: dict[str, Template] = {}
        self._variables: dict[str, frozenset[str]] = {}
        for key, by_locale in messages.items():
            for locale, source in by_locale.items():
                self._templates[key, locale] = self.compile(source, name=f"{key}.{locale}")

    def compile(self, source: str, name: str = "template", env: Environment | None = None) -> Template:
        try:
            return (env or self.env).from_string(source)
        except Exception as exc:  # jinja2.TemplateSyntaxError and friends
            raise TemplateError(f"{name}: {exc}") from exc

    def has(self, key: str) -> bool:
        return (key, "id") in self._templates

    def render(self, key: str, locale: str, **context: Any) -> str:
        template = self._templates.get((key, locale)) or self._templates[key, "id"]
        return template.render(locale=locale, **context).strip()

    def uses(self, source: str, name: str) -> bool:
        """Whether template text reads the variable `name` (so a caller can skip a look-up nobody reads)."""
        used = self._variables.get(source)
        if used is None:
            try:
                used = frozenset(meta.find_undeclared_variables(self.env.parse(source)))
            except Exception:  # a broken template fails when rendered, with its own message
                used = frozenset()
            if len(self._variables) >= MAX_CACHED_SOURCES:
                self._variables.clear()
            self._variables[source] = used
        return name in used

    def render_source(self, source: str, locale: str, **context: Any) -> str:
        """Render an FAQ answer, its line breaks as written; compiled once per distinct text (compiling costs more)."""
        try:
            template = self._sources.get(source)
            if template is None:
                if len(self._sources) >= MAX_CACHED_SOURCES:
                    self._sources.clear()
                template = self._sources[source] = self.compile(source, env=self.answer_env)
            return template.render(locale=locale, **context).strip()
        except TemplateError:
            raise
        except Exception as exc:
            raise TemplateError(str(exc)) from exc


def load_yaml(name: str, folder: Path | None = None) -> Any:
    return yaml.safe_load(((folder or knowledge_dir()) / name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def default_renderer() -> Renderer:
    """Messages plus the rules and the directory, which templates may quote."""
    return Renderer(
        load_yaml("messages.yaml")["messages"],
        {"rules": load_yaml("rules.yaml"), "directory": load_yaml("platforms.yaml")},
    )
