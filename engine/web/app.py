"""The Litestar application: pages and fragments generated from the current app definitions on every request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.plugins.htmx import HTMXPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from engine.errors import NotFoundError
from engine.storage.database import Database
from engine.web import formatting

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "create_app"]

ROOT = Path(__file__).resolve().parent.parent.parent
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"


def _not_found(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    message = str(exc) if isinstance(exc, NotFoundError) else "This page does not exist."
    return Template(template_name="error.html", context={"title": "Not found", "message": message}, status_code=404)


def _configure_jinja(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    env.autoescape = True
    env.trim_blocks = True
    env.lstrip_blocks = True
    formatting.register(env)


def create_app(db: Database | None = None, debug: bool = False) -> Litestar:
    """The web app over one database (default: CRM_DATABASE_URL or ./crm.db)."""
    from engine.web import auth, security
    from engine.web.routes import route_handlers

    database = db or Database()
    database.init()
    return Litestar(
        route_handlers=[
            create_static_files_router(path="/static", directories=[STATIC_DIR]),
            *route_handlers(),
        ],
        template_config=TemplateConfig(directory=TEMPLATES_DIR, engine=JinjaTemplateEngine,
                                       engine_callback=_configure_jinja),
        plugins=[HTMXPlugin()],
        # Auth runs first: the CSRF check needs to know whether an API token authenticated the request.
        middleware=[*auth.MIDDLEWARE, security.csrf_middleware(database.secret())],
        before_send=security.BEFORE_SEND,
        request_max_body_size=security.MAX_BODY_BYTES,
        state=State({"db": database}),
        exception_handlers={NotFoundError: _not_found, NotFoundException: _not_found},
        debug=debug,
    )
