"""SQL tables from definitions: one table per entity, a typed column per field, link tables for relation_many."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.schema.kinds import kind_of
from engine.schema.model import App, Entity, Field
from engine.schema.names import sql_name

__all__ = ["AppTables", "column_for", "entity_table_name", "index_specs", "link_table_name", "storage_type"]


def entity_table_name(app: str, entity: str) -> str:
    """The table holding an entity's records."""
    return sql_name(app, entity)


def link_table_name(app: str, entity: str, field: str) -> str:
    """The link table of a relation_many field."""
    return sql_name(app, entity, field)


def storage_type(field: Field) -> Any:
    """The SQL type a field's column is read and written through: encrypted text for sensitive fields."""
    if field.sensitive:
        from engine.storage.crypto import EncryptedText

        return EncryptedText()
    return kind_of(field.kind).sql_type(field)


def column_for(app: str, field: Field, name: str | None = None) -> sa.Column[Any]:
    """The column storing a field (None for relation_many, which lives in a link table)."""
    sql_type = storage_type(field)
    args: list[Any] = []
    if field.kind == "relation":
        args.append(sa.ForeignKey(f"{entity_table_name(app, field.target or '')}.id",
                                  name=sql_name("fk", app, field.target or "", name or field.key)))
    return sa.Column(name or field.key, sql_type, *args, nullable=True)


def index_specs(app: str, entity: Entity) -> dict[str, tuple[tuple[str, ...], bool]]:
    """The indexes an entity's table should have: name -> (columns, unique)."""
    table = entity_table_name(app, entity.key)
    out: dict[str, tuple[tuple[str, ...], bool]] = {}
    for f in entity.fields:
        if kind_of(f.kind).many:
            continue
        if f.unique:
            out[sql_name("uq", table, f.key)] = ((f.key,), True)
        elif f.indexed or f.kind in ("relation", "autonumber"):
            out[sql_name("ix", table, f.key)] = ((f.key,), False)
    for spec in entity.indexes:
        prefix = "uq" if spec.unique else "ix"
        out[sql_name(prefix, table, *spec.fields)] = (spec.fields, spec.unique)
    return out


def _system_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    ]


class AppTables:
    """The SQLAlchemy tables of one app version (rebuilt whenever the definition changes)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.metadata = sa.MetaData()
        self.entities: dict[str, sa.Table] = {}
        self.links: dict[tuple[str, str], sa.Table] = {}
        for entity in app.entities:
            self.entities[entity.key] = self._entity_table(entity)
        for entity in app.entities:
            for f in entity.fields:
                if f.kind == "relation_many":
                    self.links[(entity.key, f.key)] = self._link_table(entity, f)

    def _entity_table(self, entity: Entity) -> sa.Table:
        name = entity_table_name(self.app.name, entity.key)
        columns = _system_columns()
        columns += [column_for(self.app.name, f) for f in entity.fields if f.kind != "relation_many"]
        specs = index_specs(self.app.name, entity)
        indexes = [sa.Index(iname, *cols, unique=unique) for iname, (cols, unique) in specs.items()]
        indexes.append(sa.Index(sql_name("ix", name, "created_at"), "created_at"))
        return sa.Table(name, self.metadata, *columns, *indexes)

    def _link_table(self, entity: Entity, field: Field) -> sa.Table:
        name = link_table_name(self.app.name, entity.key, field.key)
        source = entity_table_name(self.app.name, entity.key)
        target = entity_table_name(self.app.name, field.target or "")
        def end(column: str, refers_to: str) -> sa.Column[Any]:
            fk = sa.ForeignKey(f"{refers_to}.id", ondelete="CASCADE", name=sql_name("fk", name, column.split("_")[0]))
            return sa.Column(column, sa.String(36), fk, primary_key=True)

        return sa.Table(
            name, self.metadata,
            end("source_id", source),
            end("target_id", target),
            sa.Index(sql_name("ix", name, "target"), "target_id"),
        )

    def table(self, entity: str) -> sa.Table:
        """The table of an entity."""
        return self.entities[entity]

    def link(self, entity: str, field: str) -> sa.Table:
        """The link table of a relation_many field."""
        return self.links[(entity, field)]
