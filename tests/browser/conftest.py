"""Real-browser tests: the app served by uvicorn in a background thread, driven by Playwright with Debian's Chromium.

Never downloads a browser: Chromium comes from `apt-get install chromium` (.ci/run does it). Without it, or
without the playwright package, these tests skip with the reason."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.storage.apps import AppService
from engine.storage.database import Database
from tests.conftest import APPS, FIXTURES, make_database

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).parent / "screenshots"
DOC_IMAGES = Path(__file__).parents[2] / "docs" / "images"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving the web app on a free localhost port, in a thread of this process."""

    def __init__(self, db: Database) -> None:
        import uvicorn

        from engine.web import create_app

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(db), host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start within 20 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("browser tests need Debian's chromium (apt-get install chromium); .ci/run installs it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need the playwright package (pip install -e '.[test]')")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LiveServer, Database]]:
    """A served app with the sample Sales CRM and the mini app applied, on each backend."""
    db, drop = make_database(request.param, tmp_path)
    apps = AppService(db)
    apps.apply(json.loads((APPS / "sales_crm.json").read_text("utf-8")))
    apps.apply(json.loads((FIXTURES / "mini_app.json").read_text("utf-8")))
    from engine.auth.accounts import create_user

    create_user(db, ADMIN_EMAIL, "Ada Admin", ADMIN_PASSWORD, is_admin=True)
    with LiveServer(db) as server:
        yield server, db
    drop()


ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "browser-admin-password"


def _new_page(browser: Any) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    return context, pg


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser page (its own cookies) with a desktop viewport; logged in as the admin of `live` when the
    test uses `live` (the session cookie is set directly: logging in through the form is tested on its own)."""
    context, pg = _new_page(browser)
    if "live" in request.fixturenames:
        from engine.auth import accounts, sessions

        server, db = request.getfixturevalue("live")
        user = accounts.user_by_email(db, ADMIN_EMAIL)
        assert user is not None
        context.add_cookies([{"name": sessions.COOKIE, "value": sessions.start_session(db, user.id),
                              "url": server.url, "httpOnly": True, "sameSite": "Lax"}])
    yield pg
    context.close()


@pytest.fixture
def anonymous_page(browser: Any) -> Iterator[Any]:
    """A fresh browser page that has not logged in."""
    context, pg = _new_page(browser)
    yield pg
    context.close()


def screenshot(page: Any, name: str, doc: bool = False) -> Path:
    """Save a full-page screenshot under tests/browser/screenshots (ignored by git) for people to look at.

    `doc=True` marks the pictures docs/ shows: with CRM_DOC_SCREENSHOTS=1 (`make doc-screenshots`) they are also
    written to docs/images/, so the documentation always shows what the tests saw."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if doc and os.environ.get("CRM_DOC_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(exist_ok=True)
        page.screenshot(path=str(DOC_IMAGES / f"{name}.png"), full_page=False)
    return path
