"""FAQ entries admins edit without a deploy: every save is a new row of `faq_versions`, nothing is overwritten.

The newest version of each id is the one in use (unless it is a deletion). `knowledge/faq.yaml` is only the seed
of an empty table and the format of the export. Every change also appends an `events` row naming the admin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from sqlalchemy import Select, and_, func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core.db import Database, make_sessionmaker, sqlite_path
from core.faq import load_faq, load_off_topic
from core.faq_entries import FaqEntry, FaqProblem, entry_document, validate_entry
from core.models import Event, FaqVersion
from core.paths import knowledge_dir

SAVE_ATTEMPTS = 3  # two admins saving the same id at once: the loser recomputes its version number

SaveAction = Literal["create", "edit"]


def revision_query() -> Select[int]:
    """See `FaqStore.revision`; also read with every turn's context (core/turn_context.py)."""
    return select(func.count() + func.coalesce(func.max(FaqVersion.id), 0)).select_from(FaqVersion)


class FaqStoreError(Exception):
    """Base of the store's refusals; `code` lets the front end pick its wording."""

    code = "error"

    def __init__(self, faq_id: str, version: int | None = None) -> None:
        super().__init__(f"{self.code}: {faq_id}" + (f" v{version}" if version is not None else ""))
        self.faq_id = faq_id
        self.version = version


class FaqNotFound(FaqStoreError):
    code = "not_found"


class FaqVersionNotFound(FaqStoreError):
    code = "version_not_found"


class FaqExists(FaqStoreError):
    code = "exists"


class FaqValidationError(ValueError):
    def __init__(self, problems: Sequence[FaqProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.code}" for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class VersionInfo:
    version: int
    action: str  # seed / create / edit / rollback / delete
    author_id: int | None
    created_at: datetime  # timezone-aware (UTC)
    deleted: bool = False


def _entry(row: FaqVersion) -> FaqEntry:
    return FaqEntry(
        id=row.faq_id,
        title=dict(row.title),
        paraphrases={lang: list(items) for lang, items in row.paraphrases.items()},
        answer=dict(row.answer),
        sources=tuple(row.sources or ()),
        kind=row.kind,
    )


def _content(entry: FaqEntry) -> dict[str, Any]:
    return entry_document(entry)


class _Dumper(yaml.SafeDumper):
    """Multi-line answers as `|` blocks and indented lists, so that an export reads like the knowledge file."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def entry_yaml(entry: FaqEntry) -> str:
    """One entry as YAML without its id: what `/faq_set ID` takes back after an edit."""
    return yaml.dump(_content(entry), Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000)


class FaqStore:
    """The FAQ in use and its history. Each method is one transaction; safe with several workers."""

    def __init__(self, engine: AsyncEngine, knowledge_file: Path | None = None) -> None:
        self.engine = engine
        self.sessions = make_sessionmaker(engine)
        self.knowledge_file = knowledge_file or knowledge_dir() / "faq.yaml"

    async def seed_from_knowledge(self) -> int:
        """Fill an empty table from the knowledge file (version 1 of each entry); returns how many were seeded.

        Idempotent: a table with any row is left alone. Two workers starting at once both try, and the unique
        (faq_id, version) constraint lets exactly one of them win; the other sees 0.
        """
        entries = load_faq(self.knowledge_file)
        async with self.sessions() as session:
            if await session.scalar(select(func.count()).select_from(FaqVersion)):
                return 0
        try:
            async with self.sessions.begin() as session:
                for entry in entries:
                    self._add_version(session, entry, 1, "seed", None, source=("system", self.knowledge_file.name))
        except IntegrityError:
            return 0
        return len(entries)

    async def revision(self) -> int:
        """A number that changes whenever any worker saves anything: cheap enough to ask before every match.

        Rows are only ever added, so the row count grows with every committed save; the highest id is added so
        that a table emptied and re-seeded still reads differently from before.
        """
        async with self.sessions() as session:
            return int(await session.scalar(revision_query()) or 0)

    async def current(self) -> list[FaqEntry]:
        """The entries in use, in the order they were first created (the knowledge file's order for the seed)."""
        latest = (
            select(
                FaqVersion.faq_id,
                func.max(FaqVersion.version).label("version"),
                func.min(FaqVersion.id).label("first_id"),
            )
            .group_by(FaqVersion.faq_id)
            .subquery()
        )
        stmt = (
            select(FaqVersion)
            .join(latest, and_(FaqVersion.faq_id == latest.c.faq_id, FaqVersion.version == latest.c.version))
            .where(FaqVersion.deleted.is_(False))
            .order_by(latest.c.first_id)
        )
        async with self.sessions() as session:
            return [_entry(row) for row in (await session.scalars(stmt)).all()]

    async def get(self, faq_id: str) -> FaqEntry | None:
        async with self.sessions() as session:
            row = await self._latest(session, faq_id)
            return _entry(row) if row is not None and not row.deleted else None

    async def entry_at(self, faq_id: str, version: int) -> FaqEntry | None:
        """The content of one saved version (None when there is no such version, or it is a deletion)."""
        async with self.sessions() as session:
            row = await session.scalar(
                select(FaqVersion).where(FaqVersion.faq_id == faq_id, FaqVersion.version == version)
            )
            return _entry(row) if row is not None and not row.deleted else None

    async def current_version(self, faq_id: str) -> int | None:
        """The version in use, or None when the id does not exist or is deleted."""
        async with self.sessions() as session:
            row = await self._latest(session, faq_id)
            return row.version if row is not None and not row.deleted else None

    async def save(self, entry: FaqEntry, author_id: int, action: SaveAction | None = None) -> int:
        """Store a new version of an entry and return its number.

        `action` "create" refuses an id in use, "edit" an id not in use; None picks whichever fits. Saving the
        content already in use writes nothing and returns the current version.
        """
        problems = validate_entry(entry)
        if problems:
            raise FaqValidationError(problems)
        for attempt in range(SAVE_ATTEMPTS):
            try:
                async with self.sessions.begin() as session:
                    latest = await self._latest(session, entry.id)
                    live = latest is not None and not latest.deleted
                    if action == "create" and live:
                        raise FaqExists(entry.id)
                    if action == "edit" and not live:
                        raise FaqNotFound(entry.id)
                    if latest is not None and live and _content(_entry(latest)) == _content(entry):
                        return latest.version
                    version = (latest.version if latest is not None else 0) + 1
                    self._add_version(session, entry, version, "edit" if live else "create", author_id, latest)
                    return version
            except IntegrityError:
                if attempt == SAVE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def history(self, faq_id: str) -> list[VersionInfo]:
        """Every version of an entry, newest first (empty when the id never existed)."""
        stmt = select(FaqVersion).where(FaqVersion.faq_id == faq_id).order_by(FaqVersion.version.desc())
        async with self.sessions() as session:
            return [
                VersionInfo(row.version, row.action, row.author_id, row.created_at, row.deleted)
                for row in (await session.scalars(stmt)).all()
            ]

    async def rollback(self, faq_id: str, version: int, author_id: int) -> int:
        """Put an older version's content back in use as a new version (also undoes a deletion)."""
        for attempt in range(SAVE_ATTEMPTS):
            try:
                async with self.sessions.begin() as session:
                    old = await session.scalar(
                        select(FaqVersion).where(FaqVersion.faq_id == faq_id, FaqVersion.version == version)
                    )
                    if old is None or old.deleted:
                        raise FaqVersionNotFound(faq_id, version)
                    latest = await self._latest(session, faq_id)
                    assert latest is not None  # `old` exists
                    new_version = latest.version + 1
                    self._add_version(session, _entry(old), new_version, "rollback", author_id, latest)
                    return new_version
            except IntegrityError:
                if attempt == SAVE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def delete(self, faq_id: str, author_id: int) -> int:
        """Take an entry out of use (a version marked deleted, keeping its content for a later rollback)."""
        for attempt in range(SAVE_ATTEMPTS):
            try:
                async with self.sessions.begin() as session:
                    latest = await self._latest(session, faq_id)
                    if latest is None or latest.deleted:
                        raise FaqNotFound(faq_id)
                    version = latest.version + 1
                    self._add_version(session, _entry(latest), version, "delete", author_id, latest, deleted=True)
                    return version
            except IntegrityError:
                if attempt == SAVE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def export_yaml(self) -> str:
        """The FAQ in use in the knowledge file's format, with the file's off-topic list, so nothing is lost."""
        entries = await self.current()
        document = {
            "faqs": [{"id": e.id, **_content(e)} for e in entries],
            "off_topic": load_off_topic(self.knowledge_file),
        }
        body = yaml.dump(document, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000)
        return self._header() + body

    def _header(self) -> str:
        # The knowledge file's opening comment documents the format; an export keeps it for whoever edits next.
        lines = []
        for line in self.knowledge_file.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            lines.append(line + "\n")
        return "".join(lines)

    async def _latest(self, session: AsyncSession, faq_id: str) -> FaqVersion | None:
        stmt = select(FaqVersion).where(FaqVersion.faq_id == faq_id).order_by(FaqVersion.version.desc()).limit(1)
        found: FaqVersion | None = await session.scalar(stmt)
        return found

    @staticmethod
    def _add_version(
        session: AsyncSession,
        entry: FaqEntry,
        version: int,
        action: str,
        author_id: int | None,
        previous: FaqVersion | None = None,
        *,
        deleted: bool = False,
        source: tuple[str, str] | None = None,
    ) -> None:
        session.add(
            FaqVersion(
                faq_id=entry.id,
                version=version,
                title=entry.title,
                paraphrases=entry.paraphrases,
                answer=entry.answer,
                sources=list(entry.sources),
                kind=entry.kind,
                deleted=deleted,
                action=action,
                author_id=author_id,
                created_at=datetime.now(UTC),
            )
        )
        changed: list[str] = []
        if previous is not None:
            before: Mapping[str, Any] = _content(_entry(previous))
            after = _content(entry)
            changed = [key for key in dict.fromkeys([*before, *after]) if before.get(key) != after.get(key)]
        source_kind, source_ref = source or ("admin", str(author_id))
        session.add(
            Event(
                entity="faq_versions",
                entity_id=entry.id,
                kind=action,
                # The content itself is in faq_versions; the log says which version and what changed.
                data={"version": [previous.version if previous else None, version], "changed": changed},
                source_kind=source_kind,
                source_ref=source_ref,
            )
        )


async def faq_in_use(database_url: str) -> list[FaqEntry]:
    """The FAQ the bot answers from: the database's, which admins edit, when it holds entries; else the knowledge
    file (no database yet, or one the bot has not seeded). Never creates or changes a database."""
    path = sqlite_path(database_url)
    if path is None or await asyncio.to_thread(path.is_file):
        async with Database.open(database_url) as db:
            async with db.engine.connect() as conn:
                seeded = await conn.run_sync(lambda sync: inspect(sync).has_table(FaqVersion.__tablename__))
            entries = await FaqStore(db.engine).current() if seeded else []
        if entries:
            return entries
    return load_faq()
