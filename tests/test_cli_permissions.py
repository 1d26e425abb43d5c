"""The command line acting as a named user (--as-user) obeys that user's roles, like every other path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.auth.accounts import create_user, ensure_default_roles
from engine.storage.apps import AppService
from engine.storage.database import Database, crm_roles
from engine.storage.migrate import utcnow
from engine.storage.records import RecordService
from tests.conftest import FIXTURES
from tests.test_cli import crm


@pytest.fixture
def people(db: Database) -> Database:
    """The mini app, the default roles, a viewer and an admin."""
    AppService(db).apply(json.loads((FIXTURES / "mini_app.json").read_text("utf-8")))
    ensure_default_roles(db)
    create_user(db, "viewer@example.com", name="Vera Viewer", password="viewer password 1", roles=["viewer"])
    create_user(db, "admin@example.com", name="Ada Admin", password="admin password 1", is_admin=True)
    RecordService(db, "mini").create("company", {"name": "ACME"})
    return db


def test_a_viewer_cannot_import_export_or_change_the_app(capsys: pytest.CaptureFixture[str], people: Database,
                                                         tmp_path: Path, mini_doc: dict[str, Any]) -> None:
    rows = tmp_path / "companies.csv"
    rows.write_text("name\nInitech\n", encoding="utf-8")
    code, _, err = crm(capsys, people, "--as-user", "viewer@example.com", "records", "import", "mini", "company",
                       str(rows))
    assert code == 1 and "may not import" in err
    code, out, err = crm(capsys, people, "--as-user", "viewer@example.com", "records", "export", "mini", "company")
    assert code == 1 and "may not export" in err and "ACME" not in out
    mini_doc["$defs"]["company"]["properties"]["city"] = {"title": "City", "x-crm-field": {"kind": "text"}}
    definition = tmp_path / "mini.json"
    definition.write_text(json.dumps(mini_doc), encoding="utf-8")
    code, _, err = crm(capsys, people, "--as-user", "viewer@example.com", "app", "apply", str(definition), "--yes")
    assert code == 1 and "may not" in err
    assert [c["name"] for c in RecordService(people, "mini").query("company").records] == ["ACME"]
    assert AppService(people).current("mini").entity("company").field_map().keys() == {"name", "website"}


def test_an_admin_may_and_history_names_them(capsys: pytest.CaptureFixture[str], people: Database,
                                             tmp_path: Path) -> None:
    rows = tmp_path / "companies.csv"
    rows.write_text("name\nInitech\n", encoding="utf-8")
    code, _, err = crm(capsys, people, "--as-user", "admin@example.com", "records", "import", "mini", "company",
                       str(rows))
    assert code == 0, err
    created = [c for c in RecordService(people, "mini").query("company").records if c["name"] == "Initech"]
    assert created[0]["created_by"] == "admin@example.com"


def test_an_unknown_user_is_refused(capsys: pytest.CaptureFixture[str], people: Database) -> None:
    code, _, err = crm(capsys, people, "--as-user", "nobody@example.com", "records", "export", "mini", "company")
    assert code == 1 and "no active user nobody@example.com" in err


def _user_with_role(db: Database, email: str, company_grant: dict[str, Any]) -> None:
    with db.write() as conn:
        conn.execute(crm_roles.insert().values(name=email.split("@")[0], title=email, description="", designer=False,
                                               permissions={"mini": {"company": company_grant}}, updated_at=utcnow()))
    create_user(db, email, roles=[email.split("@")[0]])


def test_import_without_the_create_right_is_refused(capsys: pytest.CaptureFixture[str], people: Database,
                                                    tmp_path: Path) -> None:
    _user_with_role(people, "loader@example.com", {"read": True, "import": True})
    rows = tmp_path / "companies.csv"
    rows.write_text("name\nInitech\n", encoding="utf-8")

    code, _, err = crm(capsys, people, "--as-user", "loader@example.com", "records", "import", "mini", "company",
                       str(rows))

    assert code == 1 and "may not create" in err
    assert [c["name"] for c in RecordService(people, "mini").query("company").records] == ["ACME"]


def test_import_errors_do_not_name_hidden_fields(capsys: pytest.CaptureFixture[str], people: Database,
                                                 tmp_path: Path) -> None:
    _user_with_role(people, "loader@example.com", {"read": True, "import": True, "create": True,
                                                   "fields": {"website": "hidden"}})
    rows = tmp_path / "companies.csv"
    rows.write_text("name,shoe size\nInitech,42\n", encoding="utf-8")
    as_loader = ("--as-user", "loader@example.com", "records", "import", "mini", "company", str(rows))

    code, _, err = crm(capsys, people, *as_loader)
    assert code == 1 and "shoe size" in err and "(fields: name)" in err and "website" not in err.lower()

    rows.write_text("name,Website\nInitech,https://initech.example\n", encoding="utf-8")
    code, _, err = crm(capsys, people, *as_loader)
    assert code == 1 and "unknown column" in err and "website" not in err.replace("Website", "")
    assert [c["name"] for c in RecordService(people, "mini").query("company").records] == ["ACME"]

    code, _, err = crm(capsys, people, "--as-user", "admin@example.com", "records", "import", "mini", "company",
                       str(rows))
    assert code == 0, err  # the admin sees the field
