"""One import, start to end, in one transaction under the import lock.

The header and encoding are checked first (a file-level error writes nothing). Then the import takes the
lock (SQLite's write lock via BEGIN IMMEDIATE, or a PostgreSQL advisory lock), so imports run one at a time
and each sees what the previous one committed: a second run of the same file, even one started at the same
moment, finds nothing to do. The file is parsed in a worker thread, chunk by chunk, into a temporary table;
set-based SQL checks the rows and applies them with their events. Any rejected row rolls everything back;
the batch is then recorded as rejected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Generator, Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import uuid4

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.calendar import today_in_jakarta
from core.imports.backend import Backend, backend_for
from core.imports.platform_report import PlatformReportImport
from core.imports.pmo_results import PmoResultsImport
from core.imports.reading import Chunk, ImportFileReader, RowConverter
from core.imports.report import ImportKind, ImportReport, RejectedRow
from core.imports.spec import Applied, EventSource, ImportSpec
from core.imports.transfers import TransfersImport
from core.models import ImportBatch

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000  # rows parsed per step; two steps in flight stay well under 100 MB

_SPECS: dict[ImportKind, Callable[[], ImportSpec]] = {
    ImportKind.PLATFORM_REPORT: PlatformReportImport,
    ImportKind.PMO_RESULTS: PmoResultsImport,
    ImportKind.TRANSFERS: TransfersImport,
}

Progress = Callable[[int], None]


async def run_import(
    engine: AsyncEngine,
    kind: ImportKind | str,
    path: Path,
    *,
    today: date | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import one file of `kind` (CSV or JSON Lines, by extension); `progress` gets the rows read so far.

    Raises `ImportFileError` when the file as a whole is unusable (nothing is written then). Otherwise returns
    the report: either every row applied or unchanged (status "applied"), or the rejected rows with their line
    numbers and nothing applied (status "rejected", the batch recorded as such).
    """
    kind = ImportKind(kind)
    spec = _SPECS[kind]()
    path = Path(path)
    today = today or today_in_jakarta()
    started_at = datetime.now(UTC)
    reader = ImportFileReader(path, spec.columns, CHUNK_ROWS)
    await asyncio.to_thread(reader.open)
    try:
        async with engine.connect() as conn:
            db = backend_for(conn)
            run = _Run(db, spec, f"import_stage_{uuid4().hex[:16]}")
            await db.tune()
            try:
                return await _run(run, reader, today, started_at, progress)
            finally:
                with contextlib.suppress(Exception):
                    await conn.rollback()
                await run.drop_tables()
                await db.untune()
                if not conn.invalidated:
                    await conn.commit()
    finally:
        await asyncio.to_thread(reader.close)


async def _run(
    run: _Run, reader: ImportFileReader, today: date, started_at: datetime, progress: Progress | None
) -> ImportReport:
    db, spec = run.db, run.spec
    clock = _Clock(spec.kind)
    await db.lock()
    clock.lap("locked")
    converter = RowConverter(spec.columns, today, db.date_value)
    side = await spec.prepare(db)
    batch_id = await _record_batch(db.conn, spec.kind, reader, started_at)
    run.source = EventSource(str(batch_id), db.timestamp_value(started_at))
    await run.create_tables()

    chunks = reader.chunks(converter, spec.load_order, side)
    pending = _next_chunk(chunks)
    rows_read = 0
    try:
        while (chunk := await pending) is not None:
            after = run.staged
            if chunk.records:
                await db.load(run.stage, run.loaded_columns, chunk.records)
                run.staged += len(chunk.records)
            if chunk.side:
                await db.clear(run.side)
                await db.load(run.side, run.side_columns, chunk.side)
            # The next chunk is parsed while the database checks (and applies) this one. Not before the load:
            # binding rows needs the GIL, and the two would only take turns.
            pending = _next_chunk(chunks)
            run.found((row.line, row.reason) for row in chunk.rejected)
            if spec.streaming and chunk.records:
                await run.process(after, len(chunk.records))
            rows_read = chunk.rows_read
            if progress is not None:
                progress(rows_read)
    finally:
        # A thread cannot be cancelled: let the parse in flight finish before the file is closed.
        await asyncio.wait({pending})
        if not pending.cancelled():
            pending.exception()
        chunks.close()
    clock.lap("read, checked" + (" and applied" if spec.streaming else ""))
    if not spec.streaming:
        await run.process(0, run.staged)
        clock.lap("checked and applied")

    rejected = [RejectedRow(line, run.rejections[line]) for line in sorted(run.rejections)]
    report = ImportReport(
        kind=spec.kind,
        file_name=reader.path.name,
        batch_id=batch_id,
        rows_read=rows_read,
        applied=0 if rejected else run.applied.rows,
        unchanged=0 if rejected else rows_read - run.applied.rows,
        rejected=rejected,
        status="rejected" if rejected else "applied",
        changed_participant_ids=set() if rejected else run.applied.changed_participant_ids,
    )
    if rejected:
        # Nothing of this file may stay: undo it all, then record the rejected batch on its own.
        await db.conn.rollback()
        await db.lock()
        report.batch_id = await _record_batch(db.conn, spec.kind, reader, started_at)
    await db.conn.execute(
        update(ImportBatch)
        .where(ImportBatch.id == report.batch_id)
        .values(
            status=report.status,
            file_sha256=reader.sha256,
            finished_at=datetime.now(UTC),
            rows_read=report.rows_read,
            rows_applied=report.applied,
            rows_unchanged=report.unchanged,
            rows_rejected=len(rejected),
        )
    )
    await db.conn.commit()
    clock.lap("committed")
    return report


class _Run:
    """The stage of one import and what processing it has gathered."""

    def __init__(self, db: Backend, spec: ImportSpec, stage: str) -> None:
        self.db = db
        self.spec = spec
        self.stage = stage
        self.source = EventSource("", None)  # the batch, once recorded
        self.side = f"{stage}_side"
        self.loaded_columns = [c.name for c in spec.columns] + ["line"]
        self.side_columns = ["pos"] + [name for name, _ in spec.side_columns]
        self.staged = 0  # rows loaded so far: the last position
        self.rejections: dict[int, str] = {}
        self.applied = Applied()

    async def create_tables(self) -> None:
        spec = self.spec
        await self.db.create_stage(self.stage, spec.columns, spec.work_columns)
        if spec.side_columns:
            await self.db.create_side(self.side, spec.side_columns)

    async def drop_tables(self) -> None:
        for table in (self.side, self.stage):
            await self.db.drop_table(table)

    def found(self, rejections: Iterable[tuple[int, str]]) -> None:
        for line, reason in rejections:
            self.rejections.setdefault(line, reason)

    async def process(self, after: int, staged: int) -> None:
        """Check the `staged` rows after position `after`; apply them while no row of the file is rejected."""
        applied = await self.spec.process(self.db, self.stage, self.source, after, staged, apply=not self.rejections)
        self.found(applied.rejected)
        self.applied.add(applied)


async def _record_batch(conn: AsyncConnection, kind: ImportKind, reader: ImportFileReader, started: datetime) -> int:
    result = await conn.execute(
        insert(ImportBatch).values(
            kind=kind.value,
            file_name=reader.path.name[:300],
            file_sha256="",  # known once the whole file is read
            started_at=started,
            status="running",
            rows_read=0,
            rows_applied=0,
            rows_unchanged=0,
            rows_rejected=0,
        )
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def _next_chunk(chunks: Generator[Chunk, None, None]) -> asyncio.Future[Chunk | None]:
    return asyncio.ensure_future(asyncio.to_thread(next, chunks, None))


class _Clock:
    """Phase timings at DEBUG level: where a slow import spends its time."""

    def __init__(self, kind: ImportKind) -> None:
        self._kind = kind
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        log.debug("import %s: %s in %.2f s", self._kind.value, phase, now - self._last)
        self._last = now
