"""Record forms over HTTP: every widget, create and edit, messages next to fields, inline validation, visibility
conditions, edit conflicts, time zones, relation lookups and prefill, CSRF and escaping; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.records import RecordService
from tests.conftest import FIXTURES
from tests.web.conftest import csrf

Client = TestClient[Litestar]
CUSTOMERS = "/apps/mini/customer"


def htmx(client: Client) -> dict[str, str]:
    """Headers of an htmx request (with the CSRF token htmx takes from <body hx-headers>)."""
    return {**csrf(client), "HX-Request": "true"}


def post(client: Client, url: str, data: dict[str, Any], htmx_request: bool = False) -> Any:
    headers = htmx(client) if htmx_request else csrf(client)
    return client.post(url, data=data, headers=headers, follow_redirects=False)


class _Controls(HTMLParser):
    """The ids of visible form controls and the ids <label for> points at."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[str] = []
        self.labelled: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden" and a.get("id"):
            self.controls.append(str(a["id"]))
        if tag == "label" and a.get("for"):
            self.labelled.add(str(a["for"]))


class _FormFields(HTMLParser):
    """What a browser would submit for the record form of a page: [(name, value)] in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs: list[tuple[str, str]] = []
        self._select: str | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if ("name" not in a and tag != "option") or "disabled" in a or "form" in a:
            return
        if tag == "input" and (a.get("type") not in ("checkbox", "radio") or "checked" in a):
            self.pairs.append((a["name"], a.get("value", "on")))
        elif tag == "select":
            self._select = a["name"]
        elif tag == "option" and self._select and "selected" in a:
            self.pairs.append((self._select, a.get("value", "")))
        elif tag == "textarea":
            self._textarea, self._text = a["name"], ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.pairs.append((self._textarea, self._text.removeprefix("\n")))
            self._textarea = None


def submitted(page: str) -> dict[str, list[str]]:
    """The form data a browser sends for a page's form, as {name: [values]}."""
    parser = _FormFields()
    parser.feed(page.split('<form id="record-form"', 1)[1].split("</form>", 1)[0].join(["<form", "</form>"]))
    out: dict[str, list[str]] = {}
    for name, value in parser.pairs:
        out.setdefault(name, []).append(value)
    return out


def field_html(page: str, key: str) -> str:
    """The wrapper of one field in a page or fragment (up to the next field's wrapper)."""
    match = re.search(rf'<(div|fieldset) class="field[^"]*" id="field-{key}"', page)
    assert match, f"no field {key}"
    rest = page[match.end():]
    end = re.search(r'<(div|fieldset) class="field |</form>|</section>', rest)
    return page[match.start(): match.end() + (end.start() if end else len(rest))]


def mini_doc() -> dict[str, Any]:
    return json.loads((FIXTURES / "mini_app.json").read_text("utf-8"))


@pytest.fixture
def web_db(db: Database) -> Database:
    """Only the mini app (tests/fixtures/mini_app.json): it has every field kind, and one app applies quickly."""
    AppService(db).apply(mini_doc())
    return db


@pytest.fixture
def records(web_db: Database) -> RecordService:
    return RecordService(web_db, "mini", actor="someone-else")


@pytest.fixture
def acme(records: RecordService) -> str:
    return records.create("company", {"name": "Acme"})["id"]


# --- rendering -----------------------------------------------------------------------------------------------
def test_new_form_renders_a_widget_for_every_field_kind(client: Client) -> None:
    page = client.get(f"{CUSTOMERS}/new").text
    expected = {
        "name": 'type="text" id="f-name"', "email": 'type="email"', "phone": 'type="tel"',
        "age": 'type="number" id="f-age"', "score": 'step="0.01"', "spend": 'id="f-spend-code">EUR<',
        "discount": '<span class="unit" aria-hidden="true">%</span>', "vip": 'type="checkbox" id="f-vip"',
        "birthday": 'type="date"', "last_seen": 'type="datetime-local"', "segment": '<select id="f-segment"',
        "tags": 'type="checkbox" id="f-tags-2"', "company": 'hx-get="/apps/mini/company/lookup"',
        "partners": "data-lookup-chips", "number": 'placeholder="Assigned when saved"',
        "rating": 'type="radio" class="star-radio" id="f-rating-5"', "notes": 'rows="4"',
        "stage": '<option value="won">Won',
        "won_reason": 'id="f-won_reason"',
    }
    for key, marker in expected.items():
        assert marker in field_html(page, key), key
    assert 'id="f-number" value="" readonly' in page  # autonumber: shown, not editable
    assert re.search(r'id="field-won_reason"[^>]*hidden', page)  # visibleIf does not hold yet
    assert '<option value="b2c" selected>Consumer</option>' in page  # the default


def test_every_control_has_a_label_and_required_fields_are_marked(client: Client) -> None:
    page = client.get(f"{CUSTOMERS}/new").text
    controls = _Controls()
    controls.feed(page)
    assert controls.controls and not [c for c in controls.controls if c not in controls.labelled]
    assert '<label for="f-name">姓名 Name<span class="required-mark" aria-hidden="true">*</span>' in page
    assert 'aria-required="true"' in field_html(page, "name")
    assert "required-mark" not in field_html(page, "email")
    assert 'name="_csrf_token"' in page and "novalidate" in page


def test_a_field_added_to_the_definition_appears_on_the_next_request(client: Client, web_db: Database) -> None:
    assert 'id="field-nickname"' not in client.get(f"{CUSTOMERS}/new").text
    doc = mini_doc()
    doc["$defs"]["customer"]["properties"]["nickname"] = {
        "title": "Nickname", "description": "What friends call them", "x-crm-field": {"kind": "text"},
        "x-crm-ui": {"placeholder": "e.g. Bobby"}}
    AppService(web_db).apply(doc)
    nickname = field_html(client.get(f"{CUSTOMERS}/new").text, "nickname")
    assert '<label for="f-nickname">Nickname</label>' in nickname
    assert 'placeholder="e.g. Bobby"' in nickname and 'aria-describedby="f-nickname-help"' in nickname
    assert '<p class="help" id="f-nickname-help">What friends call them</p>' in nickname


def test_form_sections_and_columns_follow_the_definition(client: Client, web_db: Database) -> None:
    doc = mini_doc()
    doc["$defs"]["customer"]["x-crm-form"] = {"sections": [
        {"title": "Contact", "columns": 3, "fields": ["email", "name"]},
        {"title": "Notes", "columns": 1, "fields": ["notes"]}]}
    doc["$defs"]["customer"]["properties"]["phone"]["x-crm-field"]["hidden"] = True
    AppService(web_db).apply(doc)
    page = client.get(f"{CUSTOMERS}/new").text
    assert re.findall(r'<h2 id="section-\d+">([^<]+)</h2>', page) == ["Contact", "Notes"]
    assert page.index('class="form-grid cols-3"') < page.index('id="field-email"') < page.index('id="field-name"')
    assert page.index('class="form-grid cols-1"') < page.index('id="field-notes"') < page.index('id="field-age"')
    assert page.index('id="field-age"') < page.index('id="field-score"')  # the rest follow in definition order
    assert 'id="field-phone"' not in page  # hidden


# --- creating ------------------------------------------------------------------------------------------------
def test_create_redirects_to_the_new_record(client: Client, records: RecordService, acme: str) -> None:
    response = post(client, f"{CUSTOMERS}/new", {
        "name": "Li Wei", "email": "li@example.com", "phone": "030 1234567", "age": "36", "spend": "1,234.5",
        "vip": ["false", "true"], "tags": ["", "vip", "new"], "company": acme, "partners": ["", acme],
        "rating": ["", "4"], "notes": "line one\nline two", "stage": "lead", "_tz_offset": "0"})
    assert response.status_code == 303
    record_id = response.headers["location"].rsplit("/", 1)[1]
    assert response.headers["location"] == f"{CUSTOMERS}/{record_id}"
    stored = records.get("customer", record_id)
    assert stored["phone"] == "+49301234567" and stored["spend"] == "1234.50" and stored["vip"] is True
    assert stored["tags"] == ["vip", "new"] and stored["company"] == acme and stored["partners"] == [acme]
    assert stored["rating"] == 4 and stored["notes"] == "line one\nline two" and stored["number"] == "CUS-00001"
    assert stored["segment"] == "b2c"  # the default was not touched by the form


def test_create_through_htmx_redirects_on_the_client(client: Client, records: RecordService) -> None:
    response = post(client, f"{CUSTOMERS}/new", {"name": "Anna"}, htmx_request=True)
    assert response.status_code == 200
    assert response.headers["hx-redirect"].startswith(f"{CUSTOMERS}/")
    assert records.count("customer") == 1


def test_create_with_errors_shows_each_message_next_to_its_field_and_keeps_the_input(
        client: Client, records: RecordService) -> None:
    response = post(client, f"{CUSTOMERS}/new", {
        "name": "", "email": "not-an-email", "age": "abc", "spend": "-5", "notes": "kept\ntext"})
    assert response.status_code == 422
    page = response.text
    name, email, age, spend = (field_html(page, k) for k in ("name", "email", "age", "spend"))
    assert 'aria-invalid="true"' in name and "姓名 Name is required." in name and "autofocus" in name
    assert 'value="not-an-email"' in email and "Email is not a valid email address." in email
    assert 'aria-describedby="f-email-error"' in email and '<p class="error" id="f-email-error">' in email
    assert 'value="abc"' in age and "is not a number" in age and "autofocus" not in age
    assert "must be at least 0 EUR" in spend and 'aria-describedby="f-spend-code f-spend-error"' in spend
    assert ">\nkept\ntext</textarea>" in page
    assert 'aria-invalid' not in field_html(page, "phone")
    assert records.count("customer") == 0


def test_create_errors_through_htmx_return_only_the_form(client: Client) -> None:
    response = post(client, f"{CUSTOMERS}/new", {"name": "", "stage": "won"}, htmx_request=True)
    assert response.status_code == 200
    assert "<html" not in response.text and '<form id="record-form"' in response.text
    assert "Why won is required when Stage is Won." in field_html(response.text, "won_reason")
    assert not re.search(r'id="field-won_reason"[^>]*hidden', response.text)


def test_unique_value_taken_is_reported_on_save(client: Client, records: RecordService) -> None:
    records.create("customer", {"name": "First", "email": "li@example.com"})
    response = post(client, f"{CUSTOMERS}/new", {"name": "Second", "email": "li@example.com"})
    assert response.status_code == 422
    assert "is already used by another Customer" in field_html(response.text, "email")


# --- inline validation and visibility --------------------------------------------------------------------------
def test_inline_validation_returns_the_field_with_or_without_its_message(
        client: Client, records: RecordService) -> None:
    bad = post(client, f"{CUSTOMERS}/validate", {"_field": "email", "email": "nope", "name": ""}, htmx_request=True)
    assert bad.status_code == 200
    assert bad.text.lstrip().startswith('<div class="field field-email has-error" id="field-email"')
    assert 'aria-invalid="true"' in bad.text and "Email is not a valid email address." in bad.text
    assert 'value="nope"' in bad.text and "autofocus" not in bad.text and "f-name" not in bad.text
    good = post(client, f"{CUSTOMERS}/validate", {"_field": "email", "email": "li@Example.COM"}, htmx_request=True)
    assert 'id="field-email"' in good.text and "error" not in good.text and "aria-invalid" not in good.text
    records.create("customer", {"name": "Li", "email": "li@example.com"})
    taken = post(client, f"{CUSTOMERS}/validate", {"_field": "email", "email": "li@example.com"}, htmx_request=True)
    assert "is already used by another Customer" in taken.text
    required = post(client, f"{CUSTOMERS}/validate", {"_field": "name", "name": "  "}, htmx_request=True)
    assert "姓名 Name is required." in required.text


def test_visibility_shows_won_reason_only_when_stage_is_won(client: Client) -> None:
    url = f"{CUSTOMERS}/visibility"
    shown = post(client, url, {"name": "x", "stage": "won", "won_reason": "typed before"}, htmx_request=True)
    wrapper = field_html(shown.text, "won_reason")
    assert 'hx-swap-oob="outerHTML"' in wrapper and " hidden" not in wrapper.split(">", 1)[0]
    assert 'value="typed before"' in wrapper and 'name="_shown" value="won_reason"' in wrapper
    hidden = post(client, url, {"stage": "lead", "_shown": "won_reason", "won_reason": "kept"}, htmx_request=True)
    assert re.search(r'id="field-won_reason"[^>]*hidden', hidden.text) and 'value="kept"' in hidden.text
    assert post(client, url, {"stage": "lead"}, htmx_request=True).text.strip() == ""
    assert post(client, url, {"stage": "won", "_shown": "won_reason"}, htmx_request=True).text.strip() == ""


# --- editing and conflicts -------------------------------------------------------------------------------------
def test_edit_shows_the_record_and_saves_changes(client: Client, records: RecordService, acme: str) -> None:
    record = records.create("customer", {"name": "Li", "tags": ["vip"], "vip": True, "company": acme,
                                         "last_seen": "2026-01-31T09:30:15Z"})
    url = f"{CUSTOMERS}/{record['id']}/edit"
    page = client.get(url).text
    assert 'name="version" value="1"' in page and 'value="Li"' in page and "Acme" in field_html(page, "company")
    assert 'data-utc="2026-01-31T09:30:15Z"' in page and 'value="2026-01-31T09:30"' in page
    assert 'value="CUS-00001" readonly' in page
    response = post(client, url, {"version": "1", "name": "Li Wei", "tags": [""], "vip": ["false"], "company": "",
                                  "last_seen": "2026-01-31T09:30", "_tz_offset": "0", "number": "CUS-99999"})
    assert response.status_code == 303 and response.headers["location"] == f"{CUSTOMERS}/{record['id']}"
    stored = records.get("customer", record["id"])
    assert stored["name"] == "Li Wei" and stored["vip"] is False and stored["version"] == 2
    assert "tags" not in stored and "company" not in stored and stored["number"] == "CUS-00001"
    assert stored["last_seen"] == "2026-01-31T09:30:15Z"  # untouched at the minute: the seconds stay


def test_saving_an_untouched_edit_form_changes_nothing(client: Client, records: RecordService, acme: str) -> None:
    record = records.create("customer", {
        "name": "Li", "email": "li@example.com", "phone": "+49301234567", "age": 36, "score": "3.25",
        "spend": "1234.50", "discount": 12.5, "vip": True, "birthday": "1990-05-01",
        "last_seen": "2026-01-31T09:30:15Z", "segment": "b2b", "tags": ["vip", "new"], "company": acme,
        "partners": [acme], "rating": 4, "notes": "\nstarts with a line break", "stage": "won", "won_reason": "Price"})
    url = f"{CUSTOMERS}/{record['id']}/edit"
    data = submitted(client.get(url).text)
    assert data["tags"] == ["", "vip", "new"] and data["vip"] == ["false", "true"] and data["rating"] == ["", "4"]
    assert "q" not in data and "number" not in data
    response = client.post(url, data=data, follow_redirects=False)  # the form's own _csrf_token
    assert response.status_code == 303
    assert records.get("customer", record["id"])["version"] == 1
    assert len(records.history("customer", record["id"])) == 1  # only the create


def test_edit_with_errors_keeps_input_and_saves_nothing(client: Client, records: RecordService) -> None:
    record = records.create("customer", {"name": "Li"})
    response = post(client, f"{CUSTOMERS}/{record['id']}/edit", {"version": "1", "name": "", "age": "200"})
    assert response.status_code == 422
    assert "must be at most 150" in field_html(response.text, "age") and 'value="200"' in response.text
    assert 'name="version" value="1"' in response.text
    assert records.get("customer", record["id"])["version"] == 1


def test_a_conflicting_edit_shows_what_changed_and_stores_nothing(client: Client, records: RecordService) -> None:
    record = records.create("customer", {"name": "Li", "email": "li@example.com", "age": 30})
    url = f"{CUSTOMERS}/{record['id']}/edit"
    records.update("customer", record["id"], {"email": "li.wei@example.com"}, expected_version=1)  # someone else
    response = post(client, url, {"version": "1", "name": "Li Wei", "email": "mine@example.com", "age": "31"})
    assert response.status_code == 409
    panel = re.search(r'<section class="alert conflict" id="conflict-panel".*?</section>', response.text, re.S)
    assert panel and "Changed by someone-else" in panel.group(0)
    row = re.search(r'<tr data-field="email">.*?</tr>', panel.group(0), re.S)
    assert row and "li@example.com" in row.group(0) and "li.wei@example.com" in row.group(0)
    assert "mine@example.com" in row.group(0)
    assert 'id="conflict-save-mine"' in panel.group(0) and f'id="conflict-discard" href="{url}"' in panel.group(0)
    assert 'value="Li Wei"' in response.text and 'name="version" value="2"' in response.text
    stored = records.get("customer", record["id"])
    assert stored["version"] == 2 and stored["name"] == "Li" and stored["age"] == 30
    # "Save mine anyway" posts the form again, now based on the current version.
    again = post(client, url, {"version": "2", "name": "Li Wei", "email": "mine@example.com", "age": "31"})
    assert again.status_code == 303
    assert records.get("customer", record["id"])["email"] == "mine@example.com"


def test_conflict_through_htmx_returns_the_form_with_the_panel(client: Client, records: RecordService) -> None:
    record = records.create("customer", {"name": "Li"})
    records.update("customer", record["id"], {"name": "Li W."})
    response = post(client, f"{CUSTOMERS}/{record['id']}/edit", {"version": "1", "name": "Mine"}, htmx_request=True)
    assert response.status_code == 200 and "<html" not in response.text
    assert 'id="conflict-panel"' in response.text and 'value="Mine"' in response.text


# --- time zones, relations, lookup -------------------------------------------------------------------------------
def test_datetime_input_is_local_time_converted_to_utc(client: Client, records: RecordService) -> None:
    response = post(client, f"{CUSTOMERS}/new", {"name": "Tz", "last_seen": "2026-01-31T10:30", "_tz_offset": "-60"})
    record_id = response.headers["location"].rsplit("/", 1)[1]
    assert records.get("customer", record_id)["last_seen"] == "2026-01-31T09:30:00Z"
    bad = post(client, f"{CUSTOMERS}/new", {"name": "Tz", "last_seen": "soon", "_tz_offset": "-60"})
    assert "is not a date and time" in field_html(bad.text, "last_seen") and 'value="soon"' in bad.text


def test_new_form_prefills_a_relation_from_the_query_string(client: Client, acme: str) -> None:
    page = client.get(f"{CUSTOMERS}/new?company={acme}&name=From+link").text
    company = field_html(page, "company")
    assert f'name="company" id="f-company" value="{acme}"' in company
    assert '<span id="f-company-chosen" data-lookup-title>Acme</span>' in company
    assert 'value="From link"' in page


def test_lookup_lists_matching_records_as_options(client: Client, records: RecordService) -> None:
    for name in ("Acme", "Acme Labs", "Globex"):
        records.create("company", {"name": name})
    response = client.get("/apps/mini/company/lookup", params={"q": "acm", "field": "company"})
    assert response.status_code == 200
    options = re.findall(r'data-lookup-option data-id="([^"]+)" data-title="([^"]+)"', response.text)
    assert [title for _, title in options] == ["Acme", "Acme Labs"]
    assert 'id="f-company-option-1"' in response.text and 'role="option"' in response.text
    none = client.get("/apps/mini/company/lookup", params={"q": "zzz", "field": "company"})
    assert "No Companies match" in none.text and "data-lookup-option" not in none.text


# --- safety ------------------------------------------------------------------------------------------------------
def test_a_post_without_the_csrf_token_is_refused(client: Client, records: RecordService) -> None:
    client.get("/")
    assert client.post(f"{CUSTOMERS}/new", data={"name": "x"}, follow_redirects=False).status_code == 403
    assert client.post(f"{CUSTOMERS}/validate", data={"_field": "name"}).status_code == 403
    assert records.count("customer") == 0
    # A plain HTML form post passes with the hidden _csrf_token input the form carries.
    page = client.get(f"{CUSTOMERS}/new").text
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page)
    assert token
    ok = client.post(f"{CUSTOMERS}/new", data={"_csrf_token": token.group(1), "name": "x"}, follow_redirects=False)
    assert ok.status_code == 303


def test_script_typed_into_a_field_is_escaped_in_the_form(client: Client, records: RecordService) -> None:
    evil = '<script>alert("x")</script>'
    response = post(client, f"{CUSTOMERS}/new", {"name": evil, "email": evil, "notes": evil})
    assert response.status_code == 422
    assert "<script>alert" not in response.text and "&lt;script&gt;" in response.text
    record = records.create("customer", {"name": evil})
    edit = client.get(f"{CUSTOMERS}/{record['id']}/edit").text
    assert "<script>alert" not in edit and 'value="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"' in edit
