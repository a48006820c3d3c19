"""The reference data a platform report names: platforms, and trainings with their institutions.

A platform's contact centre and rating steps live in `knowledge/platforms.yaml`; the database holds its code and
name, which enrollments refer to. An institution is known by its name and created with its first training.
"""

from __future__ import annotations

from core.imports.backend import Backend
from core.imports.reading import Column, ColumnType
from core.imports.report import ImportKind
from core.imports.spec import (
    EVENT_COLUMNS,
    Applied,
    Check,
    EventInsert,
    EventSource,
    ImportSpec,
    JsonField,
    rows_with_action,
)


class PlatformsImport(ImportSpec):
    kind = ImportKind.PLATFORMS
    columns = (Column("code", ColumnType.TEXT, max_len=32), Column("name", ColumnType.TEXT, max_len=100))
    key = ("code",)
    work_columns = ", action VARCHAR(8)"

    def reference_checks(self) -> list[Check]:
        return []

    async def apply(self, db: Backend, stage: str, source: EventSource) -> Applied:
        params = source.params()
        await db.execute(
            f"UPDATE {stage} AS s SET action = 'created' "
            "WHERE NOT EXISTS (SELECT 1 FROM platforms AS pl WHERE pl.code = s.code)"
        )
        await db.execute(
            f"UPDATE {stage} AS s SET action = 'changed' "
            "WHERE EXISTS (SELECT 1 FROM platforms AS pl WHERE pl.code = s.code AND pl.name <> s.name)"
        )
        changes = db.json_object([JsonField("name", "pl.name", "s.name")])
        await db.execute(
            EVENT_COLUMNS
            + EventInsert("platforms", "pl.code", "NULL", "changed").select_list(changes)
            + f" FROM {stage} AS s JOIN platforms AS pl ON pl.code = s.code WHERE s.action = 'changed' ORDER BY s.line",
            params,
        )
        await db.execute(
            f"UPDATE platforms AS pl SET name = s.name FROM {stage} AS s "
            "WHERE pl.code = s.code AND s.action = 'changed'"
        )
        await db.execute(
            f"INSERT INTO platforms (code, name) SELECT s.code, s.name FROM {stage} AS s "
            "WHERE s.action = 'created' ORDER BY s.line"
        )
        created = db.json_snapshot([("code", "pl.code"), ("name", "pl.name")])
        await db.execute(
            EVENT_COLUMNS
            + EventInsert("platforms", "pl.code", "NULL", "created").select_list(created)
            + f" FROM {stage} AS s JOIN platforms AS pl ON pl.code = s.code WHERE s.action = 'created' ORDER BY s.line",
            params,
        )
        return await rows_with_action(db, stage)


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

        await db.execute(
            f"UPDATE {stage} AS s SET action = 'created' "
            "WHERE NOT EXISTS (SELECT 1 FROM trainings AS t WHERE t.code = s.training_code)"
        )
        await db.execute(
            f"UPDATE {stage} AS s SET action = 'changed' WHERE EXISTS (SELECT 1 FROM trainings AS t "
            "WHERE t.code = s.training_code AND (t.title <> s.title OR t.institution_id <> s.institution_id))"
        )
        changes = db.json_object(
            [
                JsonField("title", "t.title", "s.title", "t.title <> s.title"),
                JsonField(
                    "institution_id", "t.institution_id", "s.institution_id", "t.institution_id <> s.institution_id"
                ),
            ]
        )
        await db.execute(
            EVENT_COLUMNS
            + EventInsert("trainings", "t.id", "NULL", "changed").select_list(changes)
            + f" FROM {stage} AS s JOIN trainings AS t ON t.code = s.training_code "
            "WHERE s.action = 'changed' ORDER BY s.line",
            params,
        )
        await db.execute(
            f"UPDATE trainings AS t SET title = s.title, institution_id = s.institution_id FROM {stage} AS s "
            "WHERE t.code = s.training_code AND s.action = 'changed'"
        )
        await db.execute(
            "INSERT INTO trainings (code, title, institution_id) "
            f"SELECT s.training_code, s.title, s.institution_id FROM {stage} AS s "
            "WHERE s.action = 'created' ORDER BY s.line"
        )
        created = db.json_snapshot([("code", "t.code"), ("title", "t.title"), ("institution_id", "t.institution_id")])
        await db.execute(
            EVENT_COLUMNS
            + EventInsert("trainings", "t.id", "NULL", "created").select_list(created)
            + f" FROM {stage} AS s JOIN trainings AS t ON t.code = s.training_code "
            "WHERE s.action = 'created' ORDER BY s.line",
            params,
        )
        return await rows_with_action(db, stage)
