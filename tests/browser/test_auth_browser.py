"""Logging in and out in a real browser."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from engine.storage.database import Database
from tests.browser.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer, screenshot


def test_log_in_through_the_form_see_your_name_and_log_out(anonymous_page: Any,
                                                           live: tuple[LiveServer, Database]) -> None:
    server, _ = live
    page = anonymous_page
    page.goto(f"{server.url}/apps/sales_crm/customer")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.fill("#login-email", ADMIN_EMAIL)
    page.fill("#login-password", "not the password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_contain_text("Wrong email or password.")
    page.fill("#login-password", ADMIN_PASSWORD)
    screenshot(page, "login")
    page.click("#login-submit")
    page.wait_for_url(f"{server.url}/apps/sales_crm/customer")
    expect(page.locator("#current-user")).to_have_text(ADMIN_EMAIL)
    page.click("#logout")
    page.wait_for_url(re.compile(r"/login$"))
    page.goto(f"{server.url}/")
    page.wait_for_url(re.compile(r"/login\?next=%2F$"))
