"""The database: `Database` (engine, sessions, SQLite lanes, migrations, close). SQLite (aiosqlite) by default,
PostgreSQL (asyncpg) by URL."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
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


# For a new database only (a no-op once the file has content). Bigger pages than SQLite's 4 KB default make the
# bulk imports cheaper: fewer B-tree page splits, and fewer WAL frames to write and checkpoint for the same rows
# (bench/import_bench.py, a million rows: 7.1-7.5 s of CPU instead of 9.8-11.2 s, wall time 8.7-9.3 s instead of
# 11.4-12.6 s). A turn's few point reads and small writes are measured by bench/load.py.
SQLITE_PAGE_SIZE = 16_384


def _sqlite_pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")  # before WAL mode writes the file's first page
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
    # No pool_pre_ping: asyncpg's ping is three round trips (BEGIN, ";", ROLLBACK) on every checkout. A connection
    # whose server end went away (PostgreSQL restarted, pg_terminate_backend) is closed on our side as soon as the
    # loop reads the end of its socket: the checkout below drops it for a fresh one at no round trip. One that dies
    # while in use fails its statement; SQLAlchemy then drops every pooled connection older than that failure and
    # `Database.run` runs its work again once. pool_recycle replaces connections before a firewall or proxy could
    # drop them silently while idle.
    kwargs.setdefault("pool_recycle", 1800)
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "checkout", _drop_if_closed)
    return engine


def _drop_if_closed(dbapi_conn: Any, _record: ConnectionPoolEntry, _proxy: Any) -> None:
    """Pool checkout on PostgreSQL: a connection asyncpg knows to be closed is replaced (the pool opens a new one)."""
    if dbapi_conn.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def make_sync_sqlite_engine(path: Path) -> Engine:
    """A plain sqlite3 engine on the same file, for the lane threads (see `Database.run`)."""
    engine = create_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


@contextlib.contextmanager
def sqlalchemy_errors(conn: Connection, sql: str, params: Any) -> Iterator[None]:
    """Around SQL run straight on a lane's sqlite3 connection (turn context, /status records, update ledger, grouped
    rows): the driver's errors as SQLAlchemy raises them (IntegrityError, OperationalError…), which callers catch."""
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        yield
    except dbapi_error as exc:
        raise DBAPIError.instance(sql, params, exc, dbapi_error) from exc


_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[Connection], Any]]
_Outcome = tuple[Any, BaseException | None]
MAX_GROUP = 200  # write jobs committed together at most


class _Lane:
    """One thread with one connection to the SQLite file, running the work handed to it in order.

    Cheaper per call than `asyncio.to_thread` (no executor future, lock and context copy per call), and a single
    connection per lane never waits for the file lock held by a sibling connection of ours. The write lane commits
    the jobs that queued up meanwhile together (group commit): each caller still hears back only after the commit
    that holds its work. The jobs a loop hands over in one pass of its callbacks go to the thread together, in one
    queue item (`send`): one wake-up of the thread, and one GIL hand-over, for them all.
    """

    def __init__(self, engine: Engine, name: str, write: bool) -> None:
        self.engine = engine
        self.write = write
        self.queue: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        self._unsent: dict[asyncio.AbstractEventLoop, list[_Job]] = {}  # per loop: handed over, not yet sent
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def submit(self, work: Callable[[Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        unsent = self._unsent.get(loop)
        if unsent is None:
            unsent = self._unsent[loop] = []
            loop.call_soon(self.send, loop)  # after the callbacks already ready: their jobs join this one
        unsent.append((loop, future, work))
        return future

    def send(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand the jobs `loop` submitted since the last send to the thread (a no-op when there are none)."""
        jobs = self._unsent.pop(loop, None)
        if jobs:
            self.queue.put(jobs)

    def _run(self) -> None:
        conn: Connection | None = None
        running = True
        backlog: list[_Job] = []  # received, beyond the last group's MAX_GROUP
        while backlog or running:
            if not backlog:
                first = self.queue.get()
                if first is None:
                    break
                backlog = first
            # What queued up meanwhile goes too: the write lane commits it together, the read lane runs it one
            # transaction after another; either way the callers hear back in one wake-up of their loop.
            while running and len(backlog) < MAX_GROUP:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    running = False
                    break
                backlog.extend(more)
            jobs, backlog = backlog[:MAX_GROUP], backlog[MAX_GROUP:]
            try:
                conn = conn if conn is not None and not conn.invalidated else self.engine.connect()
                if self.write and len(jobs) > 1:
                    outcomes = self._together(conn, jobs)
                else:
                    outcomes = [self._alone(conn, job) for job in jobs]
            except BaseException as exc:  # no connection
                outcomes = [(None, exc)] * len(jobs)
            _hand_back(jobs, outcomes)
        if conn is not None:
            conn.close()

    def _alone(self, conn: Connection, job: _Job) -> _Outcome:
        try:
            result = job[2](conn)
            if self.write:
                conn.commit()
            else:
                conn.rollback()  # a read must not keep its snapshot open
        except BaseException as exc:
            conn.rollback()
            return None, exc
        return result, None

    def _together(self, conn: Connection, jobs: list[_Job]) -> list[_Outcome]:
        try:
            results = [job[2](conn) for job in jobs]
            conn.commit()
        except BaseException:
            # One job failed (or the commit): nothing of the group is kept; each runs again on its own.
            conn.rollback()
            return [self._alone(conn, job) for job in jobs]
        return [(result, None) for result in results]


def _hand_back(jobs: list[_Job], outcomes: list[_Outcome]) -> None:
    """Settle the jobs' futures with one call into each waiting loop (each call wakes that loop's selector)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
    for (loop, future, _), (result, error) in zip(jobs, outcomes, strict=True):
        by_loop.setdefault(loop, []).append((future, result, error))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_resolve, settled)


def _resolve(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in settled:
        if future.done():  # the caller was cancelled
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class _Lanes:
    """On a SQLite file: a plain sqlite3 engine beside the async one, with a read lane and a write lane.
    aiosqlite hops threads on every cursor call, several times per statement; the hot paths of a turn run their
    statements together in one hop instead (see `Database.run`)."""

    def __init__(self, path: Path) -> None:
        self.engine = make_sync_sqlite_engine(path)
        self.reads = _Lane(self.engine, "sqlite-reads", write=False)
        # Apart from reads: a write waiting for the file lock (an import) holds up no look-up.
        self.writes = _Lane(self.engine, "sqlite-writes", write=True)

    def send(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand the jobs `loop` submitted so far to the threads now (before `stop`)."""
        self.reads.send(loop)
        self.writes.send(loop)

    def stop(self) -> None:
        """Ask both threads to finish the work queued so far and stop (without waiting for them)."""
        self.reads.queue.put(None)
        self.writes.queue.put(None)

    def close(self) -> None:
        self.stop()
        self.reads.thread.join(timeout=10)
        self.writes.thread.join(timeout=10)
        self.engine.dispose()


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


class Database:
    """The app's database: the async engine, its sessions and, on a SQLite file, the two lane threads of `run`.

    Whoever opens one closes it — `async with Database.open(url) as db:` — and everything built on it (the app's
    services, a CLI command, a test) shares that one object. Two Databases on the same file share nothing: each has
    its own connections and lanes (the polling ledger keeps its own so that it never waits behind a turn).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = make_sessionmaker(engine)
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._path = sqlite_path(str(engine.url)) if self.is_sqlite else None  # None: `run` uses the async engine
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")  # `run`'s reads on PostgreSQL
        self._lanes: _Lanes | None = None  # started by the first `run`: many commands never need them
        self._unclosed: weakref.finalize[[], Database] | None = None
        self._closed = False

    @classmethod
    def open(cls, url: str, **engine_options: Any) -> Database:
        """Connects lazily: nothing is opened before the first statement."""
        return cls(make_engine(url, **engine_options))

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)

    async def run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        """Run `work` (plain SQLAlchemy calls on a Connection) in one transaction: on a SQLite file on a lane thread
        with a plain sqlite3 connection, elsewhere through the async engine (asyncpg) on this loop. `write`: commit
        at the end; on SQLite concurrent writes share one commit (group commit, each caller hears back after it)."""
        lanes = self._lanes
        if lanes is None:
            if self._path is None:
                return await self._run_on_engine(work, write)
            lanes = self._start_lanes(self._path)
        return await (lanes.writes if write else lanes.reads).submit(work)

    async def _run_on_engine(self, work: Callable[[Connection], T], write: bool) -> T:
        """`run` on PostgreSQL. A read runs in autocommit mode: no BEGIN and ROLLBACK round trips, and under READ
        COMMITTED each statement had its own snapshot anyway. Work whose connection turned out dead runs again once on
        a new one: the server never committed any of it (nothing is committed before the work has returned, and a
        failed commit is not retried — its answer may be what was lost)."""
        for attempt in (1, 2):
            async with (self.engine if write else self._autocommit).connect() as conn:
                try:
                    result = await conn.run_sync(work)
                except DBAPIError as exc:
                    if attempt == 2 or not exc.connection_invalidated:
                        raise
                    continue
                if write:
                    await conn.commit()
                return result
        raise AssertionError("unreachable")

    def _start_lanes(self, path: Path) -> _Lanes:
        if self._closed:  # lanes started now would never be stopped
            raise RuntimeError("the database is closed")
        lanes = self._lanes = _Lanes(path)
        # Dropped without close (a crashed test): the threads still stop once their queued work is done.
        self._unclosed = weakref.finalize(self, lanes.stop)
        return lanes

    async def migrate(self, revision: str = "head") -> None:
        """Bring the schema to `revision` (the only way tables are created)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade, revision)

    async def downgrade(self, revision: str = "base") -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(_downgrade, revision)

    async def disconnect(self) -> None:
        """Close every connection — the lanes and the engine's pool — after the work queued so far; the next use
        opens new ones (`recreate_database` deletes the file in between)."""
        lanes, self._lanes = self._lanes, None
        if lanes is not None:
            assert self._unclosed is not None
            self._unclosed.detach()
            lanes.send(asyncio.get_running_loop())  # jobs submitted just now still run before the threads stop
            await asyncio.to_thread(lanes.close)
        await self.engine.dispose()

    async def close(self) -> None:
        """Disconnect for good (idempotent)."""
        self._closed = True
        await self.disconnect()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()
