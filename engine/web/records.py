"""Record pages and forms: create, show, edit (with conflict handling) and delete a record; inline validation of one
field, visibility of conditional fields, and the relation lookup.

Full pages for plain requests; for htmx requests the fragment the request targets. Form posts answer 200 to htmx
(htmx swaps only 2xx answers) and 422 / 409 to plain posts that fail."""

from __future__ import annotations

from typing import Any

from litestar import Router, get, post
from litestar.params import FromPath, FromQuery, RawBody
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Response, Template

from engine.errors import ConflictError, NotFoundError, RecordValidationError
from engine.forms.form import (
    FormData,
    FormState,
    build_form,
    check_field,
    editable,
    form_field,
    parse_form,
    record_state,
    visible,
)
from engine.schema import Entity, Field
from engine.schema.validation import EntityValidator
from engine.storage.query import Filter, Query, Sort
from engine.web.access import EXCEPTION_HANDLERS, allowed, require, scope
from engine.web.context import Scope
from engine.web.posts import form_data, go, last
from engine.web.record_page import Titles, changed_meanwhile, record_context, record_title, shown
from engine.workflows.definition import parse_workflow

__all__ = ["HANDLERS"]

PathText = FromPath[str]
QueryText = FromQuery[str]
_PATH = "/apps/{app_name:str}/{entity_key:str}"
_RECORD = _PATH + "/{record_id:str}"


def _version(data: FormData) -> int | None:
    """The version of the record the form was showing."""
    text = last(data, "version")
    return int(text) if text.isdigit() else None


def _own_record(sc: Scope, data: FormData) -> dict[str, Any] | None:
    """The record an edit form is about (its hidden `_id`), or None on new-record forms."""
    record_id = last(data, "_id")
    if not record_id:
        return None
    try:
        return sc.records.get(sc.entity.key, record_id)
    except NotFoundError:
        return None


# --- forms ------------------------------------------------------------------------------------------------
def _form_response(request: HTMXRequest, sc: Scope, state: FormState, record: dict[str, Any] | None,
                   version: int | None = None, status: int = 200, conflict: dict[str, Any] | None = None) -> Template:
    """The form page, or only the form (`partials/form_shell.html`) when htmx posted it."""
    titles = Titles(sc)
    failed = bool(state.errors) or conflict is not None
    form = build_form(sc.entity, state, titles.for_field, focus_error=failed)
    action = f"{sc.base}/{record['id']}/edit" if record else f"{sc.base}/new"
    name = record_title(sc.entity, record) if record else ""
    heading = f"Edit {name}" if record else f"New {sc.entity.title}"
    context = {
        "app": sc.app, "entity": sc.entity, "form": form, "record": record, "title": heading, "heading": heading,
        "record_name": name,
        "base": sc.base, "action": action, "version": version if version is not None else (record or {}).get("version"),
        "cancel_url": f"{sc.base}/{record['id']}" if record else sc.base,
        "has_conditions": any(f.visible_if for f in sc.entity.fields if not f.hidden),
        "conflict": conflict, "title_of": titles.title, "shown": shown, "can": allowed(sc),
    }
    if request.htmx and failed:
        return Template(template_name="partials/form_shell.html", context=context, status_code=200)
    return Template(template_name="form.html", context=context, status_code=200 if request.htmx else status)


def _whole_record_errors(entity: Entity, state: FormState) -> dict[str, list[str]]:
    """Rules over the whole record (required, conditional requirements) for the fields that did parse."""
    errors: dict[str, list[str]] = {}
    for err in EntityValidator(entity).errors(dict(state.values)):
        if err.field not in state.errors:
            errors.setdefault(err.field, []).append(err.message)
    return errors


def _defaults(entity: Entity) -> dict[str, Any]:
    """What a new record starts with: the fields' default values, and the workflow's initial state."""
    values = {f.key: f.default for f in entity.fields if f.default is not None}
    workflow = parse_workflow(entity.workflow) if entity.workflow else None
    if workflow is not None and workflow.field and workflow.initial:
        values.setdefault(workflow.field, workflow.initial)
    return values


@get(_PATH + "/new", name="record-new", sync_to_thread=True)
def new_record(request: HTMXRequest, app_name: PathText, entity_key: PathText) -> Template:
    """A blank form with default values; query parameters prefill fields (`?customer=<id>` for "add related")."""
    sc = scope(request, app_name, entity_key)
    require(sc, "create")
    prefill = {k: request.query_params.getall(k) for k in request.query_params}
    return _form_response(request, sc, parse_form(sc.entity, prefill, current=_defaults(sc.entity)), None)


@post(_PATH + "/new", name="record-create", status_code=200, sync_to_thread=True)
def create_record(request: HTMXRequest, app_name: PathText, entity_key: PathText, body: RawBody) -> Response[Any]:
    """Create a record from the form; on errors the form again, with every message next to its field."""
    sc = scope(request, app_name, entity_key)
    require(sc, "create")
    state = parse_form(sc.entity, form_data(body), current=_defaults(sc.entity))
    if state.errors:
        state.add_errors(_whole_record_errors(sc.entity, state))
    else:
        try:
            record = sc.records.create(sc.entity.key, state.changes())
            return go(request, f"{sc.base}/{record['id']}")
        except RecordValidationError as exc:
            state.add_errors(exc.by_field())
    return _form_response(request, sc, state, None, status=422)


@get(_RECORD + "/edit", name="record-edit", sync_to_thread=True)
def edit_record(request: HTMXRequest, app_name: PathText, entity_key: PathText, record_id: PathText) -> Template:
    """The form showing a stored record."""
    sc = scope(request, app_name, entity_key)
    require(sc, "update")
    record = sc.records.get(sc.entity.key, record_id)
    return _form_response(request, sc, record_state(sc.entity, record), record)


@post(_RECORD + "/edit", name="record-update", status_code=200, sync_to_thread=True)
def update_record(request: HTMXRequest, app_name: PathText, entity_key: PathText, record_id: PathText,
                  body: RawBody) -> Response[Any]:
    """Save an edit. A record changed meanwhile by someone else is not overwritten: the form comes back with the
    user's input and a panel of what changed, to save anyway or discard."""
    sc = scope(request, app_name, entity_key)
    require(sc, "update")
    record = sc.records.get(sc.entity.key, record_id)
    data = form_data(body)
    state = parse_form(sc.entity, data, current=record)
    expected = _version(data)
    if state.errors:
        state.add_errors(_whole_record_errors(sc.entity, state))
        return _form_response(request, sc, state, record, expected, status=422)
    try:
        sc.records.update(sc.entity.key, record_id, state.changes(), expected_version=expected)
    except RecordValidationError as exc:
        state.add_errors(exc.by_field())
        return _form_response(request, sc, state, record, expected, status=422)
    except ConflictError as exc:
        current = exc.current or sc.records.get(sc.entity.key, record_id)
        changes = changed_meanwhile(sc, record_id, exc.expected, state)
        # The form now carries the current version: saving again ("Save mine anyway") overwrites what the panel
        # lists, knowingly; a further change meanwhile conflicts again.
        return _form_response(request, sc, state, current, exc.actual, status=409, conflict=changes)
    return go(request, f"{sc.base}/{record_id}")


# --- fragments: one field, visibility, lookup ---------------------------------------------------------------
def _unique_errors(sc: Scope, f: Field, value: Any, own_id: str | None) -> list[str]:
    """A unique value already used by another record (the save checks again, inside its transaction)."""
    if not f.unique or value is None:
        return []
    try:
        page = sc.records.query(sc.entity.key, Query(filters=[Filter(f.key, "eq", value)], limit=2))
    except RecordValidationError:
        return []
    if any(r["id"] != own_id for r in page.records):
        return [f"{value!r} is already used by another {sc.entity.title}"]
    return []


@post(_PATH + "/validate", name="record-validate-field", status_code=200, sync_to_thread=True)
def validate_field(request: HTMXRequest, app_name: PathText, entity_key: PathText, body: RawBody) -> Template:
    """One field's fragment (`_field` names it), with its messages or none; the whole form is posted so
    visibility is computed as the form stands."""
    sc = scope(request, app_name, entity_key)
    data = form_data(body)
    try:
        f = sc.entity.field(last(data, "_field"))
    except KeyError:
        raise NotFoundError(f"{sc.entity.title} has no field '{last(data, '_field')}'") from None
    current = _own_record(sc, data)
    state = parse_form(sc.entity, data, current=current)
    messages = state.errors.get(f.key, [])
    if not messages and editable(f) and f.key in data:
        value = state.values.get(f.key)
        messages = check_field(f, value) or _unique_errors(sc, f, value, (current or {}).get("id"))
    state.errors = {f.key: messages}
    ff = form_field(f, state, Titles(sc).for_field)
    return Template(template_name="partials/form_field.html",
                    context={"ff": ff, "app": sc.app, "entity": sc.entity, "base": sc.base, "oob": False})


@post(_PATH + "/visibility", name="record-visibility", status_code=200, sync_to_thread=True)
def field_visibility(request: HTMXRequest, app_name: PathText, entity_key: PathText, body: RawBody) -> Template:
    """Out-of-band swaps of the conditional fields whose visibility differs from what the form shows (it lists
    the shown ones in `_shown`); an empty answer when nothing changes."""
    sc = scope(request, app_name, entity_key)
    data = form_data(body)
    state = parse_form(sc.entity, data, current=_own_record(sc, data))
    state.errors = {}
    shown = set(data.get("_shown", []))
    titles = Titles(sc)
    changed = [form_field(f, state, titles.for_field) for f in sc.entity.fields
               if f.visible_if is not None and not f.hidden and visible(f, state.values) != (f.key in shown)]
    return Template(template_name="partials/form_visibility.html",
                    context={"fields": changed, "app": sc.app, "entity": sc.entity, "base": sc.base})


def _lookup_query(entity: Entity, q: str) -> Query:
    fields = entity.field_map()
    title = fields.get(entity.title_field or "")
    sort = [Sort(title.key)] if title is not None and title.kind not in ("multi_select", "relation_many") else []
    if not q.strip() or entity.search_fields():
        return Query(search=q or None, sort=sort, limit=10)
    if title is not None and title.kind in ("text", "email", "phone", "url", "autonumber", "long_text"):
        return Query(filters=[Filter(title.key, "contains", q)], sort=sort, limit=10)
    return Query(sort=sort, limit=10)


@get(_PATH + "/lookup", name="record-lookup", sync_to_thread=True)
def lookup(request: HTMXRequest, app_name: PathText, entity_key: PathText, q: QueryText = "",
           field: QueryText = "") -> Template:
    """Up to 10 records of this (target) entity matching `q`, as listbox options for the relation `field`."""
    sc = scope(request, app_name, entity_key)
    page = sc.records.query(sc.entity.key, _lookup_query(sc.entity, q))
    options = [{"id": r["id"], "title": record_title(sc.entity, r)} for r in page.records]
    return Template(template_name="partials/form_lookup_options.html",
                    context={"options": options, "field": field, "q": q, "entity": sc.entity})


# --- the record page and delete ------------------------------------------------------------------------------
@get(_RECORD, name="record-show", sync_to_thread=True)
def show_record(request: HTMXRequest, app_name: PathText, entity_key: PathText, record_id: PathText) -> Template:
    """A record: its fields by section, related records, history."""
    sc = scope(request, app_name, entity_key)
    record = sc.records.get(sc.entity.key, record_id)
    return Template(template_name="record.html", context=record_context(sc, record))


@get(_RECORD + "/delete", name="record-delete-confirm", sync_to_thread=True)
def confirm_delete(request: HTMXRequest, app_name: PathText, entity_key: PathText, record_id: PathText) -> Template:
    """The record page asking to confirm the delete."""
    sc = scope(request, app_name, entity_key)
    require(sc, "delete")
    record = sc.records.get(sc.entity.key, record_id)
    return Template(template_name="record.html", context={**record_context(sc, record), "confirm_delete": True})


@post(_RECORD + "/delete", name="record-delete", status_code=200, sync_to_thread=True)
def delete_record(request: HTMXRequest, app_name: PathText, entity_key: PathText, record_id: PathText,
                  body: RawBody) -> Response[Any]:
    """Delete, then 303 to the list. Refused deletes (records still pointing here, a change meanwhile) show the
    record page with the reason."""
    sc = scope(request, app_name, entity_key)
    data = form_data(body)
    try:
        sc.records.delete(sc.entity.key, record_id, expected_version=_version(data))
    except RecordValidationError as exc:
        problems = [e.message for e in exc.errors]
    except ConflictError:
        problems = ["Someone changed this record after you opened it. Check the changes below, then delete again."]
    else:
        return Redirect(sc.base, status_code=303)
    record = sc.records.get(sc.entity.key, record_id)
    context = {**record_context(sc, record), "problems": problems, "confirm_delete": True}
    return Template(template_name="record.html", context=context, status_code=200 if request.htmx else 409)


# One router, so Litestar registers each handler once: adding a handler to a path that already has one re-registers
# the earlier handler, which wraps a sync_to_thread function a second time and breaks it (Litestar 2.25).
HANDLERS = [Router(path="/", exception_handlers=EXCEPTION_HANDLERS, route_handlers=[
    new_record, create_record, edit_record, update_record, validate_field, field_visibility, lookup, show_record,
    confirm_delete, delete_record])]
