"""Shared fixtures: real databases (an SQLite file per test; PostgreSQL when DATABASE_URL points at one) and the
fake Bot API server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.util.exc import CommandError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import Database
from tests.fake_bot_api import FakeBotApi

PG_URL = os.environ.get("DATABASE_URL", "") if os.environ.get("DATABASE_URL", "").startswith("postgres") else ""
# A scratch database, like DATABASE_URL's (whose schema the tests recreate): tests flush it (the same user ids and
# update ids come back every run; an earlier run's throttle buckets must not count). Whoever runs the tests names
# their own database here: no test flushes a database number of its own choosing, which may be someone else's.
REDIS_URL = os.environ.get("REDIS_URL", "")
requires_pg = pytest.mark.skipif(not PG_URL, reason="DATABASE_URL does not point at PostgreSQL")
# Words in the skip reasons of tests that use the one PostgreSQL database or Redis (some stop and restart them).
_SERVICE_WORDS = ("PostgreSQL", "DATABASE_URL", "REDIS_URL", "Redis")


def pytest_itemcollected(item: pytest.Item) -> None:
    """Under pytest-xdist (`--dist loadgroup`) every test that touches the shared PostgreSQL database or Redis runs
    in one worker, one after the other: they recreate the schema, flush Redis and even restart the servers. (Marked
    as each item is collected: xdist reads the groups in its own collection hook.)"""
    reasons = [str(m.kwargs.get("reason", "")) for m in item.iter_markers("skipif")]
    if "pg_db" in getattr(item, "fixturenames", ()) or any(w in r for r in reasons for w in _SERVICE_WORDS):
        item.add_marker(pytest.mark.xdist_group("services"))


async def _fresh(url: str) -> Database:
    db = Database.open(url)
    if not url.startswith("sqlite"):
        try:
            await db.downgrade("base")
        except CommandError:  # left at a revision this checkout does not have (another branch migrated it): start over
            async with db.engine.begin() as connection:
                await connection.execute(text("DROP SCHEMA public CASCADE"))
                await connection.execute(text("CREATE SCHEMA public"))
    await db.migrate()
    return db


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    async with await _fresh(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}") as db:
        yield db


@pytest.fixture
async def pg_db() -> AsyncIterator[Database]:
    if not PG_URL:
        pytest.skip("DATABASE_URL does not point at PostgreSQL")
    async with await _fresh(PG_URL) as db:
        yield db


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=requires_pg)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """The same test on the embedded default and, when available, on PostgreSQL."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}" if request.param == "sqlite" else PG_URL
    async with await _fresh(url) as db:
        yield db


# The engines of those databases, for tests of services that only open sessions on them.
@pytest.fixture
def sqlite_engine(sqlite_db: Database) -> AsyncEngine:
    return sqlite_db.engine


@pytest.fixture
def pg_engine(pg_db: Database) -> AsyncEngine:
    return pg_db.engine


@pytest.fixture
def engine(db: Database) -> AsyncEngine:
    return db.engine


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    """A fake Bot API server on 127.0.0.1 for the test."""
    async with FakeBotApi() as server:
        yield server
