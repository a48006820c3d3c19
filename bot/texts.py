"""The one renderer of everything a person reads: Jinja2 templates from `knowledge/`, Indonesian first.

Templates render with StrictUndefined (a missing value is a bug, not an empty string) and HTML autoescape, so that
anything interpolated — names, questions, platform names — cannot break Telegram's HTML parse mode.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined, Template, meta, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from core.paths import knowledge_dir, read_yaml

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
            # Capped: an answer saved before render checks had limits must not fill the memory either.
            return render_limited(template, {"locale": locale, **context})
        except TemplateError:
            raise
        except Exception as exc:
            raise TemplateError(str(exc)) from exc


def load_yaml(name: str, folder: Path | None = None) -> Any:
    return read_yaml((folder or knowledge_dir()) / name)


@lru_cache(maxsize=1)
def default_renderer() -> Renderer:
    """Messages plus the rules and the directory, which templates may quote."""
    return Renderer(
        load_yaml("messages.yaml")["messages"],
        {"rules": load_yaml("rules.yaml"), "directory": load_yaml("platforms.yaml")},
    )


# --- answers written at runtime: rendered with limits, in a process of their own ------------------------------------
RENDER_TIME_LIMIT = 0.2  # seconds one render of an admin's answer may take
RENDER_OUTPUT_LIMIT = 16 * 1024  # characters; an answer must fit one 4,096-character message anyway
_HARD_STOP = 2.0  # seconds after which a render that never returns is killed with its process
_WORKER_START = 60.0  # seconds a fresh worker may take to import and load the knowledge files (a busy machine)


class OutputTooLong(Exception):
    """A template produced more than RENDER_OUTPUT_LIMIT characters: stopped there."""


def render_limited(template: Template, context: Mapping[str, Any], limit: int = RENDER_OUTPUT_LIMIT) -> str:
    """Render chunk by chunk and stop at `limit` characters, so that a loop cannot fill the memory."""
    parts: list[str] = []
    size = 0
    for part in template.generate(**context):
        size += len(part)
        if size > limit:
            raise OutputTooLong(f"more than {limit} characters")
        parts.append(part)
    return "".join(parts).strip()


@dataclass(frozen=True)
class RenderCheck:
    """How one trial render of an admin's answer went: `ok` (with its text), `error` (with the reason), `unsafe`
    (the sandbox refused), `slow` (over RENDER_TIME_LIMIT) or `too_long` (over RENDER_OUTPUT_LIMIT)."""

    kind: str
    text: str = ""
    detail: str = ""


class RenderWorker:
    """A process that renders admins' answers for checking: a template that loops for ever or blows up memory
    stalls or kills that process, never the bot's event loop. Kept between checks; replaced after a kill."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: Any = None
        self._pipe: Any = None

    def check(self, jobs: Sequence[tuple[str, str, Mapping[str, Any] | None]]) -> list[RenderCheck]:
        """Blocking (call it from a thread): render each (source, locale, participant) within the limits."""
        with self._lock:
            results: list[RenderCheck] = []
            for job in jobs:
                pipe = self._ready()
                pipe.send(job)
                if pipe.poll(_HARD_STOP):
                    results.append(pipe.recv())
                else:
                    self._stop()  # still rendering: the only way to stop it is to end the process
                    results.append(RenderCheck("slow", detail=f"over {_HARD_STOP:g} s"))
            return results

    def _ready(self) -> Any:
        if self._process is not None and self._process.is_alive():
            return self._pipe
        context = multiprocessing.get_context("spawn")  # fork is unsafe in a process with threads
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_render_worker, args=(child,), daemon=True, name="render-check")
        self._process.start()
        child.close()
        if not self._pipe.poll(_WORKER_START):
            self._stop()
            raise RuntimeError("the render worker did not start")
        self._pipe.recv()
        return self._pipe

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(5)
        self._process = self._pipe = None


def _render_worker(pipe: Any) -> None:
    renderer = default_renderer()
    pipe.send("ready")
    while True:
        try:
            source, locale, participant = pipe.recv()
        except EOFError:
            return
        pipe.send(_trial_render(renderer, source, locale, participant))


def _trial_render(renderer: Renderer, source: str, locale: str, participant: Mapping[str, Any] | None) -> RenderCheck:
    started = time.perf_counter()
    try:
        template = renderer.compile(source, env=renderer.answer_env)
        text = render_limited(template, {"locale": locale, "participant": participant})
    except OutputTooLong:
        return RenderCheck("too_long", detail=str(RENDER_OUTPUT_LIMIT))
    except MemoryError:
        return RenderCheck("too_long", detail="memory")
    except Exception as exc:
        unsafe = isinstance(exc, SecurityError) or isinstance(exc.__cause__, SecurityError)
        return RenderCheck("unsafe" if unsafe else "error", detail=str(exc))
    if time.perf_counter() - started > RENDER_TIME_LIMIT:
        return RenderCheck("slow", detail=f"over {RENDER_TIME_LIMIT * 1000:g} ms")
    return RenderCheck("ok", text=text)


RENDER_WORKER = RenderWorker()
