"""Apply a migration plan: runtime DDL through Alembic's operations API, in the caller's transaction.

On SQLite, ALTERs go through batch mode (table copies), with foreign-key enforcement paused by the caller for the
duration and `PRAGMA foreign_key_check` run before commit."""

from __future__ import annotations

import datetime as dt
import json
import warnings
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from engine.errors import PlanRefused
from engine.schema import App
from engine.schema.canonical import to_entity_schema, to_field_schema
from engine.schema.kinds import kind_of
from engine.schema.names import sql_name
from engine.storage.database import crm_archive, crm_history, crm_sequences
from engine.storage.plan import MigrationPlan, Step
from engine.storage.tables import AppTables, column_for, entity_table_name, index_specs, link_table_name, storage_type

__all__ = ["apply_plan"]

_BATCH = 1000


class _Migration:
    def __init__(self, conn: sa.Connection, plan: MigrationPlan, old: App | None, version: int) -> None:
        self.conn, self.plan, self.old, self.version = conn, plan, old, version
        self.app = plan.app
        self.new = plan.new
        self.new_tables = AppTables(plan.new)
        self.sqlite = conn.dialect.name == "sqlite"
        self.op = Operations(MigrationContext.configure(conn))

    def run(self) -> None:
        steps = self.plan.steps
        touched = {s.entity for s in steps if s.field and s.action != "update_field"}
        live_before = set(sa.inspect(self.conn).get_table_names())
        for s in steps:
            if s.action in ("rename_entity", "restore_entity"):
                self._move_entity(s)
        for s in steps:
            if s.action in ("archive_entity", "purge_entity"):
                self._retire_entity(s)
        created = [self.new_tables.table(s.entity) for s in steps if s.action == "add_entity"]
        created += [self.new_tables.link(s.entity, f.key) for s in steps if s.action == "add_entity"
                    for f in self.new.entity(s.entity).fields if f.kind == "relation_many"]
        with warnings.catch_warnings():  # entities that refer to each other form FK cycles; SQLite inlines them
            warnings.filterwarnings("ignore", message=".*unresolvable cycles.*", category=sa.exc.SAWarning)
            self.new_tables.metadata.create_all(self.conn, tables=created)
        for entity in sorted(touched - {s.entity for s in steps if s.action == "add_entity"}):
            self._drop_indexes(entity_table_name(self.app, entity))
            self._fields(entity, [s for s in steps if s.entity == entity and s.field])
        for entity in self.new.entities:
            self._reconcile_indexes(entity.key, live_before)

    # --- entities -------------------------------------------------------------------------------------
    def _rename_table(self, old: str, new: str) -> None:
        if old != new:
            self.op.rename_table(old, new)

    def _move_entity(self, s: Step) -> None:
        new_name = entity_table_name(self.app, s.entity)
        if s.action == "rename_entity":
            old_entity = self.old.entity(s.old) if self.old else None
            self._rename_table(entity_table_name(self.app, s.old or ""), new_name)
            for f in old_entity.fields if old_entity else ():
                if f.kind == "relation_many":
                    self._rename_table(link_table_name(self.app, s.old or "", f.key),
                                       link_table_name(self.app, s.entity, f.key))
            for table in (crm_archive, crm_sequences, crm_history):
                cond = [table.c.app == self.app, table.c.entity == s.old]
                self.conn.execute(table.update().where(*cond).values(entity=s.entity))
        else:
            self._rename_table(s.old or "", new_name)
            links = json.loads(self._archive_row(s.archive_id)["definition"]).get("x-crm-links", {})
            for fkey, stored in links.items():
                self._rename_table(stored, link_table_name(self.app, s.entity, fkey))
            self._mark_restored(s.archive_id)

    def _retire_entity(self, s: Step) -> None:
        assert self.old is not None
        entity = self.old.entity(s.entity)
        table = entity_table_name(self.app, s.entity)
        links = {f.key: link_table_name(self.app, s.entity, f.key) for f in entity.fields if f.kind == "relation_many"}
        if s.action == "purge_entity":
            for link in links.values():
                self.op.drop_table(link)
            self.op.drop_table(table)
            self.conn.execute(crm_sequences.delete().where(crm_sequences.c.app == self.app,
                                                           crm_sequences.c.entity == s.entity))
            return
        stored = sql_name("_arch", f"v{self.version}", table)
        self._drop_indexes(table)
        self._rename_table(table, stored)
        archived_links = {}
        for fkey, link in links.items():
            archived_links[fkey] = sql_name("_arch", f"v{self.version}", link)
            self._rename_table(link, archived_links[fkey])
        definition = to_entity_schema(entity)
        definition["x-crm-links"] = archived_links
        self._archive(s.entity, None, json.dumps(definition, ensure_ascii=False, default=str), stored)

    # --- fields ---------------------------------------------------------------------------------------
    def _fields(self, entity_key: str, steps: list[Step]) -> None:
        table = entity_table_name(self.app, entity_key)
        new_entity = self.new.entity(entity_key)
        old_entity = self._old_entity(entity_key)
        conversions: list[Step] = []
        with self.op.batch_alter_table(table, recreate="auto") as batch:
            for s in steps:
                new_field = new_entity.field_map().get(s.field or "")
                if s.action in ("rename_field", "restore_field"):
                    if new_field is not None and new_field.kind == "relation_many":
                        self._move_link(entity_key, s)
                    else:
                        batch.alter_column(s.old, new_column_name=s.field)
                    if s.action == "restore_field":
                        self._mark_restored(s.archive_id)
                elif s.action == "add_field" and new_field is not None and new_field.kind != "relation_many":
                    batch.add_column(column_for(self.app, new_field))
                elif s.action in ("archive_field", "purge_field"):
                    self._retire_field(batch, entity_key, old_entity.field(s.field or ""), s.action == "purge_field")
                elif s.action == "convert_field" and new_field is not None:
                    conversions.append(s)
                    tmp = sql_name("_new", s.field or "")
                    batch.add_column(column_for(self.app, new_field, name=tmp))
        for s in steps:
            f = new_entity.field_map().get(s.field or "")
            if s.action == "add_field" and f is not None and f.kind == "relation_many":
                self.new_tables.link(entity_key, f.key).create(self.conn)
        if conversions:
            self._convert(entity_key, table, conversions, old_entity, new_entity)
        for s in steps:
            if s.action == "fill_default":
                f = new_entity.field(s.field or "")
                col = sa.column(f.key, storage_type(f))
                self.conn.execute(sa.table(table, col).update().where(col.is_(None))
                                  .values({f.key: kind_of(f.kind).to_db(f, f.default)}))

    def _old_entity(self, entity_key: str) -> Any:
        """The entity as stored before this migration (following a rename or a restore)."""
        for s in self.plan.steps:
            if s.entity == entity_key and s.action == "rename_entity" and self.old:
                return self.old.entity(s.old or "")
            if s.entity == entity_key and s.action == "restore_entity":
                from engine.storage.plan import _entity_from_json

                return _entity_from_json(entity_key, self._archive_row(s.archive_id)["definition"])
        assert self.old is not None
        return self.old.entity(entity_key)

    def _old_field_for(self, old_entity: Any, new_key: str) -> Any:
        for s in self.plan.steps:
            if s.entity == old_entity.key or s.field == new_key:
                if s.field == new_key and s.action == "rename_field":
                    return old_entity.field(s.old)
                if s.field == new_key and s.action == "restore_field":
                    return _archived_field(self._archive_row(s.archive_id))
        return old_entity.field(new_key)

    def _convert(self, entity_key: str, table: str, steps: list[Step], old_entity: Any, new_entity: Any) -> None:
        for s in steps:
            new = new_entity.field(s.field or "")
            old = self._old_field_for(old_entity, new.key)
            ok, nk = kind_of(old.kind), kind_of(new.kind)
            src = sa.column(new.key, storage_type(old))
            tmp_name = sql_name("_new", new.key)
            tmp = sa.column(tmp_name, storage_type(new))
            t = sa.table(table, sa.column("id"), src, tmp)
            rows = self.conn.execute(sa.select(t.c.id, src).where(src.is_not(None))).all()
            updates = []
            for rid, raw in rows:
                value = nk.convert(old, new, ok.from_db(old, raw))
                updates.append({"rid": rid, "v": nk.to_db(new, value)})
            stmt = t.update().where(t.c.id == sa.bindparam("rid")).values({tmp_name: sa.bindparam("v", type_=tmp.type)})
            for i in range(0, len(updates), _BATCH):
                self.conn.execute(stmt, updates[i: i + _BATCH])
        newly_sensitive = [new_entity.field(s.field or "").key for s in steps
                           if new_entity.field(s.field or "").sensitive
                           and not self._old_field_for(old_entity, s.field or "").sensitive]
        if newly_sensitive:
            self._seal_history(entity_key, set(newly_sensitive))
        with self.op.batch_alter_table(table, recreate="auto") as batch:
            for s in steps:
                batch.drop_column(s.field)
        with self.op.batch_alter_table(table, recreate="auto") as batch:
            for s in steps:
                batch.alter_column(sql_name("_new", s.field or ""), new_column_name=s.field)

    def _seal_history(self, entity_key: str, keys: set[str]) -> None:
        """A field that becomes sensitive has its earlier values in history encrypted too, so history holds them no
        more readably than the column does."""
        from engine.storage.database import crm_history
        from engine.storage.writer import seal_value

        def sealed(value: Any) -> Any:
            return value if isinstance(value, dict) and set(value) == {"enc"} else seal_value(value)

        h = crm_history
        updates = []
        for hid, changes in self.conn.execute(sa.select(h.c.id, h.c.changes).where(h.c.app == self.app,
                                                                                    h.c.entity == entity_key)):
            if not isinstance(changes, dict) or not keys & set(changes):
                continue
            updates.append({"hid": hid, "c": {k: [sealed(v) for v in pair] if k in keys and isinstance(pair, list)
                                              else pair for k, pair in changes.items()}})
        stmt = h.update().where(h.c.id == sa.bindparam("hid")).values(changes=sa.bindparam("c", type_=h.c.changes.type))
        for i in range(0, len(updates), _BATCH):
            self.conn.execute(stmt, updates[i: i + _BATCH])

    def _retire_field(self, batch: Any, entity_key: str, f: Any, purge: bool) -> None:
        if f.kind == "relation_many":
            link = link_table_name(self.app, entity_key, f.key)
            if purge:
                self.op.drop_table(link)
            else:
                stored = sql_name("_arch", f"v{self.version}", link)
                self._rename_table(link, stored)
                definition = json.dumps(to_field_schema(f), ensure_ascii=False, default=str)
                self._archive(entity_key, f.key, definition, stored)
            return
        if purge:
            batch.drop_column(f.key)
            return
        stored = sql_name("_arch", f"v{self.version}", f.key)
        batch.alter_column(f.key, new_column_name=stored)
        self._archive(entity_key, f.key, json.dumps(to_field_schema(f), ensure_ascii=False, default=str), stored)

    def _move_link(self, entity_key: str, s: Step) -> None:
        source = s.old if s.action == "restore_field" else link_table_name(self.app, entity_key, s.old or "")
        self._rename_table(source or "", link_table_name(self.app, entity_key, s.field or ""))

    # --- indexes --------------------------------------------------------------------------------------
    def _drop_indexes(self, table: str) -> None:
        for ix in sa.inspect(self.conn).get_indexes(table):
            if ix["name"] and ix["name"].startswith(("ix__", "uq__")):
                self.op.drop_index(ix["name"], table_name=table)

    def _reconcile_indexes(self, entity_key: str, live_before: set[str]) -> None:
        table = entity_table_name(self.app, entity_key)
        entity = self.new.entity(entity_key)
        wanted = index_specs(self.app, entity)
        wanted[sql_name("ix", table, "created_at")] = (("created_at",), False)
        have = {ix["name"]: ix for ix in sa.inspect(self.conn).get_indexes(table) if ix["name"]}
        for name in have:
            if name.startswith(("ix__", "uq__")) and name not in wanted:
                self.op.drop_index(name, table_name=table)
        for name, (cols, unique) in wanted.items():
            if name not in have:
                self.op.create_index(name, table, list(cols), unique=unique)

    # --- archive bookkeeping --------------------------------------------------------------------------
    def _archive(self, entity: str, field: str | None, definition: str, stored: str) -> None:
        self.conn.execute(crm_archive.insert().values(app=self.app, entity=entity, field=field, definition=definition,
                                                      stored_as=stored, archived_in=self.version, state="archived"))

    def _archive_row(self, archive_id: int | None) -> Any:
        return self.conn.execute(sa.select(crm_archive).where(crm_archive.c.id == archive_id)).mappings().one()

    def _mark_restored(self, archive_id: int | None) -> None:
        self.conn.execute(crm_archive.update().where(crm_archive.c.id == archive_id).values(state="restored"))


def _archived_field(row: Any) -> Any:
    from engine.storage.plan import _ArchivedField

    return _ArchivedField(row).field


def apply_plan(conn: sa.Connection, plan: MigrationPlan, old: App | None, version: int) -> None:
    """Carry out a plan inside the caller's transaction; PlanRefused if it has blockers."""
    if not plan.ok:
        raise PlanRefused([line for b in plan.blockers for line in b.describe()])
    _Migration(conn, plan, old, version).run()
    if conn.dialect.name == "sqlite":
        problems = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
        if problems:
            raise PlanRefused([f"foreign key check failed after migration: {p}" for p in problems[:5]])


def utcnow() -> dt.datetime:
    """Now, in UTC, without tzinfo (how the engine stores times)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
