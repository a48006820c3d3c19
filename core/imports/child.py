"""The import file is read in a child process, so parsing overlaps the database work instead of sharing a GIL.

Parsing and checking a row is Python work; binding a row is too. In one process the two halves of an import
would take turns on one interpreter lock. Here the child parses a chunk and hands it over as an SQLite database
image (SQLite attaches it and copies rows with INSERT … SELECT, no Python per row) or as records (PostgreSQL
COPYs them), while the parent's database works on the previous chunk.

Protocol: the parent writes a pickled `ReadJob` to the child's stdin; the child writes frames to its stdout,
each a header (kind, two lengths), a pickle, then raw bytes (a chunk's image, else none): a chunk, the end
(with the file's SHA-256), or an error. The child imports only this package's light modules (the job's pickle
names them), not SQLAlchemy: it starts in ~50 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import os
import pickle
import sqlite3
import struct
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

from core.imports.reading import Column, ImportFileReader, Record, RowConverter, RowProblem, RowTransform
from core.imports.report import ImportFileError, RejectedRow

_HEADER = struct.Struct("!cQQ")  # kind, pickle length, raw length
_CHUNK, _END, _FILE_ERROR, _FAILED = b"C", b"E", b"F", b"X"
_CHILD_CODE = "from core.imports.child import main; main()"
_PIPE_BYTES = 1 << 20  # Linux's default pipe holds 64 KB: a 16 MB image would cost ~250 wake-ups of each side


@dataclass(frozen=True)
class ReadJob:
    """What the child needs to read one file: the kind's columns, how to convert and order the records."""

    path: Path
    columns: tuple[Column, ...]
    chunk_rows: int
    first_chunk_rows: int
    today: date
    date_value: Callable[[date], Any]
    order: int | None = None
    # (CREATE TABLE rows …, INSERT INTO rows … VALUES …) for an SQLite image of each chunk, whose INSERT takes
    # "" for an empty optional value; None: records, with None.
    image_sql: tuple[str, str] | None = None
    # The kind's per-row work after typing (see `RowTransform`); its records then fill the image or the COPY.
    transform: RowTransform | None = None


@dataclass
class ChunkData:
    """One chunk as the parent receives it: `count` rows (image or records, in load order), the rows
    rejected while parsing, and the rows read so far."""

    rows_read: int
    rejected: list[RejectedRow]
    count: int
    data: Any  # bytes of an SQLite database image, or a list of (pos, *record) tuples


# --- the child --------------------------------------------------------------------------------------------------


def main() -> None:
    # The child holds one chunk of short-lived tuples at a time, freed by reference counting: collector passes
    # over them would be pure overhead (a fifth of the parsing time).
    gc.disable()
    out = sys.stdout.buffer
    try:
        job: ReadJob = pickle.load(sys.stdin.buffer)
        _read(job, out)
    except ImportFileError as exc:
        _send(out, _FILE_ERROR, str(exc))
    except Exception:
        _send(out, _FAILED, traceback.format_exc())


def _read(job: ReadJob, out: BinaryIO) -> None:
    reader = ImportFileReader(job.path, job.columns, job.chunk_rows, job.first_chunk_rows)
    reader.open()
    try:
        converter = RowConverter(job.columns, job.today, job.date_value, "" if job.image_sql else None)
        for chunk in reader.chunks(converter, job.order):
            rows = chunk.records
            rejected = [(row.line, row.reason) for row in chunk.rejected]
            if job.transform is not None:
                rows = _transformed(job.transform, rows, rejected)
            if job.image_sql:
                _send(out, _CHUNK, (chunk.rows_read, rejected, len(rows), None), _image(job.image_sql, rows))
            else:
                records = [(n, *row) for n, row in enumerate(rows, 1)]
                _send(out, _CHUNK, (chunk.rows_read, rejected, len(rows), records))
                del records
            del chunk, rows  # one chunk in memory at a time: not kept while the next one is parsed
        _send(out, _END, reader.sha256)
    finally:
        reader.close()


def _transformed(transform: RowTransform, records: list[Record], rejected: list[tuple[int, str]]) -> list[Record]:
    out: list[Record] = []
    for record in records:
        try:
            out.append(transform(record))
        except RowProblem as problem:
            rejected.append((record[-1], problem.reason))  # a record ends with its line
    return out


def _image(sql: tuple[str, str], rows: Sequence[Record]) -> bytes:
    create, insert = sql
    db = sqlite3.connect(":memory:")
    try:
        db.execute("PRAGMA journal_mode = OFF")  # built once, never rolled back
        db.execute("PRAGMA page_size = 65536")  # fewer, bigger pages: a tenth less time to build and copy
        db.execute(create)
        db.executemany(insert, rows)
        db.commit()
        return db.serialize()
    finally:
        db.close()


def _send(out: BinaryIO, kind: bytes, value: Any, raw: bytes = b"") -> None:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEADER.pack(kind, len(payload), len(raw)))
    out.write(payload)
    out.write(raw)
    out.flush()


# --- the parent ---------------------------------------------------------------------------------------------------


@dataclass
class ChildReader:
    """The parent's end: `start` the child early (it boots while the import waits for its lock), `send` it the
    job, then take chunks until `next_chunk` returns None; `stop` always."""

    process: subprocess.Popen[bytes] | None = None
    sha256: str = ""
    _ended: bool = field(default=False, repr=False)

    def start(self) -> None:
        # The child finds this package where the parent does, whatever the working directory.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.process.stdout is not None
        set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only; the default size works too, only slower
        if set_size is not None:
            with contextlib.suppress(OSError):
                fcntl.fcntl(self.process.stdout.fileno(), set_size, _PIPE_BYTES)

    async def send(self, job: ReadJob) -> None:
        assert self.process is not None and self.process.stdin is not None
        stdin = self.process.stdin
        data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        # A child that died already is reported by `next_chunk`, with its exit code.
        with contextlib.suppress(BrokenPipeError):
            await asyncio.to_thread(stdin.write, data)
            stdin.close()

    async def next_chunk(self) -> ChunkData | None:
        """The next chunk, or None once the file is read (then `sha256` is set). Raises `ImportFileError` for
        a file-level problem found in the middle of the file."""
        if self._ended:
            return None
        # Blocking reads in a worker thread: a chunk is tens of MB, which the event loop would take in 64 KB
        # callbacks; the thread holds the GIL only to unpickle.
        kind, value, raw = await asyncio.to_thread(self._read_frame)
        if kind == _CHUNK:
            rows_read, rejected, count, records = value
            data = raw if records is None else records
            return ChunkData(rows_read, [RejectedRow(line, reason) for line, reason in rejected], count, data)
        self._ended = True
        if kind == _END:
            self.sha256 = value
            return None
        if kind == _FILE_ERROR:
            raise ImportFileError(value)
        raise RuntimeError(f"the import's reading process failed:\n{value}")

    def _read_frame(self) -> tuple[bytes, Any, bytes]:
        kind, size, raw_size = _HEADER.unpack(self._read(_HEADER.size))
        value = pickle.loads(self._read(size))  # our own child's output
        return kind, value, self._read(raw_size)

    def _read(self, size: int) -> bytes:
        assert self.process is not None and self.process.stdout is not None
        data = self.process.stdout.read(size)
        if len(data) < size:
            code = self.process.wait()
            raise RuntimeError(f"the import's reading process stopped unexpectedly (exit code {code})")
        return data

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if not self._ended:
            self.kill()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # a broken pipe's unflushed bytes
                    pipe.close()
        await asyncio.to_thread(process.wait)
