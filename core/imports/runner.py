"""One import, start to end, in one transaction under the import lock.

The header and encoding are checked first (a file-level error writes nothing). Then the import takes the
lock (SQLite's write lock via BEGIN IMMEDIATE, or a PostgreSQL advisory lock), so imports run one at a time
and each sees what the previous one committed: a second run of the same file, even one started at the same
moment, finds nothing to do. A child process parses the file chunk by chunk (see `child`); each chunk lands in
a table of its own, and set-based SQL checks the rows and applies them with their events while the next chunk
is parsed. Any rejected row rolls everything back; the batch is then recorded as rejected.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import uuid4

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.calendar import today_in_jakarta
from core.imports.backend import Backend, backend_for
from core.imports.catalog import PlatformsImport, TrainingsImport
from core.imports.child import ChildReader, ChunkData, ReadJob
from core.imports.participants import ParticipantsImport, PayoutAccountsImport
from core.imports.platform_report import PlatformReportImport
from core.imports.pmo_results import PmoResultsImport
from core.imports.reading import Column, ImportFileReader
from core.imports.report import ImportFileError, ImportKind, ImportReport, RejectedRow
from core.imports.spec import Applied, EventSource, ImportSpec
from core.imports.transfers import TransfersImport
from core.models import ImportBatch

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000  # rows parsed per step: a chunk's image is ~15 MB, its Python objects in the child ~40 MB
FIRST_CHUNK_ROWS = 10_000  # the database starts on the file while the child parses on

_SPECS: dict[ImportKind, Callable[[], ImportSpec]] = {
    ImportKind.PLATFORMS: PlatformsImport,
    ImportKind.TRAININGS: TrainingsImport,
    ImportKind.PAYOUT_ACCOUNTS: PayoutAccountsImport,
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
    pii_key: bytes | None = None,
) -> ImportReport:
    """Import one file of `kind` (CSV or JSON Lines, by extension); `progress` gets the rows read so far;
    `pii_key` (PII_HASH_KEY) is what participants' NIK and card numbers are hashed with.

    Raises `ImportFileError` when the file as a whole is unusable, or the participants import has no `pii_key`
    (nothing is written then). Otherwise returns the report: either every row applied or unchanged (status
    "applied"), or the rejected rows with their line numbers and nothing applied (status "rejected", the batch
    recorded as such).
    """
    kind = ImportKind(kind)
    spec = _spec(kind, pii_key)
    path = Path(path)
    today = today or today_in_jakarta()
    started_at = datetime.now(UTC)
    reader = ImportFileReader(path, spec.columns, CHUNK_ROWS)
    await asyncio.to_thread(_check_file, reader)
    child = ChildReader()
    try:
        child.start()  # it boots while the import waits for the lock
        async with engine.connect() as conn:
            db = backend_for(conn)
            run = _Run(db, spec, f"import_stage_{uuid4().hex[:16]}")
            await db.tune()
            try:
                return await _run(run, reader, child, today, started_at, progress)
            finally:
                with contextlib.suppress(Exception):
                    await conn.rollback()
                await run.drop_tables()
                await db.untune()
                if not conn.invalidated:
                    await conn.commit()
    finally:
        await child.stop()


def _spec(kind: ImportKind, pii_key: bytes | None) -> ImportSpec:
    if kind is not ImportKind.PARTICIPANTS:
        return _SPECS[kind]()
    if not pii_key:
        raise ImportFileError(
            "the participants import needs the PII hash key (PII_HASH_KEY) to store NIK and card numbers"
        )
    return ParticipantsImport(pii_key)


def _check_file(reader: ImportFileReader) -> None:
    """Encoding and header: a file-level error before anything is written (the child reads it all again)."""
    reader.open()
    reader.close()


async def _run(
    run: _Run,
    reader: ImportFileReader,
    child: ChildReader,
    today: date,
    started_at: datetime,
    progress: Progress | None,
) -> ImportReport:
    db, spec = run.db, run.spec
    clock = _Clock(spec.kind)
    await db.lock()
    clock.lap("locked")
    batch_id = await _record_batch(db.conn, spec.kind, reader, started_at)
    run.source = EventSource(str(batch_id), db.timestamp_value(started_at))
    await run.create_tables()
    await child.send(
        ReadJob(
            path=reader.path,
            columns=tuple(_plain(column) for column in spec.columns),
            chunk_rows=CHUNK_ROWS,
            first_chunk_rows=FIRST_CHUNK_ROWS,
            today=today,
            date_value=db.date_value,
            order=spec.load_order,
            image_sql=db.chunk_image_sql(spec.staged_columns),
            transform=spec.transform(today),
        )
    )

    pending = asyncio.ensure_future(child.next_chunk())
    rows_read = 0
    try:
        while (chunk := await pending) is not None:
            # The next chunk is parsed, and received, while the database works on this one.
            pending = asyncio.ensure_future(child.next_chunk())
            await run.add(chunk)
            rows_read = chunk.rows_read
            if progress is not None:
                progress(rows_read)
    finally:
        if not pending.done():
            child.kill()  # ends the read in flight (a thread cannot be cancelled)
        with contextlib.suppress(Exception):
            await pending
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
            file_sha256=child.sha256,
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


def _plain(column: Column) -> Column:
    # Choices may be enum members (of core.models): as plain strings the child need not import the models.
    return dataclasses.replace(column, choices=tuple(str(choice) for choice in column.choices))


class _Run:
    """The tables of one import and what processing it has gathered."""

    def __init__(self, db: Backend, spec: ImportSpec, stage: str) -> None:
        self.db = db
        self.spec = spec
        self.stage = stage
        self.chunk = db.chunk_table(stage)
        self.source = EventSource("", None)  # the batch, once recorded
        self.staged = 0  # rows of the file in the stage so far: the last position
        self.rejections: dict[int, str] = {}
        self.applied = Applied()

    async def create_tables(self) -> None:
        spec = self.spec
        # A streaming kind keeps only each row's key in the stage, for the duplicate check across chunks.
        columns = spec.staged_columns
        staged = [c for c in columns if c.name in spec.key] if spec.streaming else columns
        await self.db.create_stage(self.stage, staged, spec.work_columns)
        await self.db.create_chunk_table(self.stage, columns)

    async def drop_tables(self) -> None:
        for table in (self.db.chunk_table(self.stage), self.stage):
            if "." not in table:  # SQLite's chunk schema is detached by untune()
                await self.db.drop_table(table)

    def found(self, rejections: Iterable[tuple[int, str]]) -> None:
        for line, reason in rejections:
            self.rejections.setdefault(line, reason)

    async def add(self, chunk: ChunkData) -> None:
        """Load one chunk: a streaming kind checks and applies it now, while no row of the file is rejected;
        the others stage it for `process`."""
        self.found((row.line, row.reason) for row in chunk.rejected)
        if not chunk.count:
            return
        await self.db.load_chunk(self.chunk, chunk.data)
        chunk.data = None  # the database holds its own copy: one image less while the next one arrives
        spec = self.spec
        if spec.streaming:
            applied = await spec.process_chunk(
                self.db, self.chunk, self.stage, self.source, self.staged, chunk.count, apply=not self.rejections
            )
            self.found(applied.rejected)
            self.applied.add(applied)
        else:
            await spec.stage_rows(self.db, self.chunk, self.stage)
        self.staged += chunk.count

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


class _Clock:
    """Phase timings at DEBUG level: where a slow import spends its time."""

    def __init__(self, kind: ImportKind) -> None:
        self._kind = kind
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        log.debug("import %s: %s in %.2f s", self._kind.value, phase, now - self._last)
        self._last = now
