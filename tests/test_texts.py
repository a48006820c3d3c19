"""The knowledge files people read: complete in both languages, strict, and safe for Telegram's HTML mode."""

from __future__ import annotations

from datetime import date

import pytest
from jinja2 import UndefinedError

from bot.texts import Renderer, TemplateError, default_renderer, load_yaml


def test_every_message_has_indonesian_and_english() -> None:
    messages = load_yaml("messages.yaml")["messages"]
    missing = {key: sorted({"id", "en"} - set(value)) for key, value in messages.items() if set(value) != {"id", "en"}}
    assert missing == {}


def test_interpolated_values_are_escaped() -> None:
    renderer = Renderer({"hello": {"id": "Halo <b>{{ name }}</b>", "en": "Hi <b>{{ name }}</b>"}})
    text = renderer.render("hello", "id", name="<script>&</script>")
    assert text == "Halo <b>&lt;script&gt;&amp;&lt;/script&gt;</b>"
    assert renderer.render("hello", "en", name="A") == "Hi <b>A</b>"


def test_a_missing_value_is_an_error_not_an_empty_string() -> None:
    renderer = Renderer({"hello": {"id": "Halo {{ name }}", "en": "Hi {{ name }}"}})
    with pytest.raises(UndefinedError):
        renderer.render("hello", "id")


def test_a_broken_template_is_refused_with_its_name() -> None:
    with pytest.raises(TemplateError, match=r"bad\.id"):
        Renderer({"bad": {"id": "{% if %}", "en": "x"}})


def test_dates_and_money_in_the_readers_language() -> None:
    renderer = Renderer({"d": {"id": "{{ day | long_date }}", "en": "{{ day | long_date }}"}})
    assert renderer.render("d", "id", day=date(2026, 3, 25)) == "Rabu, 25 Maret 2026"
    assert renderer.render("d", "en", day=date(2026, 3, 25)) == "Wednesday, 25 March 2026"
    money = Renderer({"m": {"id": "{{ amount | rupiah }}", "en": "{{ amount | rupiah }}"}})
    assert money.render("m", "id", amount=3_500_000) == "Rp3.500.000"
    assert money.render("m", "en", amount=3_500_000) == "Rp3,500,000"  # the English reader's separator


def test_the_shipped_messages_compile() -> None:
    renderer = default_renderer()
    assert renderer.has("welcome") and renderer.has("step_escalate")
    assert "Bicara dengan agen" in renderer.render("btn_agent", "id")
