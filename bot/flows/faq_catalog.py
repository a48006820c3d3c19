"""The FAQ catalog in use, kept in step with the database: an admin's edit on any worker shows up on the next turn.

Each call asks the store for its revision (one small query) and rebuilds the matcher only when it changed. A
catalog is an immutable snapshot: a turn that holds one sees a consistent pair of entries and matcher even if an
admin saves in the middle of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bot.flows.turn import FaqCatalog
from core.faq import FaqMatcher, Slang, load_off_topic, load_slang
from core.faq_store import FaqStore


class FaqCatalogProvider:
    def __init__(self, store: FaqStore, slang: Slang, off_topic: Sequence[str]) -> None:
        self.store = store
        self.slang = slang
        self.off_topic = list(off_topic)
        self._catalog: FaqCatalog | None = None
        self._revision: int | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_knowledge(cls, store: FaqStore) -> FaqCatalogProvider:
        """Slang and off-topic examples from `knowledge/` (they are not edited at runtime)."""
        return cls(store, load_slang(), load_off_topic(store.knowledge_file))

    @property
    def revision(self) -> int | None:
        """The store revision the current catalog was built from (None before the first build)."""
        return self._revision

    async def catalog(self, revision: int | None = None) -> FaqCatalog:
        """The catalog for the FAQ in use now; cheap when nothing changed since the last call. `revision`: the
        store's revision when the caller has just read it (with a turn's context)."""
        if revision is None:
            revision = await self.store.revision()
        if self._catalog is not None and revision == self._revision:
            return self._catalog
        async with self._lock:
            if revision == 0:
                # Never an empty FAQ because a start-up forgot to seed: seeding is idempotent and race-safe.
                await self.store.seed_from_knowledge()
                revision = await self.store.revision()
            # Another turn may have rebuilt while this one waited for the lock.
            if self._catalog is not None and self._revision == revision:
                return self._catalog
            # The revision is read before the entries: a save in between only causes one more rebuild later,
            # never a stale catalog labelled as current.
            entries = await self.store.current()
            matcher = await asyncio.to_thread(FaqMatcher, entries, self.slang, self.off_topic)
            self._catalog = FaqCatalog({e.id: e for e in entries}, matcher)
            self._revision = revision
            return self._catalog
