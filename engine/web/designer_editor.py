"""The designer's entity editor: the entity's settings, its fields in order with a settings panel each, the palette
of field kinds, the list view and the form sections, beside a live preview of the form and the list.

Every change posts with htmx, carrying the draft revision the page showed (`#draft-revision`), and answers with the
editor as it now is (a DraftConflict: the editor as the other person left it, with their message). Plain changes in
a field panel (a label, a checkbox) answer without replacing the panel's inputs, so a click that follows a typed
change is never lost; a response to any change fires `draft-changed`, on which the preview reloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from litestar import get, post
from litestar.params import FromPath, FromQuery, RawBody
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Response, Template

from engine.designer import edits
from engine.designer.drafts import Draft, DraftConflict, DraftService
from engine.errors import DefinitionError, NotFoundError
from engine.forms.form import build_form, record_state
from engine.forms.listquery import read_list_view
from engine.schema import Field, load_definition
from engine.web.designer import draft_context, drafts, fragment_or_page, revision_of
from engine.web.designer_fields import (
    BOOLEAN_SETTINGS,
    ON_DELETE,
    SETTING_TITLES,
    FieldPanel,
    setting_of_error,
    settings_from_post,
)
from engine.web.posts import form_data, go, last

__all__ = ["ROUTES"]

PathText = FromPath[str]
QueryText = FromQuery[str]
_ENTITY = "/{app_name:str}/{entity_key:str}"
_FIELD = _ENTITY + "/fields/{key:str}"
_CHANGED = {"HX-Trigger": "draft-changed"}


def _entity_raw(draft: Draft, entity: str) -> dict[str, Any]:
    raw = draft.document.get("$defs", {}).get(entity)
    if not isinstance(raw, dict):
        raise NotFoundError(f"the draft of '{draft.app}' has no entity '{entity}'")
    return raw


def _published_fields(service: DraftService, draft: Draft, entity: str) -> dict[str, Field]:
    """The entity's fields as the published version has them ({} for a new app or entity)."""
    live = service.published_entity(draft.app, entity) if not draft.is_new_app else None
    return live.field_map() if live else {}


def _fixed(published: dict[str, Field], origin: str | None) -> frozenset[str]:
    """A field's published option values: fixed; the others follow their titles."""
    return frozenset(published[origin].option_values()) if origin else frozenset()


def _panels(service: DraftService, draft: Draft, entity: str, errors: dict[str, dict[str, str]],
            typed: dict[str, dict[str, Any]]) -> list[FieldPanel]:
    doc = draft.document
    published = _published_fields(service, draft, entity)
    out = []
    for key in _entity_raw(draft, entity).get("properties", {}):
        settings = edits.field_settings(doc, entity, key)
        settings.update(typed.get(key, {}))
        origin = edits.published_origin(doc, entity, key, set(published))
        panel = FieldPanel(key, settings, published_as=origin, fixed_options=_fixed(published, origin),
                           errors=errors.get(key, {}))
        rules = settings.get("visible_if")
        if rules:
            try:
                panel.condition = json.dumps(edits.condition_from_rules(doc, entity, rules), indent=1,
                                             ensure_ascii=False)
            except edits.EditError as exc:
                panel.errors.setdefault("visible_if", exc.message)
        out.append(panel)
    return out


def editor_context(service: DraftService, draft: Draft, entity: str, *, open_key: str | None = None,
                   alert: str | None = None, errors: dict[str, dict[str, str]] | None = None,
                   typed: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything the editor shows for one entity of the draft."""
    raw = _entity_raw(draft, entity)
    x = raw.get("x-crm-entity") or {}
    panels = _panels(service, draft, entity, errors or {}, typed or {})
    views = (raw.get("x-crm-views") or {}).get("list") or {}
    sort = (views.get("sort") or [{}])[0]
    sections = (raw.get("x-crm-form") or {}).get("sections") or []
    placed = {k: i for i, s in enumerate(sections) for k in s.get("fields", [])}
    return {
        "draft": draft, "entity_key": entity, "entity_title": raw.get("title") or entity,
        "entity_settings": {"title": raw.get("title") or entity, "plural": x.get("plural") or "",
                            "title_field": x.get("titleField") or "", "icon": x.get("icon") or "",
                            "color": x.get("color") or "#2563eb"},
        "panels": panels, "open_key": open_key, "alert": alert, "errors": (errors or {}).get("", {}),
        "kinds": edits.FIELD_KINDS, "kind_titles": {k: t for k, t, _ in edits.FIELD_KINDS},
        "presets": edits.PATTERN_PRESETS, "on_delete": ON_DELETE, "titles": SETTING_TITLES,
        "booleans": BOOLEAN_SETTINGS,
        "entities": [(k, e.get("title") or k) for k, e in draft.document["$defs"].items()],
        "list_columns": list(views.get("columns") or []), "sort_field": sort.get("field", ""),
        "sort_dir": sort.get("dir", "asc"), "page_size": views.get("pageSize") or "",
        "sections": sections, "placed": placed, "base": f"/designer/{draft.app}/{entity}",
        "title": f"Designer: {raw.get('title') or entity}",
    }


def _editor(request: HTMXRequest, service: DraftService, app_name: str, entity: str, status: int = 200,
            headers: dict[str, str] | None = None, draft: Draft | None = None, **extra: Any) -> Template:
    """The editor fragment (htmx) or the whole page, of `draft` (read when not given)."""
    context = editor_context(service, draft or service.get(app_name), entity, **extra)
    return fragment_or_page(request, "designer/editor.html", "designer/entity.html", context, status, headers)


def _change(request: HTMXRequest, app_name: str, entity: str, data: dict[str, list[str]],
            change: Callable[[dict[str, Any]], Any], open_key: str | None = None, field: str = "") -> Template:
    """Make one edit in the draft and answer with the editor. A stale revision changes nothing and says who saved
    the draft meanwhile; an EditError is shown next to the setting it is about (`field`: the panel's field)."""
    service = drafts(request)
    try:
        draft, _ = service.edit(app_name, revision_of(data), change)
    except DraftConflict as exc:
        return _editor(request, service, app_name, entity, status=409, open_key=open_key, alert=str(exc))
    except edits.EditError as exc:
        return _editor(request, service, app_name, entity, status=422, open_key=field or open_key or None,
                       errors={field: {setting_of_error(exc) if field else "": exc.message}})
    return _editor(request, service, app_name, entity, open_key=open_key, headers=_CHANGED, draft=draft)


# --- the page and its preview --------------------------------------------------------------------------------------
@get(_ENTITY, name="designer-entity", sync_to_thread=True)
def entity_page(request: HTMXRequest, app_name: PathText, entity_key: PathText, open: QueryText = "") -> Template:
    """The entity editor (`open`: the field whose panel is open)."""
    service = drafts(request)
    context = editor_context(service, service.get(app_name), entity_key, open_key=open or None)
    return Template(template_name="designer/entity.html", context=context)


@get(_ENTITY + "/preview", name="designer-preview", sync_to_thread=True)
def preview(request: HTMXRequest, app_name: PathText, entity_key: PathText) -> Template:
    """The entity's form and list header as users will see them after publishing (nothing can be submitted)."""
    draft = drafts(request).get(app_name)
    context: dict[str, Any] = {"problems": [], "entity_key": entity_key}
    try:
        app = load_definition(draft.document)
        entity = app.entity(entity_key)
    except DefinitionError as exc:
        context["problems"] = exc.problems
    except KeyError:
        raise NotFoundError(f"the draft of '{app_name}' has no entity '{entity_key}'") from None
    else:
        defaults = {f.key: f.default for f in entity.fields if f.default is not None}
        view = read_list_view(entity, [])
        context.update(app=app, entity=entity, base=f"/designer/{app_name}/{entity_key}/preview",
                       form=build_form(entity, record_state(entity, defaults), lambda f, ids: {}),
                       columns=view.columns, sort=view.state.sort, fields=entity.field_map())
    return Template(template_name="designer/preview.html", context=context)


# --- the entity ----------------------------------------------------------------------------------------------------
@post(_ENTITY + "/settings", name="designer-entity-settings", status_code=200, sync_to_thread=True)
def entity_settings(request: HTMXRequest, app_name: PathText, entity_key: PathText, body: RawBody) -> Template:
    """Label, plural, title field, icon and colour of the entity."""
    data = form_data(body)

    def change(doc: dict[str, Any]) -> None:
        edits.update_entity(doc, entity_key, title=last(data, "title").strip(), plural=last(data, "plural").strip()
                            or None, title_field=last(data, "title_field") or None,
                            icon=last(data, "icon").strip() or None, color=last(data, "color") or None)

    return _change(request, app_name, entity_key, data, change)


@post(_ENTITY + "/remove", name="designer-entity-remove", status_code=200, sync_to_thread=True)
def remove_entity(request: HTMXRequest, app_name: PathText, entity_key: PathText, body: RawBody) -> Response[Any]:
    """Remove the entity from the draft (publishing archives its records, restorable)."""
    data = form_data(body)
    service = drafts(request)
    try:
        service.edit(app_name, revision_of(data), lambda doc: edits.remove_entity(doc, entity_key))
    except (DraftConflict, edits.EditError) as exc:
        draft = service.get(app_name)
        return Template(template_name="designer/draft.html", context=draft_context(request, draft, alert=str(exc)),
                        status_code=200 if request.htmx else 409)
    return go(request, f"/designer/{app_name}")


# --- fields --------------------------------------------------------------------------------------------------------
@post(_ENTITY + "/fields", name="designer-add-field", status_code=200, sync_to_thread=True)
def add_field(request: HTMXRequest, app_name: PathText, entity_key: PathText, body: RawBody) -> Template:
    """Add a field of the chosen kind with the typed label; its panel opens."""
    data = form_data(body)
    kind, title = last(data, "kind"), last(data, "label").strip()
    service = drafts(request)
    try:
        if not title:
            raise edits.EditError("label", "type a label for the new field")
        if not kind:
            raise edits.EditError("kind", "choose what kind of field to add")
        published = service.published_keys(app_name, entity_key)
        _, key = service.edit(app_name, revision_of(data),
                              lambda doc: edits.add_field(doc, entity_key, kind, title, reserved=published))
    except DraftConflict as exc:
        return _editor(request, service, app_name, entity_key, status=409, alert=str(exc))
    except edits.EditError as exc:
        return _editor(request, service, app_name, entity_key, status=422,
                       errors={"": {"add": exc.message, "kind": kind, "label": title}})
    return _editor(request, service, app_name, entity_key, open_key=key, headers=_CHANGED)


@post(_FIELD, name="designer-update-field", status_code=200, sync_to_thread=True)
def update_field(request: HTMXRequest, app_name: PathText, entity_key: PathText, key: PathText,
                 body: RawBody) -> Template:
    """Change a field's settings from its panel. A plain change leaves the panel's inputs as they are (only the
    revision, the field's heading and the other panels are swapped in); row actions, a new kind or format, and
    errors answer with the panel rendered again."""
    data = form_data(body)
    service = drafts(request)
    draft = service.get(app_name)
    current = edits.field_settings(draft.document, entity_key, key)
    published = _published_fields(service, draft, entity_key)
    fixed = _fixed(published, edits.published_origin(draft.document, entity_key, key, set(published)))
    try:
        settings = settings_from_post(data, current)
        service.edit(app_name, revision_of(data),
                     lambda doc: edits.update_field(doc, entity_key, key, settings, fixed_options=fixed))
    except DraftConflict as exc:
        return _editor(request, service, app_name, entity_key, status=409, open_key=key, alert=str(exc))
    except edits.EditError as exc:
        typed = {k: v for k, v in settings_from_post_safe(data, current).items() if k != "kind"}
        return _editor(request, service, app_name, entity_key, status=422, open_key=key,
                       errors={key: {setting_of_error(exc): exc.message}}, typed={key: typed})
    structural = any(last(data, name).strip() for name in ("_action", "_refresh", "_had_errors", "new_option")) \
        or settings.get("kind", current["kind"]) != current["kind"]
    if structural or not request.htmx:
        return _editor(request, service, app_name, entity_key, open_key=key, headers=_CHANGED)
    context = editor_context(service, service.get(app_name), entity_key, open_key=key)
    context["changed"] = next(p for p in context["panels"] if p.key == key)
    return Template(template_name="designer/field_saved.html", context=context,
                    headers={**_CHANGED, "HX-Reswap": "none"})


def settings_from_post_safe(data: dict[str, list[str]], current: dict[str, Any]) -> dict[str, Any]:
    """The posted settings as far as they read (a number that is not one is shown as typed)."""
    try:
        return settings_from_post(data, current)
    except edits.EditError:
        return {name: last(data, name) for name in current if name in data and name not in BOOLEAN_SETTINGS}


@post(_FIELD + "/move", name="designer-move-field", status_code=200, sync_to_thread=True)
def move_field(request: HTMXRequest, app_name: PathText, entity_key: PathText, key: PathText,
               body: RawBody) -> Template:
    """Move a field one place up or down (`to`), or to a position (`index`, from dragging)."""
    data = form_data(body)
    draft = drafts(request).get(app_name)
    keys = list(_entity_raw(draft, entity_key).get("properties", {}))
    here = keys.index(key) if key in keys else 0
    to = last(data, "to")
    index = int(last(data, "index")) if last(data, "index").isdigit() else here - 1 if to == "up" else here + 1
    index = max(0, min(index, len(keys) - 1))
    return _change(request, app_name, entity_key, data,
                   lambda doc: edits.move_field(doc, entity_key, key, index), field=key)


@post(_FIELD + "/remove", name="designer-remove-field", status_code=200, sync_to_thread=True)
def remove_field(request: HTMXRequest, app_name: PathText, entity_key: PathText, key: PathText,
                 body: RawBody) -> Template:
    """Remove a field from the draft (publishing archives its values, restorable)."""
    data = form_data(body)
    return _change(request, app_name, entity_key, data, lambda doc: edits.remove_field(doc, entity_key, key))


@post(_FIELD + "/key", name="designer-rename-key", status_code=200, sync_to_thread=True)
def rename_key(request: HTMXRequest, app_name: PathText, entity_key: PathText, key: PathText,
               body: RawBody) -> Template:
    """Change a field's key. A published field is renamed (`renamedFrom`): publishing moves its stored values."""
    data = form_data(body)
    new_key = last(data, "new_key").strip()
    published = drafts(request).published_keys(app_name, entity_key)
    return _change(request, app_name, entity_key, data,
                   lambda doc: edits.rename_key(doc, entity_key, key, new_key, published), open_key=new_key,
                   field=key)


# --- list view and form sections -----------------------------------------------------------------------------------
@post(_ENTITY + "/list", name="designer-list-view", status_code=200, sync_to_thread=True)
def list_view(request: HTMXRequest, app_name: PathText, entity_key: PathText, body: RawBody) -> Template:
    """The list's columns, default sort and page size."""
    data = form_data(body)
    columns = [c for c in data.get("columns", []) if c]
    sort = [(last(data, "sort_field"), last(data, "sort_dir") or "asc")] if last(data, "sort_field") else []
    size = int(last(data, "page_size")) if last(data, "page_size").isdigit() else None
    return _change(request, app_name, entity_key, data,
                   lambda doc: edits.set_list_view(doc, entity_key, columns, sort, size))


@post(_ENTITY + "/form", name="designer-form-sections", status_code=200, sync_to_thread=True)
def form_sections(request: HTMXRequest, app_name: PathText, entity_key: PathText, body: RawBody) -> Template:
    """The form's sections: title and columns each, and which section each field is in (`_action`: add_section,
    remove_section:i)."""
    data = form_data(body)
    draft = drafts(request).get(app_name)
    keys = list(_entity_raw(draft, entity_key).get("properties", {}))
    titles, columns = data.get("section_title", []), data.get("section_columns", [])
    sections = [{"title": t.strip() or f"Section {i + 1}", "columns": int(c) if c.isdigit() else 2, "fields": []}
                for i, (t, c) in enumerate(zip(titles, columns, strict=False))]
    action = last(data, "_action")
    if action == "add_section" or last(data, "new_section").strip():
        sections.append({"title": last(data, "new_section").strip() or f"Section {len(sections) + 1}",
                         "columns": 2, "fields": []})
    for k in keys:
        place = last(data, f"place_{k}")
        if place.isdigit() and int(place) < len(sections):
            sections[int(place)]["fields"].append(k)
    verb, _, index = action.partition(":")
    if verb == "remove_section" and index.isdigit() and int(index) < len(sections):
        del sections[int(index)]
    return _change(request, app_name, entity_key, data, lambda doc: edits.set_form_sections(doc, entity_key, sections))


ROUTES = [entity_page, preview, entity_settings, remove_entity, add_field, update_field, move_field, remove_field,
          rename_key, list_view, form_sections]
