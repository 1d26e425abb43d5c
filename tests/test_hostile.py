# ruff: noqa: F811  (the web fixtures are imported from tests/web/conftest.py and used by name)
"""Hostile input: markup, template syntax, script URLs, huge and invisible text in records and in app definitions
render escaped, execute nothing and never cause a server error; SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from engine.errors import RecordValidationError
from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.records import RecordService
from tests.conftest import FIXTURES
from tests.web.conftest import client, csrf, web_app, web_db  # noqa: F401  (the web fixtures, used as they are)

Client = TestClient[Litestar]

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
TEMPLATE = "{{7*7}}"
RTL = "\u202egnp.exe\u200b\u200d\ufeff"
CORPUS = [SCRIPT, IMG, TEMPLATE, RTL, "' OR 1=1 --", "a\x00b".replace("\x00", ""), "<!--", "]]>", "&amp;"]
RAW = ("<script>alert", "<img src=x", "onerror=alert(1)>", "<!--<")


def _assert_safe(html: str) -> None:
    for raw in RAW:
        assert raw not in html, raw


def _pages(client: Client, record_id: str) -> list[str]:
    base = "/apps/mini/customer"
    out = []
    for path in ("/", base, f"{base}/new", f"{base}/{record_id}", f"{base}/{record_id}/edit",
                 f"{base}?q=%3Cscript%3E", f"{base}?f.name.contains=%3Cscript%3E"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        out.append(response.text)
    return out


@pytest.mark.parametrize("text", CORPUS)
def test_hostile_text_in_every_text_like_field_renders_escaped(client: Client, web_db: Database, text: str) -> None:
    records = RecordService(web_db, "mini")
    company = records.create("company", {"name": text})
    rec = records.create("customer", {"name": text, "notes": text + "\nline two", "won_reason": text,
                                      "email": "x@example.com", "company": company["id"]})

    for html in _pages(client, rec["id"]):
        _assert_safe(html)
    if text == TEMPLATE:  # shown as typed, never evaluated
        shown = client.get(f"/apps/mini/customer/{rec['id']}").text
        assert TEMPLATE in shown and "<h1>49" not in shown


def test_markup_in_an_email_local_part_is_stored_and_shown_escaped(client: Client, web_db: Database) -> None:
    rec = RecordService(web_db, "mini").create("customer", {"name": "Li", "email": "<script>alert(1)</script>@ex.com"})

    html = client.get(f"/apps/mini/customer/{rec['id']}").text

    _assert_safe(html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@ex.com" in html


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)",
                                 "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)",
                                 'https://example.com/"><script>alert(1)</script>'])
def test_script_urls_are_refused_by_validation(web_db: Database, url: str) -> None:
    with pytest.raises(RecordValidationError) as info:
        RecordService(web_db, "mini").create("company", {"name": "Acme", "website": url})

    assert {e.field for e in info.value.errors} == {"website"}


def test_script_url_posted_in_a_form_is_refused_and_not_linked(client: Client) -> None:
    response = client.post("/apps/mini/company/new", data={"name": "Acme", "website": "javascript:alert(1)"},
                           headers=csrf(client), follow_redirects=False)

    assert response.status_code == 422  # the form again, with the message
    assert 'href="javascript:' not in response.text
    assert 'aria-invalid="true"' in response.text


def test_posted_hostile_values_come_back_escaped_in_the_form(client: Client) -> None:
    data = {"name": SCRIPT, "notes": IMG, "won_reason": TEMPLATE, "email": "not an email " + SCRIPT}

    response = client.post("/apps/mini/customer/new", data=data, headers=csrf(client), follow_redirects=False)

    assert response.status_code == 422
    _assert_safe(response.text)


def test_very_long_values_are_refused_politely(client: Client) -> None:
    response = client.post("/apps/mini/customer/new", data={"name": "x" * 100_000, "notes": "y" * 200_000},
                           headers=csrf(client), follow_redirects=False)

    assert response.status_code == 422
    assert "too long" in response.text.lower() or "at most" in response.text.lower()


def test_hostile_labels_in_an_app_definition_render_escaped(client: Client, web_db: Database) -> None:
    doc: dict[str, Any] = json.loads((FIXTURES / "mini_app.json").read_text("utf-8"))
    doc["title"] = SCRIPT
    doc["description"] = IMG
    customer = doc["$defs"]["customer"]
    customer["title"] = IMG
    customer["description"] = TEMPLATE
    for i, prop in enumerate(customer["properties"].values()):
        prop["title"] = [SCRIPT, IMG, TEMPLATE, RTL][i % 4] + f" {i}"
        prop["description"] = SCRIPT
        for option in prop.get("oneOf", []) + prop.get("items", {}).get("oneOf", []):
            option["title"] = IMG + option["const"]
    AppService(web_db).apply(doc)
    rec = RecordService(web_db, "mini").create("customer", {"name": "Li", "stage": "won", "won_reason": "x"})

    pages = _pages(client, rec["id"])

    for html in pages:
        _assert_safe(html)
    assert any(TEMPLATE in html for html in pages)


def test_nothing_leaks_from_a_bad_request(client: Client) -> None:
    for path in ("/apps/mini/customer/not-a-record", "/apps/%3Cscript%3E/x", "/apps/mini/customer?sort=%27%3B--",
                 "/apps/mini/customer?f.age.gte=%3Cscript%3E", "/apps/mini/customer?after=%27%20OR%201%3D1"):
        response = client.get(path)
        assert response.status_code < 500, path
        assert "Traceback" not in response.text and "sqlalchemy" not in response.text.lower(), path
        _assert_safe(response.text)


def test_oversized_body_gets_413(client: Client) -> None:
    response = client.post("/apps/mini/customer/new", content=b"name=" + b"x" * (6 * 1024 * 1024),
                           headers={**csrf(client), "content-type": "application/x-www-form-urlencoded"})

    assert response.status_code == 413
