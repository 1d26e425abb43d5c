"""Writing records inside one transaction: prepare (coerce, defaults, validate), database checks, insert/update/
delete with history. Used only by the records service."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from engine.auth.principal import EntityGrant, Principal
from engine.errors import FieldError, RecordValidationError
from engine.schema import Entity, Field
from engine.schema.kinds import ConversionError, kind_of
from engine.schema.kinds.temporal import format_datetime
from engine.schema.model import SYSTEM_COLUMNS
from engine.storage.catalog import CompiledApp
from engine.storage.crypto import encrypt
from engine.storage.database import crm_history, crm_state_entered
from engine.storage.migrate import utcnow
from engine.storage.records import bump_sequence, new_id, next_numbers, row_to_record
from engine.storage.tables import index_specs

__all__ = ["Writer", "jsonable", "seal_value"]

_CHUNK = 500


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == ()


class Writer:
    """Writes records of one entity on one connection; with a `grant`, values are held to it (hidden and read-only
    fields, the owner of own-records grants)."""

    def __init__(self, conn: sa.Connection, compiled: CompiledApp, entity: Entity, app: str, actor: str,
                 grant: EntityGrant | None = None, depth: int = 0) -> None:
        self.conn, self.compiled, self.entity, self.app, self.actor = conn, compiled, entity, app, actor
        self.grant = grant
        self.depth = depth  # how many actions deep this write is (automations setting off automations)
        self.flow = compiled.flow(entity.key)  # the entity's workflow (engine/workflows/runtime.py), or None
        self.state_field = self.flow.state_field if self.flow is not None and self.flow.has_states else None
        self.table = compiled.tables.table(entity.key)
        self.fields = entity.field_map()
        self.validator = compiled.validators[entity.key]

    # --- preparing values -----------------------------------------------------------------------------
    def _granted(self, key: str, value: Any, current: dict[str, Any] | None) -> FieldError | None:
        """Why the grant refuses writing `value` to `key` (None when it allows it). Unchanged and empty values pass,
        so a form or an exported file that carries them back is not refused."""
        grant = self.grant
        if grant is None:
            return None
        unchanged = _empty(value) if current is None else value == current.get(key)
        if key in grant.hidden and not (current is None and _empty(value)):
            return FieldError(key, f"{self.entity.title} has no field '{key}'")  # hidden: as if it did not exist
        if key in grant.read_only and not unchanged:
            return FieldError(key, "is read-only for you")
        if grant.own_only and key == grant.owner_field and not _empty(value) and value != self.actor:
            return FieldError(key, "you can only give records to yourself")
        return None

    def _prepare(self, values: Mapping[str, Any], current: dict[str, Any] | None, trusted: bool,
                 restore: bool = False, transition: str | None = None) -> tuple[dict[str, Any], list[FieldError]]:
        """Coerce and validate values. `trusted`: read-only fields may be set (restoring an export, actions);
        `restore`: records keep the workflow state they were exported in; `transition`: the state field may change."""
        errors: list[FieldError] = []
        record = {k: v for k, v in (current or {}).items() if k in self.fields}
        owner = self.grant.owner_field if self.grant is not None and self.grant.own_only else None
        if current is None and owner in self.fields and _empty(values.get(owner or "")):
            values = {**values, owner or "": self.actor}  # an own-records user creates their own records
        for key, value in values.items():
            if key in SYSTEM_COLUMNS:
                continue  # id and bookkeeping columns are the engine's (ids of imports are handled by insert)
            f = self.fields.get(key)
            if key == self.state_field and transition is None and not restore:
                refused = self._state_refused(value, current)
                if refused is not None:
                    errors.append(refused)
                    continue
                if current is not None:
                    continue  # unchanged: nothing to do
            refused = self._granted(key, value, current) if f is not None else None
            if f is None or refused is not None:
                errors.append(refused or FieldError(key, f"{self.entity.title} has no field '{key}'"))
                continue
            if self.grant is not None and key in self.grant.hidden:
                continue  # an empty hidden value on a new record: the default applies
            if f.read_only and not trusted:
                if current is not None and value == current.get(key):
                    continue
                if current is None and f.kind == "autonumber" and _empty(value):
                    continue
                errors.append(FieldError(key, "is generated and cannot be set" if f.kind == "autonumber"
                                         else "is read-only"))
                continue
            if _empty(value):
                record.pop(key, None)
                continue
            try:
                record[key] = kind_of(f.kind).coerce(f, value)
            except ConversionError as exc:
                errors.append(FieldError(key, str(exc)))
                record.pop(key, None)
        if current is None:
            for f in self.entity.fields:
                if f.default is not None and f.key not in values:
                    record[f.key] = f.default
            if self.state_field and self.state_field not in record and self.flow is not None:
                record[self.state_field] = self.flow.workflow.initial
        failed = {e.field for e in errors}
        errors += [e for e in self.validator.errors(record) if e.field not in failed]
        return record, errors

    def _state_refused(self, value: Any, current: dict[str, Any] | None) -> FieldError | None:
        """Why a value for the workflow's state field is refused outside a transition (None: it is not a change)."""
        assert self.flow is not None and self.state_field is not None
        flow = self.flow
        if current is None:
            if _empty(value) or value == flow.workflow.initial:
                return None
            return FieldError(self.state_field, f"new {(self.entity.plural or self.entity.title).lower()} start as"
                                                f" {flow.state_title(flow.workflow.initial)}; move them on with a"
                                                " transition")
        if value == current.get(self.state_field):
            return None
        state = current.get(self.state_field)
        ways = [t.label for t in flow.workflow.leaving(state)]
        hint = f" ({', '.join(ways)})" if ways else f" (none leads out of {flow.state_title(state)})"
        return FieldError(self.state_field, f"changes only through a transition{hint}")

    def note(self, record: dict[str, Any], text: str) -> None:
        """Add a note to a record's history timeline."""
        from engine.workflows.runtime import note_row

        self.conn.execute(crm_history.insert(), [note_row(self.app, self.entity.key, record, self.actor, text)])

    # --- database checks ------------------------------------------------------------------------------
    def _check_database(self, records: list[dict[str, Any]], own_ids: list[str | None]) -> list[list[FieldError]]:
        """Unique values and relation targets, for a batch; errors per record."""
        out: list[list[FieldError]] = [[] for _ in records]
        for f in self.entity.fields:
            if f.unique:
                self._check_unique(f, records, own_ids, out)
            if f.kind in ("relation", "relation_many"):
                self._check_targets(f, records, out)
        return out

    def _check_unique(self, f: Field, records: list[dict[str, Any]], own_ids: list[str | None],
                      out: list[list[FieldError]]) -> None:
        kind = kind_of(f.kind)
        seen: dict[Any, int] = {}
        for i, r in enumerate(records):
            if f.key in r:
                v = kind.to_db(f, r[f.key])
                if v in seen:
                    out[i].append(FieldError(f.key, f"{r[f.key]!r} is already used by another record in this batch"))
                seen.setdefault(v, i)
        col = self.table.c[f.key]
        values = list(seen)
        for start in range(0, len(values), _CHUNK):
            chunk = values[start: start + _CHUNK]
            for value, rid in self.conn.execute(sa.select(col, self.table.c.id).where(col.in_(chunk))):
                i = seen[value]
                if rid != own_ids[i]:
                    out[i].append(FieldError(f.key, f"{records[i][f.key]!r} is already used by another"
                                                    f" {self.entity.title}"))

    def _check_targets(self, f: Field, records: list[dict[str, Any]], out: list[list[FieldError]]) -> None:
        target = self.compiled.tables.table(f.target or "")
        def targets(r: dict[str, Any]) -> list[str]:
            value = r.get(f.key)
            return [] if value is None else [value] if f.kind == "relation" else list(value)

        wanted = {v for r in records for v in targets(r)}
        found: set[str] = set()
        ids = list(wanted)
        for start in range(0, len(ids), _CHUNK):
            found.update(self.conn.execute(sa.select(target.c.id).where(target.c.id.in_(ids[start: start + _CHUNK])))
                         .scalars())
        title = self.compiled.entity(f.target or "").title
        for i, r in enumerate(records):
            for v in targets(r):
                if v not in found:
                    out[i].append(FieldError(f.key, f"there is no {title} with id {v}"))

    # --- insert ---------------------------------------------------------------------------------------
    def insert(self, rows: list[Mapping[str, Any]], lines: list[int] | None, keep_ids: bool) -> list[dict[str, Any]]:
        """Insert a batch, all or nothing."""
        errors: list[FieldError] = []
        records, ids = [], []
        for i, values in enumerate(rows):
            line = lines[i] if lines else None
            # Records coming back from an export keep their workflow state only for the trusted command line: a
            # user's import (even with ids) starts records in the initial state like any other new record.
            record, errs = self._prepare(values, None, trusted=keep_ids, restore=keep_ids and self.grant is None)
            rid = values.get("id") if keep_ids else None
            if rid:
                try:
                    rid = str(uuid.UUID(str(rid)))
                except ValueError:
                    errs.append(FieldError("id", f"'{rid}' is not a record id"))
            records.append(record)
            ids.append(rid or new_id())
            errors += [FieldError(e.field, e.message, line if line is not None else (i if len(rows) > 1 else None))
                       for e in errs]
        if keep_ids:
            taken = set()
            for start in range(0, len(ids), _CHUNK):
                taken.update(self.conn.execute(sa.select(self.table.c.id).where(
                    self.table.c.id.in_(ids[start: start + _CHUNK]))).scalars())
            errors += [FieldError("id", f"a record with id {rid} already exists", lines[i] if lines else None)
                       for i, rid in enumerate(ids) if rid in taken]
        for i, errs in enumerate(self._check_database(records, [None] * len(records))):
            line = lines[i] if lines else (i if len(rows) > 1 else None)
            errors += [FieldError(e.field, e.message, line) for e in errs]
        if errors:
            raise RecordValidationError(sorted(errors, key=lambda e: (e.line or 0)))
        self._autonumber(records, keep_ids)
        now = utcnow()
        db_rows = [self._db_row(r, rid, now, version=1, created=True) for r, rid in zip(records, ids, strict=True)]
        self._execute(self.table.insert(), db_rows)
        self._write_links(ids, records, replace=False)
        created = [(rid, 1, "create", {k: [None, v] for k, v in r.items()})
                   for r, rid in zip(records, ids, strict=True)]
        self._history(created, now)
        out = [self._out(r, row) for r, row in zip(records, db_rows, strict=True)]
        if self.flow is not None:
            # Restoring an export re-creates records that already went through their automations elsewhere.
            out = self.flow.after_create(self, out, automations=not (keep_ids and self.grant is None))
        return out

    def _autonumber(self, records: list[dict[str, Any]], keep_ids: bool) -> None:
        for f in self.entity.fields:
            if f.kind != "autonumber":
                continue
            kind = kind_of(f.kind)
            missing = [r for r in records if f.key not in r]
            if keep_ids:
                numbers = [int("".join(ch for ch in r[f.key] if ch.isdigit()) or 0) for r in records if f.key in r]
                if numbers:
                    bump_sequence(self.conn, self.app, self.entity.key, f.key, max(numbers))
            if missing:
                first = next_numbers(self.conn, self.app, self.entity.key, f.key, len(missing))
                for n, r in enumerate(missing):
                    r[f.key] = kind.format_number(f, first + n)  # type: ignore[attr-defined]

    def _db_row(self, record: dict[str, Any], rid: str, now: Any, version: int, created: bool) -> dict[str, Any]:
        row: dict[str, Any] = {"id": rid, "updated_at": now, "updated_by": self.actor, "version": version}
        if created:
            row.update(created_at=now, created_by=self.actor)
        for f in self.entity.fields:
            if f.kind != "relation_many":
                row[f.key] = kind_of(f.kind).to_db(f, record.get(f.key))
        return row

    def _out(self, record: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        out = row_to_record(self.entity.fields, row)
        for f in self.entity.fields:
            if f.kind == "relation_many" and record.get(f.key):
                out[f.key] = sorted(record[f.key])
        return out

    def _execute(self, stmt: Any, rows: list[dict[str, Any]]) -> None:
        try:
            self.conn.execute(stmt, rows)
        except sa.exc.IntegrityError as exc:  # a concurrent writer took a unique value after our check
            raise RecordValidationError([self._integrity_error(str(exc.orig))]) from None

    def _integrity_error(self, text: str) -> FieldError:
        for name, (cols, unique) in index_specs(self.app, self.entity).items():
            if unique and (name in text or all(f".{c}" in text for c in cols)):
                return FieldError(cols[0], "this value was just used by another record; choose another")
        return FieldError("", "the record conflicts with another change saved at the same moment; try again")

    def _write_links(self, ids: list[str], records: list[dict[str, Any]], replace: bool) -> None:
        for f in self.entity.fields:
            if f.kind != "relation_many":
                continue
            link = self.compiled.tables.link(self.entity.key, f.key)
            if replace:
                self.conn.execute(link.delete().where(link.c.source_id.in_(ids)))
            pairs = [{"source_id": rid, "target_id": t} for rid, r in zip(ids, records, strict=True)
                     for t in r.get(f.key, [])]
            if pairs:
                self.conn.execute(link.insert(), pairs)

    def _history(self, entries: list[tuple[str, int, str, dict[str, Any]]], now: Any) -> None:
        rows = [{"app": self.app, "entity": self.entity.key, "record_id": rid, "record_version": version,
                 "at": now, "actor": self.actor, "action": action, "changes": self._sealed(jsonable(changes))}
                for rid, version, action, changes in entries]
        if rows:
            self.conn.execute(crm_history.insert(), rows)

    def _sealed(self, changes: dict[str, Any]) -> dict[str, Any]:
        """History changes with the values of sensitive fields encrypted ({"enc": "v1:..."}), so history holds them
        no more readably than the record's own column (RecordService.history decrypts them)."""
        out = {}
        for key, pair in changes.items():
            f = self.fields.get(key)
            if f is not None and f.sensitive:
                pair = [seal_value(v) for v in pair]
            out[key] = pair
        return out

    # --- update ---------------------------------------------------------------------------------------
    def update(self, current: dict[str, Any], changes: Mapping[str, Any], transition: str | None = None,
               trusted: bool = False) -> dict[str, Any]:
        """Apply changes to a locked current record. With `transition` (only from engine/workflows), the state field
        may change and history records the transition; `trusted` (actions) may set read-only fields."""
        record, errors = self._prepare(changes, current, trusted=trusted, transition=transition)
        changed = {k: [current.get(k), record.get(k)] for k in self.fields if current.get(k) != record.get(k)}
        check = {k: v for k, v in record.items() if k in changed}
        errors += self._check_database([check], [current["id"]])[0]
        if errors:
            raise RecordValidationError(errors)
        if not changed:
            return current
        now = utcnow()
        values: dict[str, Any] = {"updated_at": now, "updated_by": self.actor, "version": current["version"] + 1}
        for key in changed:
            f = self.fields[key]
            if f.kind != "relation_many":
                values[key] = kind_of(f.kind).to_db(f, record.get(key))
        t = self.table
        try:
            result = self.conn.execute(t.update().where(t.c.id == current["id"], t.c.version == current["version"])
                                       .values(values))
        except sa.exc.IntegrityError as exc:
            raise RecordValidationError([self._integrity_error(str(exc.orig))]) from None
        if result.rowcount != 1:
            from engine.errors import ConflictError

            raise ConflictError(current["id"], current["version"], current["version"] + 1)
        if any(self.fields[k].kind == "relation_many" for k in changed):
            self._write_links([current["id"]], [record], replace=True)
        entry = {**changed, "_transition": transition} if transition else changed
        self._history([(current["id"], values["version"], "transition" if transition else "update", entry)], now)
        out = {**{k: v for k, v in record.items() if v is not None}, "id": current["id"]}
        out.update({k: current[k] for k in ("created_at", "created_by")})
        out.update(updated_at=format_datetime(now), updated_by=self.actor, version=values["version"])
        if self.flow is not None:
            out = self.flow.after_update(self, out, set(changed))
        return out

    # --- delete ---------------------------------------------------------------------------------------
    def delete(self, current: dict[str, Any], principal: Principal | None = None) -> None:
        """Delete a record after applying the on-delete rules of relations that point at it. With a `principal`,
        the records a cascade deletes or a set-null changes are held to that user's rights too."""
        errors = []
        for other in self.compiled.app.entities:
            for f in other.fields:
                if f.kind != "relation" or f.target != self.entity.key:
                    continue
                t = self.compiled.tables.table(other.key)
                refs = self.conn.execute(sa.select(t).where(t.c[f.key] == current["id"])).mappings().all()
                if not refs:
                    continue
                if f.on_delete == "restrict":
                    title = other.plural or other.title
                    errors.append(FieldError("", f"cannot delete: {len(refs)} {title} refer to it (field {f.title});"
                                                 " change or delete them first"))
                    continue
                title = (other.plural or other.title).lower()
                need = "delete" if f.on_delete == "cascade" else "update"
                if principal is not None and not principal.can(self.app, other.key, need):
                    errors.append(FieldError("", f"cannot delete: {len(refs)} {title} refer to it (field {f.title}) and"
                                                 f" you may not {need} {title}"))
                    continue
                writer = Writer(self.conn, self.compiled, other, self.app, self.actor)
                for ref in refs:
                    record = row_to_record(other.fields, ref)
                    writer._attach(record)
                    if f.on_delete == "cascade":
                        writer.delete(record, principal)
                    else:
                        writer.update(record, {f.key: None})
        if errors:
            raise RecordValidationError(errors)
        self.conn.execute(self.table.delete().where(self.table.c.id == current["id"]))
        if self.state_field:
            self.conn.execute(crm_state_entered.delete().where(
                crm_state_entered.c.app == self.app, crm_state_entered.c.entity == self.entity.key,
                crm_state_entered.c.record_id == current["id"]))
        changes = {k: [v, None] for k, v in current.items() if k in self.fields}
        self._history([(current["id"], current["version"] + 1, "delete", changes)], utcnow())

    def _attach(self, record: dict[str, Any]) -> None:
        for f in self.entity.fields:
            if f.kind == "relation_many":
                link = self.compiled.tables.link(self.entity.key, f.key)
                targets = self.conn.execute(sa.select(link.c.target_id).where(link.c.source_id == record["id"])
                                            .order_by(link.c.target_id)).scalars().all()
                if targets:
                    record[f.key] = list(targets)


def seal_value(value: Any) -> Any:
    """A sensitive value as history stores it: {"enc": ciphertext of its text}; None stays None."""
    return None if value is None else {"enc": encrypt(str(value))}


def jsonable(value: Any) -> Any:
    """Values as JSON stores them: decimals as plain decimal strings (never '1E+2'), lists and dicts followed."""
    if not isinstance(value, dict | list | tuple | Decimal):
        return value
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    return value
