"""The designer's pages about a published app as a whole: its version history with the differences between any two
versions, rollback to an earlier version (its migration plan first, applied after confirmation as a new version),
each version as a JSON download; the relations overview; and deleting the app (archived, after typing its name).

Registered in the one designer Router (engine.web.designer), so only designers reach them."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath, RawBody
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Response, Template
from markupsafe import Markup

from engine.errors import CrmError, NotFoundError, PlanRefused
from engine.schema import App, load_definition
from engine.schema.diagrams import relations_svg
from engine.schema.diff import Change, diff_apps, short
from engine.storage.apps import AppService, VersionInfo
from engine.storage.records import RecordService
from engine.web.context import current_user, database
from engine.web.designer import blocked_links, drafts
from engine.web.posts import form_data, go, last

__all__ = ["ROUTES"]

PathText = FromPath[str]
PathInt = FromPath[int]
_VERSIONS = "/{app_name:str}/versions"
_VERSION = _VERSIONS + "/{version:int}"


# --- the history and the differences -------------------------------------------------------------------------------
def _history(request: Request[Any, Any, Any], app_name: str) -> tuple[App, list[VersionInfo]]:
    """The published app and its versions, oldest first (NotFoundError, a 404 page, for an app not published)."""
    apps = AppService(database(request))
    return apps.current(app_name), apps.history(app_name)


def _number(text: str | None, versions: list[VersionInfo], default: int) -> int:
    """A version number from the query string (`default` when absent); NotFoundError for one the app never had."""
    if not text:
        return default
    if not text.isdigit() or int(text) not in {v.version for v in versions}:
        raise NotFoundError(f"there is no version {text}")
    return int(text)


def _known(version: int, versions: list[VersionInfo]) -> None:
    """NotFoundError (a 404 page) for a version the app never had."""
    _number(str(version), versions, version)


def _setting(parts: list[str]) -> str:
    """A JSON path inside a field or entity in words: the dialect's wrappers left out."""
    words = ("workflow" if p == "x-crm-workflow" else p for p in parts if p not in ("x-crm-field", "x-crm-entity"))
    text = "/".join(words)
    return {"title": "label", "description": "help text"}.get(text, text)


def _title(apps: tuple[App, App], entity: str, field: str | None = None) -> str:
    """An entity's or field's label in the newer definition, else in the older one; the key when neither has it."""
    for app in apps:
        e = app.entity_map().get(entity)
        if e is not None and field is None:
            return e.title
        found = next((f for f in e.fields if f.key == field), None) if e is not None else None
        if found is not None:
            return found.title
    return field or entity


def _change_row(change: Change, old: App, new: App) -> dict[str, Any]:
    """One difference as the page shows it: which entity and field (by their labels), the setting, and what."""
    parts = change.path.split("/")
    row: dict[str, Any] = {"change": change, "what": change.what, "before": short(change.before),
                           "after": short(change.after), "entity": None, "field": None, "setting": "",
                           "text": change.describe()}
    if parts[0] != "$defs" or len(parts) < 2:
        row["setting"] = _setting(parts)
        return row
    both = (new, old)
    row["entity"] = {"key": parts[1], "title": _title(both, parts[1])}
    if len(parts) >= 4 and parts[2] == "properties":
        row["field"] = {"key": parts[3], "title": _title(both, parts[1], parts[3])}
        row["setting"] = _setting(parts[4:])
    else:
        row["setting"] = _setting(parts[2:])
    return row


def _diff(apps: AppService, app_name: str, older: int, newer: int) -> list[dict[str, Any]]:
    old, new = apps.definition_at(app_name, older), apps.definition_at(app_name, newer)
    return [_change_row(c, old, new) for c in diff_apps(old, new)]


def _versions_context(request: Request[Any, Any, Any], app_name: str) -> dict[str, Any]:
    app, versions = _history(request, app_name)
    query = request.query_params
    current = versions[-1].version
    previous = versions[-2].version if len(versions) > 1 else current
    older = _number(query.get("from"), versions, previous)
    newer = _number(query.get("to"), versions, current)
    rolled = query.get("rolled_back", "")
    draft = drafts(request).get(app_name)
    return {"title": f"Versions of {app.title}", "app": None, "published": app, "versions": versions[::-1],
            "current": current, "older": older, "newer": newer,
            "changes": _diff(AppService(database(request)), app_name, older, newer),
            "rolled_back": rolled if rolled.isdigit() else None,
            "rolled_note": versions[-1].note if rolled else None, "open_draft": draft if draft.revision else None}


@get(_VERSIONS, name="designer-versions", sync_to_thread=True)
def versions_page(request: HTMXRequest, app_name: PathText) -> Template:
    """Every version, newest first, with the differences between two of them (previous and current unless chosen
    with ?from=N&to=M), a download and a rollback control per version."""
    return Template(template_name="designer/versions.html", context=_versions_context(request, app_name))


@get(_VERSIONS + "/diff", name="designer-versions-diff", sync_to_thread=True)
def diff_page(request: HTMXRequest, app_name: PathText) -> Template:
    """The differences between ?from=N and ?to=M: only that section for htmx, the whole versions page otherwise."""
    context = _versions_context(request, app_name)
    partial = request.htmx and not request.htmx.history_restore_request  # a restore needs the whole page
    name = "designer/version_diff.html" if partial else "designer/versions.html"
    return Template(template_name=name, context=context)


@get(_VERSION + "/export", name="designer-version-export", sync_to_thread=True)
def export_version(request: HTMXRequest, app_name: PathText, version: PathInt) -> Response[bytes]:
    """One version's definition as canonical JSON, as a download."""
    _, versions = _history(request, app_name)
    _known(version, versions)
    content = AppService(database(request)).export(app_name, version)
    return Response(content, media_type="application/json",
                    headers={"content-disposition": f'attachment; filename="{app_name}-v{version}.json"'})


# --- rollback ------------------------------------------------------------------------------------------------------
def _rollback_context(request: Request[Any, Any, Any], app_name: str, version: int, **extra: Any) -> dict[str, Any]:
    app, versions = _history(request, app_name)
    _known(version, versions)
    apps = AppService(database(request))
    current = versions[-1].version
    plan = apps.plan(apps.definition_at(app_name, version))
    draft = drafts(request).get(app_name)
    context = {"title": f"Roll back {app.title} to version {version}", "published": app, "version": version,
               "current": current, "plan": plan, "steps": [s.describe() for s in plan.steps],
               "blocked": blocked_links(request, app_name, plan),
               "changes": _diff(apps, app_name, current, version) if version != current else [],
               "open_draft": draft if draft.revision else None, "refused": [], "alert": None}
    context.update(extra)
    return context


@get(_VERSION + "/rollback", name="designer-rollback-review", sync_to_thread=True)
def rollback_review(request: HTMXRequest, app_name: PathText, version: PathInt) -> Template:
    """What rolling back to a version would do to the data (the migration plan), and the button that does it."""
    return Template(template_name="designer/version_rollback.html",
                    context=_rollback_context(request, app_name, version))


@post(_VERSION + "/rollback", name="designer-rollback", status_code=200, sync_to_thread=True)
def rollback(request: HTMXRequest, app_name: PathText, version: PathInt, body: RawBody) -> Response[Any]:
    """Apply the rollback as a new version, if the app is still at the version the review showed. Refused: the
    reasons, and nothing changed."""
    seen = last(form_data(body), "current")
    apps = AppService(database(request))
    status = 200 if request.htmx else 409
    if seen != str(apps.current(app_name).version):
        context = _rollback_context(request, app_name, version, alert=(
            "The app was changed after you opened this page: nothing was rolled back. Review the plan again."))
        return Template(template_name="designer/version_rollback.html", context=context, status_code=status)
    try:
        apps.rollback(app_name, version, actor=current_user(request))
    except PlanRefused as exc:
        context = _rollback_context(request, app_name, version, refused=exc.lines())
        return Template(template_name="designer/version_rollback.html", context=context, status_code=status)
    return go(request, f"/designer/{app_name}/versions?rolled_back={version}")


# --- relations -----------------------------------------------------------------------------------------------------
_ON_DELETE = {"restrict": "deleting the target is refused while this refers to it",
              "set-null": "deleting the target empties this field", "cascade": "deleting the target deletes this too"}


def _relations(app: App) -> list[dict[str, Any]]:
    """Every relation field as entity -> field -> target, with its on-delete rule and how many it links."""
    titles = {e.key: e.title for e in app.entities}
    return [{"entity": e, "field": f, "target": f.target, "target_title": titles.get(f.target or "", f.target),
             "many": f.kind == "relation_many",
             "on_delete": "unlinked when the target is deleted" if f.kind == "relation_many"
             else _ON_DELETE.get(f.on_delete or "restrict", f.on_delete)}
            for e in app.entities for f in e.fields if f.kind in ("relation", "relation_many")]


@get("/{app_name:str}/relations", name="designer-relations", sync_to_thread=True)
def relations_page(request: HTMXRequest, app_name: PathText) -> Template:
    """The draft's entities and their relations as a diagram and as a list; the published version's while the
    draft has problems."""
    service = drafts(request)
    draft = service.get(app_name)
    problems = service.problems(draft)
    app = None
    if not problems:
        app = load_definition(draft.document)
    elif not draft.is_new_app:
        app = AppService(database(request)).current(app_name)
    context = {"title": f"Relations of {app.title if app else app_name}", "draft": draft, "app_title":
               str(draft.document.get("title") or app_name), "shown": app, "problems": problems,
               "svg": Markup(relations_svg(app)) if app else "",  # the SVG escapes every label
               "relations": _relations(app) if app else []}
    return Template(template_name="designer/relations.html", context=context)


# --- delete --------------------------------------------------------------------------------------------------------
def _delete_context(request: Request[Any, Any, Any], app_name: str, **extra: Any) -> dict[str, Any]:
    app = AppService(database(request)).current(app_name)
    records = RecordService(database(request), app_name)
    draft = drafts(request).get(app_name)
    context = {"title": f"Delete {app.title}", "published": app, "typed": "", "error": None,
               "entities": [{"entity": e, "count": records.count(e.key)} for e in app.entities],
               "open_draft": draft if draft.revision else None}
    context.update(extra)
    return context


@get("/{app_name:str}/delete", name="designer-delete-review", sync_to_thread=True)
def delete_review(request: HTMXRequest, app_name: PathText) -> Template:
    """What deleting the app does, and the form that asks for its name to confirm."""
    return Template(template_name="designer/delete.html", context=_delete_context(request, app_name))


@post("/{app_name:str}/delete", name="designer-delete", status_code=303, sync_to_thread=True)
def delete_app(request: HTMXRequest, app_name: PathText, body: RawBody) -> Response[Any]:
    """Archive every entity of the app (when its name was typed), then discard its open draft."""
    typed = last(form_data(body), "confirm_name").strip()
    if typed != app_name:
        error = "type the app's key exactly to confirm" if typed else "type the app's key to confirm"
        context = _delete_context(request, app_name, typed=typed, error=error)
        return Template(template_name="designer/delete.html", context=context,
                        status_code=200 if request.htmx else 422)
    try:
        AppService(database(request)).delete(app_name, actor=current_user(request))
    except CrmError as exc:
        context = _delete_context(request, app_name, typed=typed, error=str(exc))
        return Template(template_name="designer/delete.html", context=context, status_code=409)
    drafts(request).discard(app_name)
    return go(request, "/designer")


ROUTES: list[Any] = [versions_page, diff_page, export_version, rollback_review, rollback, relations_page,
                     delete_review, delete_app]
