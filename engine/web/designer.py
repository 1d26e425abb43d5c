"""The app designer's pages: the apps and their drafts, creating an app (blank, from a template, from an uploaded
file), downloading a published definition, a draft's entities and problems, and Review and publish.

Every edit goes into the draft (engine.designer.drafts); nothing changes for users until Publish applies the
migration plan. Only designers (Principal.can_design) reach these pages: others get the 403 page. The entity
editor's handlers live in engine.web.designer_editor and are registered here, in the one designer Router."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Router, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, RawBody
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Response, Template

from engine.designer import edits
from engine.designer.drafts import Draft, DraftConflict, DraftService, templates
from engine.designer.keys import DESIGNER_PAGES, entity_key_from_label, key_from_label
from engine.errors import CrmError, DefinitionError, PermissionDenied, PlanRefused, Problem
from engine.storage.apps import AppService
from engine.web.access import EXCEPTION_HANDLERS
from engine.web.context import current_user, database
from engine.web.posts import FormData, form_data, go, last

__all__ = ["HANDLERS", "blocked_links", "designers_only", "drafts", "form_data", "fragment_or_page", "go", "last",
           "revision_of"]

PathText = FromPath[str]
QueryText = FromQuery[str]


# --- shared with the entity editor ---------------------------------------------------------------------------------
def designers_only(connection: Any, _handler: Any) -> None:
    """Router guard: the designer pages are for principals who may change app definitions."""
    if not current_user(connection).can_design:
        raise PermissionDenied("design", "apps")


def drafts(request: Request[Any, Any, Any]) -> DraftService:
    """The drafts service acting as the current user."""
    return DraftService(database(request), current_user(request))


def revision_of(data: FormData) -> int:
    """The draft revision the page was showing (-1 when missing, which always conflicts)."""
    text = last(data, "revision")
    return int(text) if text.isdigit() else -1


def fragment_or_page(request: HTMXRequest, fragment: str, page: str, context: dict[str, Any], status: int = 200,
                     headers: dict[str, str] | None = None) -> Template:
    """An editor's answer: htmx gets the fragment it swaps in (always 200: htmx swaps nothing else), a plain
    request the whole page with `status`."""
    return Template(template_name=fragment if request.htmx else page, context=context,
                    status_code=200 if request.htmx else status, headers=headers or {})


def _problem_list(exc: CrmError) -> list[Problem]:
    """An error as path + plain message pairs, for the lists the pages show."""
    if isinstance(exc, DefinitionError):
        return list(exc.problems)
    if isinstance(exc, edits.EditError):
        return [Problem(exc.path, exc.message)]
    return [Problem("", line) for line in exc.lines()]


# --- the apps ------------------------------------------------------------------------------------------------------
def _apps_context(request: Request[Any, Any, Any], **extra: Any) -> dict[str, Any]:
    service = drafts(request)
    published = AppService(database(request)).list()
    in_progress = {d.app: d for d in service.list()}
    rows = [{"name": a.name, "title": a.title, "version": a.version, "draft": in_progress.pop(a.name, None)}
            for a in published]
    rows += [{"name": d.app, "title": _draft_title(d), "version": None, "draft": d} for d in in_progress.values()]
    context = {"title": "App designer", "apps": rows, "templates": templates(), "errors": [],
               "form": {}, "problems": []}
    context.update(extra)
    return context


def _draft_title(draft: Draft) -> str:
    return str(draft.document.get("title") or draft.app)


@get("/", name="designer-apps", sync_to_thread=True)
def apps_page(request: HTMXRequest) -> Template:
    """The apps (published with their version, and drafts in progress) and the ways to start a new one."""
    return Template(template_name="designer/apps.html", context=_apps_context(request))


@get("/key-for", name="designer-key-for", sync_to_thread=True)
def key_for(request: HTMXRequest, label: QueryText = "", title: QueryText = "", app: QueryText = "",
            entity: QueryText = "", target: QueryText = "") -> Template:
    """The key a label would get (shown while people type it): an app key unique among the apps, an entity key
    unique in the draft, or a field key unique in the entity (the label comes as `label` or `title`)."""
    label = label or title
    taken: set[str] = set()
    if not app:
        taken = {a.name for a in AppService(database(request)).list()} | {d.app for d in drafts(request).list()}
        taken |= DESIGNER_PAGES
    elif entity:
        service = drafts(request)
        fields = service.get(app).document.get("$defs", {}).get(entity, {}).get("properties", {})
        taken = set(fields) | service.published_keys(app, entity)
    else:
        taken = set(drafts(request).get(app).document.get("$defs", {}))
    key = "" if not label.strip() else entity_key_from_label(label, taken) if app and not entity \
        else key_from_label(label, taken)
    return Template(template_name="designer/key.html", context={"key": key, "target": target})


def _create(request: HTMXRequest, data: FormData, upload: bytes | None = None) -> Response[Any]:
    name, title, template = last(data, "name").strip(), last(data, "title").strip(), last(data, "template")
    service = drafts(request)
    try:
        if upload is None and not title:
            raise edits.EditError("title", "give the app a title")
        if upload is None and not name:
            name = key_from_label(title, {a.name for a in AppService(database(request)).list()} | DESIGNER_PAGES)
        draft = service.create(name, title, template=template or None, upload=upload)
    except CrmError as exc:
        context = _apps_context(request, problems=_problem_list(exc), form=data,
                                failed="import" if upload is not None else ("template" if template else "blank"))
        return Template(template_name="designer/apps.html", context=context, status_code=422)
    return Redirect(f"/designer/{draft.app}", status_code=303)


@post("/new", name="designer-create", status_code=303, sync_to_thread=True)
def create_app(request: HTMXRequest, body: RawBody) -> Response[Any]:
    """Start a draft of a new app: blank, or a copy of a template (apps/*.json)."""
    return _create(request, form_data(body))


@post("/import", name="designer-import", status_code=303, sync_to_thread=True)
def import_app(request: HTMXRequest,
               data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]) -> Response[Any]:
    """Start a draft from an uploaded JSON definition; its problems are listed with their JSON paths."""
    upload = data.get("file")
    raw = upload.file.read() if isinstance(upload, UploadFile) else b""
    fields = {k: [v] for k, v in data.items() if isinstance(v, str)}
    if not raw:
        context = _apps_context(request, problems=[Problem("", "choose a JSON file to import")], form=fields,
                                failed="import")
        return Template(template_name="designer/apps.html", context=context, status_code=422)
    return _create(request, fields, upload=raw)


@get("/{app_name:str}/export", name="designer-export", sync_to_thread=True)
def export_app(request: HTMXRequest, app_name: PathText) -> Response[bytes]:
    """The published definition as canonical JSON, as a download."""
    content = AppService(database(request)).export(app_name)
    return Response(content, media_type="application/json",
                    headers={"content-disposition": f'attachment; filename="{app_name}.json"'})


# --- one draft -----------------------------------------------------------------------------------------------------
def draft_context(request: Request[Any, Any, Any], draft: Draft, **extra: Any) -> dict[str, Any]:
    """What the draft page shows: the entities, the draft's problems, who saved it when."""
    entities = [{"key": key, "title": raw.get("title") or key, "fields": len(raw.get("properties", {})),
                 "plural": (raw.get("x-crm-entity") or {}).get("plural")}
                for key, raw in draft.document.get("$defs", {}).items()]
    context = {"title": f"Designer: {_draft_title(draft)}", "draft": draft, "app_title": _draft_title(draft),
               "entities": entities, "problems": drafts(request).problems(draft), "errors": [],
               "alert": None}
    context.update(extra)
    return context


@get("/{app_name:str}", name="designer-draft", sync_to_thread=True)
def draft_page(request: HTMXRequest, app_name: PathText) -> Template:
    """A draft: its entities, its problems, Review and publish, Discard."""
    draft = drafts(request).get(app_name)
    return Template(template_name="designer/draft.html", context=draft_context(request, draft))


@post("/{app_name:str}/entities", name="designer-add-entity", status_code=200, sync_to_thread=True)
def add_entity(request: HTMXRequest, app_name: PathText, body: RawBody) -> Response[Any]:
    """Add an entity by its label; then open its editor."""
    data = form_data(body)
    service = drafts(request)
    title = last(data, "title").strip()
    try:
        if not title:
            raise edits.EditError("title", "type a name for the new entity, e.g. Customer")
        _, key = service.edit(app_name, revision_of(data), lambda doc: edits.add_entity(doc, title))
    except (edits.EditError, DraftConflict) as exc:
        draft = service.get(app_name)
        context = draft_context(request, draft, errors=[] if isinstance(exc, DraftConflict) else _problem_list(exc),
                                alert=str(exc) if isinstance(exc, DraftConflict) else None, typed=title)
        return Template(template_name="designer/draft.html", context=context,
                        status_code=200 if request.htmx else 409 if isinstance(exc, DraftConflict) else 422)
    return go(request, f"/designer/{app_name}/{key}")


@post("/{app_name:str}/discard", name="designer-discard", status_code=303, sync_to_thread=True)
def discard_draft(request: HTMXRequest, app_name: PathText) -> Response[Any]:
    """Throw the draft away; the published app stays as it is."""
    drafts(request).discard(app_name)
    return go(request, "/designer")


# --- review and publish --------------------------------------------------------------------------------------------
def blocked_links(request: Request[Any, Any, Any], app_name: str, plan: Any) -> list[dict[str, Any]]:
    """The plan's refused changes, each with links to the stored records that block it (when they can be opened)."""
    try:
        published = set(AppService(database(request)).current(app_name).entity_map())
    except CrmError:
        published = set()
    out = []
    for b in plan.blockers:
        records = [{"text": text, "url": f"/apps/{app_name}/{b.entity}/{rid}" if b.entity in published else None}
                   for text, rid in zip(b.records, b.record_ids, strict=True)]
        out.append({"blocker": b, "lines": b.describe(), "records": records, "more": max(b.count - len(records), 0)})
    return out


def _publish_context(request: Request[Any, Any, Any], draft: Draft, **extra: Any) -> dict[str, Any]:
    service = drafts(request)
    problems = service.problems(draft)
    plan = None if problems else service.plan(draft)
    context = {"title": f"Publish {_draft_title(draft)}", "draft": draft, "app_title": _draft_title(draft),
               "problems": problems, "plan": plan, "steps": [s.describe() for s in plan.steps] if plan else [],
               "blocked": blocked_links(request, draft.app, plan) if plan else [], "refused": [], "alert": None}
    context.update(extra)
    return context


@get("/{app_name:str}/publish", name="designer-review", sync_to_thread=True)
def review_page(request: HTMXRequest, app_name: PathText) -> Template:
    """The migration plan of the draft, and the button that applies it."""
    draft = drafts(request).get(app_name)
    return Template(template_name="designer/publish.html", context=_publish_context(request, draft))


@post("/{app_name:str}/publish", name="designer-publish", status_code=200, sync_to_thread=True)
def publish(request: HTMXRequest, app_name: PathText, body: RawBody) -> Template:
    """Apply the draft's plan (the revision the page showed). Refused: the reasons, and the draft is kept."""
    service = drafts(request)
    try:
        plan = service.publish(app_name, revision_of(form_data(body)))
    except (PlanRefused, DefinitionError, DraftConflict, edits.EditError) as exc:
        draft = service.get(app_name)
        refused = [str(p) for p in _problem_list(exc)] if not isinstance(exc, DraftConflict) else []
        context = _publish_context(request, draft, refused=refused,
                                   alert=str(exc) if isinstance(exc, DraftConflict) else None)
        return Template(template_name="designer/publish.html", context=context,
                        status_code=200 if request.htmx else 409)
    app = AppService(database(request)).current(app_name)
    first = app.entities[0].key if app.entities else None
    context = {"title": f"Published {app.title}", "published": app, "plan_lines": plan.lines(),
               "app_url": f"/apps/{app.name}/{first}" if first else "/"}
    return Template(template_name="designer/published.html", context=context)


def _routes() -> list[Any]:
    from engine.web.designer_editor import ROUTES as EDITOR
    from engine.web.designer_versions import ROUTES as VERSIONS
    from engine.web.designer_workflows import ROUTES as WORKFLOWS

    return [apps_page, key_for, create_app, import_app, export_app, draft_page, add_entity, discard_draft,
            review_page, publish, *VERSIONS, *WORKFLOWS, *EDITOR]


# One router for every designer handler (see engine.web.records on why handlers register once).
HANDLERS = [Router(path="/designer", guards=[designers_only], exception_handlers=EXCEPTION_HANDLERS,
                   route_handlers=_routes())]
