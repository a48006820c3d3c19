"""The reference data a platform report names: platforms, and trainings with their institutions.

A platform's contact centre and rating steps live in `knowledge/platforms.yaml`; the database holds its code and
name, which enrollments refer to. An institution is known by its name and created with its first training.
"""

from __future__ import annotations

from core.imports.backend import Backend
from core.imports.reading import Column, ColumnType
from core.imports.report import ImportKind
from core.imports.spec import EVENT_COLUMNS, Applied, Check, EventInsert, EventSource, ImportSpec, rows_with_action
from core.imports.upsert import Fact, Upsert


class PlatformsImport(ImportSpec):
    kind = ImportKind.PLATFORMS
    columns = (Column("code", ColumnType.TEXT, max_len=32), Column("name", ColumnType.TEXT, max_len=100))
    key = ("code",)
    work_columns = ", action VARCHAR(8)"

    def reference_checks(self) -> list[Check]:
        return []

    async def apply(self, db: Backend, stage: str, source: EventSource) -> Applied:
        await _PLATFORMS.apply(db, stage, source)
        return await rows_with_action(db, stage)


_PLATFORMS = Upsert(
    table="platforms",
    alias="pl",
    match="pl.code = s.code",
    entity_id="pl.code",
    facts=(Fact("name"),),
    inserted=(("code", "s.code"), ("name", "s.name")),
    snapshot=("code", "name"),
)


class TrainingsImport(ImportSpec):
    kind = ImportKind.TRAININGS
    columns = (
        Column("training_code", ColumnType.TEXT, max_len=64),
        Column("title", ColumnType.TEXT, max_len=300),
        Column("institution", ColumnType.TEXT, max_len=200),
    )
    key = ("training_code",)
    work_columns = ", institution_id INTEGER, new_institution INTEGER, action VARCHAR(8)"

    def reference_checks(self) -> list[Check]:
        return []

    async def apply(self, db: Backend, stage: str, source: EventSource) -> Applied:
        params = source.params()
        # Institutions first: each new name once, in the order the file first names it.
        await db.execute(
            f"UPDATE {stage} AS s SET new_institution = 1 "
            "WHERE NOT EXISTS (SELECT 1 FROM institutions AS i WHERE i.name = s.institution)"
        )
        await db.execute(
            f"INSERT INTO institutions (name) SELECT s.institution FROM {stage} AS s WHERE s.new_institution = 1 "
            "GROUP BY s.institution ORDER BY MIN(s.line)"
        )
        await db.execute(
            EVENT_COLUMNS
            + EventInsert("institutions", "i.id", "NULL", "created").select_list(db.json_snapshot([("name", "i.name")]))
            + f" FROM institutions AS i WHERE i.name IN (SELECT s.institution FROM {stage} AS s "
            "WHERE s.new_institution = 1) ORDER BY i.id",
            params,
        )
        await db.execute(
            f"UPDATE {stage} AS s SET institution_id = i.id FROM institutions AS i WHERE i.name = s.institution"
        )

        await _TRAININGS.apply(db, stage, source)
        return await rows_with_action(db, stage)


_TRAININGS = Upsert(
    table="trainings",
    alias="t",
    match="t.code = s.training_code",
    entity_id="t.id",
    facts=(Fact("title"), Fact("institution_id")),
    inserted=(("code", "s.training_code"), ("title", "s.title"), ("institution_id", "s.institution_id")),
    snapshot=("code", "title", "institution_id"),
)
