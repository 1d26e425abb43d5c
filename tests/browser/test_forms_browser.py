"""In a real browser: create a customer through the form, hit and fix a validation error, pick a company with the
lookup, and edit a record someone else changed meanwhile."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from engine.storage.database import Database
from engine.storage.records import RecordService
from tests.browser.conftest import LiveServer, screenshot


def test_create_customer_fixing_a_validation_error_and_picking_a_company(page: Any,
                                                                        live: tuple[LiveServer, Database]) -> None:
    server, db = live
    records = RecordService(db, "sales_crm", actor="seed")
    acme = records.create("company", {"name": "Acme Trading GmbH", "city": "Berlin"})
    records.create("company", {"name": "Blue Ocean Ltd"})

    page.goto(f"{server.url}/apps/sales_crm/customer/new")
    expect(page.locator("label[for='f-name']")).to_contain_text("Name")
    page.fill("#f-name", "王芳 Wang Fang")
    page.fill("#f-email", "wang.fang@")  # a mistake, noticed when leaving the field
    page.locator("#f-phone").focus()
    expect(page.locator("#f-email-error")).to_contain_text("valid email")
    expect(page.locator("#f-email")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "form-inline-error")

    page.fill("#f-email", "wang.fang@example.cn")
    page.locator("#f-phone").focus()
    expect(page.locator("#f-email-error")).to_have_count(0)
    page.fill("#f-phone", "+86 138 0013 8000")

    page.fill("#f-company-q", "acme")  # the lookup searches as you type
    option = page.locator("#f-company-options button.lookup-option").first
    expect(option).to_contain_text("Acme Trading")
    option.click()
    expect(page.locator("#f-company-chosen")).to_contain_text("Acme Trading")
    screenshot(page, "form-filled")

    page.click("#form-submit")
    page.wait_for_url(re.compile(r"/apps/sales_crm/customer/[0-9a-f-]{36}$"))
    expect(page.locator("#value-name")).to_contain_text("王芳 Wang Fang")
    expect(page.locator("#value-phone")).to_contain_text("+8613800138000")
    expect(page.locator("#value-company a")).to_have_attribute("href", f"/apps/sales_crm/company/{acme['id']}")
    screenshot(page, "record-page")
    stored = records.query("customer").records
    assert [c["email"] for c in stored] == ["wang.fang@example.cn"]
    assert stored[0]["company"] == acme["id"]


def test_submitting_with_errors_keeps_input_and_focuses_the_first_error(page: Any,
                                                                        live: tuple[LiveServer, Database]) -> None:
    server, db = live
    page.goto(f"{server.url}/apps/sales_crm/customer/new")
    page.fill("#f-email", "not-an-email")
    page.fill("#f-city", "München")
    page.click("#form-submit")
    expect(page.locator("#f-name-error")).to_contain_text("required")
    expect(page.locator("#f-name")).to_be_focused()
    expect(page.locator("#f-city")).to_have_value("München")
    expect(page.locator("#f-email")).to_have_value("not-an-email")
    assert RecordService(db, "sales_crm").count("customer") == 0


def test_editing_a_record_changed_meanwhile_shows_the_conflict_and_keeps_my_input(
        page: Any, live: tuple[LiveServer, Database]) -> None:
    server, db = live
    records = RecordService(db, "sales_crm", actor="colleague")
    customer = records.create("customer", {"name": "Jonas Becker", "city": "Hamburg"})

    page.goto(f"{server.url}/apps/sales_crm/customer/{customer['id']}/edit")
    page.fill("#f-city", "Bremen")
    records.update("customer", customer["id"], {"city": "Kiel"}, expected_version=1)  # a colleague saves first

    page.click("#form-submit")
    panel = page.locator("#conflict-panel")
    expect(panel).to_be_visible()
    expect(panel.locator("tr[data-field='city']")).to_contain_text("Kiel")
    expect(page.locator("#f-city")).to_have_value("Bremen")
    assert records.get("customer", customer["id"])["city"] == "Kiel"  # nothing overwritten silently
    screenshot(page, "form-conflict")

    page.click("#conflict-save-mine")
    page.wait_for_url(re.compile(rf"/apps/sales_crm/customer/{customer['id']}$"))
    assert records.get("customer", customer["id"])["city"] == "Bremen"
