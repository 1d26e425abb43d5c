"""All route handlers, gathered from the page modules."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from engine.storage.apps import AppService
from engine.web.context import database

__all__ = ["route_handlers"]


@get("/", name="home", sync_to_thread=True)
def home(request: Request[Any, Any, Any]) -> Template:
    """The start page: installed apps and their entities."""
    service = AppService(database(request))
    apps = [service.current(a.name) for a in service.list()]
    return Template(template_name="home.html", context={"apps": apps, "title": "Apps"})


def route_handlers() -> list[Any]:
    """Every handler of the web app."""
    handlers: list[Any] = [home]
    for module in ("engine.web.lists", "engine.web.records", "engine.web.auth", "engine.web.roles",
                   "engine.web.audit_log", "engine.web.workflows", "engine.web.designer"):
        try:
            mod = __import__(module, fromlist=["HANDLERS"])
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        handlers.extend(mod.HANDLERS)
    return handlers
