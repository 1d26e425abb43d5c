"""List pages over HTTP: the page and its fragment, sort, filters, search, paging, counts, saved views, bulk actions,
CSV export and CSRF, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from engine.forms.listquery import read_list_view
from engine.schema import load_definition
from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.records import RecordService
from engine.transfer import import_records
from tests.web.conftest import csrf

Client = TestClient[Litestar]
CUSTOMERS = "/apps/mini/customer"
FRAGMENT = {"HX-Request": "true", "HX-Target": "records"}

_PEOPLE: list[dict[str, Any]] = [
    {"name": "Li Wei", "email": "li.wei@example.com", "age": 36, "spend": "1200.00", "birthday": "1990-05-01",
     "last_seen": "2026-01-31T09:30:00Z", "segment": "b2b", "tags": ["vip"], "company": "acme", "vip": True,
     "partners": ["acme", "initech"], "rating": 4},
    {"name": "Anna Schmidt", "email": "anna@firma.de", "age": 52, "spend": "99.99", "birthday": "1974-12-24",
     "last_seen": "2026-02-01T12:00:00Z", "segment": "gov", "tags": ["new", "vip"], "company": "initech"},
    {"name": "Bob Stone", "email": "bob@stone.example", "age": 19, "spend": "15.50", "birthday": "2001-01-01",
     "segment": "b2c", "tags": ["new"], "company": "acme"},
    {"name": "Carla Diaz", "age": 70, "spend": "0", "segment": "b2c"},
]


@dataclass
class Seeded:
    """The mini app with three companies and four customers."""

    records: RecordService
    companies: dict[str, str]
    customers: dict[str, str]


@pytest.fixture
def seeded(web_db: Database) -> Seeded:
    records = RecordService(web_db, "mini")
    companies = {key: records.create("company", {"name": key.title()})["id"] for key in ("acme", "initech", "umbrella")}
    customers = {}
    for row in _PEOPLE:
        values = dict(row)
        if "company" in values:
            values["company"] = companies[values["company"]]
        values["partners"] = [companies[p] for p in values.get("partners", [])]
        customers[row["name"]] = records.create("customer", values)["id"]
    return Seeded(records, companies, customers)


def names(body: str) -> list[str]:
    """The titles in the rows' record links, in order."""
    return [html.unescape(n) for n in re.findall(r'class="record-link" href="[^"]*">([^<]*)</a>', body)]


def fragment(client: Client, query: str = "", path: str = CUSTOMERS) -> str:
    response = client.get(f"{path}?{query}" if query else path, headers=FRAGMENT)
    assert response.status_code == 200, response.text
    return response.text


def link(body: str, element_id: str) -> str:
    """The href of the element with this id."""
    match = re.search(rf'<a [^>]*id="{element_id}"[^>]*href="([^"]*)"|<a [^>]*href="([^"]*)"[^>]*id="{element_id}"',
                      body)
    assert match, f"no link #{element_id}"
    return html.unescape(match.group(1) or match.group(2))


# --- the page and its fragment ---------------------------------------------------------------------------
def test_list_page_shows_the_views_columns_with_values_by_kind(client: Client, seeded: Seeded) -> None:
    response = client.get(f"{CUSTOMERS}?cols=name,email,segment,company,spend,rating,birthday,last_seen,partners")
    assert response.status_code == 200
    page = response.text
    assert "<html" in page and 'id="records"' in page and 'id="list-search"' in page
    assert 'href="/apps/mini/customer/new"' in page and "Add customer" in page
    assert names(page) == ["Anna Schmidt", "Bob Stone", "Carla Diaz", "Li Wei"]  # the view sorts by name
    assert f'href="/apps/mini/customer/{seeded.customers["Li Wei"]}"' in page
    assert f'<a href="/apps/mini/company/{seeded.companies["acme"]}">Acme</a>' in page  # relation: the title
    assert '<span class="badge" data-value="b2b">Business</span>' in page  # select: the label
    assert "EUR 1,200.00" in page and "★★★★☆" in page
    assert '<time datetime="1990-05-01">' in page and '<time datetime="2026-01-31T09:30:00Z">' in page
    assert 'href="mailto:li.wei@example.com"' in page
    assert "4 customers" in page


def test_default_columns_come_from_the_view(client: Client, seeded: Seeded) -> None:
    page = client.get(CUSTOMERS).text
    heads = re.findall(r'<th scope="col" id="col-head-([a-z_]+)"', page)
    assert heads == ["name", "email", "segment"]


def test_htmx_request_aimed_at_the_table_gets_only_the_fragment(client: Client, seeded: Seeded) -> None:
    response = client.get(f"{CUSTOMERS}?sort=-age&junk=1", headers=FRAGMENT)
    assert response.status_code == 200
    assert "<html" not in response.text and 'id="list-state"' in response.text
    assert response.headers["hx-push-url"] == f"{CUSTOMERS}?sort=-age"  # the canonical URL goes into history
    assert names(response.text) == ["Carla Diaz", "Anna Schmidt", "Li Wei", "Bob Stone"]
    other = client.get(CUSTOMERS, headers={"HX-Request": "true", "HX-Target": "main"})
    assert "<html" in other.text


def test_clicking_a_column_header_toggles_the_sort(client: Client, seeded: Seeded) -> None:
    page = fragment(client)
    assert re.search(r'id="col-head-name"[^>]*aria-sort="ascending"', page)
    flipped = fragment(client, urlsplit(link_in_header(page, "name")).query)
    assert names(flipped) == ["Li Wei", "Carla Diaz", "Bob Stone", "Anna Schmidt"]
    assert re.search(r'id="col-head-name"[^>]*aria-sort="descending"', flipped)
    by_segment = fragment(client, urlsplit(link_in_header(flipped, "segment")).query)
    assert re.search(r'id="col-head-segment"[^>]*aria-sort="ascending"', by_segment)
    assert re.search(r'id="col-head-name"[^>]*aria-sort="none"', by_segment)
    assert names(by_segment)[:1] == ["Li Wei"]  # b2b first
    back = fragment(client, urlsplit(link_in_header(flipped, "name")).query)
    assert names(back) == ["Anna Schmidt", "Bob Stone", "Carla Diaz", "Li Wei"]


def link_in_header(body: str, key: str) -> str:
    match = re.search(rf'id="col-head-{key}"[^>]*><a href="([^"]*)"', body)
    assert match, f"column {key} has no sort link"
    return html.unescape(match.group(1))


# --- filters and search ----------------------------------------------------------------------------------
def test_each_kind_of_filter_operator(client: Client, seeded: Seeded) -> None:
    acme, initech = seeded.companies["acme"], seeded.companies["initech"]
    cases = {
        "f.name.contains=st": {"Bob Stone"},  # text, any case
        "f.name.eq=Li Wei": {"Li Wei"},
        "f.name.starts_with=an": {"Anna Schmidt"},
        "f.age.gte=36": {"Li Wei", "Anna Schmidt", "Carla Diaz"},
        "f.age.between=20;60": {"Li Wei", "Anna Schmidt"},
        "f.spend.lt=100": {"Anna Schmidt", "Bob Stone", "Carla Diaz"},
        "f.spend.gte=1,000": {"Li Wei"},
        "f.birthday.between=1980-01-01;2001-12-31": {"Li Wei", "Bob Stone"},
        "f.birthday.between=1980-01-01;": {"Li Wei", "Bob Stone"},  # an open range
        "f.last_seen.lte=2026-01-31": {"Li Wei"},  # a whole day on a date-time field
        "f.last_seen.eq=2026-02-01": {"Anna Schmidt"},
        "f.segment.in=b2b;gov": {"Li Wei", "Anna Schmidt"},
        "f.segment.in=Consumer": {"Bob Stone", "Carla Diaz"},  # option labels work too
        "f.segment.not_in=b2c": {"Li Wei", "Anna Schmidt"},
        f"f.company.eq={acme}": {"Li Wei", "Bob Stone"},
        "f.company.empty=1": {"Carla Diaz"},
        "f.email.empty=1": {"Carla Diaz"},
        "f.email.not_empty=1": {"Li Wei", "Anna Schmidt", "Bob Stone"},
        "f.tags.has=new": {"Anna Schmidt", "Bob Stone"},
        "f.tags.has_all=new;vip": {"Anna Schmidt"},
        f"f.partners.has={initech}": {"Li Wei"},
        "f.age.gte=30&f.segment.in=b2c": {"Carla Diaz"},  # filters combine
        f"f.created_at.gte={dt.date.today() - dt.timedelta(days=1)}": set(_names_all()),
        f"f.created_at.lt={dt.date.today() - dt.timedelta(days=1)}": set(),
    }
    for query, expected in cases.items():
        body = fragment(client, query)
        assert set(names(body)) == expected, query
        assert 'id="list-errors"' not in body, query


def test_boolean_filter(client: Client, seeded: Seeded) -> None:
    assert set(names(fragment(client, "f.vip.eq=yes"))) == {"Li Wei"}


def _names_all() -> list[str]:
    return [p["name"] for p in _PEOPLE]


def test_active_filters_are_described_and_removable(client: Client, seeded: Seeded) -> None:
    body = fragment(client, f"f.segment.in=b2b;gov&f.company.eq={seeded.companies['acme']}&f.age.gte=30")
    for words in ("Segment is one of Business, Government", "Company is Acme", "Age is at least 30"):
        assert words in body
    remove = re.findall(r'<li class="badge">[^<]*<a href="([^"]*)"', body)
    assert len(remove) == 3
    without_segment = fragment(client, urlsplit(html.unescape(remove[0])).query)
    assert set(names(without_segment)) == {"Li Wei"}
    assert "Segment is one of" not in without_segment


def test_the_filter_builder_adds_a_filter_to_the_url(client: Client, seeded: Seeded) -> None:
    response = client.get(f"{CUSTOMERS}?f.age.gte=20&add.field=segment&add.op=in&add.value=b2b&add.value=gov"
                          "&panel=filters", headers=FRAGMENT)
    assert set(names(response.text)) == {"Li Wei", "Anna Schmidt"}
    assert response.headers["hx-push-url"] == f"{CUSTOMERS}?f.age.gte=20&f.segment.in=b2b;gov"
    assert 'id="filters-panel" open' in response.text  # the builder stays open for the next filter
    between = fragment(client, "add.field=age&add.op=between&add.value=30&add.value=")  # "to" left blank
    assert set(names(between)) == {"Li Wei", "Anna Schmidt", "Carla Diaz"}


def test_the_filter_builder_offers_the_operators_of_each_kind(client: Client, seeded: Seeded) -> None:
    def control(query: str) -> str:
        response = client.get(f"{CUSTOMERS}/filter-control?{query}")
        assert response.status_code == 200
        return response.text

    def ops(body: str) -> list[str]:
        select = body.split('id="filter-op"', 1)[1].split("</select>", 1)[0]
        return re.findall(r'<option value="([a-z_]+)"', select)

    text = control("add.field=name")
    assert ops(text) == ["eq", "ne", "contains", "starts_with", "in", "empty", "not_empty"]
    assert '<option value="contains" selected>' in text
    segment = control("add.field=segment")
    assert '<option value="in" selected>' in segment and 'type="checkbox" name="add.value" value="gov"' in segment
    amount = control("add.field=spend&add.op=between")
    assert 'id="filter-value-to"' in amount and 'inputmode="decimal"' in amount
    birthday = control("add.field=birthday")
    assert '<option value="between" selected>is between</option>' in birthday and 'type="date"' in birthday
    company = control("add.field=company")
    assert '<option value="eq" selected>is</option>' in company and ">Acme</option>" in company
    assert 'id="filter-value"' not in control("add.field=email&add.op=empty")
    assert ops(control("add.field=created_at")) == ["gte", "lte", "gt", "lt", "between"]


def test_quick_search_looks_in_searchable_fields(client: Client, web_db: Database) -> None:
    records = RecordService(web_db, "sales_crm")
    for name, city in (("Li Wei", "Shanghai"), ("Anna Schmidt", "Berlin"), ("Ana Lima", "São Paulo")):
        records.create("customer", {"name": name, "city": city})
    path = "/apps/sales_crm/customer"
    assert set(names(fragment(client, "q=berlin", path))) == {"Anna Schmidt"}
    assert set(names(fragment(client, "q=an", path))) == {"Anna Schmidt", "Ana Lima", "Li Wei"}  # "Shanghai"
    assert 'value="ber"' in client.get(f"{path}?q=ber").text  # the search box shows the search
    empty = fragment(client, "q=nobody", path)
    assert "No records match these filters" in empty and 'id="clear-filters"' in empty


# --- paging and counting ---------------------------------------------------------------------------------
def test_paging_visits_every_record_exactly_once(client: Client, web_db: Database) -> None:
    records = RecordService(web_db, "mini")
    records.create_many("company", [{"name": f"Company {i:03d}", "website": "x.example" if i % 3 else None}
                                    for i in range(60)])
    seen: list[str] = []
    query = "size=25&sort=website,-name"  # a nullable column first: empty values are paged through last
    pages = 0
    while True:
        body = fragment(client, query, "/apps/mini/company")
        seen.extend(names(body))
        pages += 1
        if 'id="next-page"' not in body:
            break
        assert 'rel="next"' in body
        query = urlsplit(link(body, "next-page")).query
        assert "First page" in fragment(client, query, "/apps/mini/company")
    assert pages == 3 and len(seen) == 60 and len(set(seen)) == 60
    assert "60 companies" in body


def test_page_size_is_chosen_from_the_offered_sizes(client: Client, web_db: Database) -> None:
    RecordService(web_db, "mini").create_many("company", [{"name": f"C{i:03d}"} for i in range(30)])
    assert len(names(fragment(client, "size=25", "/apps/mini/company"))) == 25
    assert len(names(fragment(client, "", "/apps/mini/company"))) == 30  # default 50
    odd = fragment(client, "size=7", "/apps/mini/company")
    assert len(names(odd)) == 30 and "page size is one of 25, 50, 100" in odd


def test_count_stops_at_a_thousand_on_big_tables(client: Client, web_db: Database) -> None:
    RecordService(web_db, "mini").create_many("company", [{"name": f"C{i:05d}"} for i in range(1002)])
    body = fragment(client, "", "/apps/mini/company")
    assert "More than 1,000 companies" in body
    assert "1,002" not in body
    assert "1 company" in fragment(client, "f.name.eq=C00001", "/apps/mini/company")


# --- errors users can cause -------------------------------------------------------------------------------
def test_bad_filters_give_a_message_and_the_rest_still_applies(client: Client, seeded: Seeded) -> None:
    response = client.get(f"{CUSTOMERS}?f.age.gte=abc&f.segment.in=zzz&f.nope.eq=1&f.name.between=a;b"
                          "&f.birthday.eq=31.12.2000&f.company.eq=42&f.bad=1&sort=tags,-bogus&cols=name,ghost"
                          "&f.segment.eq=b2c&after=not-a-cursor&size=x")
    assert response.status_code == 200
    body = response.text
    assert 'id="list-errors"' in body
    for message in ("Age: &#39;abc&#39; is not a number", "&#39;zzz&#39; is not an option",
                    "there is no field &#39;nope&#39;", "cannot filter 姓名 Name with &#39;between&#39;",
                    "is not a date", "is not a record id",
                    "cannot sort by &#39;tags&#39;", "there is no column &#39;ghost&#39;", "out of date",
                    "&#39;f.bad&#39; is not a filter"):
        assert message in body, message
    assert set(names(body)) == {"Bob Stone", "Carla Diaz"}  # f.segment.eq=b2c still applies


def test_unknown_entity_is_a_404_page(client: Client, seeded: Seeded) -> None:
    response = client.get("/apps/mini/nothing")
    assert response.status_code == 404 and "no entity" in response.text


def test_empty_lists_say_what_to_do_next(client: Client, seeded: Seeded) -> None:
    nothing = client.get("/apps/sales_crm/deal").text
    assert "No deals yet" in nothing and 'href="/apps/sales_crm/deal/new"' in nothing
    no_match = fragment(client, "f.age.gt=100&q=x")
    assert "No records match these filters" in no_match
    assert link(no_match, "clear-filters") == CUSTOMERS


# --- columns ---------------------------------------------------------------------------------------------
def test_columns_are_chosen_and_moved(client: Client, seeded: Seeded) -> None:
    response = client.get(f"{CUSTOMERS}?cols=name&cols=segment&cols=age&move=age&panel=columns", headers=FRAGMENT)
    assert response.headers["hx-push-url"] == f"{CUSTOMERS}?cols=name,age,segment"
    heads = re.findall(r'<th scope="col" id="col-head-([a-z_]+)"', response.text)
    assert heads == ["name", "age", "segment"]
    assert 'id="columns-panel" open' in response.text
    assert 'id="col-age" name="cols" value="age" checked' in response.text
    assert 'id="col-email" name="cols" value="email">' in response.text  # offered, not shown


def test_a_field_added_to_the_app_shows_on_the_next_request(client: Client, seeded: Seeded, web_db: Database,
                                                            mini_doc: dict[str, Any]) -> None:
    assert "Founded" not in fragment(client, "", "/apps/mini/company")
    mini_doc["$defs"]["company"]["properties"]["founded"] = {"title": "Founded", "x-crm-field": {"kind": "integer"}}
    AppService(web_db).apply(mini_doc)
    seeded.records.update("company", seeded.companies["acme"], {"founded": 1999})
    after = fragment(client, "", "/apps/mini/company")
    assert 'id="col-head-founded"' in after and "1,999" in after
    assert 'value="founded"' in after  # in the filter builder and the columns chooser too


def test_user_text_is_escaped(client: Client, seeded: Seeded) -> None:
    seeded.records.create("customer", {"name": "<script>alert(1)</script>", "notes": "<b>bold</b>",
                                       "company": seeded.companies["acme"]})
    seeded.records.update("company", seeded.companies["acme"], {"name": "<img src=x onerror=alert(2)>"})
    page = client.get(f"{CUSTOMERS}?cols=name,notes,company&q=<script>").text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<b>bold" not in page


# --- saved views -----------------------------------------------------------------------------------------
def test_saved_views_are_saved_opened_and_deleted(client: Client, seeded: Seeded) -> None:
    headers = {**csrf(client), "HX-Request": "true", "HX-Target": "saved-views"}
    state = {"cols": "name,age", "sort": "-age", "f.segment.in": "b2c;gov", "view_name": "  Older  people "}
    saved = client.post(f"{CUSTOMERS}/views", data=state, headers=headers)
    assert saved.status_code == 200 and "Saved the view “Older people”" in saved.text
    href = html.unescape(re.search(r'<a class="button" href="([^"]*)" data-view-id', saved.text).group(1))
    assert dict(parse_qsl(urlsplit(href).query)) == {"cols": "name,age", "sort": "-age", "f.segment.in": "b2c;gov"}
    again = client.post(f"{CUSTOMERS}/views", data=state, headers=headers)
    assert "already a view named “Older people”" in again.text
    page = client.get(href).text
    assert names(page) == ["Carla Diaz", "Anna Schmidt", "Bob Stone"] and "Older people" in page
    assert "Older people" not in client.get("/apps/mini/company").text  # views belong to their entity
    view_id = re.search(r'data-view-id="(\d+)"', page).group(1)
    deleted = client.post(f"{CUSTOMERS}/views/{view_id}/delete", headers=headers)
    assert deleted.status_code == 200 and "Older people" not in deleted.text
    assert "Older people" not in client.get(CUSTOMERS).text


def test_a_plain_form_post_saves_a_view_and_redirects(client: Client, seeded: Seeded) -> None:
    page = client.get(CUSTOMERS).text
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(f"{CUSTOMERS}/views", data={"_csrf_token": token, "view_name": "All", "sort": "-age"},
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"{CUSTOMERS}?sort=-age"


# --- bulk actions ----------------------------------------------------------------------------------------
def test_bulk_delete_deletes_the_selected_records(client: Client, seeded: Seeded) -> None:
    ids = [seeded.customers["Bob Stone"], seeded.customers["Carla Diaz"]]
    response = client.post(f"{CUSTOMERS}/bulk-delete", data={"ids": ids, "sort": "-age"},
                           headers={**csrf(client), **FRAGMENT})
    assert response.status_code == 200
    assert "Deleted 2 customers." in response.text
    assert names(response.text) == ["Anna Schmidt", "Li Wei"]  # the list comes back in its state
    assert seeded.records.count("customer") == 2


def test_bulk_delete_reports_records_that_cannot_go(client: Client, seeded: Seeded, web_db: Database) -> None:
    sales = RecordService(web_db, "sales_crm")
    kept = sales.create("customer", {"name": "Kept"})["id"]
    sales.create("deal", {"title": "Big one", "customer": kept})  # deals restrict deleting their customer
    free = sales.create("customer", {"name": "Free"})["id"]
    response = client.post("/apps/sales_crm/customer/bulk-delete", data={"ids": [kept, free]},
                           headers={**csrf(client), **FRAGMENT})
    assert "Deleted 1 customer." in response.text
    assert re.search(r"<li><strong>Kept</strong>: [^<]+</li>", response.text)
    assert names(response.text) == ["Kept"]


def test_bulk_set_changes_each_record_and_reports_failures(client: Client, seeded: Seeded) -> None:
    ids = list(seeded.customers.values())
    headers = {**csrf(client), **FRAGMENT}
    response = client.post(f"{CUSTOMERS}/bulk-update", data={"ids": ids, "bulk_field": "segment",
                                                             "bulk_value": "Government", "cols": "name,segment"},
                           headers=headers)
    assert "Changed Segment on 4 customers." in response.text and 'id="list-failures"' not in response.text
    assert {r["segment"] for r in seeded.records.query("customer").records} == {"gov"}
    # email is unique: the first record takes it, the others fail with their title and the field's message
    two = [seeded.customers["Bob Stone"], seeded.customers["Carla Diaz"]]
    failed = client.post(f"{CUSTOMERS}/bulk-update", data={"ids": two, "bulk_field": "email",
                                                           "bulk_value": "same@example.com"}, headers=headers)
    assert "Changed Email on 1 customer." in failed.text
    assert re.search(r"<li><strong>Carla Diaz</strong>: Email: [^<]+</li>", failed.text)
    over = client.post(f"{CUSTOMERS}/bulk-update", data={"ids": ids[:1], "bulk_field": "age", "bulk_value": "500"},
                       headers=headers)
    assert "Changed Age on 0 customers." in over.text and "<strong>Li Wei</strong>: Age:" in over.text
    bad = client.post(f"{CUSTOMERS}/bulk-update", data={"ids": ids, "bulk_field": "age", "bulk_value": "many"},
                      headers=headers)
    assert "Nothing was changed: Age:" in bad.text
    cleared = client.post(f"{CUSTOMERS}/bulk-update", data={"ids": ids, "bulk_field": "spend", "bulk_value": ""},
                          headers=headers)
    assert "Changed Spend on 4 customers." in cleared.text
    assert all("spend" not in r for r in seeded.records.query("customer").records)


# --- CSV export ------------------------------------------------------------------------------------------
def _csv(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def test_export_of_the_view_has_every_page_its_filters_and_columns(client: Client, seeded: Seeded,
                                                                   web_db: Database) -> None:
    seeded.records.create_many("customer", [{"name": f"Extra {i:04d}", "segment": "gov"} for i in range(1100)])
    response = client.get(f"{CUSTOMERS}/export.csv?cols=name,segment,tags,company&f.segment.in=gov&sort=-name&size=25")
    rows = _csv(response)
    assert list(rows[0]) == ["id", "name", "segment", "tags", "company"]
    assert len(rows) == 1101 and rows[0]["name"] == "Extra 1099" and rows[-1]["name"] == "Anna Schmidt"
    assert rows[-1]["tags"] == "vip;new" and rows[-1]["company"] == seeded.companies["initech"]


def test_exported_selection_is_taken_back_by_import(client: Client, seeded: Seeded, web_db: Database) -> None:
    chosen = [seeded.customers["Li Wei"], seeded.customers["Anna Schmidt"]]
    columns = "name,email,age,spend,birthday,last_seen,segment,tags,company,partners,vip,rating,created_at"
    before = {i: seeded.records.get("customer", i) for i in chosen}
    page = client.get(CUSTOMERS).text  # the selection is posted by the list's bulk form, a plain HTML form
    token = re.search(r'<form id="bulk-form"[^>]*>\s*<input type="hidden" name="_csrf_token" value="([^"]+)"',
                      page).group(1)
    response = client.post(f"{CUSTOMERS}/export.csv", data={"ids": chosen, "cols": columns, "_csrf_token": token})
    rows = _csv(response)
    assert [r["id"] for r in rows] == chosen and rows[0]["spend"] == "1200.00" and rows[0]["vip"] == "true"
    for record_id in chosen:
        seeded.records.delete("customer", record_id)
    text = response.content.decode("utf-8-sig")  # as `crm records import` opens files
    assert import_records(web_db, "mini", "customer", io.StringIO(text), "csv") == 2
    for record_id, old in before.items():
        new = seeded.records.get("customer", record_id)
        for key in columns.split(",")[:-1]:
            assert new.get(key) == old.get(key), key


# --- CSRF ------------------------------------------------------------------------------------------------
def test_posts_without_the_csrf_token_are_refused(client: Client, seeded: Seeded) -> None:
    client.get(CUSTOMERS)  # has the cookie, but sends no token
    ids = list(seeded.customers.values())
    for path, data in (("bulk-delete", {"ids": ids}), ("bulk-update", {"ids": ids, "bulk_field": "age"}),
                       ("views", {"view_name": "x"}), ("export.csv", {"ids": ids})):
        assert client.post(f"{CUSTOMERS}/{path}", data=data, headers=FRAGMENT).status_code == 403, path
    assert seeded.records.count("customer") == 4


# --- the query string itself -----------------------------------------------------------------------------
def test_query_string_reads_back_to_the_same_state(sales_doc: dict[str, Any]) -> None:
    deal = load_definition(sales_doc).entity("deal")
    view = read_list_view(deal, parse_qsl("cols=title,amount&sort=-amount,title&q=acme&f.stage.in=won;lost"
                                          "&f.amount.gte=1000&f.expected_close.between=2026-01-01;2026-12-31"
                                          "&f.owner.empty=1&size=25&after=abc"))
    assert not view.errors
    again = read_list_view(deal, parse_qsl(view.query_string(after=view.state.after)))
    assert again.state == view.state
    assert view.query_string() == ("cols=title,amount&sort=-amount,title&q=acme&f.stage.in=won;lost"
                                   "&f.amount.gte=1000.00&f.expected_close.between=2026-01-01;2026-12-31"
                                   "&f.owner.empty=1&size=25")
    defaults = read_list_view(deal, [])
    assert defaults.query_string() == "" and defaults.state.size == 50
    assert [c.key for c in defaults.columns][:2] == ["deal_number", "title"]
