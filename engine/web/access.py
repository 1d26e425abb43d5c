"""The web pages' view of permissions: the request's scope as the acting principal sees it, and the 403 page.

The records service decides (and refuses with PermissionDenied); pages only leave out what would be refused:
fields hidden from the principal are marked hidden and read-only ones read-only in the scope's definition, so
lists, forms and record pages (which already leave out hidden fields and lock read-only ones) follow the roles."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.response import Template

from engine.auth.principal import ACTIONS, Principal
from engine.errors import PermissionDenied
from engine.schema import App, Entity
from engine.web import context
from engine.web.context import Scope
from engine.workflows.definition import parse_workflow

__all__ = ["EXCEPTION_HANDLERS", "RESTRICTED", "actor_name", "allowed", "forbidden", "linked_titles", "require",
           "scope", "state_field"]

#: What stands, without a link, for a linked record of an entity the acting principal may not read.
RESTRICTED = "(restricted)"


def _entity_for(principal: Principal, app: App, entity: Entity) -> Entity:
    grant = principal.grant(app.name, entity.key)
    if not grant.hidden and not grant.read_only:
        return entity
    fields = tuple(msgspec.structs.replace(f, hidden=True, searchable=False) if f.key in grant.hidden
                   else msgspec.structs.replace(f, read_only=True) if f.key in grant.read_only else f
                   for f in entity.fields)
    return msgspec.structs.replace(entity, fields=fields)


def state_field(entity: Entity) -> str | None:
    """The key of the entity's workflow state field (None when its workflow is no state machine, or it has none)."""
    workflow = parse_workflow(entity.workflow) if entity.workflow else None
    return workflow.field if workflow is not None and workflow.has_states else None


def _state_locked(entity: Entity) -> Entity:
    """The entity with its workflow state field read-only: the state changes only through transitions, so forms
    show it without an input and bulk changes do not offer it."""
    key = state_field(entity)
    if key is None:
        return entity
    fields = tuple(msgspec.structs.replace(f, read_only=True) if f.key == key else f for f in entity.fields)
    return msgspec.structs.replace(entity, fields=fields)


def scope(request: Request[Any, Any, Any], app_name: str, entity_key: str) -> Scope:
    """The app and entity a URL names, with the definition narrowed to what the acting principal may see and change
    here (the workflow state field only through transitions)."""
    sc = context.scope(request, app_name, entity_key)
    principal = sc.records.principal
    entities = sc.app.entities
    if principal is not None and not principal.is_admin:
        entities = tuple(_entity_for(principal, sc.app, e) for e in entities)
    entities = tuple(_state_locked(e) if e.key == sc.entity.key else e for e in entities)
    app = msgspec.structs.replace(sc.app, entities=entities)
    return Scope(app, app.entity(sc.entity.key), sc.records)


def allowed(sc: Scope, entity_key: str | None = None) -> dict[str, bool]:
    """Which actions the acting principal may take on an entity's records (default: the scope's), for templates."""
    key = entity_key or sc.entity.key
    return {action: sc.records.may(key, action) for action in ACTIONS}


def require(sc: Scope, action: str) -> None:
    """PermissionDenied (a 403 page) unless the acting principal may do `action` on the scope's entity."""
    sc.records.grant(sc.entity, action)


def linked_titles(sc: Scope, target: str, ids: Iterable[Any]) -> dict[str, str]:
    """The titles of linked records of entity `target` as the acting principal may see them: {id: title} (ids not
    found are left out), or RESTRICTED for every id when the principal may not read `target`. The one place list
    cells, record pages, related lists and history look titles of linked records up."""
    wanted = {str(i) for i in ids if i}
    if not sc.records.may(target, "read"):
        return dict.fromkeys(wanted, RESTRICTED)
    from engine.web.lists import titles_of  # lists imports this module

    return titles_of(sc.records.db, sc.app.name, target, wanted)


def actor_name(request: Request[Any, Any, Any]) -> str:
    """The acting user's name, as history and the audit log record it."""
    user = context.current_user(request)
    return user.name if isinstance(user, Principal) else str(user)


def forbidden(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The 403 page for an action the principal's roles do not allow."""
    message = str(exc) if isinstance(exc, PermissionDenied) else "You may not do this."
    return Template(template_name="error.html", context={"title": "Not allowed", "message": message.capitalize()},
                    status_code=403)


#: Exception handlers for the routers of pages that act on records or roles.
EXCEPTION_HANDLERS: dict[Any, Any] = {PermissionDenied: forbidden}
