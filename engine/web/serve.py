"""`crm serve`: the web app under uvicorn, a production ASGI server; several workers share one database."""

from __future__ import annotations

import os

__all__ = ["asgi_app", "serve"]


def asgi_app():
    """The app for uvicorn's `--factory` loading (each worker process builds its own, stateless)."""
    from engine.web import create_app

    return create_app()


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1, reload: bool = False,
          db_url: str | None = None) -> None:
    """Serve the web app. Workers hold no state: definitions, sessions and secrets live in the database."""
    import uvicorn

    if db_url:
        os.environ["CRM_DATABASE_URL"] = db_url  # worker processes read it when they build the app
    from engine.storage.database import Database

    Database().init()  # before the workers start, so they do not race to create the engine tables
    uvicorn.run("engine.web.serve:asgi_app", factory=True, host=host, port=port,
                workers=None if reload else workers, reload=reload, log_level="info",
                reload_dirs=["engine", "templates"] if reload else None)
