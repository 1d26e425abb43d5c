"""The record page over HTTP: values shown by kind, layout, related lists, history, delete; SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.records import RecordService
from tests.web.test_forms import CUSTOMERS, mini_doc, post

Client = TestClient[Litestar]
COMPANIES = "/apps/mini/company"


@pytest.fixture
def web_db(db: Database) -> Database:
    """Only the mini app: it has every field kind and a relation and a many-relation to companies."""
    AppService(db).apply(mini_doc())
    return db


@pytest.fixture
def records(web_db: Database) -> RecordService:
    return RecordService(web_db, "mini", actor="ana@example.com")


def value_of(page: str, key: str) -> str:
    match = re.search(rf'<dd id="value-{key}">(.*?)</dd>', page, re.S)
    assert match, f"no value {key}"
    return match.group(1)


def test_record_page_shows_values_formatted_by_kind(client: Client, records: RecordService) -> None:
    acme = records.create("company", {"name": "Acme", "website": "https://acme.example"})["id"]
    initech = records.create("company", {"name": "Initech"})["id"]
    customer = records.create("customer", {
        "name": "Li Wei", "email": "li@example.com", "spend": "1234.5", "discount": 12.5, "vip": True,
        "birthday": "1990-05-01", "last_seen": "2026-01-31T09:30:00Z", "segment": "b2b", "tags": ["vip", "new"],
        "company": acme, "partners": [acme, initech], "rating": 4, "notes": "line one\nline two", "score": "1234.5"})
    response = client.get(f"{CUSTOMERS}/{customer['id']}")
    assert response.status_code == 200
    page = response.text
    assert "<h1>Li Wei</h1>" in page
    assert value_of(page, "spend") == "EUR 1,234.50" and value_of(page, "score") == "1,234.5"
    assert value_of(page, "discount") == "12.5 %" and value_of(page, "vip") == "Yes"
    assert value_of(page, "last_seen") == '<time datetime="2026-01-31T09:30:00Z">2026-01-31T09:30:00Z</time>'
    assert '<time datetime="1990-05-01">' in value_of(page, "birthday")
    assert value_of(page, "segment") == '<span class="badge">Business</span>'
    assert value_of(page, "tags").count('class="badge"') == 2
    assert value_of(page, "company") == f'<a href="{COMPANIES}/{acme}">Acme</a>'
    partners = value_of(page, "partners")
    assert f'<a class="chip" href="{COMPANIES}/{initech}">Initech</a>' in partners and ">Acme</a>" in partners
    assert 'aria-label="4 of 5 stars">★★★★☆</span>' in value_of(page, "rating")
    assert value_of(page, "notes") == '<span class="long-text">line one\nline two</span>'
    assert value_of(page, "email") == '<a href="mailto:li@example.com">li@example.com</a>'
    assert value_of(page, "number") == "CUS-00001"
    assert 'id="value-won_reason"' not in page  # its visibleIf does not hold and it is empty
    assert f'id="record-edit" href="{CUSTOMERS}/{customer["id"]}/edit"' in page
    assert f'id="record-delete" href="{CUSTOMERS}/{customer["id"]}/delete"' in page


def test_company_page_lists_related_customers_with_links_to_the_filtered_list_and_add(
        client: Client, records: RecordService) -> None:
    acme = records.create("company", {"name": "Acme"})["id"]
    other = records.create("company", {"name": "Other"})["id"]
    for i in range(12):
        records.create("customer", {"name": f"Customer {i:02d}", "company": acme, "segment": "gov"})
    records.create("customer", {"name": "Partner only", "partners": [acme, other]})
    page = client.get(f"{COMPANIES}/{acme}").text
    by_company = re.search(r'<section class="panel related-list" id="related-customer-company".*?</section>', page,
                           re.S)
    assert by_company
    section = by_company.group(0)
    assert "Customers · Company" in section and '<span class="muted count">12</span>' in section
    assert section.count("<tr>") == 11  # the header and the first 10
    assert f'href="{CUSTOMERS}?f.company.eq={acme}">Show all 12</a>' in section
    assert f'href="{CUSTOMERS}/new?company={acme}">Add Customer</a>' in section
    assert "Customer 11" in section and "Customer 01" not in section  # newest first
    assert '<span class="badge">Government</span>' in section
    partners = re.search(r'id="related-customer-partners".*?</section>', page, re.S)
    assert partners and "Partner only" in partners.group(0)
    assert f"{CUSTOMERS}?f.partners.has={acme}" in partners.group(0)
    empty = client.get(f"{COMPANIES}/{records.create('company', {'name': 'Lonely'})['id']}").text
    assert "None yet." in empty


def test_history_shows_who_changed_what_by_kind(client: Client, records: RecordService) -> None:
    acme = records.create("company", {"name": "Acme"})["id"]
    customer = records.create("customer", {"name": "Li", "spend": "10", "segment": "b2c"})
    editor = RecordService(records.db, "mini", actor="bo@example.com")
    editor.update("customer", customer["id"], {"spend": "2500", "segment": "gov", "company": acme})
    page = client.get(f"{CUSTOMERS}/{customer['id']}").text
    history = re.search(r'<section class="panel record-history".*?</section>', page, re.S)
    assert history
    entries = re.findall(r"<li>\s*<p><strong>(.*?)</strong> (\w+) it", history.group(0))
    assert entries == [("bo@example.com", "changed"), ("ana@example.com", "created")]
    text = history.group(0)
    assert re.search(r'Spend</span>:\s*<span class="old">EUR 10.00</span> → <span class="new">EUR 2,500.00</span>',
                     text)
    assert '<span class="old"><span class="badge">Consumer</span></span> → ' in text
    assert f'<a href="{COMPANIES}/{acme}">Acme</a>' in text and '<time datetime="' in text


def test_delete_asks_first_then_redirects_to_the_list(client: Client, records: RecordService) -> None:
    customer = records.create("customer", {"name": "Li"})
    url = f"{CUSTOMERS}/{customer['id']}"
    confirm = client.get(f"{url}/delete").text
    assert 'id="delete-confirm"' in confirm and f'action="{url}/delete"' in confirm
    assert 'id="delete-confirm-button"' in confirm and 'name="version" value="1"' in confirm
    response = post(client, f"{url}/delete", {"version": "1"})
    assert response.status_code == 303 and response.headers["location"] == CUSTOMERS
    assert records.count("customer") == 0
    assert client.get(url).status_code == 404


def test_a_refused_delete_shows_why(client: Client, records: RecordService, web_db: Database) -> None:
    doc = mini_doc()
    doc["$defs"]["customer"]["properties"]["company"]["x-crm-field"]["onDelete"] = "restrict"
    AppService(web_db).apply(doc)
    acme = records.create("company", {"name": "Acme"})["id"]
    records.create("customer", {"name": "Li", "company": acme})
    response = post(client, f"{COMPANIES}/{acme}/delete", {"version": "1"})
    assert response.status_code == 409
    assert 'id="record-problems"' in response.text and "cannot delete: 1 Customers refer to it" in response.text
    assert records.count("company") == 1
    stale = post(client, f"{COMPANIES}/{acme}/delete", {"version": "0"})
    assert stale.status_code == 409 and "changed this record after you opened it" in stale.text


def test_unknown_records_are_not_found(client: Client, web_db: Database) -> None:
    assert client.get(f"{CUSTOMERS}/00000000-0000-7000-8000-000000000000").status_code == 404
    assert client.get(f"{CUSTOMERS}/not-an-id/edit").status_code == 404
    assert client.get("/apps/mini/nothing/new").status_code == 404


def test_script_typed_into_a_field_is_escaped_on_the_record_page_and_in_the_history(
        client: Client, records: RecordService) -> None:
    evil = '<script>alert("x")</script>'
    acme = records.create("company", {"name": evil})["id"]
    customer = records.create("customer", {"name": evil, "notes": evil, "company": acme,
                                            "won_reason": evil})
    records.update("customer", customer["id"], {"name": evil + "!"})
    for url in (f"{CUSTOMERS}/{customer['id']}", f"{COMPANIES}/{acme}", f"{CUSTOMERS}/{customer['id']}/delete"):
        page = client.get(url).text
        assert "<script>alert" not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page, url
