"""The app designer's pages, on SQLite and PostgreSQL: only designers reach them; a blank app gets entities and
fields by posts; bad settings and stale revisions are refused with their messages; publish shows the plan and
applies it, after which the new entity's list answers; uploads list their problems by path; export downloads."""

from __future__ import annotations

import json
import re
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from engine.storage.apps import AppService
from engine.storage.database import Database
from tests.web.conftest import csrf, log_in_as

HX = {"HX-Request": "true"}


def _revision(html: str) -> str:
    found = re.search(r'id="draft-revision" name="revision" value="(\d+)"', html) or \
        re.search(r'name="revision" value="(\d+)"', html)
    assert found, "the page shows no draft revision"
    return found.group(1)


def _post(client: TestClient[Litestar], url: str, data: dict[str, Any], htmx: bool = True) -> Any:
    return client.post(url, data=data, headers={**csrf(client), **(HX if htmx else {})}, follow_redirects=False)


def _blank_app(client: TestClient[Litestar], title: str = "Service desk") -> str:
    response = _post(client, "/designer/new", {"title": title, "name": ""}, htmx=False)
    assert response.status_code == 303
    return str(response.headers["location"])


def _contacts(client: TestClient[Litestar]) -> str:
    """A blank app with a Contact entity (a required Name); the draft's URL."""
    url = _blank_app(client)
    _post(client, url + "/entities", {"title": "Contact", "revision": _revision(client.get(url).text)})
    return url


def test_designers_have_the_designer_link(client: TestClient[Litestar]) -> None:
    page = client.get("/").text
    assert 'id="nav-designer"' in page and 'href="/designer"' in page
    assert client.get("/designer").status_code == 200


def test_others_get_403_and_no_link(anonymous: TestClient[Litestar], web_db: Database) -> None:
    log_in_as(anonymous, web_db, "viewer@example.com", roles=("viewer",))
    assert 'href="/designer"' not in anonymous.get("/").text
    for url in ("/designer", "/designer/sales_crm", "/designer/sales_crm/customer", "/designer/sales_crm/publish",
                "/designer/sales_crm/export"):
        response = anonymous.get(url)
        assert response.status_code == 403, url
        assert "You may not design apps" in response.text
    assert _post(anonymous, "/designer/new", {"title": "Mine"}, htmx=False).status_code == 403


def test_create_a_blank_app_add_an_entity_and_fields(client: TestClient[Litestar]) -> None:
    assert client.get("/designer/key-for", params={"label": "Service desk"}).text.strip() == "service_desk"
    url = _blank_app(client)
    assert url == "/designer/service_desk"
    page = client.get(url).text
    assert 'id="no-entities"' in page and "add at least one entity before publishing" in page
    review = client.get(url + "/publish").text
    assert "add at least one entity before publishing" in review and 'id="publish-confirm"' not in review
    refused = _post(client, url + "/publish", {"revision": _revision(page)})
    assert "add at least one entity before publishing" in refused.text and 'id="publish-refused"' in refused.text
    response = _post(client, url + "/entities", {"title": "Customer", "revision": _revision(page)})
    assert response.headers["hx-redirect"] == "/designer/service_desk/customer"
    editor = client.get("/designer/service_desk/customer").text
    assert 'id="df-name"' in editor
    for kind, label in (("select", "Gender"), ("date", "Birthday"), ("email", "Email")):
        editor = _post(client, "/designer/service_desk/customer/fields",
                       {"kind": kind, "label": label, "revision": _revision(editor)}).text
    assert all(f'id="df-{key}"' in editor for key in ("gender", "birthday", "email"))
    preview = client.get("/designer/service_desk/customer/preview").text
    assert 'id="f-gender"' in preview and "Option 1" in preview and "disabled" in preview
    # a plain change answers out of band (the panel's inputs stay); an option added re-renders the panel
    saved = _post(client, "/designer/service_desk/customer/fields/gender",
                  {"title": "Sex", "required": "on", "revision": _revision(editor)})
    assert saved.headers["hx-reswap"] == "none" and "Sex" in saved.text
    editor = _post(client, "/designer/service_desk/customer/fields/gender",
                   {"opt_value": ["option_1", "option_2"], "opt_title": ["Female", "Male"], "opt_color": ["", ""],
                    "new_option": "Diverse", "revision": _revision(saved.text)}).text
    assert 'value="diverse"' in editor
    # not published yet: each option's value follows its title, shown next to it
    assert 'id="ds-gender-optv-0"' in editor and ">female</code>" in editor and ">male</code>" in editor
    assert "option_1" not in editor


def test_a_bad_pattern_shows_its_error_next_to_the_setting(client: TestClient[Litestar]) -> None:
    url = _contacts(client)
    editor = client.get(url + "/contact").text
    response = _post(client, url + "/contact/fields/name",
                     {"pattern_preset": "", "pattern": "([a-z", "revision": _revision(editor)})
    assert response.status_code == 200
    assert 'id="ds-name-pattern-error"' in response.text
    assert "Pattern is not a valid regular expression" in response.text
    assert 'value="([a-z"' in response.text  # the typed pattern is kept to correct
    assert _revision(response.text) == _revision(editor)  # nothing was saved


def test_a_stale_revision_conflicts_and_changes_nothing(client: TestClient[Litestar]) -> None:
    url = _contacts(client)
    editor = client.get(url + "/contact").text
    stale = _revision(editor)
    _post(client, url + "/contact/fields", {"kind": "text", "label": "City", "revision": stale})
    response = _post(client, url + "/contact/fields", {"kind": "text", "label": "Street", "revision": stale})
    assert 'id="designer-alert"' in response.text
    assert "admin@example.com saved this draft" in response.text
    assert 'id="df-street"' not in response.text and 'id="df-city"' in response.text
    plain = _post(client, url + "/contact/fields", {"kind": "text", "label": "Street", "revision": stale}, htmx=False)
    assert plain.status_code == 409


def test_publish_shows_the_plan_then_applies_it(client: TestClient[Litestar], web_db: Database) -> None:
    url = _contacts(client)
    editor = client.get(url + "/contact").text
    _post(client, url + "/contact/fields", {"kind": "email", "label": "Email", "revision": _revision(editor)})
    review = client.get(url + "/publish").text
    assert "create entity contact" in review and 'id="publish-confirm"' in review
    done = _post(client, url + "/publish", {"revision": _revision(review)})
    assert done.status_code == 200 and 'id="publish-notice"' in done.text
    assert "/apps/service_desk/contact" in done.text
    assert AppService(web_db).current("service_desk").entity("contact").field("email").kind == "email"
    assert client.get("/apps/service_desk/contact").status_code == 200
    # a second change: the plan names it; a stale revision is refused and the draft kept
    editor = client.get(url + "/contact").text
    _post(client, url + "/contact/fields/email", {"title": "E-mail", "revision": _revision(editor)})
    review = client.get(url + "/publish").text
    assert "update label/settings of field contact.email" in review
    refused = _post(client, url + "/publish", {"revision": "0"})
    assert 'id="designer-alert"' in refused.text
    assert client.get(url).status_code == 200


def test_import_of_a_bad_upload_lists_paths(client: TestClient[Litestar], sales_doc: dict[str, Any]) -> None:
    del sales_doc["$defs"]["customer"]["properties"]["name"]["x-crm-field"]
    sales_doc["x-crm-app"]["name"] = "imported"
    response = client.post("/designer/import", files={"file": ("app.json", json.dumps(sales_doc), "application/json")},
                           headers=csrf(client))
    assert response.status_code == 422
    assert 'id="create-problems"' in response.text
    assert "$defs/customer/properties/name" in response.text
    broken = client.post("/designer/import", files={"file": ("app.json", b"{not json", "application/json")},
                         headers=csrf(client))
    assert "not valid JSON" in broken.text


def test_export_downloads_canonical_json(client: TestClient[Litestar], web_db: Database) -> None:
    response = client.get("/designer/sales_crm/export")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="sales_crm.json"'
    assert response.content == AppService(web_db).export("sales_crm")
    assert json.loads(response.content)["x-crm-app"]["name"] == "sales_crm"


def test_the_key_preview_matches_the_key_given(client: TestClient[Litestar]) -> None:
    """The key shown while typing is the one the designer will use: app and entity keys avoid the designer's page
    names, field keys avoid published keys (a removed field's key is not handed to a new field)."""
    assert client.get("/designer/key-for", params={"label": "Import"}).text.strip() == "import_2"
    assert client.get("/designer/key-for", params={"label": "Versions", "app": "sales_crm"}).text.strip() \
        == "versions_2"
    assert client.get("/designer/key-for", params={"label": "Amount", "app": "sales_crm", "entity": "deal"}) \
        .text.strip() == "amount_2"
    assert client.get("/designer/key-for", params={"label": "Budget", "app": "sales_crm", "entity": "deal"}) \
        .text.strip() == "budget"
