"""Database engine, sessions and migrations. SQLite (aiosqlite) by default, PostgreSQL (asyncpg) by URL."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
T = TypeVar("T")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def normalize_url(url: str) -> str:
    """Accept the usual `postgresql://` / `sqlite:///` forms and pick the async driver."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername != "postgresql+asyncpg":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite" and parsed.drivername != "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _sqlite_pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not wait for an import's writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    url = normalize_url(url)
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def make_sync_sqlite_engine(path: Path) -> Engine:
    """A plain sqlite3 engine on the same file, for read paths that run whole on a worker thread."""
    engine = create_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


_SIDECARS: weakref.WeakKeyDictionary[AsyncEngine, Engine] = weakref.WeakKeyDictionary()


def sqlite_sidecar(engine: AsyncEngine) -> Engine | None:
    """On a SQLite file: one plain sqlite3 engine beside the async one (None elsewhere). aiosqlite hops threads on
    every cursor call, several times per statement; the hot paths of a turn run their statements together on one
    worker thread instead (see `run_blocking`)."""
    path = sqlite_path(str(engine.url))
    if path is None:
        return None
    sidecar = _SIDECARS.get(engine)
    if sidecar is None:
        sidecar = _SIDECARS[engine] = make_sync_sqlite_engine(path)
    return sidecar


def close_sidecar(engine: AsyncEngine) -> None:
    sidecar = _SIDECARS.pop(engine, None)
    if sidecar is not None:
        sidecar.dispose()


async def run_blocking(engine: AsyncEngine, work: Callable[[Connection], T], *, write: bool = False) -> T:
    """Run `work` (plain SQLAlchemy calls on a Connection) in one transaction: on SQLite in a worker thread through
    the sidecar engine, elsewhere through the async engine (asyncpg) on this loop. `write`: commit at the end."""
    sidecar = sqlite_sidecar(engine)
    if sidecar is not None:

        def on_thread() -> T:
            with sidecar.begin() if write else sidecar.connect() as conn:
                return work(conn)

        return await asyncio.to_thread(on_thread)
    async with engine.begin() if write else engine.connect() as conn:
        return await conn.run_sync(work)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config() -> Config:
    # Alembic is imported only when migrating: it costs every CLI start a noticeable fraction of a second.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision` (the only way tables are created)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, revision)
