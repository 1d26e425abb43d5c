"""The records service: the only code path that writes records.

Every write validates with the entity's compiled validator, checks unique values and relation targets against the
database (reported as field errors), and stores its history (who, when, field, old -> new) in the same
transaction. Updates carry the version they were based on; a stale version is a conflict and writes nothing.

Permissions are enforced here and nowhere else: acting as a Principal, every read and write checks the entity's
grant (the action, own-records-only, hidden and read-only fields); a plain actor name is trusted (CLI, system)."""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa

from engine.auth.principal import EntityGrant, Principal
from engine.errors import ConflictError, CrmError, FieldError, NotFoundError, PermissionDenied, RecordValidationError
from engine.schema import Entity, Field
from engine.schema.kinds import ConversionError, FieldKind, kind_of
from engine.schema.kinds.temporal import format_datetime
from engine.storage.catalog import CATALOG, CompiledApp
from engine.storage.database import Database, crm_history, crm_sequences
from engine.storage.migrate import utcnow
from engine.storage.query import (
    Query,
    build_conditions,
    decode_cursor,
    encode_cursor,
    keyset_condition,
    order_by,
    sort_columns,
)

__all__ = ["Page", "RecordService", "RowReader", "new_id", "owned_condition", "reader_for", "row_to_record",
           "without_hidden"]

_SYSTEM_OUT = ("created_at", "updated_at", "created_by", "updated_by", "version")


def new_id() -> str:
    """A time-ordered UUID (version 7 layout), so new rows land at the end of the primary-key index."""
    ms = time.time_ns() // 1_000_000
    raw = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    raw[6] = 0x70 | (raw[6] & 0x0F)
    raw[8] = 0x80 | (raw[8] & 0x3F)
    return str(uuid.UUID(bytes=bytes(raw)))


def row_to_record(fields: Iterable[Field], row: Mapping[str, Any]) -> dict[str, Any]:
    """A table row -> the record's JSON shape (empty fields left out)."""
    record: dict[str, Any] = {"id": row["id"]} if "id" in row else {}
    for f in fields:
        if f.kind == "relation_many" or f.key not in row:
            continue
        value = kind_of(f.kind).from_db(f, row[f.key])
        if value is not None:
            record[f.key] = value
    for key in _SYSTEM_OUT:
        if key in row:
            value = row[key]
            record[key] = format_datetime(value) if key.endswith("_at") else value
    return record


class RowReader:
    """Turns rows of one entity's table into records, with the per-field work decided once (list pages read many
    rows: going through RowMapping and the kind registry for every cell costs more than the query itself)."""

    def __init__(self, table: sa.Table, fields: Iterable[Field]) -> None:
        self.positions = {c.name: i for i, c in enumerate(table.columns)}
        pos = self.positions
        self.id_pos = pos["id"]
        self.fields: list[tuple[int, str, Any]] = []
        for f in fields:
            if f.kind == "relation_many" or f.key not in pos:
                continue
            kind = kind_of(f.kind)
            identity = type(kind).from_db is FieldKind.from_db
            self.fields.append((pos[f.key], f.key, None if identity else functools.partial(kind.from_db, f)))
        self.system = [(pos[k], k, k.endswith("_at")) for k in _SYSTEM_OUT]

    def __call__(self, row: Sequence[Any]) -> dict[str, Any]:
        record: dict[str, Any] = {"id": row[self.id_pos]}
        for i, key, convert in self.fields:
            value = row[i]
            if value is not None and convert is not None:
                value = convert(value)
            if value is not None:
                record[key] = value
        for i, key, is_time in self.system:
            value = row[i]
            record[key] = format_datetime(value) if is_time else value
        return record


def reader_for(compiled: CompiledApp, entity: Entity) -> RowReader:
    """The row reader of an entity, built once per compiled app version."""
    reader = compiled.readers.get(entity.key)
    if reader is None:
        reader = compiled.readers[entity.key] = RowReader(compiled.tables.table(entity.key), entity.fields)
    return reader


def owned_condition(table: sa.Table, grant: EntityGrant | None, name: str) -> list[Any]:
    """The WHERE condition limiting an own-records-only grant to the rows `name` owns ([] when all are allowed)."""
    if grant is None or not grant.own_only:
        return []
    column = grant.owner_field or "created_by"
    return [table.c[column] == name] if column in table.c else [sa.false()]


def without_hidden(record: dict[str, Any], grant: EntityGrant | None) -> dict[str, Any]:
    """The record without the fields the grant hides."""
    if grant is None or not grant.hidden:
        return record
    return {k: v for k, v in record.items() if k not in grant.hidden}


class _Scope(NamedTuple):
    compiled: CompiledApp
    entity: Entity
    grant: EntityGrant | None
    hidden: frozenset[str]
    table: sa.Table
    conditions: list[Any]


@dataclass
class Page:
    """One page of a query: the records and the cursor of the next page (None on the last)."""

    records: list[dict[str, Any]]
    next_cursor: str | None


class RecordService:
    """Records of one app, acting as `actor`: a Principal is held to its roles; a plain name (the CLI, the system)
    is trusted. History records the actor's name."""

    def __init__(self, db: Database, app: str, actor: str | Principal = "system") -> None:
        self.db = db
        self.app_name = app
        self.principal = actor if isinstance(actor, Principal) else None
        self.actor = actor.name if isinstance(actor, Principal) else actor

    def grant(self, entity: Entity, action: str) -> EntityGrant | None:
        """The acting principal's grant for the entity (None when trusted); PermissionDenied without `action`."""
        if self.principal is None:
            return None
        grant = self.principal.grant(self.app_name, entity.key)
        if not grant.allows(action):
            raise PermissionDenied(action, f"{(entity.plural or entity.title).lower()} in app {self.app_name}")
        return grant

    def may(self, entity: str, action: str) -> bool:
        """Whether the actor may do `action` on the entity's records (for showing or hiding controls)."""
        return self.principal is None or self.principal.can(self.app_name, entity, action)

    # --- reading --------------------------------------------------------------------------------------
    def _compiled(self, conn: sa.Connection) -> CompiledApp:
        return CATALOG.current(conn, self.app_name)

    def get(self, entity: str, record_id: str) -> dict[str, Any]:
        """One record; NotFoundError if it does not exist."""
        with self.db.read() as conn:
            compiled = self._compiled(conn)
            ent = compiled.entity(entity)
            grant = self.grant(ent, "read")
            return without_hidden(self._get(conn, compiled, ent, record_id, grant=grant), grant)

    def _get(self, conn: sa.Connection, compiled: CompiledApp, entity: Entity, record_id: str,
             lock: bool = False, grant: EntityGrant | None = None) -> dict[str, Any]:
        table = compiled.tables.table(entity.key)
        # A record outside an own-records grant does not exist for this actor (NotFoundError, not a hint).
        stmt = sa.select(table).where(table.c.id == str(record_id), *owned_condition(table, grant, self.actor))
        if lock and conn.dialect.name != "sqlite":
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).mappings().first()
        if row is None:
            raise NotFoundError(f"there is no {entity.title} with id {record_id}")
        record = row_to_record(entity.fields, row)
        self._attach_links(conn, compiled, entity, [record])
        return record

    def _attach_links(self, conn: sa.Connection, compiled: CompiledApp, entity: Entity,
                      records: list[dict[str, Any]]) -> None:
        ids = [r["id"] for r in records]
        for f in entity.fields:
            if f.kind != "relation_many" or not ids:
                continue
            link = compiled.tables.link(entity.key, f.key)
            found: dict[str, list[str]] = {}
            for source, target in conn.execute(sa.select(link.c.source_id, link.c.target_id)
                                               .where(link.c.source_id.in_(ids)).order_by(link.c.target_id)):
                found.setdefault(source, []).append(target)
            for r in records:
                if r["id"] in found:
                    r[f.key] = found[r["id"]]

    def _matching(self, conn: sa.Connection, entity: str, query: Query) -> _Scope:
        """What a read query works on: the entity, the user's read grant, and the WHERE conditions of the query's
        filters and search limited to the rows the user may read."""
        compiled = self._compiled(conn)
        ent = compiled.entity(entity)
        grant = self.grant(ent, "read")
        hidden = grant.hidden if grant else frozenset()
        table = compiled.tables.table(ent.key)
        links = {f.key: compiled.tables.link(ent.key, f.key) for f in ent.fields if f.kind == "relation_many"}
        conditions = build_conditions(table, ent, query, links, hidden) + owned_condition(table, grant, self.actor)
        return _Scope(compiled, ent, grant, hidden, table, conditions)

    def query(self, entity: str, query: Query | None = None) -> Page:
        """A page of records matching the query, in its sort order; pass `next_cursor` back as `after`."""
        query = query or Query()
        with self.db.read() as conn:
            compiled, ent, grant, hidden, table, conditions = self._matching(conn, entity, query)
            columns = sort_columns(table, ent, query.sort, hidden)
            if query.after:
                conditions.append(keyset_condition(columns, decode_cursor(query.after, len(columns))))
            limit = max(1, min(query.limit, 1000))
            stmt = sa.select(table).where(*conditions).order_by(*order_by(columns)).limit(limit + 1)
            rows = conn.execute(stmt).all()
            more = len(rows) > limit
            rows = rows[:limit]
            reader = reader_for(compiled, ent)
            records = [reader(r) for r in rows]
            self._attach_links(conn, compiled, ent, records)
            pos = reader.positions
            cursor = encode_cursor([rows[-1][pos[k.column.name]] for k in columns]) if more and rows else None
            return Page([without_hidden(r, grant) for r in records], cursor)

    def count(self, entity: str, query: Query | None = None, up_to: int | None = None) -> int:
        """How many records match; with `up_to`, counting stops there (for "more than N" on big tables)."""
        query = query or Query()
        with self.db.read() as conn:
            scope = self._matching(conn, entity, query)
            inner = sa.select(scope.table.c.id).where(*scope.conditions)
            if up_to is not None:
                inner = inner.limit(up_to)
            return conn.execute(sa.select(sa.func.count()).select_from(inner.subquery())).scalar() or 0

    def history(self, entity: str, record_id: str) -> list[dict[str, Any]]:
        """Every change to a record, oldest first: who, when, action, {field: [old, new]}."""
        with self.db.read() as conn:
            grant, ent = None, None
            try:
                compiled = self._compiled(conn)
                ent = next((e for e in compiled.app.entities if e.key == entity), None)
            except CrmError:
                if self.principal is not None:
                    raise
            if self.principal is not None:
                ent = compiled.entity(entity)
                grant = self.grant(ent, "read")
                self._get(conn, compiled, ent, record_id, grant=grant)  # NotFoundError outside an own-records grant
            rows = conn.execute(sa.select(crm_history).where(
                crm_history.c.app == self.app_name, crm_history.c.entity == entity,
                crm_history.c.record_id == str(record_id)).order_by(crm_history.c.id)).mappings().all()
        sensitive = {f.key for f in ent.fields if f.sensitive} if ent is not None else set()
        return [{"at": format_datetime(r["at"]), "actor": r["actor"], "action": r["action"],
                 "version": r["record_version"],
                 "changes": _unsealed(without_hidden(r["changes"], grant), sensitive)} for r in rows]

    # --- writing --------------------------------------------------------------------------------------
    def create(self, entity: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Create a record; RecordValidationError lists every problem, and nothing is written."""
        return self.create_many(entity, [values])[0]

    def create_many(self, entity: str, rows: list[Mapping[str, Any]], lines: list[int] | None = None,
                    keep_ids: bool = False) -> list[dict[str, Any]]:
        """Create many records in one transaction, all or nothing. Errors carry `lines[i]` (file line numbers)
        when given. With `keep_ids`, an `id` and autonumber values in the rows are kept (imports of exports)."""
        from engine.storage.writer import Writer

        with self.db.write() as conn:
            compiled = self._compiled(conn)
            ent = compiled.entity(entity)
            grant = self.grant(ent, "create")
            writer = Writer(conn, compiled, ent, self.app_name, self.actor, grant)
            return [without_hidden(r, grant) for r in writer.insert(rows, lines, keep_ids)]

    def _current_at(self, conn: sa.Connection, compiled: CompiledApp, ent: Entity, record_id: str,
                    expected_version: int | None, grant: Any) -> dict[str, Any]:
        """The record, locked for writing; ConflictError (carrying what the caller may see) when it is no longer
        at the version the caller edited."""
        current = self._get(conn, compiled, ent, record_id, lock=True, grant=grant)
        if expected_version is not None and current["version"] != expected_version:
            raise ConflictError(str(record_id), expected_version, current["version"], without_hidden(current, grant))
        return current

    def update(self, entity: str, record_id: str, changes: Mapping[str, Any],
               expected_version: int | None = None) -> dict[str, Any]:
        """Change some fields of a record. With `expected_version` (the version the user edited), a record changed
        meanwhile raises ConflictError carrying the current record, and nothing is written."""
        from engine.storage.writer import Writer

        with self.db.write() as conn:
            compiled = self._compiled(conn)
            ent = compiled.entity(entity)
            grant = self.grant(ent, "update")
            current = self._current_at(conn, compiled, ent, record_id, expected_version, grant)
            writer = Writer(conn, compiled, ent, self.app_name, self.actor, grant)
            return without_hidden(writer.update(current, changes), grant)

    def delete(self, entity: str, record_id: str, expected_version: int | None = None) -> None:
        """Delete a record, applying the on-delete rule of every relation pointing at it (restrict refuses,
        set-null clears, cascade deletes), with history for every record touched."""
        from engine.storage.writer import Writer

        with self.db.write() as conn:
            compiled = self._compiled(conn)
            ent = compiled.entity(entity)
            grant = self.grant(ent, "delete")
            current = self._current_at(conn, compiled, ent, record_id, expected_version, grant)
            Writer(conn, compiled, ent, self.app_name, self.actor).delete(current, self.principal)

    # --- workflows ------------------------------------------------------------------------------------
    def flow(self, entity: str) -> Any:
        """The entity's compiled workflow (engine.workflows.runtime.Flow), None when it has none."""
        with self.db.read() as conn:
            compiled = self._compiled(conn)
            return compiled.flow(compiled.entity(entity).key)

    def transitions(self, entity: str, record: dict[str, Any]) -> list[Any]:
        """The transitions out of the record's state this user may fire, each with the reason it cannot run now
        (engine.workflows.runtime.TransitionOption); [] without update rights or a workflow."""
        with self.db.read() as conn:
            compiled = self._compiled(conn)
            ent = compiled.entity(entity)
            flow = compiled.flow(ent.key)
            if flow is None or not flow.has_states or not self.may(ent.key, "update"):
                return []
            grant = self.grant(ent, "update")
            if grant is not None and grant.hidden and record.get("id"):
                # Judged on the whole record (the caller's copy lacks hidden fields); reasons never name them.
                record = self._get(conn, compiled, ent, record["id"], grant=grant)
        return flow.options(self.principal, record, self.actor, grant.hidden if grant else frozenset())

    def transition(self, entity: str, record_id: str, name: str, seen_state: str | None = None) -> dict[str, Any]:
        """Fire a workflow transition on a record: the state change, its actions and the automations it sets off,
        all in one transaction. `seen_state` is the state the user saw: if the record moved on meanwhile, the
        transition is refused (engine.workflows.runtime.TransitionRefused says why; nothing is changed)."""
        from engine.storage.writer import Writer
        from engine.workflows.runtime import TransitionRefused

        with self.db.write() as conn:
            compiled = self._compiled(conn)
            ent = compiled.entity(entity)
            grant = self.grant(ent, "update")
            flow = compiled.flow(ent.key)
            if flow is None or not flow.has_states:
                raise TransitionRefused(f"{ent.title} has no workflow", name)
            current = self._get(conn, compiled, ent, record_id, lock=True, grant=grant)
            writer = Writer(conn, compiled, ent, self.app_name, self.actor)  # the transition decides, not field rights
            hidden = grant.hidden if grant else frozenset()
            try:
                return without_hidden(flow.fire(writer, self.principal, current, name, seen_state, hidden), grant)
            except TransitionRefused as exc:
                exc.current = without_hidden(exc.current, grant) if exc.current is not None else None
                raise

    def totals(self, entity: str, group: str, sum_field: str | None = None,
               query: Query | None = None) -> dict[Any, tuple[int, Any]]:
        """Records matching the query grouped by a field's value: {value: (count, sum of `sum_field`)} (sum None
        without a sum field or when the field is hidden from this user)."""
        query = query or Query()
        with self.db.read() as conn:
            _, ent, _, hidden, table, conditions = self._matching(conn, entity, query)
            if group in hidden:
                return {}
            gf = ent.field(group)
            sum_f = ent.field(sum_field) if sum_field and sum_field not in hidden else None
            col = table.c[gf.key]
            total = sa.func.sum(table.c[sum_f.key]) if sum_f is not None else sa.null()
            rows = conn.execute(sa.select(col, sa.func.count(), total).where(*conditions).group_by(col)).all()

        def typed(f: Field | None, raw: Any) -> Any:
            return None if f is None or raw is None else kind_of(f.kind).from_db(f, raw)

        return {typed(gf, value): (count, typed(sum_f, amount)) for value, count, amount in rows}


def _unsealed(changes: dict[str, Any], sensitive: set[str]) -> dict[str, Any]:
    """History changes with encrypted values ({"enc": "v1:..."}, written for sensitive fields) decrypted. Called after
    hidden fields are left out, so only fields the caller may see are decrypted. A field that is no longer sensitive
    may still have encrypted history: without the key its values show as "(encrypted)"."""
    from engine.storage.crypto import KeyMissing, decrypt

    def plain(key: str, value: Any) -> Any:
        if not (isinstance(value, dict) and set(value) == {"enc"} and isinstance(value["enc"], str)):
            return value
        try:
            return decrypt(value["enc"])
        except KeyMissing:
            if key in sensitive:
                raise
            return "(encrypted)"

    if not any(isinstance(v, dict) for pair in changes.values() if isinstance(pair, list) for v in pair):
        return changes
    return {k: [plain(k, v) for v in pair] if isinstance(pair, list) else pair for k, pair in changes.items()}


def next_numbers(conn: sa.Connection, app: str, entity: str, field: str, count: int) -> int:
    """Reserve `count` autonumbers; returns the first. Numbers are never reused, even after deletes."""
    key = [crm_sequences.c.app == app, crm_sequences.c.entity == entity, crm_sequences.c.field == field]
    updated = conn.execute(crm_sequences.update().where(*key).values(last_value=crm_sequences.c.last_value + count)
                           .returning(crm_sequences.c.last_value)).scalar()
    if updated is None:
        conn.execute(crm_sequences.insert().values(app=app, entity=entity, field=field, last_value=count))
        updated = count
    return updated - count + 1


def bump_sequence(conn: sa.Connection, app: str, entity: str, field: str, at_least: int) -> None:
    """Make sure the next number is above `at_least` (after importing existing numbers)."""
    next_numbers(conn, app, entity, field, 0)
    conn.execute(crm_sequences.update().where(crm_sequences.c.app == app, crm_sequences.c.entity == entity,
                                              crm_sequences.c.field == field, crm_sequences.c.last_value < at_least)
                 .values(last_value=at_least))


__all__ += [
    "ConversionError",
    "CrmError",
    "FieldError",
    "PermissionDenied",
    "RecordValidationError",
    "bump_sequence",
    "next_numbers",
    "utcnow",
]
