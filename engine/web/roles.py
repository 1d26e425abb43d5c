"""Roles in the browser: admins list, create, change and delete roles — per app and entity the six actions, all or
only own records (by an owner field), and per field hidden or read-only. Every change goes to the audit log."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import sqlalchemy as sa
from litestar import Request, Router, get, post
from litestar.params import FromPath, RawBody
from litestar.response import Redirect, Template

from engine.auth.audit import audit_in
from engine.auth.principal import ACTIONS, Principal
from engine.errors import NotFoundError, PermissionDenied
from engine.schema import App
from engine.storage.apps import AppService
from engine.storage.database import Database, crm_roles
from engine.storage.migrate import utcnow
from engine.web import context
from engine.web.access import EXCEPTION_HANDLERS, actor_name

__all__ = ["HANDLERS", "permissions_from_form"]

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
FIELD_ACCESS = (("", "Visible"), ("read_only", "Read-only"), ("hidden", "Hidden"))


def _admin(request: Request[Any, Any, Any]) -> Database:
    """The database, for admins only (a plain actor name is the trusted system); PermissionDenied otherwise."""
    user = context.current_user(request)
    if isinstance(user, Principal) and not user.is_admin:
        raise PermissionDenied("manage", "roles")
    return context.database(request)


def _form(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _apps(db: Database) -> list[App]:
    service = AppService(db)
    return [service.current(a.name) for a in service.list()]


def permissions_from_form(apps: list[App], form: dict[str, str], keep: dict[str, Any]) -> dict[str, Any]:
    """The permission document the role editor posted: only installed apps, entities and fields are read (the
    names come from the definitions, never from the form); entries for other apps (and "*") in `keep` stay."""
    installed = {a.name for a in apps}
    doc: dict[str, Any] = {k: v for k, v in keep.items() if k not in installed}
    for app in apps:
        for entity in app.entities:
            prefix = f"p.{app.name}.{entity.key}."
            grant: dict[str, Any] = {a: True for a in ACTIONS if form.get(prefix + a)}
            if not grant:
                continue
            fields = entity.field_map()
            if form.get(prefix + "records") == "own":
                grant["records"] = "own"
                owner = form.get(prefix + "owner_field", "")
                if owner in fields:
                    grant["owner_field"] = owner
            access = {k: form[prefix + "f." + k] for k in fields
                      if form.get(prefix + "f." + k) in ("hidden", "read_only")}
            if access:
                grant["fields"] = access
            doc.setdefault(app.name, {})[entity.key] = grant
    return doc


def _role(db: Database, name: str) -> dict[str, Any]:
    with db.read() as conn:
        row = conn.execute(sa.select(crm_roles).where(crm_roles.c.name == name)).mappings().first()
    if row is None:
        raise NotFoundError(f"there is no role '{name}'")
    return dict(row)


def _editor(request: Request[Any, Any, Any], db: Database, role: dict[str, Any] | None, errors: list[str],
            status: int = 200) -> Template:
    context_ = {"title": f"Role {role['title']}" if role and role.get("updated_at") else "New role", "role": role
                or {"name": "", "title": "", "description": "", "designer": False, "permissions": {}},
                "apps": _apps(db), "actions": ACTIONS, "field_access": FIELD_ACCESS, "errors": errors,
                "is_new": not (role and role.get("updated_at"))}
    return Template(template_name="roles.html", context={**context_, "mode": "edit"}, status_code=status)


def _changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What an edit changed, for the audit log: {key: [old, new]}; permissions per app and entity."""
    out: dict[str, Any] = {k: [old.get(k), new[k]] for k in ("title", "description", "designer")
                           if old.get(k) != new[k]}
    before, after = old.get("permissions") or {}, new["permissions"]
    for app in sorted(set(before) | set(after)):
        for entity in sorted(set(before.get(app, {})) | set(after.get(app, {}))):
            was, now = before.get(app, {}).get(entity), after.get(app, {}).get(entity)
            if was != now:
                out[f"permissions.{app}.{entity}"] = [was, now]
    return out


def _values(apps: list[App], form: dict[str, str], keep: dict[str, Any]) -> dict[str, Any]:
    return {"title": " ".join(form.get("title", "").split())[:200], "description": form.get("description", "").strip(),
            "designer": bool(form.get("designer")), "permissions": permissions_from_form(apps, form, keep)}


@get("/roles", name="roles", sync_to_thread=True)
def list_roles(request: Request[Any, Any, Any]) -> Template:
    """Every role."""
    db = _admin(request)
    with db.read() as conn:
        roles = [dict(r) for r in conn.execute(sa.select(crm_roles).order_by(crm_roles.c.name)).mappings()]
    return Template(template_name="roles.html", context={"title": "Roles", "roles": roles, "mode": "list"})


@get("/roles/new", name="role-new", sync_to_thread=True)
def new_role(request: Request[Any, Any, Any]) -> Template:
    """A blank role editor."""
    return _editor(request, _admin(request), None, [])


@post("/roles/new", name="role-create", sync_to_thread=True, status_code=200)
def create_role(request: Request[Any, Any, Any], body: RawBody) -> Template | Redirect:
    """Create a role; the editor again with the problems when the name or title is missing or taken."""
    db = _admin(request)
    form = _form(body)
    name = form.get("name", "").strip()
    values = _values(_apps(db), form, {})
    errors = [] if _NAME.match(name) else ["The name must start with a letter and use only a-z, 0-9, _ and -."]
    if not values["title"]:
        errors.append("Give the role a title.")
    if not errors:
        try:
            with db.write() as conn:
                conn.execute(crm_roles.insert().values(name=name, updated_at=utcnow(), **values))
                audit_in(conn, actor_name(request), "role_created", name, values)
            return Redirect(f"/roles/{name}", status_code=303)
        except sa.exc.IntegrityError:
            errors.append(f"There is already a role named '{name}'.")
    return _editor(request, db, {"name": name, **values}, errors, status=422)


@get("/roles/{name:str}", name="role-edit", sync_to_thread=True)
def edit_role(request: Request[Any, Any, Any], name: FromPath[str]) -> Template:
    """The role editor."""
    db = _admin(request)
    return _editor(request, db, _role(db, name), [])


@post("/roles/{name:str}", name="role-update", sync_to_thread=True, status_code=200)
def update_role(request: Request[Any, Any, Any], name: FromPath[str], body: RawBody) -> Template | Redirect:
    """Save a role; the audit row lists what changed."""
    db = _admin(request)
    old = _role(db, name)
    values = _values(_apps(db), _form(body), old["permissions"] or {})
    if not values["title"]:
        return _editor(request, db, {**old, **values}, ["Give the role a title."], status=422)
    changes = _changes(old, values)
    if changes:
        with db.write() as conn:
            conn.execute(crm_roles.update().where(crm_roles.c.name == name).values(updated_at=utcnow(), **values))
            audit_in(conn, actor_name(request), "role_changed", name, changes)
    return Redirect(f"/roles/{name}", status_code=303)


@post("/roles/{name:str}/delete", name="role-delete", sync_to_thread=True, status_code=200)
def delete_role(request: Request[Any, Any, Any], name: FromPath[str]) -> Redirect:
    """Delete a role (users lose what it granted)."""
    db = _admin(request)
    old = _role(db, name)
    with db.write() as conn:
        conn.execute(crm_roles.delete().where(crm_roles.c.name == name))
        audit_in(conn, actor_name(request), "role_deleted", name, {"title": old["title"]})
    return Redirect("/roles", status_code=303)


HANDLERS = [Router(path="/", exception_handlers=EXCEPTION_HANDLERS,
                   route_handlers=[list_roles, new_role, create_role, edit_role, update_role, delete_role])]
