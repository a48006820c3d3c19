"""Where the editable knowledge lives (one place, so tests and the CLI agree)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def knowledge_dir() -> Path:
    """The `knowledge/` folder; `KNOWLEDGE_DIR` overrides it for deployments that mount it elsewhere."""
    return Path(os.environ.get("KNOWLEDGE_DIR") or PROJECT_ROOT / "knowledge")
