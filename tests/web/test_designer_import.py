"""Export an app from the designer, import the file as a new app under another key, publish it: the two apps'
definitions are the same but for their names, and the original is untouched. A bad key is refused by name. The
designer's files and the command line's are the same files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from engine.cli import main
from engine.designer import edits
from engine.designer.drafts import DraftService
from engine.schema import load_definition
from engine.storage.apps import AppService
from engine.storage.database import Database
from tests.conftest import make_database
from tests.test_cli import cli_url
from tests.web.conftest import csrf


def _import(client: TestClient[Litestar], content: bytes, name: str, title: str = "") -> object:
    return client.post("/designer/import", files={"file": ("app.json", content, "application/json")},
                       data={"name": name, "title": title}, headers=csrf(client), follow_redirects=False)


def test_export_then_import_as_a_new_app(client: TestClient[Litestar], web_db: Database) -> None:
    exported = client.get("/designer/sales_crm/export")
    assert exported.status_code == 200
    assert exported.headers["content-disposition"] == 'attachment; filename="sales_crm.json"'
    response = _import(client, exported.content, "sales_copy", "Sales (copy)")
    assert response.status_code == 303 and response.headers["location"] == "/designer/sales_copy"
    page = client.get("/designer/sales_copy").text
    assert "Sales (copy)" in page and "A new app: nothing is published yet." in page

    review = client.get("/designer/sales_copy/publish").text
    assert "create entity customer" in review
    revision = re.search(r'name="revision" value="(\d+)"', review).group(1)  # type: ignore[union-attr]
    published = client.post("/designer/sales_copy/publish", data={"revision": revision}, headers=csrf(client))
    assert "Version 1 is live" in published.text

    apps = AppService(web_db)
    original, copy = json.loads(apps.export("sales_crm")), json.loads(apps.export("sales_copy"))
    assert copy["x-crm-app"]["name"] == "sales_copy" and copy["$id"] == "urn:crm:app:sales_copy"
    assert copy["title"] == "Sales (copy)" and original["title"] != "Sales (copy)"
    for doc in (original, copy):
        for key in ("$id", "title"):
            doc.pop(key)
        doc["x-crm-app"].pop("name")
        doc["x-crm-app"].pop("version", None)
    assert copy == original
    assert load_definition(apps.export("sales_copy")).name == "sales_copy"
    assert client.get("/apps/sales_copy/customer").status_code == 200
    assert apps.current("sales_crm").name == "sales_crm"


def test_import_under_a_bad_key_is_refused_by_name(client: TestClient[Litestar]) -> None:
    exported = client.get("/designer/sales_crm/export").content
    response = _import(client, exported, "Not a key!")
    assert response.status_code == 422
    assert "x-crm-app/name" in response.text and "cannot be an app key" in response.text
    assert client.get("/designer/not_a_key").status_code == 404


def test_designer_exports_apply_on_the_command_line_and_back(client: TestClient[Litestar], web_db: Database,
                                                               tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """What the designer exports, `crm app apply` accepts (the other installation then exports the same bytes);
    what `crm app export` writes, the designer imports as an update with nothing to change."""
    service = DraftService(web_db, "admin@example.com")
    draft = service.create("leads", "Leads")
    draft, entity = service.edit("leads", draft.revision, lambda doc: edits.add_entity(doc, "Lead"))
    for kind, title in (("email", "Email"), ("select", "Source"), ("currency", "Budget"), ("date", "Met on")):
        draft, _ = service.edit("leads", draft.revision,
                                lambda doc, kind=kind, title=title: edits.add_field(doc, entity, kind, title))
    service.publish("leads", draft.revision)
    exported = client.get("/designer/leads/export").content

    other, drop = make_database("sqlite" if web_db.is_sqlite else "postgresql", tmp_path)
    try:
        path = tmp_path / "leads.json"
        path.write_bytes(exported)
        assert main(["--db", cli_url(other), "--as", "tester", "app", "apply", str(path), "--yes"]) == 0
        out = tmp_path / "again.json"
        assert main(["--db", cli_url(other), "--as", "tester", "app", "export", "leads", "-o", str(out)]) == 0
        assert out.read_bytes() == exported
    finally:
        drop()
    capsys.readouterr()

    service.discard("leads")
    response = _import(client, out.read_bytes(), "")
    assert response.status_code == 303 and response.headers["location"] == "/designer/leads"
    review = client.get("/designer/leads/publish").text
    assert 'id="plan-no-changes"' in review
