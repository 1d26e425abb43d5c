"""Record queries: filters with operators per field kind, sort, quick search and keyset pagination."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
import sqlalchemy as sa

from engine.errors import FieldError, RecordValidationError
from engine.schema import Entity
from engine.schema.kinds import ConversionError, kind_of

__all__ = ["Filter", "Query", "Sort", "SortKey", "build_conditions", "decode_cursor", "encode_cursor",
           "keyset_condition", "order_by"]

_SYSTEM_SORTABLE = {"created_at", "updated_at", "id"}


@dataclass(frozen=True)
class Filter:
    """`field op value`, e.g. Filter("amount", "gte", "1000")."""

    field: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class Sort:
    """Sort by a field, ascending unless `desc`."""

    field: str
    desc: bool = False


@dataclass
class Query:
    """What to list: filters, quick search, sort, page size and the cursor of the previous page."""

    filters: list[Filter] = field(default_factory=list)
    search: str | None = None
    sort: list[Sort] = field(default_factory=list)
    limit: int = 50
    after: str | None = None


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _values(entity: Entity, f: Any, raw: Any) -> list[Any]:
    kind = kind_of(f.kind)
    items = raw if isinstance(raw, list | tuple) else [raw]
    out = []
    for item in items:
        value = kind.coerce(f, item) if not isinstance(item, str) else kind.parse_text(f, item)
        out.append(kind.to_db(f, value))
    return out


def _condition(table: sa.Table, entity: Entity, flt: Filter, links: dict[str, sa.Table]) -> Any:
    if flt.field in ("created_at", "updated_at"):
        col = table.c[flt.field]
        value = dt.datetime.fromisoformat(str(flt.value).replace("Z", "+00:00")).replace(tzinfo=None) \
            if flt.op not in ("empty", "not_empty") else None
        return {"lt": col < value, "lte": col <= value, "gt": col > value, "gte": col >= value}[flt.op]
    f = entity.field(flt.field)
    kind = kind_of(f.kind)
    if flt.op not in kind.operators:
        raise RecordValidationError([FieldError(f.key, f"cannot filter a {f.kind} field with '{flt.op}'"
                                                       f" (use one of: {', '.join(kind.operators)})")])
    if f.kind == "relation_many":
        link = links[f.key]
        sub = sa.select(link.c.source_id)
        if flt.op == "has":
            sub = sub.where(link.c.target_id.in_(kind.coerce(f, flt.value)))  # one id, a list, or 'a;b'
            return table.c.id.in_(sub)
        return table.c.id.in_(sub) if flt.op == "not_empty" else table.c.id.not_in(sub)
    col = table.c[f.key]
    op = flt.op
    if op == "empty":
        return col.is_(None)
    if op == "not_empty":
        return col.is_not(None)
    if op in ("contains", "starts_with"):
        text = _like_escape(str(flt.value or ""))
        pattern = f"%{text}%" if op == "contains" else f"{text}%"
        return col.ilike(pattern, escape="\\")
    if f.kind == "multi_select":
        wanted = [str(v) for v in (flt.value if isinstance(flt.value, list) else str(flt.value).split(";"))]
        text = sa.cast(col, sa.Text)
        parts = [text.like(f'%{msgspec.json.encode(v).decode()}%') for v in wanted]
        return sa.or_(*parts) if op == "has" else sa.and_(*parts)
    values = _values(entity, f, flt.value)
    if op == "in":
        return col.in_(values)
    if op == "not_in":
        return sa.or_(col.not_in(values), col.is_(None))
    if op == "between":
        if len(values) != 2:
            raise RecordValidationError([FieldError(f.key, "'between' needs two values: from and to")])
        return col.between(values[0], values[1])
    value = values[0]
    compare: dict[str, Any] = {  # built lazily: booleans refuse < and >
        "eq": lambda: col == value, "ne": lambda: sa.or_(col != value, col.is_(None)), "lt": lambda: col < value,
        "lte": lambda: col <= value, "gt": lambda: col > value, "gte": lambda: col >= value}
    return compare[op]()


def build_conditions(table: sa.Table, entity: Entity, query: Query, links: dict[str, sa.Table],
                     hidden: frozenset[str] = frozenset()) -> list[Any]:
    """WHERE conditions for a query's filters and quick search; field errors for filters that make no sense.
    Fields `hidden` from the actor cannot be filtered by (as if they did not exist) and are not searched."""
    conditions = []
    errors = []
    keys = {k: f for k, f in entity.field_map().items() if k not in hidden}
    for flt in query.filters:
        if flt.field not in keys and flt.field not in ("created_at", "updated_at"):
            errors.append(FieldError(flt.field, "there is no such field to filter by"))
            continue
        try:
            conditions.append(_condition(table, entity, flt, links))
        except ConversionError as exc:
            errors.append(FieldError(flt.field, f"filter value: {exc}"))
        except (KeyError, ValueError) as exc:
            errors.append(FieldError(flt.field, f"unknown filter operator or value: {exc}"))
    if errors:
        raise RecordValidationError(errors)
    if query.search and query.search.strip():
        pattern = f"%{_like_escape(query.search.strip())}%"
        cols = [table.c[f.key] for f in entity.search_fields()
                if f.kind not in ("multi_select", "relation_many") and f.key not in hidden]
        conditions.append(sa.or_(*(c.ilike(pattern, escape="\\") for c in cols)) if cols else sa.false())
    return conditions


@dataclass(frozen=True)
class SortKey:
    """One ORDER BY column; `nullable` when the field may be empty (required fields and system columns never are)."""

    column: Any
    desc: bool
    nullable: bool


def sort_columns(table: sa.Table, entity: Entity, sort: list[Sort],
                 hidden: frozenset[str] = frozenset()) -> list[SortKey]:
    """The sort keys of a query, ending with id so the order is total (fields `hidden` from the actor refused)."""
    keys = {k: f for k, f in entity.field_map().items() if k not in hidden}
    out = []
    for s in sort:
        if s.field not in _SYSTEM_SORTABLE and (s.field not in keys or kind_of(keys[s.field].kind).many):
            raise RecordValidationError([FieldError(s.field, "cannot sort by this field")])
        if s.field != "id":
            out.append(SortKey(table.c[s.field], s.desc, s.field in keys and not keys[s.field].required))
    out.append(SortKey(table.c.id, False, False))
    return out


def order_by(keys: list[SortKey]) -> list[Any]:
    """ORDER BY with empty values last in both directions, on every database. Columns that cannot be empty get a
    plain ORDER BY, so an index on them serves the sort; the others use NULLS LAST (PostgreSQL's own order for
    ascending, so its indexes still serve that direction)."""
    out = []
    for key in keys:
        ordered = key.column.desc() if key.desc else key.column.asc()
        out.append(ordered.nulls_last() if key.nullable else ordered)
    return out


def keyset_condition(keys: list[SortKey], last: list[Any]) -> Any:
    """Rows strictly after `last` in the order of `keys` (empty values last), without OFFSET."""
    key, value = keys[0], last[0]
    col = key.column
    rest = keyset_condition(keys[1:], last[1:]) if len(keys) > 1 else None
    if value is None:  # within the trailing block of empty values
        return sa.and_(col.is_(None), rest) if rest is not None else sa.false()
    parts = [col < value if key.desc else col > value]
    if rest is not None:
        parts.append(sa.and_(col == value, rest))
    if key.nullable:
        parts.append(col.is_(None))
        return sa.or_(*parts)
    # A plain range on the leading column lets the database seek in its index; the OR alone makes it scan.
    bound = col <= value if key.desc else col >= value
    return sa.and_(bound, sa.or_(*parts))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return {"t": value.isoformat()}
    if isinstance(value, Decimal):
        return {"d": str(value)}
    return value


def _from_jsonable(value: Any) -> Any:
    if isinstance(value, dict) and "t" in value:
        text = value["t"]
        return dt.datetime.fromisoformat(text) if "T" in text or " " in text else dt.date.fromisoformat(text)
    if isinstance(value, dict) and "d" in value:
        return Decimal(value["d"])
    return value


def encode_cursor(values: list[Any]) -> str:
    """An opaque cursor for the row with these sort values."""
    return base64.urlsafe_b64encode(msgspec.json.encode([_jsonable(v) for v in values])).decode().rstrip("=")


def decode_cursor(cursor: str, expected: int) -> list[Any]:
    """The sort values from a cursor; a field error when it is not one of ours."""
    try:
        raw = msgspec.json.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != expected:
            raise ValueError
        return [_from_jsonable(v) for v in raw]
    except (ValueError, msgspec.DecodeError, TypeError):
        stale = FieldError("after", "this page link is out of date; start from the first page")
        raise RecordValidationError([stale]) from None
