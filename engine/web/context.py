"""Resolving what a request is about: the database, the current user, the app and entity it names."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.exceptions import NotAuthorizedException

from engine.auth.principal import Principal
from engine.schema import App, Entity
from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.records import RecordService

__all__ = ["Scope", "current_user", "database", "scope"]


def database(request: Request[Any, Any, Any]) -> Database:
    """The database the app serves."""
    return request.app.state["db"]


def current_user(request: Request[Any, Any, Any]) -> Principal:
    """Who is acting: the Principal the auth middleware resolved from the session cookie or API token.
    The one place the current user is resolved."""
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise NotAuthorizedException("log in first")
    return principal


@functools.cache
def _records_take_principal() -> bool:
    """Whether RecordService's `actor` accepts a Principal (it did not always: then it gets the user's name)."""
    annotation = inspect.signature(RecordService.__init__).parameters["actor"].annotation
    return "Principal" in str(annotation)


@dataclass
class Scope:
    """An app and one of its entities, with a records service acting as the current user."""

    app: App
    entity: Entity
    records: RecordService

    @property
    def base(self) -> str:
        """The URL of the entity's list view."""
        return f"/apps/{self.app.name}/{self.entity.key}"


def scope(request: Request[Any, Any, Any], app_name: str, entity_key: str) -> Scope:
    """The app and entity a URL names; NotFoundError (a 404 page) if either does not exist."""
    db = database(request)
    app = AppService(db).current(app_name)
    from engine.errors import NotFoundError

    try:
        entity = app.entity(entity_key)
    except KeyError:
        raise NotFoundError(f"app '{app.title}' has no entity '{entity_key}'") from None
    principal = current_user(request)
    actor: Any = principal if _records_take_principal() else principal.name
    return Scope(app, entity, RecordService(db, app_name, actor=actor))
