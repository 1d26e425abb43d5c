"""Export an app from the designer, import the file as a new app under another key, publish it: the two apps'
definitions are the same but for their names, and the original is untouched. A bad key is refused by name."""

from __future__ import annotations

import json
import re

from litestar import Litestar
from litestar.testing import TestClient

from engine.schema import load_definition
from engine.storage.apps import AppService
from engine.storage.database import Database
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
