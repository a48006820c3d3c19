"""Whether a bot process is serving from an SQLite database right now, so that an import can refuse to hold that
database's single write lock for long (issue 11, item 4).

A bot process holds a shared `flock` on `<database>.serving` for its lifetime; an import that can take the lock
exclusively knows no bot is running. The lock goes with the process, also when it is killed: no stale state.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

# Rows an import may write while a bot serves from the same SQLite file: its transaction holds the write lock that
# every turn's log rows wait for, and imports write about 100,000 rows a second (README, Benchmarks), so this keeps
# a turn's wait well under half a second (bench/import_turns.py). By file size: rows are counted only while reading.
LIVE_IMPORT_MAX_BYTES = 1024 * 1024


def _marker(database: Path) -> Path:
    return database.with_name(database.name + ".serving")


@contextlib.contextmanager
def serving(database: Path | None) -> Iterator[None]:
    """Held by `run` and `chat` while they serve from the SQLite file `database` (None: PostgreSQL, nothing to do)."""
    if database is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(_marker(database), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def bot_is_serving(database: Path) -> bool:
    """Whether a bot process holds `serving(database)` now."""
    marker = _marker(database)
    if not marker.exists():
        return False
    fd = os.open(marker, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
