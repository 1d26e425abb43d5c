"""In a real browser: sort, filter and page a list; save a view and reopen it; bulk-set a field."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from engine.storage.database import Database
from engine.storage.records import RecordService
from tests.browser.conftest import LiveServer, screenshot

_SEGMENTS = ["b2b", "b2c", "enterprise", "smb"]


def _seed(db: Database, count: int = 60) -> list[dict[str, Any]]:
    records = RecordService(db, "sales_crm", actor="seed")
    segments = _segment_options(db)
    rows = [{"name": f"Customer {i:03d}", "city": "Berlin" if i % 3 == 0 else "Paris",
             "segment": segments[i % len(segments)], "email": f"c{i:03d}@example.com"} for i in range(count)]
    return records.create_many("customer", rows)


def _segment_options(db: Database) -> list[str]:
    from engine.storage.apps import AppService

    return AppService(db).current("sales_crm").entity("customer").field("segment").option_values()


def _names(page: Any) -> list[str]:
    return page.locator("#records-table tbody a.record-link").all_inner_texts()


def _next_page(page: Any) -> list[str]:
    """Click Next and wait for htmx to swap in the following page."""
    before = _names(page)[0]
    page.click("#next-page")
    expect(page.locator("#records-table tbody a.record-link").first).not_to_have_text(before)
    return _names(page)


def test_sort_filter_and_page_a_list_with_back_and_forward(page: Any, live: tuple[LiveServer, Database]) -> None:
    server, db = live
    _seed(db)
    page.goto(f"{server.url}/apps/sales_crm/customer?cols=name,city,segment,email&size=25")
    expect(page.locator("#records-table tbody tr")).to_have_count(25)
    screenshot(page, "list-page")

    # The customer list view sorts by name (x-crm-views); a click on the header turns it round, another back.
    expect(page.locator("#col-head-name")).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("#records-table tbody a.record-link").first).to_have_text("Customer 000")
    page.locator("#col-head-name a").click()
    expect(page.locator("#col-head-name")).to_have_attribute("aria-sort", "descending")
    expect(page.locator("#records-table tbody a.record-link").first).to_have_text("Customer 059")
    expect(page).to_have_url(re.compile(r"sort=-name"))
    page.locator("#col-head-city a").click()
    expect(page.locator("#col-head-city")).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("#records-table tbody td").filter(has_text="Berlin").first).to_be_visible()

    page.fill("#list-search", "Customer 01")  # quick search swaps only the table and goes into the URL
    expect(page.locator("#records-table tbody tr")).to_have_count(10)
    expect(page).to_have_url(re.compile(r"q=Customer"))
    page.go_back()
    expect(page).not_to_have_url(re.compile(r"q=Customer"))
    expect(page.locator("#records-table tbody tr")).to_have_count(25)

    page.goto(f"{server.url}/apps/sales_crm/customer?cols=name,city&size=25&sort=name&f.city.eq=Berlin")
    assert _names(page) == [f"Customer {i:03d}" for i in range(0, 60, 3)]

    page.goto(f"{server.url}/apps/sales_crm/customer?cols=name,city&size=25&sort=name")
    seen = _names(page)
    seen += _next_page(page)
    expect(page).to_have_url(re.compile(r"after="))
    seen += _next_page(page)
    expect(page.locator("#next-page")).to_have_count(0)
    assert seen == [f"Customer {i:03d}" for i in range(60)]  # every record exactly once
    page.go_back()  # back returns to the second page
    expect(page.locator("#records-table tbody a.record-link").first).to_have_text("Customer 025")


def test_save_a_view_and_reopen_it(page: Any, live: tuple[LiveServer, Database]) -> None:
    server, db = live
    _seed(db, 12)
    page.goto(f"{server.url}/apps/sales_crm/customer?cols=name,city&sort=-name&f.city.eq=Paris")
    expected = _names(page)
    assert expected and expected == sorted(expected, reverse=True)
    page.fill("#view-name", "Paris, Z to A")
    page.click("#save-view")
    link = page.locator("#saved-view-list a", has_text="Paris, Z to A")
    expect(link).to_be_visible()

    page.goto(f"{server.url}/apps/sales_crm/customer")
    page.locator("#saved-view-list a", has_text="Paris, Z to A").click()
    expect(page).to_have_url(re.compile(r"f\.city\.eq=Paris"))
    assert _names(page) == expected


def test_bulk_set_a_field_on_selected_rows(page: Any, live: tuple[LiveServer, Database]) -> None:
    server, db = live
    created = _seed(db, 6)
    page.goto(f"{server.url}/apps/sales_crm/customer?cols=name,city&sort=name")
    boxes = page.locator("input[name='ids']")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.select_option("#bulk-field", "city")
    page.fill("#bulk-value", "Lisboa")
    page.click("#bulk-set")
    expect(page.locator("#list-notice")).to_contain_text("2")
    screenshot(page, "list-bulk-set")
    records = RecordService(db, "sales_crm")
    cities = {r["name"]: r.get("city") for r in (records.get("customer", c["id"]) for c in created)}
    assert cities["Customer 000"] == "Lisboa" and cities["Customer 001"] == "Lisboa"
    assert sum(1 for c in cities.values() if c == "Lisboa") == 2
