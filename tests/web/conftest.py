"""Web fixtures: a database with the sample apps applied, and a Litestar test client over the web app."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.web import create_app
from tests.conftest import APPS, FIXTURES


@pytest.fixture
def web_db(db: Database) -> Database:
    """The `db` fixture (SQLite, and PostgreSQL when configured) with apps/sales_crm.json and
    tests/fixtures/mini_app.json applied, and no records."""
    apps = AppService(db)
    apps.apply(json.loads((APPS / "sales_crm.json").read_text("utf-8")))
    apps.apply(json.loads((FIXTURES / "mini_app.json").read_text("utf-8")))
    return db


@pytest.fixture
def web_app(web_db: Database) -> Litestar:
    """The web app over `web_db`."""
    return create_app(web_db)


@pytest.fixture
def client(web_app: Litestar) -> Iterator[TestClient[Litestar]]:
    """A test client of the web app; it keeps cookies, so after one GET the CSRF cookie is set (see `csrf`)."""
    with TestClient(app=web_app) as test_client:
        yield test_client


def csrf(client: TestClient[Litestar]) -> dict[str, str]:
    """Headers that pass the CSRF check, as htmx sends them (GETs the start page first to get the cookie)."""
    if "csrftoken" not in client.cookies:
        client.get("/")
    return {"x-csrftoken": client.cookies["csrftoken"]}
