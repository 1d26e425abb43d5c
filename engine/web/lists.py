"""List pages: an entity's records as a table people sort, filter, search and page through, with saved views, bulk
actions and CSV export. Columns, filters and cells come from the current definition on every request.

The page's state is its query string (engine.forms.listquery); htmx requests aimed at `#records` get only the table
fragment, and the canonical URL is pushed to the browser history so back and forward work."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

import sqlalchemy as sa
from litestar import Router, get, post
from litestar.concurrency import sync_to_thread
from litestar.params import FromPath, URLEncodedBody
from litestar.plugins.htmx import HTMXRequest, HTMXTemplate
from litestar.response import Redirect, Stream, Template

from engine.auth.audit import audit
from engine.errors import CrmError, FieldError, RecordValidationError
from engine.forms.listquery import ListView, column_fields, describe_filter, op_label, operators_for, read_list_view
from engine.schema import Entity, Field
from engine.schema.kinds import ConversionError, kind_of
from engine.storage.catalog import CATALOG
from engine.storage.database import Database, crm_saved_views
from engine.storage.migrate import utcnow
from engine.storage.query import Query, Sort
from engine.storage.records import Page, row_to_record
from engine.web.access import EXCEPTION_HANDLERS, actor_name, allowed, linked_titles, require, scope, state_field
from engine.web.context import Scope, database

__all__ = ["HANDLERS", "filter_chips", "record_title", "related_titles", "titles_of"]

#: Counting stops here, so big tables show "more than 1,000" instead of scanning every row.
COUNT_CAP = 1000
_CHOICES_CAP = 200  # relation filters offer a drop-down of the target's records up to this many
_EXPORT_PAGE = 1000
_LIST = "/apps/{app_name:str}/{entity_key:str}"

FormData = URLEncodedBody[dict[str, Any]]
PathText = FromPath[str]


# --- record titles ---------------------------------------------------------------------------------------
def record_title(entity: Entity, record: dict[str, Any]) -> str:
    """How a record is named in links and messages: its title field as people read it ("" when empty)."""
    key = entity.title_field or (entity.fields[0].key if entity.fields else None)
    value = record.get(key) if key else None
    if key is None or value is None or value == "" or value == []:
        return ""
    f = entity.field(key)
    return kind_of(f.kind).display(f, value)


def titles_of(db: Database, app_name: str, entity_key: str, ids: Iterable[str]) -> dict[str, str]:
    """The titles of some records of one entity, in one query: {id: title}."""
    wanted = sorted({str(i) for i in ids})
    if not wanted:
        return {}
    with db.read() as conn:
        compiled = CATALOG.current(conn, app_name)
        ent = compiled.entity(entity_key)
        table = compiled.tables.table(ent.key)
        rows = conn.execute(sa.select(table).where(table.c.id.in_(wanted))).mappings().all()
        return {row["id"]: record_title(ent, row_to_record(ent.fields, row)) for row in rows}


def related_titles(s: Scope, fields: Iterable[Field], records: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Titles of the records the relation cells point to, one query per related entity: {entity: {id: title}};
    RESTRICTED for entities the acting principal may not read."""
    wanted: dict[str, set[str]] = {}
    for f in fields:
        if f.kind in ("relation", "relation_many") and f.target:
            ids = wanted.setdefault(f.target, set())
            for r in records:
                value = r.get(f.key)
                ids.update(value if isinstance(value, list) else [value] if value else [])
    return {target: linked_titles(s, target, ids) for target, ids in wanted.items() if ids}


def _choices(s: Scope, target: str) -> list[tuple[str, str]] | None:
    """The target's records by title, for a drop-down; None when there are too many to list (or not readable)."""
    if not s.records.may(target, "read"):
        return None
    ent = s.app.entity(target)
    title = ent.field(ent.title_field) if ent.title_field else None
    sort = [Sort(title.key)] if title and not kind_of(title.kind).many else []
    page = s.records.query(target, Query(sort=sort, limit=_CHOICES_CAP + 1))
    if len(page.records) > _CHOICES_CAP:
        return None
    return [(r["id"], record_title(ent, r) or r["id"]) for r in page.records]


# --- the list fragment -----------------------------------------------------------------------------------
def _run(s: Scope, view: ListView) -> tuple[Page, int, list[FieldError]]:
    """The page of records and the (capped) count; a page link out of date falls back to the first page."""
    try:
        page = s.records.query(s.entity.key, view.query())
        count = s.records.count(s.entity.key, view.query(first_page=True), up_to=COUNT_CAP + 1)
        return page, count, []
    except RecordValidationError as exc:
        if not view.state.after:
            return Page([], None), 0, exc.errors
        view.state = replace(view.state, after=None)
        page, count, errors = _run(s, view)
        return page, count, exc.errors + errors


def _link_column(entity: Entity, columns: list[Field]) -> str | None:
    """The column whose cells link to the record: the title field, else the first column that is not a link."""
    keys = [f.key for f in columns]
    if entity.title_field in keys:
        return entity.title_field
    return next((f.key for f in columns if f.kind not in ("relation", "relation_many")), None)


def filter_control(s: Scope, key: str | None, op: str | None) -> dict[str, Any]:
    """What the filter builder shows for a field and operator: the operators and the input for the value."""
    fields = column_fields(s.entity)
    f = fields.get(key or "") or next(iter(fields.values()))
    ops = operators_for(f)
    if op not in ops:  # what people filter a field by most: text contains, a select is one of, a number range
        preferred = ("in", "has") if f.kind in ("select", "multi_select") else ("contains", "between", "eq", "has")
        op = next((o for o in preferred if o in ops), ops[0])
    many = op in ("in", "not_in", "has", "has_all")
    control: dict[str, Any] = {"field": f, "op": op, "ops": [(o, op_label(f, o)) for o in ops], "many": many,
                               "input": "text", "options": [], "url": f"{s.base}/filter-control",
                               "range": op == "between", "placeholder": "several values: a;b" if many else ""}
    if op in ("empty", "not_empty"):
        control["input"] = "none"
    elif f.kind in ("select", "multi_select"):
        control.update(input="options", options=[(o.value, o.title) for o in f.options])
    elif f.kind == "boolean":
        control.update(input="options", options=[("true", "Yes"), ("false", "No")])
    elif f.kind in ("relation", "relation_many") and f.target:
        choices = _choices(s, f.target)
        if choices is not None:
            control.update(input="options", options=choices)
        else:  # too many records for a drop-down
            control["placeholder"] = "record id" + ("s, separated by ;" if many else "")
    elif f.kind in ("date", "datetime"):
        control["input"] = "date"
    elif f.kind in ("integer", "decimal", "currency", "percent", "rating"):
        control["input"] = "number"
    return control


def filter_chips(s: Scope, view: ListView) -> list[tuple[str, str]]:
    """The active filters in words, each with the query string that removes it."""
    fields = view.fields
    out = []
    for i, flt in enumerate(view.state.filters):
        f = fields[flt.field]
        titles = linked_titles(s, f.target, str(flt.value).split(";")) \
            if f.kind in ("relation", "relation_many") and f.target and flt.op not in ("empty", "not_empty") else {}
        out.append((describe_filter(f, flt, titles), view.without_filter(i)))
    return out


def _context(s: Scope, view: ListView, **extra: Any) -> dict[str, Any]:
    """Everything the list templates need."""
    page, count, errors = _run(s, view)
    columns = view.columns
    db = s.records.db
    return {
        "title": s.entity.plural or s.entity.title, "app": s.app, "entity": s.entity, "base": s.base, "view": view,
        "records": page.records, "row_titles": {r["id"]: record_title(s.entity, r) for r in page.records},
        "next_cursor": page.next_cursor, "count": count, "count_cap": COUNT_CAP,
        "columns": columns, "link_key": _link_column(s.entity, columns),
        "titles": related_titles(s, columns, page.records),
        "errors": view.errors + errors, "chips": filter_chips(s, view), "panel": extra.pop("panel", None),
        "control": filter_control(s, None, None), "filter_fields": list(view.fields.values()),
        "chooser": columns + [f for f in view.fields.values() if f.key not in view.state.columns],
        "bulk_fields": [f for f in s.entity.fields if not f.hidden and not f.read_only and f.kind != "autonumber"],
        "saved_views": _saved_views(db, s), "notice": None, "failures": [], "can": allowed(s),
        "board_url": f"{s.base}/board" if state_field(s.entity) else None, **extra,
    }


def _params(request: HTMXRequest) -> list[tuple[str, str]]:
    """The query string's parameters in their order (the order of filters is kept in links)."""
    return parse_qsl(request.url.query, keep_blank_values=True)


def _wants_fragment(request: HTMXRequest) -> bool:
    return bool(request.htmx) and request.htmx.target == "records" and not request.htmx.history_restore_request


def _fragment(s: Scope, view: ListView, **extra: Any) -> Template:
    return Template(template_name="partials/list_records.html", context=_context(s, view, **extra))


def _url(s: Scope, query_string: str) -> str:
    return f"{s.base}?{query_string}" if query_string else s.base


@get(_LIST, name="list", sync_to_thread=True)
def list_page(request: HTMXRequest, app_name: PathText, entity_key: PathText) -> Template:
    """The list page; only the table fragment for htmx requests aimed at #records."""
    s = scope(request, app_name, entity_key)
    view = read_list_view(s.entity, _params(request))
    panel = request.query_params.get("panel")
    context = _context(s, view, panel=panel)
    if _wants_fragment(request):
        return HTMXTemplate(template_name="partials/list_records.html", context=context,
                            push_url=_url(s, view.query_string(after=view.state.after)))
    return Template(template_name="list.html", context=context)


@get(f"{_LIST}/filter-control", name="list-filter-control", sync_to_thread=True)
def filter_control_fragment(request: HTMXRequest, app_name: PathText, entity_key: PathText) -> Template:
    """The filter builder's operator and value inputs for the chosen field (`add.field`) and operator (`add.op`)."""
    s = scope(request, app_name, entity_key)
    control = filter_control(s, request.query_params.get("add.field"), request.query_params.get("add.op"))
    return Template(template_name="partials/list_filter_control.html", context={"control": control})


# --- bulk actions ----------------------------------------------------------------------------------------
def _pairs(data: dict[str, Any]) -> list[tuple[str, str]]:
    """A posted form as (name, value) pairs; repeated names arrive as lists."""
    return [(k, str(v)) for k, values in data.items() for v in (values if isinstance(values, list) else [values])]


def _ids(pairs: list[tuple[str, str]]) -> list[str]:
    return list(dict.fromkeys(v for k, v in pairs if k == "ids" and v))


def _records_word(entity: Entity, n: int) -> str:
    return f"{n:,} {(entity.title if n == 1 else entity.plural or entity.title).lower()}"


def _after_post(request: HTMXRequest, s: Scope, view: ListView, **extra: Any) -> Template | Redirect:
    """The fresh fragment for htmx; a plain form post goes back to the list (303)."""
    if not request.htmx:
        return Redirect(path=_url(s, view.query_string()), status_code=303)
    return _fragment(s, view, **extra)


@post(f"{_LIST}/bulk-delete", name="list-bulk-delete", sync_to_thread=True, status_code=200)
def bulk_delete(request: HTMXRequest, app_name: PathText, entity_key: PathText, data: FormData) -> Template | Redirect:
    """Delete the selected records one by one; reports how many were deleted and each one that could not be."""
    s = scope(request, app_name, entity_key)
    require(s, "delete")
    pairs = _pairs(data)
    view = read_list_view(s.entity, pairs)
    ids = _ids(pairs)
    titles = titles_of(s.records.db, s.app.name, s.entity.key, ids)
    failures: list[tuple[str, str]] = []
    for record_id in ids:
        try:
            s.records.delete(s.entity.key, record_id)
        except CrmError as exc:
            failures.append((titles.get(record_id) or record_id, str(exc)))
    done = len(ids) - len(failures)
    notice = f"Deleted {_records_word(s.entity, done)}." if ids else "Select the records to delete first."
    return _after_post(request, s, view, notice=notice, failures=failures,
                       failures_title=f"Could not delete {_records_word(s.entity, len(failures))}:")


def _field_messages(entity: Entity, exc: RecordValidationError) -> str:
    fields = entity.field_map()
    return "; ".join(f"{fields[e.field].title if e.field in fields else e.field}: {e.message}" if e.field
                     else e.message for e in exc.errors)


@post(f"{_LIST}/bulk-update", name="list-bulk-update", sync_to_thread=True, status_code=200)
def bulk_update(request: HTMXRequest, app_name: PathText, entity_key: PathText, data: FormData) -> Template | Redirect:
    """Set one field of the selected records to a value (read by the field's kind; empty clears it), one record at a
    time; reports how many changed and each failure with the record's title and the field's message."""
    s = scope(request, app_name, entity_key)
    require(s, "update")
    pairs = _pairs(data)
    view = read_list_view(s.entity, pairs)
    ids = _ids(pairs)
    form = dict(pairs)
    key, text = form.get("bulk_field", ""), form.get("bulk_value", "")
    editable = {f.key: f for f in s.entity.fields if not f.hidden and not f.read_only and f.kind != "autonumber"}
    if not ids or key not in editable:
        notice = "Select the records to change first." if not ids else "Choose a field to set."
        return _after_post(request, s, view, notice=notice)
    f = editable[key]
    try:
        value = kind_of(f.kind).parse_text(f, text) if text.strip() else None
    except ConversionError as exc:
        return _after_post(request, s, view, notice=f"Nothing was changed: {f.title}: {exc}")
    titles = titles_of(s.records.db, s.app.name, s.entity.key, ids)
    failures: list[tuple[str, str]] = []
    for record_id in ids:
        try:
            s.records.update(s.entity.key, record_id, {key: value})
        except RecordValidationError as exc:
            failures.append((titles.get(record_id) or record_id, _field_messages(s.entity, exc)))
        except CrmError as exc:
            failures.append((titles.get(record_id) or record_id, str(exc)))
    notice = f"Changed {f.title} on {_records_word(s.entity, len(ids) - len(failures))}."
    return _after_post(request, s, view, notice=notice, failures=failures,
                       failures_title=f"Could not change {_records_word(s.entity, len(failures))}:")


# --- CSV export ------------------------------------------------------------------------------------------
def _csv_lines(columns: list[Field], batches: Iterable[list[dict[str, Any]]]) -> Iterator[str]:
    """CSV text a batch at a time: a BOM (for spreadsheets), the header (id, then field keys: `crm records import`
    reads it back), then one row per record with cells as the kinds write them."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(["id", *(f.key for f in columns)])
    for records in batches:
        for record in records:
            writer.writerow([record["id"], *(kind_of(f.kind).to_text(f, record[f.key]) if f.key in record else ""
                                             for f in columns)])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _all_pages(s: Scope, view: ListView) -> Iterator[list[dict[str, Any]]]:
    query = view.query(limit=_EXPORT_PAGE, first_page=True)
    while True:
        page = s.records.query(s.entity.key, query)
        yield page.records
        if page.next_cursor is None:
            return
        query = replace(query, after=page.next_cursor)


def _csv_response(request: HTMXRequest, s: Scope, view: ListView, batches: Iterable[list[dict[str, Any]]],
                  what: dict[str, Any]) -> Stream:
    """The CSV download, after checking the export permission and writing the export to the audit log."""
    require(s, "export")
    audit(s.records.db, actor_name(request), "export", f"{s.app.name}/{s.entity.key}",
          {"columns": [f.key for f in view.columns], **what}, request.client.host if request.client else None)
    return Stream(_csv_lines(view.columns, batches), media_type="text/csv; charset=utf-8",
                  headers={"Content-Disposition": f'attachment; filename="{s.entity.key}.csv"'})


def _export_view(request: HTMXRequest, app_name: str, entity_key: str) -> Stream:
    s = scope(request, app_name, entity_key)
    view = read_list_view(s.entity, _params(request))
    return _csv_response(request, s, view, _all_pages(s, view), {"view": view.query_string()})


# Async, running the blocking part in a thread itself: Litestar 2.25 wraps a sync_to_thread GET handler in its thread
# runner twice when the same path also has a POST handler; a Template survives that, a Stream does not (it arrives
# as a coroutine). The CSV rows are still produced page by page in worker threads as the response streams.
@get(f"{_LIST}/export.csv", name="list-export")
async def export_view(request: HTMXRequest, app_name: PathText, entity_key: PathText) -> Stream:
    """Every record of the view (all pages, its filters, sort and columns) as CSV."""
    return await sync_to_thread(_export_view, request, app_name, entity_key)


@post(f"{_LIST}/export.csv", name="list-export-selected", sync_to_thread=True, status_code=200)
def export_selected(request: HTMXRequest, app_name: PathText, entity_key: PathText, data: FormData) -> Stream:
    """The selected records (`ids`) as CSV, with the view's columns."""
    s = scope(request, app_name, entity_key)
    pairs = _pairs(data)
    view = read_list_view(s.entity, pairs)

    def selected() -> Iterator[list[dict[str, Any]]]:
        found = []
        for record_id in _ids(pairs):
            try:
                found.append(s.records.get(s.entity.key, record_id))
            except CrmError:
                continue  # deleted meanwhile
        yield found

    return _csv_response(request, s, view, selected(), {"ids": _ids(pairs)})


# --- saved views -----------------------------------------------------------------------------------------
def _saved_views(db: Database, s: Scope) -> list[dict[str, Any]]:
    with db.read() as conn:
        rows = conn.execute(sa.select(crm_saved_views.c.id, crm_saved_views.c.name, crm_saved_views.c.query).where(
            crm_saved_views.c.app == s.app.name, crm_saved_views.c.entity == s.entity.key)
            .order_by(crm_saved_views.c.name)).mappings().all()
    return [dict(r) for r in rows]


def _views_fragment(s: Scope, notice: str | None = None, error: str | None = None) -> Template:
    context = {"base": s.base, "entity": s.entity, "saved_views": _saved_views(s.records.db, s),
               "saved_notice": notice, "saved_error": error}
    return Template(template_name="partials/list_saved_views.html", context=context)


@post(f"{_LIST}/views", name="list-save-view", sync_to_thread=True, status_code=200)
def save_view(request: HTMXRequest, app_name: PathText, entity_key: PathText, data: FormData) -> Template | Redirect:
    """Save the posted list state (the page's hidden state form) under a name."""
    s = scope(request, app_name, entity_key)
    pairs = _pairs(data)
    view = read_list_view(s.entity, pairs)
    name = " ".join(dict(pairs).get("view_name", "").split())[:100]
    notice = error = None
    if not name:
        error = "Give the view a name."
    else:
        try:
            with s.records.db.write() as conn:
                conn.execute(crm_saved_views.insert().values(
                    app=s.app.name, entity=s.entity.key, name=name, query=view.query_string(),
                    created_by=actor_name(request), created_at=utcnow()))
            notice = f"Saved the view “{name}”."
        except sa.exc.IntegrityError:
            error = f"There is already a view named “{name}”; choose another name or delete that one first."
    if not request.htmx:
        return Redirect(path=_url(s, view.query_string()), status_code=303)
    return _views_fragment(s, notice, error)


@post(f"{_LIST}/views/{{view_id:int}}/delete", name="list-delete-view", sync_to_thread=True, status_code=200)
def delete_view(request: HTMXRequest, app_name: PathText, entity_key: PathText,
                view_id: FromPath[int]) -> Template | Redirect:
    """Delete a saved view."""
    s = scope(request, app_name, entity_key)
    with database(request).write() as conn:
        deleted = conn.execute(crm_saved_views.delete().where(
            crm_saved_views.c.id == view_id, crm_saved_views.c.app == s.app.name,
            crm_saved_views.c.entity == s.entity.key)).rowcount
    if not request.htmx:
        return Redirect(path=s.base, status_code=303)
    return _views_fragment(s, notice="Deleted the saved view." if deleted else None,
                           error=None if deleted else "That saved view no longer exists.")


HANDLERS = [Router(path="/", exception_handlers=EXCEPTION_HANDLERS, route_handlers=[
    list_page, filter_control_fragment, bulk_delete, bulk_update, export_view, export_selected, save_view,
    delete_view])]
