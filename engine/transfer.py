"""Records in and out of files: CSV and JSONL import and export.

Imports are all or nothing: the file is streamed and written in batches inside one transaction, every bad row is
collected (with its line number and field) across all batches, and any problem rolls the whole import back.
What an export writes, an import takes back unchanged: rows that carry an `id` keep it, and their autonumber
values, so exported data moves into another database as it was.

Acting as a Principal, an import needs the "import" and "create" permissions and an export the "export" permission
(and both see only what the records service lets the principal see or write: a field hidden from the principal is
not a column, not even in an error message); a plain actor name is trusted."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import msgspec
import sqlalchemy as sa

from engine.auth.principal import Principal
from engine.errors import CrmError, FieldError, RecordValidationError
from engine.schema import Entity, Field
from engine.schema.kinds import ConversionError, kind_of
from engine.storage.catalog import CATALOG
from engine.storage.database import Database
from engine.storage.query import Query
from engine.storage.records import RecordService
from engine.storage.writer import Writer

__all__ = ["BATCH_SIZE", "FORMATS", "export_records", "format_of", "import_records", "iter_records"]

#: The file formats records can be imported from and exported to.
FORMATS = ("csv", "jsonl")
#: Rows written per batch during an import (all batches share one transaction).
BATCH_SIZE = 1000
#: Bookkeeping columns an import ignores: the engine sets them.
_IGNORED = ("created_at", "updated_at", "created_by", "updated_by", "version")
_PAGE = 1000

_encoder = msgspec.json.Encoder(decimal_format="number")
_decoder = msgspec.json.Decoder(float_hook=Decimal)  # exact decimals, not floats


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise CrmError(f"unknown format '{fmt}' (use one of: {', '.join(FORMATS)})")


def format_of(path: str | Path, fmt: str | None = None) -> str:
    """The file format: `fmt` when given, else from the file name's extension (.csv or .jsonl)."""
    if fmt:
        _check_format(fmt)
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix == "ndjson":
        return "jsonl"
    if suffix not in FORMATS:
        raise CrmError(f"cannot tell the format of {path}: name it .csv or .jsonl, or pass --format")
    return suffix


@dataclass
class _Row:
    """One record read from a file: its first line, its values (None when unreadable) and its problems."""

    line: int
    values: dict[str, Any] | None
    errors: list[FieldError] = field(default_factory=list)


# --- reading files ---------------------------------------------------------------------------------------
def _labels(fields: list[Field]) -> dict[str, set[str]]:
    """Case-folded field keys, titles and translated titles -> the keys they name."""
    out: dict[str, set[str]] = {}
    for f in fields:
        names = [f.key, f.title, *(str(t.get("title", "")) for t in (f.i18n or {}).values() if isinstance(t, dict))]
        for name in names:
            if name.strip():
                out.setdefault(name.strip().casefold(), set()).add(f.key)
    return out


def _columns(header: list[str], entity: Entity, hidden: frozenset[str]) -> list[str | None]:
    """The field key (or `id`) each CSV column holds, None for ignored columns; every bad header is an error.
    Fields in `hidden` are treated as if the entity had none such, like the writer does."""
    visible = [f for f in entity.fields if f.key not in hidden]
    keys = {f.key for f in visible}
    labels = _labels(visible)
    out: list[str | None] = []
    errors: list[FieldError] = []
    used: dict[str, str] = {}
    for raw in header:
        name = raw.replace("\ufeff", "").strip()  # a byte-order mark from spreadsheet programs is not a name
        if name in keys:
            key: str | None = name
        elif name.casefold() == "id":
            key = "id"
        elif name.casefold() in _IGNORED or not name:
            key = None
        elif len(labels.get(name.casefold(), ())) == 1:
            key = next(iter(labels[name.casefold()]))
        elif name.casefold() in labels:
            errors.append(FieldError(name, "this column title fits several fields ("
                                     + ", ".join(sorted(labels[name.casefold()])) + "); use the field key", 1))
            key = None
        else:
            errors.append(FieldError(name, f"unknown column: {entity.title} has no field with this key or title"
                                     f" (fields: {', '.join(f.key for f in visible)})", 1))
            key = None
        if key is not None and key in used:
            errors.append(FieldError(name, f"column '{used[key]}' already holds {key}", 1))
        elif key is not None:
            used[key] = name
        out.append(key)
    if errors:
        raise RecordValidationError(errors)
    return out


def _csv_rows(stream: TextIO, entity: Entity, hidden: frozenset[str]) -> Iterator[_Row]:
    """Rows of a CSV file with a header row; cells parsed with each field kind's parse_text. Columns naming a field
    in `hidden` are unknown columns."""
    reader = csv.reader(stream)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise RecordValidationError([FieldError("", f"not a readable CSV file: {exc}", 1)]) from None
    if header is None:
        raise RecordValidationError([FieldError("", "the file is empty; the first line must name the columns", 1)])
    columns = _columns(header, entity, hidden)
    fields = entity.field_map()
    end = reader.line_num
    while True:
        start = end + 1
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            yield _Row(start, None, [FieldError("", f"not readable as CSV: {exc}", start)])
            return
        end = reader.line_num
        if cells is None:
            return
        if not any(c.strip() for c in cells):
            continue  # blank lines are not records
        row = _Row(start, {})
        if len(cells) != len(columns):
            row.errors.append(FieldError("", f"has {len(cells)} cells; the header has {len(columns)}", start))
        for key, text in zip(columns, cells, strict=False):
            if key is None:
                continue
            if key == "id" or not text.strip():
                row.values[key] = text.strip() or None  # type: ignore[index]
                continue
            f = fields[key]
            try:
                row.values[key] = kind_of(f.kind).parse_text(f, text)  # type: ignore[index]
            except ConversionError as exc:
                row.errors.append(FieldError(key, str(exc), start))
        yield row


def _jsonl_rows(stream: TextIO) -> Iterator[_Row]:
    """Rows of a JSONL file: one JSON object per line, in the record JSON shape."""
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            value = _decoder.decode(text)
        except msgspec.DecodeError as exc:
            yield _Row(number, None, [FieldError("", f"not valid JSON: {exc}", number)])
            continue
        if not isinstance(value, dict):
            yield _Row(number, None, [FieldError("", "must be a JSON object ({\"field\": value, ...})", number)])
            continue
        yield _Row(number, {k: v for k, v in value.items() if k not in _IGNORED})


def _batches(rows: Iterable[_Row], size: int) -> Iterator[list[_Row]]:
    batch: list[_Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- importing -------------------------------------------------------------------------------------------
def _id_of(values: dict[str, Any]) -> str | None:
    rid = values.get("id")
    if rid is None or rid == "":
        return None
    try:
        return str(uuid.UUID(str(rid)))
    except ValueError:
        return str(rid)  # the writer reports it


def _write_batch(conn: sa.Connection, writer: Writer, batch: list[_Row], errors: list[FieldError]) -> int:
    """Write one batch in a savepoint; problems go to `errors`. Returns how many rows were written."""
    failed_cells = {(e.line, e.field) for r in batch for e in r.errors}
    errors.extend(e for r in batch for e in r.errors)
    kept: list[_Row] = []
    new: list[_Row] = []
    first_line: dict[str, int] = {}
    for row in batch:
        if row.values is None:
            continue
        rid = _id_of(row.values)
        if rid is None:
            row.values.pop("id", None)
            new.append(row)
        elif rid in first_line:
            errors.append(FieldError("id", f"the id {rid} is also on line {first_line[rid]}", row.line))
        else:
            first_line[rid] = row.line
            # A row with an id is a record coming back: what it leaves out is empty, not defaulted.
            row.values = {**dict.fromkeys(writer.fields), **row.values}
            if writer.grant is not None:  # fields the importer may not write are left as the defaults leave them
                row.values = {k: v for k, v in row.values.items() if v is not None or (k not in writer.grant.hidden
                              and k not in writer.grant.read_only)}
            kept.append(row)
    written = 0
    for keep_ids, group in ((True, kept), (False, new)):
        if not group:
            continue
        try:
            with conn.begin_nested():
                writer.insert([r.values or {} for r in group], [r.line for r in group], keep_ids)
            written += len(group)
        except RecordValidationError as exc:
            errors.extend(e for e in exc.errors if (e.line, e.field) not in failed_cells)
    return written


def import_records(db: Database, app: str, entity: str, stream: TextIO, fmt: str, actor: str | Principal = "system",
                   batch_size: int = BATCH_SIZE) -> int:
    """Import records from a CSV or JSONL stream, all or nothing; returns how many were created.

    CSV columns are field keys or field titles (any case, translations too); empty cells are empty values.
    Rows that carry an `id` keep it and their autonumber values, and what they leave out stays empty (no
    defaults), so an export imports back unchanged. RecordValidationError lists every problem with its line
    number and field, and then nothing is stored. PermissionDenied when the actor may not import or create these
    records."""
    _check_format(fmt)
    service = RecordService(db, app, actor)
    with db.write() as conn:
        compiled = CATALOG.current(conn, app)
        ent = compiled.entity(entity)
        grant = service.grant(ent, "import")
        service.grant(ent, "create")  # every imported row becomes a new record
        writer = Writer(conn, compiled, ent, app, service.actor, grant)
        hidden = grant.hidden if grant is not None else frozenset()
        rows = _csv_rows(stream, ent, hidden) if fmt == "csv" else _jsonl_rows(stream)
        errors: list[FieldError] = []
        count = 0
        for batch in _batches(rows, batch_size):
            count += _write_batch(conn, writer, batch, errors)
        if errors:  # raising inside the transaction rolls every batch back
            order = {key: i for i, key in enumerate(writer.fields)}
            raise RecordValidationError(sorted(errors, key=lambda e: (e.line or 0, order.get(e.field, -1))))
    return count


# --- exporting -------------------------------------------------------------------------------------------
def iter_records(db: Database, app: str, entity: str, actor: str | Principal = "system") -> Iterator[dict[str, Any]]:
    """Every record of an entity the actor may read, in id order, a page at a time (keyset paging, no OFFSET)."""
    service = RecordService(db, app, actor)
    after: str | None = None
    while True:
        page = service.query(entity, Query(limit=_PAGE, after=after))
        yield from page.records
        if page.next_cursor is None:
            return
        after = page.next_cursor


def export_records(db: Database, app: str, entity: str, out: TextIO, fmt: str,
                   actor: str | Principal = "system") -> int:
    """Write every record of an entity to `out` as CSV (header: id, then field keys in definition order; cells
    as text the import reads back) or JSONL (one record per line, JSON shape, without bookkeeping columns).
    Returns how many records were written. Open files with newline="" for CSV. Fields hidden from the actor are
    left out."""
    _check_format(fmt)
    service = RecordService(db, app, actor)
    with db.read() as conn:
        ent = CATALOG.current(conn, app).entity(entity)
    grant = service.grant(ent, "export")
    fields = [f for f in ent.fields if grant is None or f.key not in grant.hidden]
    count = 0
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(["id", *(f.key for f in fields)])
        for record in iter_records(db, app, entity, actor):
            writer.writerow([record["id"], *(kind_of(f.kind).to_text(f, record[f.key]) if f.key in record else ""
                                             for f in fields)])
            count += 1
        return count
    for record in iter_records(db, app, entity, actor):
        out.write(_encoder.encode({k: v for k, v in record.items() if k not in _IGNORED}).decode())
        out.write("\n")
        count += 1
    return count
