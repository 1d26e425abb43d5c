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


ADMIN_EMAIL = "admin@example.com"


def log_in_as(client: TestClient[Litestar], db: Database, email: str, is_admin: bool = False,
              roles: tuple[str, ...] = ()) -> None:
    """Make the client a logged-in user (created if missing) by giving it a session cookie."""
    from engine.auth import accounts, sessions

    user = accounts.user_by_email(db, email)
    if user is None:
        if roles:
            accounts.ensure_default_roles(db)
        user = accounts.create_user(db, email, is_admin=is_admin, roles=roles)
    client.cookies.set(sessions.COOKIE, sessions.start_session(db, user.id))


@pytest.fixture
def anonymous(web_app: Litestar) -> Iterator[TestClient[Litestar]]:
    """A test client that has not logged in."""
    with TestClient(app=web_app) as test_client:
        yield test_client


@pytest.fixture
def client(web_app: Litestar, web_db: Database) -> Iterator[TestClient[Litestar]]:
    """A test client logged in as an administrator (admin@example.com); it keeps cookies, so after one GET the CSRF
    cookie is set (see `csrf`)."""
    with TestClient(app=web_app) as test_client:
        log_in_as(test_client, web_db, ADMIN_EMAIL, is_admin=True)
        yield test_client


def csrf(client: TestClient[Litestar]) -> dict[str, str]:
    """Headers that pass the CSRF check, as htmx sends them (GETs the start page first to get the cookie)."""
    if "csrftoken" not in client.cookies:
        client.get("/")
    return {"x-csrftoken": client.cookies["csrftoken"]}
