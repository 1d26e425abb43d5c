"""Permissions in a real browser: a non-admin user, logged in through the /login form, is refused what their roles
do not allow, never sees a hidden field, and with an own-records-only grant sees only their own deals."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from engine.auth.accounts import create_user, ensure_default_roles
from engine.storage.database import Database, crm_roles
from engine.storage.migrate import utcnow
from engine.storage.records import RecordService
from tests.browser.conftest import LiveServer, screenshot

PASSWORD = "a-user-password-123"
SECRET = "secret.person@example.com"


def _log_in(page: Any, server: LiveServer, email: str, landing: str = "/apps/sales_crm/customer") -> None:
    """Log in through the form, starting from a page that sends to /login."""
    page.goto(f"{server.url}{landing}")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.fill("#login-email", email)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{server.url}{landing}")
    expect(page.locator("#current-user")).to_have_text(email)


def test_a_user_is_refused_a_forbidden_page(anonymous_page: Any, live: tuple[LiveServer, Database]) -> None:
    server, db = live
    ensure_default_roles(db)
    create_user(db, "viewer@example.com", "Vera Viewer", PASSWORD, roles=["viewer"])
    RecordService(db, "sales_crm", actor="seed").create("customer", {"name": "Jonas Becker"})
    page = anonymous_page
    _log_in(page, server, "viewer@example.com")

    # the list: readable, but no way to add or delete
    expect(page.get_by_text("Jonas Becker")).to_be_visible()
    expect(page.locator("#add-record")).to_have_count(0)
    expect(page.locator("#bulk-delete")).to_have_count(0)

    response = page.goto(f"{server.url}/apps/sales_crm/customer/new")
    assert response is not None and response.status == 403
    expect(page.locator("h1")).to_have_text("Not allowed")
    expect(page.locator("section.empty p").first).to_be_visible()
    assert page.locator("input[name=name]").count() == 0
    screenshot(page, "forbidden")

    response = page.goto(f"{server.url}/users")
    assert response is not None and response.status == 403
    expect(page.locator("h1")).to_have_text("Not allowed")
    expect(page.get_by_text("Only administrators may open this page.")).to_be_visible()
    assert "admin@example.com" not in page.content()  # the user list is not shown


def test_a_hidden_field_is_absent_everywhere(anonymous_page: Any, live: tuple[LiveServer, Database]) -> None:
    server, db = live
    grant = {"read": True, "update": True, "export": True, "fields": {"email": "hidden"}}
    with db.write() as conn:
        conn.execute(crm_roles.insert().values(name="email_blind", title="Email blind", description="",
                                               designer=False, permissions={"sales_crm": {"customer": grant}},
                                               updated_at=utcnow()))
    create_user(db, "blind@example.com", "Bea Blind", PASSWORD, roles=["email_blind"])
    customer = RecordService(db, "sales_crm", actor="seed").create(
        "customer", {"name": "Sally Secret", "email": SECRET, "city": "Leipzig"})
    record_url = f"{server.url}/apps/sales_crm/customer/{customer['id']}"
    page = anonymous_page
    _log_in(page, server, "blind@example.com")

    for url in (f"{server.url}/apps/sales_crm/customer?cols=name,email", record_url, f"{record_url}/edit"):
        response = page.goto(url)
        assert response is not None and response.status == 200, url
        expect(page.get_by_text("Sally Secret").first).to_be_visible()
        assert SECRET not in page.content(), url
        assert page.locator("[name=email]").count() == 0, url

    # the edit form still saves the visible fields and leaves the hidden one alone
    page.fill("input[name=city]", "Dresden")
    page.click("#form-submit")
    page.wait_for_url(record_url)
    expect(page.get_by_text("Dresden").first).to_be_visible()
    assert SECRET not in page.content()
    saved = RecordService(db, "sales_crm", actor="seed").get("customer", customer["id"])
    assert saved["email"] == SECRET and saved["city"] == "Dresden"

    for query in ("", "?cols=name,email"):
        export = page.request.get(f"{server.url}/apps/sales_crm/customer/export.csv{query}")
        assert export.status == 200
        text = export.text()
        assert "Sally Secret" in text
        assert SECRET not in text

    # without the export grant the CSV is refused
    with db.write() as conn:
        conn.execute(crm_roles.update().where(crm_roles.c.name == "email_blind").values(
            permissions={"sales_crm": {"customer": {k: v for k, v in grant.items() if k != "export"}}}))
    assert page.request.get(f"{server.url}/apps/sales_crm/customer/export.csv").status == 403


def test_log_in_as_a_sales_rep_sees_only_own_deals(anonymous_page: Any, live: tuple[LiveServer, Database]) -> None:
    server, db = live
    ensure_default_roles(db)
    create_user(db, "rep@example.com", "Rita Rep", PASSWORD, roles=["sales_rep"])
    records = RecordService(db, "sales_crm", actor="seed")
    mine = records.create("deal", {"title": "Rita's big deal", "stage": "lead", "owner": "rep@example.com"})
    theirs = records.create("deal", {"title": "Someone else's deal", "stage": "lead", "owner": "other@example.com"})
    page = anonymous_page
    _log_in(page, server, "rep@example.com", landing="/apps/sales_crm/deal")

    expect(page.get_by_text("Rita's big deal").first).to_be_visible()
    assert "Someone else" not in page.content()
    response = page.goto(f"{server.url}/apps/sales_crm/deal/{mine['id']}")
    assert response is not None and response.status == 200
    response = page.goto(f"{server.url}/apps/sales_crm/deal/{theirs['id']}")
    assert response is not None and response.status in (403, 404)
    assert "Someone else" not in page.content()
    csv = page.request.get(f"{server.url}/apps/sales_crm/deal/export.csv")
    assert csv.status == 403  # the sales_rep role has no export
