"""The designer's workflow editor for one entity: its states (title, colour, terminal, order, the starting one), its
transitions (from, to, roles, confirmation, guard rules, actions), the state machine drawn as SVG, and the
workflow's problems in plain words.

Every form posts with the draft revision the page showed. With htmx the answer is the editor as it now is (a stale
revision: the editor as the other designer left it, with their message; a refused edit: its message and path), and
`draft-changed` fires; without JavaScript a change redirects back to the page (303) and a refusal shows the page
with the message (409 or 422)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import get, post
from litestar.params import FromPath, RawBody
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Response, Template
from markupsafe import Markup

from engine.auth.accounts import role_names
from engine.designer import workflows as wf
from engine.designer.conditions import OPERATORS, operators_for
from engine.designer.drafts import Draft, DraftConflict, DraftService
from engine.designer.edits import EditError
from engine.errors import NotFoundError, Problem
from engine.schema.diagrams import state_machine_svg
from engine.web.designer import drafts, fragment_or_page, revision_of
from engine.web.designer_fields import rules_from_post  # the visibility rule rows: the same form
from engine.web.posts import FormData, form_data, go, last
from engine.workflows.definition import parse_workflow

__all__ = ["ROUTES"]

PathText = FromPath[str]
PathInt = FromPath[int]
_BASE = "/{app_name:str}/{entity_key:str}/workflow"
_STATE = _BASE + "/states/{value:str}"
_TRANSITION = _BASE + "/transitions/{name:str}"
_CHANGED = {"HX-Trigger": "draft-changed"}
#: The colours a state can have (as for the options of a choice field).
COLOURS = [("", "No colour"), ("#2563eb", "Blue"), ("#16a34a", "Green"), ("#f59e0b", "Amber"), ("#dc2626", "Red"),
           ("#8b5cf6", "Purple"), ("#ec4899", "Pink"), ("#0d9488", "Teal"), ("#94a3b8", "Grey")]


def _entity_raw(draft: Draft, entity: str) -> dict[str, Any]:
    raw = draft.document.get("$defs", {}).get(entity)
    if not isinstance(raw, dict):
        raise NotFoundError(f"the draft of '{draft.app}' has no entity '{entity}'")
    return raw


def _diagram(raw: dict[str, Any], settings: dict[str, Any] | None) -> Markup:
    """The draft's state machine as SVG (drawn from the draft itself: it need not load yet)."""
    if settings is None:
        return Markup("")
    try:
        flow = parse_workflow(raw.get("x-crm-workflow"))
    except (msgspec.ValidationError, TypeError):
        return Markup("")
    if flow is None:
        return Markup("")
    titles = {s["value"]: s["title"] for s in settings["states"]}
    colours = {s["value"]: s["color"] or None for s in settings["states"]}
    svg = state_machine_svg(flow, raw.get("title") or "", lambda v: titles.get(v, v), lambda v: colours.get(v))
    return Markup(svg)  # the SVG escapes every label


def _where(path: str, prefix: str, settings: dict[str, Any] | None) -> str:
    """Which part of the workflow a problem path is about, in words ("State Done", "Transition Close")."""
    if settings is None:
        return ""
    found = re.match(r"/(states|transitions)/(\d+)", path[len(prefix):])
    if not found:
        return "Workflow"
    items, i = settings[found.group(1)], int(found.group(2))
    if i >= len(items):
        return ""
    return f"{'State' if found.group(1) == 'states' else 'Transition'} {items[i]['title']}"


def _fields(raw: dict[str, Any], state_field: str | None) -> list[dict[str, Any]]:
    """The entity's fields as the rule builder and the action form offer them."""
    out = []
    for key, prop in raw.get("properties", {}).items():
        kind = prop.get("x-crm-field", {}).get("kind", "text")
        options = [{"value": o.get("const"), "title": o.get("title") or o.get("const")}
                   for o in prop.get("anyOf") or prop.get("items", {}).get("anyOf") or []]
        out.append({"key": key, "title": prop.get("title") or key, "kind": kind, "options": options,
                    "settable": key != state_field and kind not in ("autonumber", "relation_many"),
                    "operators": [(op, OPERATORS[op]) for op in operators_for(kind)]})
    return out


def workflow_context(service: DraftService, draft: Draft, entity: str, *, alert: str | None = None,
                     error: Problem | None = None, typed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the workflow editor shows for one entity of the draft."""
    raw = _entity_raw(draft, entity)
    settings = wf.workflow_settings(draft.document, entity)
    prefix = f"$defs/{entity}/x-crm-workflow"
    problems = service.problems(draft)
    mine = [{"path": p.path, "message": p.message, "where": _where(p.path, prefix, settings)}
            for p in problems if p.path == prefix or p.path.startswith(prefix + "/")]
    used_roles = {r for t in (settings or {}).get("transitions", []) for r in t["roles"]}
    if settings and typed:  # a refused change to a transition's rules: show them as typed, to correct
        for t in settings["transitions"]:
            if t["name"] == typed.get("name"):
                t["guard"] = typed["guard"]
    return {
        "draft": draft, "entity_key": entity, "entity_title": raw.get("title") or entity, "wf": settings,
        "base": f"/designer/{draft.app}/{entity}", "svg": _diagram(raw, settings), "problems": mine,
        "other_problems": len(problems) - len(mine), "alert": alert, "error": error,
        "fields": _fields(raw, settings["field"] if settings else None),
        "choice_fields": [(k, p.get("title") or k) for k, p in raw.get("properties", {}).items()
                          if p.get("x-crm-field", {}).get("kind") == "select"],
        "roles": sorted(set(role_names(service.db)) | used_roles), "colours": COLOURS,
        "action_kinds": wf.ACTION_KINDS, "title": f"Workflow of {raw.get('title') or entity}",
    }


def _page(request: HTMXRequest, service: DraftService, app_name: str, entity: str, status: int = 200,
          headers: dict[str, str] | None = None, draft: Draft | None = None, **extra: Any) -> Template:
    """The editor fragment (htmx) or the whole page, of `draft` (read when not given)."""
    context = workflow_context(service, draft or service.get(app_name), entity, **extra)
    return fragment_or_page(request, "designer/workflow_editor.html", "designer/workflow.html", context, status,
                            headers)


def _change(request: HTMXRequest, app_name: str, entity: str, data: FormData,
            change: Callable[[dict[str, Any]], Any], typed: dict[str, Any] | None = None) -> Response[Any]:
    """Make one edit in the draft; answer with the editor (htmx) or a redirect back to the page."""
    service = drafts(request)
    try:
        draft, _ = service.edit(app_name, revision_of(data), change)
    except DraftConflict as exc:
        return _page(request, service, app_name, entity, status=409, alert=str(exc))
    except EditError as exc:
        return _page(request, service, app_name, entity, status=422, error=Problem(exc.path, exc.message),
                     typed=typed)
    if request.htmx:
        return _page(request, service, app_name, entity, headers=_CHANGED, draft=draft)
    return go(request, f"/designer/{app_name}/{entity}/workflow")


# --- the page and the workflow -------------------------------------------------------------------------------------
@get(_BASE, name="designer-workflow", sync_to_thread=True)
def workflow_page(request: HTMXRequest, app_name: PathText, entity_key: PathText) -> Template:
    """The workflow editor of an entity (a form to start one when it has none)."""
    service = drafts(request)
    return Template(template_name="designer/workflow.html",
                    context=workflow_context(service, service.get(app_name), entity_key))


@post(_BASE + "/start", name="designer-workflow-start", status_code=200, sync_to_thread=True)
def start(request: HTMXRequest, app_name: PathText, entity_key: PathText, body: RawBody) -> Response[Any]:
    """Start a workflow: on an existing choice field, or on a new one with a first and a last state."""
    data = form_data(body)
    field = last(data, "field") or None
    states = [s for s in data.get("state", []) if s.strip()]
    return _change(request, app_name, entity_key, data, lambda doc: wf.start_workflow(
        doc, entity_key, field=field, title=last(data, "title") or "Status", states=states))


@post(_BASE + "/remove", name="designer-workflow-remove", status_code=200, sync_to_thread=True)
def remove(request: HTMXRequest, app_name: PathText, entity_key: PathText, body: RawBody) -> Response[Any]:
    """Remove the states and transitions; the state field stays as an ordinary choice field."""
    data = form_data(body)
    return _change(request, app_name, entity_key, data, lambda doc: wf.remove_workflow(doc, entity_key))


@post(_BASE + "/initial", name="designer-workflow-initial", status_code=200, sync_to_thread=True)
def initial(request: HTMXRequest, app_name: PathText, entity_key: PathText, body: RawBody) -> Response[Any]:
    """Where new records start."""
    data = form_data(body)
    return _change(request, app_name, entity_key, data,
                   lambda doc: wf.set_initial(doc, entity_key, last(data, "initial")))


# --- states --------------------------------------------------------------------------------------------------------
@post(_BASE + "/states", name="designer-workflow-add-state", status_code=200, sync_to_thread=True)
def add_state(request: HTMXRequest, app_name: PathText, entity_key: PathText, body: RawBody) -> Response[Any]:
    """Add a state (title, colour, terminal)."""
    data = form_data(body)
    return _change(request, app_name, entity_key, data, lambda doc: wf.add_state(
        doc, entity_key, last(data, "title"), color=last(data, "color") or None,
        terminal=last(data, "terminal") == "on"))


@post(_STATE, name="designer-workflow-state", status_code=200, sync_to_thread=True)
def update_state(request: HTMXRequest, app_name: PathText, entity_key: PathText, value: PathText,
                 body: RawBody) -> Response[Any]:
    """Change a state's title, colour or whether it is terminal."""
    data = form_data(body)
    return _change(request, app_name, entity_key, data, lambda doc: wf.update_state(
        doc, entity_key, value, title=last(data, "title"), color=last(data, "color"),
        terminal=last(data, "terminal") == "on"))


@post(_STATE + "/move", name="designer-workflow-move-state", status_code=200, sync_to_thread=True)
def move_state(request: HTMXRequest, app_name: PathText, entity_key: PathText, value: PathText,
               body: RawBody) -> Response[Any]:
    """Move a state one place up or down (`to`)."""
    data = form_data(body)
    values = [s["value"] for s in (wf.workflow_settings(drafts(request).get(app_name).document, entity_key)
                                   or {"states": []})["states"]]
    here = values.index(value) if value in values else 0
    index = here - 1 if last(data, "to") == "up" else here + 1
    return _change(request, app_name, entity_key, data,
                   lambda doc: wf.move_state(doc, entity_key, value, max(0, index)))


@post(_STATE + "/remove", name="designer-workflow-remove-state", status_code=200, sync_to_thread=True)
def remove_state(request: HTMXRequest, app_name: PathText, entity_key: PathText, value: PathText,
                 body: RawBody) -> Response[Any]:
    """Remove a state (refused while transitions use it; they are named)."""
    data = form_data(body)
    return _change(request, app_name, entity_key, data, lambda doc: wf.remove_state(doc, entity_key, value))


# --- transitions ---------------------------------------------------------------------------------------------------
@post(_BASE + "/transitions", name="designer-workflow-add-transition", status_code=200, sync_to_thread=True)
def add_transition(request: HTMXRequest, app_name: PathText, entity_key: PathText, body: RawBody) -> Response[Any]:
    """Add a transition: title, from states, to state, roles, confirmation."""
    data = form_data(body)
    return _change(request, app_name, entity_key, data, lambda doc: wf.add_transition(
        doc, entity_key, last(data, "title"), [v for v in data.get("from", []) if v], last(data, "to"),
        roles=[r for r in data.get("roles", []) if r], confirm=last(data, "confirm").strip() or None))


@post(_TRANSITION, name="designer-workflow-transition", status_code=200, sync_to_thread=True)
def update_transition(request: HTMXRequest, app_name: PathText, entity_key: PathText, name: PathText,
                      body: RawBody) -> Response[Any]:
    """Change a transition; its guard rules are edited row by row (`_action`: add_rule, rule_remove:i)."""
    data = form_data(body)
    rules = rules_from_post(data, last(data, "_action"))
    return _change(request, app_name, entity_key, data, lambda doc: wf.update_transition(
        doc, entity_key, name, title=last(data, "title"), sources=[v for v in data.get("from", []) if v],
        to=last(data, "to"), roles=[r for r in data.get("roles", []) if r], confirm=last(data, "confirm").strip(),
        guard=rules, guard_message=last(data, "guard_message").strip()), typed={"name": name, "guard": rules})


@post(_TRANSITION + "/remove", name="designer-workflow-remove-transition", status_code=200, sync_to_thread=True)
def remove_transition(request: HTMXRequest, app_name: PathText, entity_key: PathText, name: PathText,
                      body: RawBody) -> Response[Any]:
    """Remove a transition."""
    data = form_data(body)
    return _change(request, app_name, entity_key, data, lambda doc: wf.remove_transition(doc, entity_key, name))


@post(_TRANSITION + "/actions", name="designer-workflow-add-action", status_code=200, sync_to_thread=True)
def add_action(request: HTMXRequest, app_name: PathText, entity_key: PathText, name: PathText,
               body: RawBody) -> Response[Any]:
    """Add an action to a transition (set a field, add a note, send a webhook)."""
    data = form_data(body)
    spec = {"kind": last(data, "kind"), "field": last(data, "field") or None, "value": last(data, "value").strip(),
            "text": last(data, "text").strip(), "url": last(data, "url").strip()}
    return _change(request, app_name, entity_key, data, lambda doc: wf.add_action(doc, entity_key, name, spec))


@post(_TRANSITION + "/actions/{index:int}/remove", name="designer-workflow-remove-action", status_code=200,
      sync_to_thread=True)
def remove_action(request: HTMXRequest, app_name: PathText, entity_key: PathText, name: PathText, index: PathInt,
                  body: RawBody) -> Response[Any]:
    """Remove one of a transition's actions."""
    data = form_data(body)
    return _change(request, app_name, entity_key, data,
                   lambda doc: wf.remove_action(doc, entity_key, name, index))


ROUTES = [workflow_page, start, remove, initial, add_state, update_state, move_state, remove_state, add_transition,
          update_transition, remove_transition, add_action, remove_action]
