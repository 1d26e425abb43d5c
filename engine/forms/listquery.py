"""A list page's state and its query string: columns, sort, quick search, filters, page size and page cursor.

The query string is the whole state, so links, saved views and the browser's back button all work from it:

    cols=name,email   sort=-amount,name   q=li   size=25   after=<cursor>
    f.<field>.<op>=<value>   e.g. f.stage.in=won;lost  f.amount.gte=1000  f.birthday.between=2000-01-01;2000-12-31
                                  f.company.eq=<record id>  f.email.empty=1

Lists of values are separated by `;`. Anything that makes no sense becomes a field error for the page to show;
the rest of the state still applies. Parameters equal to the entity's defaults are left out of the links."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from engine.errors import FieldError
from engine.schema import Entity, Field
from engine.schema.kinds import ConversionError, kind_of
from engine.storage.query import Filter, Query, Sort

__all__ = ["PAGE_SIZES", "SYSTEM_COLUMNS", "ListState", "ListView", "column_fields", "describe_filter",
           "operators_for", "read_list_view"]

#: Page sizes people can choose (the view's own pageSize is offered too).
PAGE_SIZES = (25, 50, 100)
#: Bookkeeping columns a list can show, sort and filter by, as fields.
SYSTEM_COLUMNS = (Field(key="created_at", kind="datetime", title="Created", read_only=True),
                  Field(key="updated_at", kind="datetime", title="Updated", read_only=True))
_SYSTEM_OPS = ("gte", "lte", "gt", "lt", "between")  # what the engine offers on created_at / updated_at
_LIST_OPS = ("in", "not_in", "has", "has_all", "between")  # ops whose value is a `;`-separated list
_FREE_TEXT_OPS = ("contains", "starts_with")  # fragments of a value: not parsed as a whole value
_PRESENCE_OPS = ("empty", "not_empty")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAX_SEARCH = 200

_OP_WORDS = {"eq": "is", "ne": "is not", "contains": "contains", "starts_with": "starts with", "in": "is one of",
             "not_in": "is none of", "has": "has any of", "has_all": "has all of", "lt": "is less than",
             "lte": "is at most", "gt": "is more than", "gte": "is at least", "between": "is between",
             "empty": "is empty", "not_empty": "is not empty"}
_TEMPORAL_WORDS = {"lt": "is before", "lte": "is on or before", "gt": "is after", "gte": "is on or after"}


def column_fields(entity: Entity) -> dict[str, Field]:
    """Fields a list can show as columns, by key: the entity's visible fields, then created and updated."""
    out = {f.key: f for f in entity.fields if not f.hidden}
    out.update((f.key, f) for f in SYSTEM_COLUMNS)
    return out


def operators_for(f: Field) -> tuple[str, ...]:
    """The filter operators a field offers (its kind's; a few range operators for created/updated)."""
    return _SYSTEM_OPS if f in SYSTEM_COLUMNS else kind_of(f.kind).operators


def op_label(f: Field, op: str) -> str:
    """An operator in words, e.g. "is on or after" for a date."""
    if f.kind in ("date", "datetime") and op in _TEMPORAL_WORDS:
        return _TEMPORAL_WORDS[op]
    return _OP_WORDS.get(op, op)


def _sortable(f: Field) -> bool:
    return not kind_of(f.kind).many


@dataclass(frozen=True)
class ListState:
    """What a list page shows."""

    columns: tuple[str, ...]
    sort: tuple[Sort, ...]
    search: str = ""
    filters: tuple[Filter, ...] = ()
    size: int = 50
    after: str | None = None


def _defaults(entity: Entity, fields: dict[str, Field]) -> ListState:
    view = (entity.views or {}).get("list") or {}
    columns = tuple(c for c in view.get("columns", ()) if c in fields)
    if not columns:
        columns = tuple(f.key for f in entity.fields if not f.hidden and f.kind != "long_text")[:6] or ("created_at",)
    sort = tuple(Sort(s["field"], s.get("dir") == "desc") for s in view.get("sort", ())
                 if s.get("field") in fields and _sortable(fields[s["field"]]))
    size = view.get("pageSize")
    return ListState(columns=columns, sort=sort or (Sort("created_at", desc=True),),
                     size=size if isinstance(size, int) and 1 <= size <= 1000 else 50)


@dataclass
class ListView:
    """One entity's list page: the definition's defaults, the state the URL asks for and what was wrong with it."""

    entity: Entity
    defaults: ListState
    state: ListState
    errors: list[FieldError] = field(default_factory=list)

    @property
    def fields(self) -> dict[str, Field]:
        """Fields a list can show, by key."""
        return column_fields(self.entity)

    @property
    def columns(self) -> list[Field]:
        """The shown columns, in order."""
        fields = self.fields
        return [fields[c] for c in self.state.columns]

    @property
    def sizes(self) -> list[int]:
        """Page sizes to offer."""
        return sorted({*PAGE_SIZES, self.defaults.size})

    @property
    def narrowed(self) -> bool:
        """Whether a search or filter hides some records."""
        return bool(self.state.search or self.state.filters)

    def query(self, limit: int | None = None, first_page: bool = False) -> Query:
        """The engine query for this state."""
        fields = self.fields
        filters = [part for flt in self.state.filters for part in _engine_filters(fields[flt.field], flt)]
        return Query(filters=filters, search=self.state.search or None, sort=list(self.state.sort),
                     limit=limit or self.state.size, after=None if first_page else self.state.after)

    def pairs(self, **changes: Any) -> list[tuple[str, str]]:
        """The state (with `changes`) as query parameters, leaving out what equals the defaults."""
        state = replace(self.state, **changes)
        out: list[tuple[str, str]] = []
        if state.columns != self.defaults.columns:
            out.append(("cols", ",".join(state.columns)))
        if state.sort != self.defaults.sort:
            out.append(("sort", ",".join(("-" if s.desc else "") + s.field for s in state.sort)))
        if state.search:
            out.append(("q", state.search))
        out.extend((f"f.{f.field}.{f.op}", str(f.value)) for f in state.filters)
        if state.size != self.defaults.size:
            out.append(("size", str(state.size)))
        if state.after:
            out.append(("after", state.after))
        return out

    def hidden_pairs(self) -> list[tuple[str, str]]:
        """The state for the page's hidden state form: no cursor, and always the sort, so that a control including
        "the state except its own parameter" always finds something to include."""
        pairs = self.pairs(after=None)
        if not any(name == "sort" for name, _ in pairs):
            pairs.insert(0, ("sort", ",".join(("-" if s.desc else "") + s.field for s in self.state.sort)))
        return pairs

    def query_string(self, **changes: Any) -> str:
        """The state (with `changes`) as a query string, for links; a new page starts unless `after` is given."""
        changes.setdefault("after", None)
        return urlencode(self.pairs(**changes), safe=",;")

    def sort_direction(self, key: str) -> str:
        """The aria-sort value of a column header."""
        first = self.state.sort[0] if self.state.sort else None
        if first is None or first.field != key:
            return "none"
        return "descending" if first.desc else "ascending"

    def sort_link(self, key: str) -> str | None:
        """The query string that sorts by a column, reversing the order when it already sorts by it."""
        if not _sortable(self.fields[key]):
            return None
        return self.query_string(sort=(Sort(key, desc=self.sort_direction(key) == "ascending"),))

    def without_filter(self, index: int) -> str:
        """The query string without one filter."""
        return self.query_string(filters=self.state.filters[:index] + self.state.filters[index + 1:])

    def cleared(self) -> str:
        """The query string without search and filters."""
        return self.query_string(search="", filters=())


def _engine_filters(f: Field, flt: Filter) -> list[Filter]:
    """A URL filter as engine filters: `between` as two bounds, and a plain date on a date-time field as the whole
    day ("on or before 2026-01-31" includes that day)."""
    if flt.op in _PRESENCE_OPS:
        return [Filter(flt.field, flt.op)]
    if flt.op == "between":
        low, high = str(flt.value).split(";")
        return [*_engine_filters(f, Filter(flt.field, "gte", low)), *_engine_filters(f, Filter(flt.field, "lte", high))]
    value = str(flt.value)
    if f.kind == "datetime" and _DATE_ONLY.match(value):
        next_day = (dt.date.fromisoformat(value) + dt.timedelta(days=1)).isoformat()
        if flt.op == "lte":
            return [Filter(flt.field, "lt", next_day)]
        if flt.op == "gt":
            return [Filter(flt.field, "gte", next_day)]
        if flt.op == "eq":
            return [Filter(flt.field, "gte", value), Filter(flt.field, "lt", next_day)]
    return [Filter(flt.field, flt.op, value if flt.op not in _LIST_OPS else value.split(";"))]


def _normalise_item(f: Field, op: str, text: str) -> str:
    """One filter value as the field reads it; ConversionError when it cannot be one."""
    text = text.strip()
    if op in _FREE_TEXT_OPS:
        return text
    if f.kind == "datetime" and _DATE_ONLY.match(text):
        dt.date.fromisoformat(text)  # a whole day; ValueError when not a real date
        return text
    kind = kind_of(f.kind)
    if f.kind in ("select", "multi_select"):
        value = kind.parse_text(f, text)
        value = value[0] if isinstance(value, list) and value else value
        if value not in f.option_values():
            choices = ", ".join(f"{o.value} ({o.title})" for o in f.options)
            raise ConversionError(f"'{text}' is not an option (options: {choices})")
        return str(value)
    if f.kind == "relation_many":
        return ";".join(kind.parse_text(f, text))
    return kind.to_text(f, kind.parse_text(f, text))


def _read_filter(fields: dict[str, Field], key: str, op: str, text: str) -> tuple[Filter | None, FieldError | None]:
    """A filter from `f.<key>.<op>=<text>`: (filter, None), (None, error), or (None, None) for a blank value."""
    f = fields.get(key)
    if f is None:
        return None, FieldError(key, f"there is no field '{key}' to filter by")
    ops = operators_for(f)
    if op not in ops:
        return None, FieldError(key, f"cannot filter {f.title} with '{op}' (use one of: {', '.join(ops)})")
    if op in _PRESENCE_OPS:
        return Filter(key, op, "1"), None
    if not text.strip(" ;"):
        return None, None  # a filter input left blank
    parts = text.split(";") if op in _LIST_OPS else [text]
    try:
        if op == "between":
            if len(parts) != 2:
                raise ConversionError("'between' needs two values: from;to")
            low, high = (_normalise_item(f, op, p) if p.strip() else "" for p in parts)
            if not (low and high):  # one side given: an open range
                return Filter(key, "gte" if low else "lte", low or high), None
            return Filter(key, op, f"{low};{high}"), None
        items = [_normalise_item(f, op, p) for p in parts if p.strip()]
    except (ConversionError, ValueError) as exc:
        return None, FieldError(key, f"{f.title}: {exc}")
    return Filter(key, op, ";".join(items)), None


def _read_columns(values: list[str], fields: dict[str, Field], errors: list[FieldError]) -> list[str]:
    out: list[str] = []
    for value in values:
        for key in (k.strip() for k in value.split(",")):
            if not key or key in out:
                continue
            if key in fields:
                out.append(key)
            else:
                errors.append(FieldError("cols", f"there is no column '{key}'"))
    return out


def _read_sort(text: str, fields: dict[str, Field], errors: list[FieldError]) -> list[Sort]:
    out: list[Sort] = []
    for item in (i.strip() for i in text.split(",")):
        key = item.lstrip("-")
        if not key:
            continue
        if key in fields and _sortable(fields[key]) and key not in {s.field for s in out}:
            out.append(Sort(key, desc=item.startswith("-")))
        else:
            errors.append(FieldError("sort", f"cannot sort by '{key}'"))
    return out


def read_list_view(entity: Entity, params: Iterable[tuple[str, str]]) -> ListView:
    """The list state a query string (or a posted form with the same names) asks for, with its field errors.

    Besides the state's own names it reads `move=<column>` (move that column one place left) and
    `add.field`, `add.op`, `add.value` (one more filter, from the filter builder; several values join with `;`)."""
    fields = column_fields(entity)
    defaults = _defaults(entity, fields)
    errors: list[FieldError] = []
    values: dict[str, list[str]] = {}
    raw_filters: list[tuple[str, str, str]] = []
    for name, value in params:
        if name.startswith("f."):
            parts = name.split(".")
            if len(parts) == 3:
                raw_filters.append((parts[1], parts[2], value))
            else:
                errors.append(FieldError(name, f"'{name}' is not a filter: write f.<field>.<operator>=<value>"))
        else:
            values.setdefault(name, []).append(value)
    first = {name: items[0] for name, items in values.items()}
    if first.get("add.field"):
        raw_filters.append((first["add.field"], first.get("add.op", ""), ";".join(values.get("add.value", []))))
    filters: list[Filter] = []
    for key, op, text in raw_filters:
        flt, error = _read_filter(fields, key, op, text)
        if error:
            errors.append(error)
        elif flt and flt not in filters:
            filters.append(flt)
    columns = _read_columns(values.get("cols", []), fields, errors) or list(defaults.columns)
    move = first.get("move")
    if move in columns and columns.index(move) > 0:
        i = columns.index(move)
        columns[i - 1], columns[i] = columns[i], columns[i - 1]
    sort = _read_sort(first.get("sort", ""), fields, errors) or list(defaults.sort)
    size = defaults.size
    if first.get("size"):
        try:
            size = int(first["size"])
            if size not in {*PAGE_SIZES, defaults.size}:
                raise ValueError
        except ValueError:
            size = defaults.size
            errors.append(FieldError("size", f"the page size is one of {', '.join(map(str, PAGE_SIZES))}"))
    state = ListState(columns=tuple(columns), sort=tuple(sort), search=first.get("q", "").strip()[:_MAX_SEARCH],
                      filters=tuple(filters), size=size, after=first.get("after") or None)
    return ListView(entity=entity, defaults=defaults, state=state, errors=errors)


def describe_filter(f: Field, flt: Filter, titles: dict[str, str] | None = None) -> str:
    """A filter in words, e.g. "Stage is one of Won, Lost"; `titles` names related records by id."""
    if flt.op in _PRESENCE_OPS:
        return f"{f.title} {op_label(f, flt.op)}"
    kind = kind_of(f.kind)

    def shown(text: str) -> str:
        if f.kind in ("relation", "relation_many"):
            return (titles or {}).get(text, text)
        if (f.kind == "datetime" and _DATE_ONLY.match(text)) or f in SYSTEM_COLUMNS or flt.op in _FREE_TEXT_OPS:
            return text
        try:
            value = kind.parse_text(f, text)
            return kind.display(f, value)
        except ConversionError:
            return text

    items = [shown(t) for t in str(flt.value).split(";")]
    joined = " and ".join(items) if flt.op == "between" else ", ".join(items)
    quoted = f"“{joined}”" if flt.op in _FREE_TEXT_OPS else joined
    return f"{f.title} {op_label(f, flt.op)} {quoted}"
