"""Process logs: one JSON object per line (or text), with NIK and phone numbers masked whoever logged them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import configure_logging

NIK = "3273011708900001"
PHONE = "081234567890"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    yield stream
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def _use(stream: io.StringIO, form: str) -> None:
    configure_logging(form)  # type: ignore[arg-type]
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]


def test_json_lines_mask_personal_data_in_message_arguments_extras_and_tracebacks(captured: io.StringIO) -> None:
    _use(captured, "json")
    log = logging.getLogger("aiohttp.client")  # not our code: the net catches it too
    log.warning("participant %s wrote from %s", NIK, PHONE, extra={"update_id": 42, "chat": f"hp {PHONE}"})
    try:
        raise ValueError(f"bad NIK {NIK}")
    except ValueError:
        log.exception("lookup failed")
    lines = captured.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING" and first["logger"] == "aiohttp.client"
    assert first["message"] == "participant ************0001 wrote from ********7890"
    assert first["update_id"] == 42 and first["chat"] == "hp ********7890"
    assert second["level"] == "ERROR" and "ValueError: bad NIK ************0001" in second["error"]
    assert NIK not in captured.getvalue() and PHONE not in captured.getvalue()


def test_text_lines_are_masked_too_and_per_update_lines_are_off(captured: io.StringIO) -> None:
    _use(captured, "text")
    logging.getLogger("bot").info("hp %s", PHONE)
    logging.getLogger("aiogram.event").info("Update id=1 is handled")
    text = captured.getvalue()
    assert "INFO bot: hp ********7890" in text and PHONE not in text
    assert "is handled" not in text
