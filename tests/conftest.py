"""Shared fixtures: a fresh database per test on SQLite, and on PostgreSQL when CRM_TEST_DATABASE_URL is set."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.storage.database import Database

os.environ.setdefault("CRM_ARGON2_FAST", "1")  # argon2 at its cheapest: password hashing is slow by design
PG_URL = os.environ.get("CRM_TEST_DATABASE_URL")
FIXTURES = Path(__file__).parent / "fixtures"
APPS = Path(__file__).parent.parent / "apps"
PG_SKIP_REASON = ("PostgreSQL tests need CRM_TEST_DATABASE_URL, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test"
                  " (.ci/run sets it)")


def make_database(backend: str, tmp_path: Path) -> tuple[Database, Any]:
    """A fresh, initialised database and a function that removes it."""
    if backend == "sqlite":
        db = Database(f"sqlite:///{tmp_path}/crm.db")
        db.init()
        return db, db.dispose
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    schema = f"t_{uuid.uuid4().hex[:12]}"  # each test gets its own schema in the shared test database
    admin = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    db = Database(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    db.init()

    def drop() -> None:
        db.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()

    return db, drop


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh database, once per backend."""
    database, drop = make_database(request.param, tmp_path)
    yield database
    drop()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    """A fresh SQLite database only (for tests about definitions rather than storage)."""
    database, drop = make_database("sqlite", tmp_path)
    yield database
    drop()


@pytest.fixture
def mini_doc() -> dict[str, Any]:
    """A small app definition using every field kind (tests/fixtures/mini_app.json), as a fresh dict."""
    return json.loads((FIXTURES / "mini_app.json").read_text("utf-8"))


@pytest.fixture
def sales_doc() -> dict[str, Any]:
    """The sample Sales CRM (apps/sales_crm.json), as a fresh dict."""
    return json.loads((APPS / "sales_crm.json").read_text("utf-8"))
