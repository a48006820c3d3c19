"""Reading what a bot process logged (JSON lines by default, plain text with LOG_FORMAT=text)."""

from __future__ import annotations

import json


def is_error_line(line: str) -> bool:
    if " ERROR " in line or "Traceback" in line:
        return True
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    return isinstance(entry, dict) and entry.get("level") in ("ERROR", "CRITICAL")
