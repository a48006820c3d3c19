"""Telegram's HTML parse mode, checked at two levels.

* `telegram_refusal(text)`: what the Bot API answers "Bad Request: can't parse entities" to — an unsupported or
  unclosed tag, an unmatched end tag, a bare "<". Modelled on tdlib's `parse_html`, which the Bot API runs; it is
  lenient with a bare "&" or ">" and unknown entities (kept as literal text). The fake Bot API server refuses exactly
  these.
* `html_problems(text)`: the documented contract our replies keep (https://core.telegram.org/bots/api#html-style and
  `knowledge/faq.yaml`): only b, i, u, s, a, code, pre, tg-spoiler, blockquote; balanced and properly nested; every
  "<", ">" and "&" that is not markup escaped; non-empty and at most 4,096 characters.

`parse_telegram_html` turns accepted HTML into the plain text and the `MessageEntity`-shaped dicts Telegram sends back
(offsets in UTF-16 code units).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

MAX_TEXT = 4096

# What our templates may use.
ALLOWED_TAGS = frozenset({"b", "i", "u", "s", "a", "code", "pre", "tg-spoiler", "blockquote"})
# Telegram also accepts these spellings.
SYNONYMS = {"strong": "b", "em": "i", "ins": "u", "strike": "s", "del": "s", "span": "tg-spoiler"}
TELEGRAM_TAGS = ALLOWED_TAGS | SYNONYMS.keys() | {"tg-emoji"}
_ATTRIBUTES = {
    "a": {"href"},
    "span": {"class"},
    "code": {"class"},
    "blockquote": {"expandable"},
    "tg-emoji": {"emoji-id"},
}
_ENTITY_TYPES = {
    "b": "bold",
    "i": "italic",
    "u": "underline",
    "s": "strikethrough",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_ESCAPED_AMPERSAND = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class _Open:
    tag: str  # canonical name
    start: int  # UTF-16 offset in the plain text
    attrs: dict[str, str | None]


class _TelegramHtml(HTMLParser):
    """Collects the plain text and entities, what Telegram refuses, and what breaks the documented rules."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.refusals: list[str] = []
        self.violations: list[str] = []
        self.text: list[str] = []
        self.entities: list[dict[str, Any]] = []
        self.stack: list[_Open] = []
        self.utf16_offset = 0

    def _append(self, data: str) -> None:
        self.text.append(data)
        self.utf16_offset += utf16_len(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TELEGRAM_TAGS:
            self.refusals.append(f'Unsupported start tag "{tag}"')
            return
        if tag not in ALLOWED_TAGS:
            self.violations.append(f"<{tag}> is not one of our tags {sorted(ALLOWED_TAGS)}")
        canonical = SYNONYMS.get(tag, tag)
        values = dict(attrs)
        for name, _ in attrs:
            if name not in _ATTRIBUTES.get(tag, set()):
                self.violations.append(f"attribute {name!r} of <{tag}> is not supported")
        if tag == "a" and not values.get("href"):
            self.violations.append("<a> without href")
        open_tags = [o.tag for o in self.stack]
        if "code" in open_tags or ("pre" in open_tags and canonical != "code"):
            self.violations.append(f"<{tag}> inside <code>/<pre>")
        if canonical == "a" and "a" in open_tags:
            self.violations.append("<a> inside <a>")
        self.stack.append(_Open(canonical, self.utf16_offset, values))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refusals.append(f'Unsupported start tag "{tag}/"')

    def handle_endtag(self, tag: str) -> None:
        canonical = SYNONYMS.get(tag, tag)
        if not self.stack:
            self.refusals.append(f"Unexpected end tag </{tag}>")
            return
        if self.stack[-1].tag != canonical:
            self.refusals.append(f'Unmatched end tag </{tag}>, expected "</{self.stack[-1].tag}>"')
            return
        opened = self.stack.pop()
        length = self.utf16_offset - opened.start
        if length == 0:
            return  # Telegram drops empty entities
        entity: dict[str, Any] = {"type": _ENTITY_TYPES[canonical], "offset": opened.start, "length": length}
        if canonical == "a":
            href = opened.attrs.get("href")
            if not href:
                return  # Telegram makes no link of it
            entity["url"] = href
        if canonical == "blockquote" and "expandable" in opened.attrs:
            entity["type"] = "expandable_blockquote"
        if canonical == "tg-emoji":
            entity["custom_emoji_id"] = opened.attrs.get("emoji-id")
        if canonical == "code" and self.stack and self.stack[-1].tag == "pre":
            language = (opened.attrs.get("class") or "").removeprefix("language-")
            if language:
                self.stack[-1].attrs["language"] = language
            return  # <pre><code class="language-x"> is one pre entity with a language
        if canonical == "pre" and opened.attrs.get("language"):
            entity["language"] = opened.attrs["language"]
        self.entities.append(entity)

    def handle_data(self, data: str) -> None:
        if "<" in data:  # e.g. "<3" or "< b": Telegram reads a tag there
            self.refusals.append(f"Unsupported start tag in {data[data.index('<') :][:20]!r}")
        if ">" in data:
            self.violations.append(f"unescaped '>' in {data[:40]!r}")
        self._append(data)

    def handle_entityref(self, name: str) -> None:
        if name in _NAMED:
            self._append(_NAMED[name])
        else:  # Telegram keeps an unknown entity as it is
            self.violations.append(f"entity &{name}; is not supported")
            self._append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        try:
            code = int(name[1:], 16) if name[:1] in ("x", "X") else int(name)
            char = chr(code)
        except (ValueError, OverflowError):
            self.violations.append(f"bad character reference &#{name};")
            self._append(f"&#{name};")
            return
        if 0xD800 <= code <= 0xDFFF:
            self.refusals.append("Text contains invalid Unicode characters after decoding HTML entities")
        self._append(char)

    def handle_comment(self, data: str) -> None:
        self.refusals.append('Unsupported start tag "!--"')

    def handle_decl(self, decl: str) -> None:
        self.refusals.append(f'Unsupported start tag "!{decl.split()[0] if decl else ""}"')

    def handle_pi(self, data: str) -> None:
        self.refusals.append('Unsupported start tag "?"')

    def unknown_decl(self, data: str) -> None:
        self.refusals.append('Unsupported start tag "![CDATA["')


@dataclass(frozen=True)
class HtmlReport:
    plain: str
    entities: list[dict[str, Any]]
    refusals: list[str]  # Telegram answers 400 "can't parse entities"
    violations: list[str]  # breaks the documented rules (Telegram may tolerate it today)


def check_html(text: str) -> HtmlReport:
    parser = _TelegramHtml()
    for match in re.finditer("&", text):
        if not _ESCAPED_AMPERSAND.match(text, match.start()):
            parser.violations.append(f"unescaped '&' in {text[max(match.start() - 15, 0) : match.start() + 15]!r}")
    parser.feed(text)
    parser.close()
    for still_open in parser.stack:
        parser.refusals.append(f"Can't find end tag corresponding to start tag {still_open.tag}")
    entities = sorted(parser.entities, key=lambda e: (e["offset"], -e["length"]))
    return HtmlReport(
        "".join(parser.text), entities, list(dict.fromkeys(parser.refusals)), list(dict.fromkeys(parser.violations))
    )


def telegram_refusal(text: str) -> str | None:
    """The error the Bot API gives for `text` in HTML parse mode, or None when it takes it."""
    report = check_html(text)
    if report.refusals:
        return f"Bad Request: can't parse entities: {report.refusals[0]}"
    if not report.plain.strip():
        return "Bad Request: message text is empty"
    if len(report.plain) > MAX_TEXT:
        return "Bad Request: message is too long"
    return None


def html_problems(text: str) -> list[str]:
    """Why `text` is not valid Telegram HTML by the documented rules (empty list: it is fine)."""
    report = check_html(text)
    problems = report.refusals + report.violations
    if not report.plain.strip():
        problems.append("message text is empty")
    if len(report.plain) > MAX_TEXT:
        problems.append(f"message is too long ({len(report.plain)} characters)")
    return problems


def assert_telegram_html(text: str) -> None:
    problems = html_problems(text)
    assert not problems, f"not valid Telegram HTML: {problems} in {text!r}"


def assert_telegram_accepts(text: str) -> None:
    refusal = telegram_refusal(text)
    assert refusal is None, f"{refusal} in {text!r}"


def parse_telegram_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities as Telegram returns them; ValueError with Telegram's wording when it refuses."""
    report = check_html(text)
    if report.refusals:
        raise ValueError(f"Bad Request: can't parse entities: {report.refusals[0]}")
    return report.plain, report.entities
