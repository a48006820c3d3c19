"""Reading an import file: encoding and header checks, then typed records in chunks, streamed.

A row is converted in a tight loop: each column has a fast converter (C-level dict lookups for dates and
choices, memoised per distinct value) and, when that raises, a slow checked path that names the problem or
fills the memo. Checks that need the whole file or the database run later in SQL. The import runs this in a
child process (see `child`); nothing here touches the database.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import Enum, auto
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from core.imports.report import ImportFileError, RejectedRow

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MAX_ID = 2**31 - 1  # INTEGER columns on PostgreSQL
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

Record = tuple[Any, ...]  # the columns in declared order, then the line number

# What a column name looks like; anything else in a header (digits, symbols, long text) may be data.
_COLUMN_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


class ColumnType(Enum):
    TEXT = auto()  # required; emptiness and length are checked in SQL
    OPTIONAL_TEXT = auto()
    ID = auto()  # a positive integer
    OPTIONAL_ID = auto()
    PAST_DATE = auto()  # ISO date, not after today
    OPTIONAL_PAST_DATE = auto()
    OPTIONAL_DATE = auto()  # ISO date, may lie ahead (a payment schedule)
    CHOICE = auto()  # one of `choices`, matched case-insensitively
    OPTIONAL_CHOICE = auto()
    BOOLEAN = auto()  # true/false, yes/no, ya/tidak, 1/0 (any case; JSON true/false too)


_OPTIONAL = {
    ColumnType.OPTIONAL_TEXT,
    ColumnType.OPTIONAL_ID,
    ColumnType.OPTIONAL_PAST_DATE,
    ColumnType.OPTIONAL_DATE,
    ColumnType.OPTIONAL_CHOICE,
}
_DATES = {ColumnType.PAST_DATE, ColumnType.OPTIONAL_PAST_DATE, ColumnType.OPTIONAL_DATE}
_BOOLEANS = {
    **dict.fromkeys(("true", "yes", "ya", "1"), True),
    **dict.fromkeys(("false", "no", "tidak", "0"), False),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    max_len: int | None = None
    choices: tuple[str, ...] = ()
    in_header: bool = True  # False: the whole column may be left out of the file

    def __post_init__(self) -> None:
        if not self.in_header and not self.optional:
            raise ValueError(f"column {self.name} may be left out, so its values must be optional")

    @property
    def optional(self) -> bool:
        return self.type in _OPTIONAL

    @property
    def is_date(self) -> bool:
        return self.type in _DATES


class RowProblem(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RowTransform(Protocol):
    """Per-row work a kind needs beyond typing its columns (hashing identifiers, normalising phones): runs in the
    reading process on each converted record, returns the record the chunk table holds (the kind's
    `staged_columns`, then the line), or raises `RowProblem`. Picklable, and importing nothing heavy."""

    def __call__(self, record: Record) -> Record: ...


def _strict_id(raw: str) -> int:
    if raw.isdigit() and raw.isascii():
        value = int(raw)
        if 0 < value <= MAX_ID:
            return value
    raise ValueError(raw)


def _parse_iso_date(text: str) -> date | None:
    # fromisoformat alone also takes "20240101" and week dates; the files use YYYY-MM-DD only.
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def iso_date(day: date) -> str:
    """A date as SQLite stores it (ISO text, as SQLAlchemy does)."""
    return day.isoformat()


def plain_date(day: date) -> date:
    """A date as asyncpg binds it."""
    return day


def as_date(value: date | str) -> date:
    """A converted (or staged) date back as a `date`: SQLite's are ISO text."""
    return value if isinstance(value, date) else date.fromisoformat(value)


class RowConverter:
    """Turns a row's raw strings into the values the database driver takes, plus the line number.

    The fast path is a function generated from the column list (plain subscripts and C-level calls, no
    per-column Python frames): about 40% less conversion time than calling a converter per column. Anything
    it cannot take (a memo miss, a bad number) goes to `convert_checked`, which names the problem or fills
    the memo. An empty optional value is `empty`: None, or "" where the SQL that binds it says NULLIF(?, '')
    (sqlite3 binds a str directly but looks up an adapter for every None).
    """

    def __init__(
        self,
        columns: Sequence[Column],
        today: date,
        date_value: Callable[[date], Any],
        empty: str | None = None,
    ) -> None:
        self.columns = tuple(columns)
        self._today = today
        self._date_value = date_value
        self._empty = empty
        # One memo per date or choice column: only values that passed the checks get in, so a hit is valid.
        self._memos: list[dict[str, Any]] = [{"": empty} if c.optional else {} for c in self.columns]
        self._choices = [{c.casefold(): c for c in column.choices} for column in self.columns]

    def _expressions(self, positions: Sequence[int | None]) -> str:
        exprs = []
        for index, (column, position) in enumerate(zip(self.columns, positions, strict=True)):
            cell = f"row[{position}]"
            kind = column.type
            if position is None:
                exprs.append("_empty")  # a column left out of the file (optional columns only)
            elif kind is ColumnType.TEXT:
                exprs.append(f"{cell}.strip()")
            elif kind is ColumnType.OPTIONAL_TEXT:
                exprs.append(f"({cell}.strip() or _empty)")
            elif kind is ColumnType.ID:
                exprs.append(f"_id({cell})")
            elif kind is ColumnType.OPTIONAL_ID:
                exprs.append(f"(_id({cell}) if {cell} else _empty)")
            else:
                exprs.append(f"memo{index}[{cell}]")
        return f"({', '.join(exprs)}, line)"

    def _compile(self, source: str, name: str) -> Any:
        namespace: dict[str, Any] = {
            "_id": _strict_id,
            "_empty": self._empty,
        }
        namespace.update({f"memo{index}": memo for index, memo in enumerate(self._memos)})
        # The source holds only our column indexes and names of the namespace above, never file contents.
        exec(compile(source, f"<{name}>", "exec"), namespace)
        return namespace[name]

    def record_function(self) -> Callable[[Sequence[str], int], Record]:
        """Values in declared column order → record; raises KeyError / ValueError for the slow path."""
        positions = range(len(self.columns))
        source = f"def convert_row(row, line):\n    return {self._expressions(positions)}\n"
        function: Callable[[Sequence[str], int], Record] = self._compile(source, "convert_row")
        return function

    def csv_loop(self, positions: Sequence[int | None], width: int) -> CsvLoop:
        """The whole per-row loop for CSV: line numbers, width check, fast conversion, slow fallback."""
        source = (
            "def csv_rows(rows, reader, previous, append, reject, slow):\n"
            "    count = 0\n"
            "    for count, row in enumerate(rows, 1):\n"
            "        line = previous + 1\n"  # a quoted field may span lines: the row starts here
            "        previous = reader.line_num\n"
            f"        if len(row) != {width}:\n"
            "            if row:\n"  # an empty list is a blank line
            f"                reject(line, 'wrong_column_count: %d of {width}' % len(row))\n"
            "            continue\n"
            "        try:\n"
            f"            append({self._expressions(positions)})\n"
            "        except (KeyError, ValueError):\n"
            "            slow(row, line)\n"
            "    return previous, count\n"
        )
        loop: CsvLoop = self._compile(source, "csv_rows")
        return loop

    def convert_checked(self, values: Sequence[str], line: int) -> Record:
        """The slow path: the first problem raises `RowProblem`; valid new values enter the memos."""
        out: list[Any] = []
        for index, (column, raw) in enumerate(zip(self.columns, values, strict=True)):
            out.append(self._check(index, column, raw))
        out.append(line)
        return tuple(out)

    def _check(self, index: int, column: Column, raw: str) -> Any:
        text = raw.strip()
        if not text:
            if column.optional:
                return self._empty
            if column.type is ColumnType.TEXT:
                return text  # reported as missing by the SQL checks, with the other text checks
            raise RowProblem(f"missing: {column.name}")
        kind = column.type
        if kind in (ColumnType.TEXT, ColumnType.OPTIONAL_TEXT):
            return text
        if kind in (ColumnType.ID, ColumnType.OPTIONAL_ID):
            try:
                return _strict_id(text)
            except ValueError:
                raise RowProblem(f"bad_number: {column.name}") from None
        memo = self._memos[index]
        if kind is ColumnType.BOOLEAN:
            flag = _BOOLEANS.get(text.casefold())
            if flag is None:
                raise RowProblem(f"bad_value: {column.name}")
            memo[raw] = flag
            return flag
        if column.is_date:
            day = _parse_iso_date(text)
            if day is None:
                raise RowProblem(f"bad_date: {column.name}")
            if kind is not ColumnType.OPTIONAL_DATE and day > self._today:
                raise RowProblem(f"future_date: {column.name}")
            value = memo[raw] = self._date_value(day)
            return value
        choice = self._choices[index].get(text.casefold())
        if choice is None:
            raise RowProblem(f"bad_value: {column.name}")
        memo[raw] = choice
        return choice


class CsvLoop(Protocol):
    def __call__(
        self,
        rows: Iterator[list[str]],
        reader: Any,
        previous: int,
        append: Callable[[Record], None],
        reject: Callable[[int, str], None],
        slow: Callable[[list[str], int], None],
    ) -> tuple[int, int]: ...


@dataclass
class Chunk:
    records: list[Record] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    rows_read: int = 0  # in the whole file so far


class _HashingReader(io.RawIOBase):
    """Hashes the bytes as the parser pulls them, so the file is read once."""

    def __init__(self, raw: io.FileIO) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        n = self._raw.readinto(view) or 0
        self.sha256.update(view[:n])
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise ImportFileError(f"unsupported file type {suffix or '(none)'!r}: use .csv, .jsonl or .ndjson")


class ImportFileReader:
    """One pass over the file: `open()` checks encoding and header, `chunks()` yields typed records.

    Both are blocking: the import checks a file with `open()` in a worker thread, then reads it in a child
    process (see `child`).
    """

    def __init__(self, path: Path, columns: Sequence[Column], chunk_rows: int, first_chunk_rows: int = 0) -> None:
        self.path = path
        self.format = file_format(path)
        self._columns = tuple(columns)
        self._chunk_rows = chunk_rows
        self._first_chunk_rows = min(first_chunk_rows or chunk_rows, chunk_rows)
        self._hashing: _HashingReader | None = None
        self._text: io.TextIOWrapper | None = None
        self._csv: Any = None
        self._positions: list[int | None] = []
        self._width = 0
        self._first_json: tuple[int, str] | None = None
        self._names = {column.name for column in self._columns}

    @property
    def sha256(self) -> str:
        assert self._hashing is not None
        return self._hashing.sha256.hexdigest()

    def open(self) -> None:
        raw = io.FileIO(self.path, "r")
        try:
            self._hashing = _HashingReader(raw)
            buffered = io.BufferedReader(self._hashing, buffer_size=1 << 20)
            head = buffered.peek(4096)
            if head[:2] in _UTF16_BOMS:
                raise ImportFileError("the file is UTF-16 text; save it as UTF-8")
            if b"\x00" in head:
                raise ImportFileError("the file holds NUL bytes: it is not UTF-8 text (UTF-16?)")
            self._text = io.TextIOWrapper(buffered, encoding="utf-8-sig", newline="")
            with self._file_errors(0):
                if self.format == "csv":
                    self._open_csv()
                else:
                    self._open_jsonl()
        except BaseException:
            raw.close()
            raise

    def close(self) -> None:
        if self._text is not None:
            self._text.close()

    def _file_errors(self, line: int) -> _FileErrors:
        return _FileErrors(self, line)

    def current_line(self) -> int:
        return int(self._csv.line_num) if self._csv is not None else 0

    def _check_names(self, names: Sequence[str], *, jsonl: bool) -> None:
        present = set(names)
        needed = [c.name for c in self._columns if c.in_header and not (jsonl and c.optional)]
        missing = [name for name in needed if name not in present]
        unknown = [name for name in names if name not in self._names]
        if unknown and len(unknown) == len(names):
            # Not one known name: the header row is missing and these are a record's cells (a NIK, a phone).
            raise ImportFileError(
                "no header row: the first line names none of the columns (expected: " + ", ".join(needed) + ")"
            )
        problems = []
        if missing:
            problems.append("missing columns: " + ", ".join(missing))
        if unknown:
            # Never echo what may be a cell: only names shaped like column names are listed.
            shown = [name for name in unknown if _COLUMN_NAME.fullmatch(name)]
            if hidden := len(unknown) - len(shown):
                shown.append(f"{hidden} more not shown")
            problems.append("unknown columns: " + ", ".join(shown))
        if problems:
            raise ImportFileError("; ".join(problems))

    def _open_csv(self) -> None:
        assert self._text is not None
        self._csv = csv.reader(self._text)
        header = next(self._csv, None)
        if not header or not any(cell.strip() for cell in header):
            raise ImportFileError("the file is empty: a header row is expected")
        names = [cell.strip().lower() for cell in header]
        self._check_names(names, jsonl=False)  # first: it never echoes a cell of a file without its header
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ImportFileError("duplicated columns: " + ", ".join(duplicated))
        self._width = len(names)
        self._positions = [names.index(c.name) if c.name in names else None for c in self._columns]

    def _open_jsonl(self) -> None:
        assert self._text is not None
        for number, text in enumerate(self._text, start=1):
            if not text.strip():
                continue
            try:
                first = json.loads(text)
            except ValueError:
                first = None
            if not isinstance(first, dict):
                raise ImportFileError(f"line {number} is not a JSON object: JSON Lines expected")
            self._check_names([str(key) for key in first], jsonl=True)
            self._first_json = (number, text)
            return
        raise ImportFileError("the file is empty")

    def chunks(self, converter: RowConverter, order: int | None = None) -> Generator[Chunk, None, None]:
        """The file's records, chunk by chunk; each chunk sorted on record index `order` when given."""
        source = self._csv_chunks(converter) if self.format == "csv" else self._jsonl_chunks(converter)
        for chunk in source:
            if order is not None:
                chunk.records.sort(key=itemgetter(order))
            yield chunk
            del chunk  # not kept alive while the next one is parsed

    def _csv_chunks(self, converter: RowConverter) -> Iterator[Chunk]:
        reader = self._csv
        loop = converter.csv_loop(self._positions, self._width)
        positions = self._positions
        size = self._first_chunk_rows
        rows_read = 0
        previous = reader.line_num
        while True:
            chunk = Chunk()
            records, rejected = chunk.records, chunk.rejected

            def reject(line: int, reason: str, rejected: list[RejectedRow] = rejected) -> None:
                rejected.append(RejectedRow(line, reason))

            def slow(row: list[str], line: int, records: list[Record] = records) -> None:
                values = [row[p] if p is not None else "" for p in positions]
                try:
                    records.append(converter.convert_checked(values, line))
                except RowProblem as problem:
                    reject(line, problem.reason)

            with self._file_errors(previous):
                previous, count = loop(islice(reader, size), reader, previous, records.append, reject, slow)
            rows_read += len(records) + len(rejected)
            chunk.rows_read = rows_read
            yield chunk
            if count < size:
                return
            size = self._chunk_rows

    def _jsonl_chunks(self, converter: RowConverter) -> Iterator[Chunk]:
        assert self._text is not None
        fast = converter.record_function()
        names = [c.name for c in self._columns]
        known = self._names
        rows_read = 0
        size = self._first_chunk_rows
        chunk = Chunk()

        def lines() -> Iterator[tuple[int, str]]:
            if self._first_json is not None:
                yield self._first_json
                start = self._first_json[0] + 1
            else:  # pragma: no cover - open() always finds the first object
                start = 1
            assert self._text is not None
            yield from enumerate(self._text, start=start)

        with self._file_errors(0) as errors:
            for number, text in lines():
                errors.line = number
                if not text.strip():
                    continue
                rows_read += 1
                try:
                    values = _json_values(text, names, known)
                    try:
                        chunk.records.append(fast(values, number))
                    except (KeyError, ValueError):
                        chunk.records.append(converter.convert_checked(values, number))
                except RowProblem as problem:
                    chunk.rejected.append(RejectedRow(number, problem.reason))
                if len(chunk.records) + len(chunk.rejected) >= size:
                    chunk.rows_read = rows_read
                    yield chunk
                    chunk = Chunk()
                    size = self._chunk_rows
        chunk.rows_read = rows_read
        yield chunk


def _json_values(text: str, names: Sequence[str], known: set[str]) -> list[str]:
    try:
        obj = json.loads(text)
    except ValueError:
        raise RowProblem("bad_json") from None
    if not isinstance(obj, dict):
        raise RowProblem("bad_json: not an object")
    unknown = sorted(str(key) for key in obj if key not in known)
    if unknown:
        raise RowProblem(f"unknown_field: {unknown[0]}")
    values: list[str] = []
    for name in names:
        value = obj.get(name)
        if value is None:
            values.append("")
        elif isinstance(value, str):
            values.append(value)
        elif isinstance(value, bool):
            values.append("true" if value else "false")
        elif isinstance(value, int):
            values.append(str(value))
        else:
            raise RowProblem(f"bad_value: {name}")
    return values


class _FileErrors:
    """Turns decoding and CSV-format failures into one-line file-level errors."""

    def __init__(self, reader: ImportFileReader, line: int) -> None:
        self._reader = reader
        self.line = line

    def __enter__(self) -> _FileErrors:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            return
        near = max(self.line, self._reader.current_line()) + 1
        if isinstance(exc, UnicodeDecodeError):
            raise ImportFileError(
                f"the file is not UTF-8 text (undecodable byte near line {near}); save it as UTF-8"
            ) from None
        if isinstance(exc, csv.Error):
            if "NUL" in str(exc):
                raise ImportFileError("the file holds NUL bytes: it is not UTF-8 text (UTF-16?)") from None
            raise ImportFileError(f"CSV format error near line {near}: {exc}") from None
