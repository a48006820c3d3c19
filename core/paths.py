"""Where the editable knowledge lives (one place, so tests and the CLI agree)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def knowledge_dir() -> Path:
    """The `knowledge/` folder; `KNOWLEDGE_DIR` overrides it for deployments that mount it elsewhere."""
    return Path(os.environ.get("KNOWLEDGE_DIR") or PROJECT_ROOT / "knowledge")


# libyaml's parser where PyYAML was built with it: the same data from our files (tests/test_knowledge_sources.py
# compares them) for a tenth of the CPU — reading knowledge/ cost ~0.2 s of every process's start-up in pure Python.
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> Any:
    """A trusted YAML file of ours (knowledge/, demo data): safe types only. Admins' uploads have their own loader."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
