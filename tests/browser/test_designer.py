"""The app designer as a new user meets it: log in, create a blank app, build a Customer entity by clicking and
typing, publish, add a record through the app's own form, then rename a label and a key and change a kind, publish
again (the plan is shown) and find the record's values intact; build a two-state workflow and use it; look at the
versions, compare two and roll back; export the app, import it as a new app and compare. Clicks and keystrokes are
counted and printed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from engine.storage.database import Database
from tests.browser.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer, screenshot


@dataclass
class Effort:
    """What the user did: clicks and keystrokes (typing a text counts each character)."""

    clicks: int = 0
    keys: int = 0

    def click(self, page: Any, selector: str) -> None:
        page.click(selector)
        self.clicks += 1

    def type(self, page: Any, selector: str, text: str) -> None:
        """Type into an input: a click first unless the cursor is already there."""
        if not page.eval_on_selector(selector, "e => e === document.activeElement"):
            page.click(selector)
            self.clicks += 1
        page.fill(selector, text)
        self.keys += len(text)

    def press(self, page: Any, selector: str, key: str) -> None:
        page.press(selector, key)
        self.keys += 1


def _settle(page: Any) -> None:
    """Wait until htmx has answered every request (the designer queues them)."""
    page.wait_for_function("() => !document.querySelector('.htmx-request')")


def _add_field(page: Any, effort: Effort, kind: str, label: str, key: str) -> None:
    effort.click(page, f"label[for='kind-{kind}']")
    effort.type(page, "#new-field-label", label)
    effort.press(page, "#new-field-label", "Enter")
    expect(page.locator(f"#df-{key}")).to_be_visible()


def _options(page: Any, effort: Effort, key: str, titles: list[str]) -> None:
    """Rename the two starting options and add the rest (type, Enter)."""
    for i, title in enumerate(titles[:2]):
        effort.type(page, f"#ds-{key}-opt-{i}", title)
    for title in titles[2:]:
        effort.type(page, f"#ds-{key}-new-option", title)
        effort.press(page, f"#ds-{key}-new-option", "Enter")
        expect(page.locator(f"#ds-{key}-options")).to_contain_text(title)
        _settle(page)
    _settle(page)


def test_a_new_user_builds_publishes_and_changes_an_app(anonymous_page: Any, live: tuple[LiveServer, Database],
                                                        tmp_path: Path) -> None:
    server, _ = live
    page, effort = anonymous_page, Effort()
    page.goto(f"{server.url}/login")
    effort.type(page, "#login-email", ADMIN_EMAIL)
    effort.type(page, "#login-password", ADMIN_PASSWORD)
    effort.click(page, "#login-submit")
    effort.click(page, "#nav-designer")
    expect(page.locator("h1")).to_have_text("App designer")

    effort.type(page, "#new-title", "Customer care")
    expect(page.locator("#new-name")).to_have_value("customer_care")
    effort.click(page, "#create-blank")
    expect(page.locator("#draft-title")).to_contain_text("Customer care")
    screenshot(page, "designer-draft", doc=True)

    effort.type(page, "#new-entity-title", "Customer")
    effort.press(page, "#new-entity-title", "Enter")
    expect(page.locator("#entity-heading")).to_contain_text("Customer")
    _add_field(page, effort, "select", "Gender", "gender")
    _options(page, effort, "gender", ["Female", "Male", "Diverse"])
    _add_field(page, effort, "date", "Birthday", "birthday")
    _add_field(page, effort, "email", "Email", "email")
    _add_field(page, effort, "phone", "Phone", "phone")
    _add_field(page, effort, "text", "Street", "street")
    _add_field(page, effort, "text", "City", "city")
    _add_field(page, effort, "select", "Purchase frequency", "purchase_frequency")
    _options(page, effort, "purchase_frequency", ["Weekly", "Monthly", "Yearly"])
    _add_field(page, effort, "rating", "Service rating", "service_rating")
    _add_field(page, effort, "long_text", "Needs", "needs")
    _settle(page)
    expect(page.locator("#preview-form #f-purchase_frequency")).to_contain_text("Yearly")
    expect(page.locator("#preview-list th")).to_have_count(6)
    screenshot(page, "designer-entity", doc=True)

    effort.click(page, "#review-publish")
    expect(page.locator("#plan-steps")).to_contain_text("create entity customer")
    screenshot(page, "designer-publish")
    effort.click(page, "#publish-confirm")
    expect(page.locator("#publish-notice")).to_contain_text("Version 1 is live")
    built = Effort(effort.clicks, effort.keys)
    print(f"\nbuilding and publishing the Customer app took {built.clicks} clicks and {built.keys} keystrokes")

    # the app's own form, as its users see it
    page.goto(f"{server.url}/apps/customer_care/customer/new")
    page.fill("#f-name", "Lena Wolf")
    page.select_option("#f-gender", label="Female")
    page.fill("#f-birthday", "1990-04-12")
    page.fill("#f-email", "lena@example.com")
    page.fill("#f-street", "Hauptstr. 5")
    page.fill("#f-city", "Berlin")
    page.select_option("#f-purchase_frequency", label="Monthly")
    page.click("label[for='f-service_rating-4']")
    page.fill("#f-needs", "Quick answers by email.")
    page.click("#form-submit")
    expect(page.locator("h1")).to_contain_text("Lena Wolf")
    record_url = page.url

    # change a label and a kind, and publish again
    page.goto(f"{server.url}/designer/customer_care/customer")
    effort.click(page, "#df-needs-details > summary")
    effort.type(page, "#ds-needs-title", "Customer needs")
    page.keyboard.press("Tab")
    effort.keys += 1
    _settle(page)
    expect(page.locator("#df-needs-summary")).to_contain_text("Customer needs")
    effort.click(page, "#df-street-details > summary")
    effort.type(page, "#dk-street-input", "address")
    page.keyboard.press("Tab")
    effort.keys += 1
    _settle(page)
    expect(page.locator("#dk-address-help")).to_contain_text("street")
    effort.click(page, "#df-service_rating-details > summary")
    page.select_option("#ds-service_rating-kind", "integer")
    effort.clicks += 2
    expect(page.locator("#df-service_rating-summary")).to_contain_text("Whole number")
    _settle(page)
    effort.click(page, "#review-publish")
    expect(page.locator("#plan-steps")).to_contain_text("convert field customer.service_rating")
    expect(page.locator("#plan-steps")).to_contain_text("customer.needs")
    expect(page.locator("#plan-steps")).to_contain_text("rename field customer.street -> address (values kept)")
    screenshot(page, "designer-publish-again", doc=True)
    effort.click(page, "#publish-confirm")
    expect(page.locator("#publish-notice")).to_contain_text("Version 2 is live")
    print(f"with the second change: {effort.clicks} clicks and {effort.keys} keystrokes in all")

    page.goto(record_url)
    body = page.locator("main")
    for text in ("Lena Wolf", "Female", "lena@example.com", "Berlin", "Monthly", "Customer needs",
                 "Quick answers by email."):
        expect(body).to_contain_text(text)
    expect(page.locator("#value-address")).to_have_text("Hauptstr. 5")
    expect(page.locator("#value-service_rating")).to_have_text("4")
    screenshot(page, "designer-record-after")

    _two_state_workflow(page, server, record_url)
    _versions_and_rollback(page, server, record_url)
    _export_and_import_as_a_copy(page, server, tmp_path)
    _relations_and_a_bigger_workflow(page, server)


def _versions_and_rollback(page: Any, server: LiveServer, record_url: str) -> None:
    """The history shows what each version did; the difference between two versions; rolling back to version 2
    shows its plan first, then the workflow's field goes to the archive and the record keeps its other values."""
    page.goto(f"{server.url}/designer/customer_care")
    page.click("#versions-link")
    expect(page.locator("#version-3")).to_contain_text("current")
    expect(page.locator("#diff-changes")).to_contain_text("Stage")
    page.select_option("#diff-from", "1")
    page.click("#diff-show")
    expect(page.locator("#diff-changes")).to_contain_text("Customer needs")
    screenshot(page, "designer-versions", doc=True)
    page.click("#rollback-2")
    expect(page.locator("#plan-steps")).to_contain_text("archive field customer.stage")
    screenshot(page, "designer-rollback", doc=True)
    page.click("#rollback-confirm")
    expect(page.locator("#rollback-notice")).to_be_visible()
    expect(page.locator("#version-4")).to_contain_text("current")
    page.goto(record_url)
    expect(page.locator("#transition-bar")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("Customer needs")


def _two_state_workflow(page: Any, server: LiveServer, record_url: str) -> None:
    """Give customers a workflow Lead -> Customer in the workflow editor, publish, and convert the record made
    earlier from its page."""
    effort = Effort()
    page.goto(f"{server.url}/designer/customer_care/customer")
    effort.click(page, "#edit-workflow")
    expect(page.locator("#wf-heading")).to_contain_text("Workflow of Customer")
    effort.type(page, "#wf-start-title", "Stage")
    effort.type(page, "#wf-start-state-1", "Lead")
    effort.type(page, "#wf-start-state-2", "Customer")
    effort.click(page, "#wf-start")
    expect(page.locator("#wf-states")).to_contain_text("Customer")
    effort.type(page, "#wf-new-transition-title", "Convert to customer")
    effort.click(page, "#wf-new-transition")
    expect(page.locator("#wf-problems-none")).to_be_visible()
    expect(page.locator("#wf-diagram svg")).to_contain_text("Convert to customer")
    screenshot(page, "designer-workflow", doc=True)
    effort.click(page, "#review-publish")
    expect(page.locator("#plan-steps")).to_contain_text("add field customer.stage")
    effort.click(page, "#publish-confirm")
    expect(page.locator("#publish-notice")).to_contain_text("Version 3 is live")
    print(f"the two-state workflow took {effort.clicks} clicks and {effort.keys} keystrokes")

    page.goto(record_url)
    expect(page.locator("#transition-bar")).to_contain_text("Lead")
    page.click("#transition-convert_to_customer")
    expect(page.locator("#transition-bar")).to_contain_text("Customer")
    expect(page.locator("#record-history")).to_contain_text("Convert to customer")


def _export_and_import_as_a_copy(page: Any, server: LiveServer, tmp_path: Path) -> None:
    """Download the app from its draft page, upload the file as a new app under another key, publish it, and
    compare: the copy's definition is the original's but for its key."""
    page.goto(f"{server.url}/designer/customer_care")
    with page.expect_download() as download:
        page.click("#export-published")
    exported = tmp_path / "customer_care.json"
    download.value.save_as(exported)
    original = json.loads(exported.read_text("utf-8"))
    assert original["x-crm-app"]["name"] == "customer_care"

    page.click("#nav-designer")
    page.set_input_files("#import-file", str(exported))
    page.fill("#import-name", "customer_care_copy")
    page.click("#import-submit")
    expect(page.locator("#draft-meta")).to_contain_text("A new app")
    page.click("#review-publish")
    expect(page.locator("#plan-steps")).to_contain_text("create entity customer")
    page.click("#publish-confirm")
    expect(page.locator("#publish-notice")).to_contain_text("Version 1 is live")

    copy = json.loads(page.request.get(f"{server.url}/designer/customer_care_copy/export").text())
    assert copy["x-crm-app"]["name"] == "customer_care_copy"
    for doc in (original, copy):
        doc.pop("$id")
        doc["x-crm-app"].pop("name")
        doc["x-crm-app"].pop("version", None)
    assert copy == original
    page.goto(f"{server.url}/apps/customer_care_copy/customer")
    expect(page.locator("h1")).to_contain_text("Customer")
    screenshot(page, "designer-imported-copy")


def _relations_and_a_bigger_workflow(page: Any, server: LiveServer) -> None:
    """The sample Sales CRM: its relations drawn and listed; the deal's pipeline in the workflow editor."""
    page.goto(f"{server.url}/designer/sales_crm")
    page.click("#relations-link")
    expect(page.locator("#relations-diagram svg")).to_be_visible()
    expect(page.locator("#relations-list")).to_contain_text("Deal")
    screenshot(page, "designer-relations", doc=True)
    page.goto(f"{server.url}/designer/sales_crm/deal")
    page.click("#edit-workflow")
    expect(page.locator("#wf-diagram svg")).to_contain_text("Won")
    screenshot(page, "designer-workflow-deal", doc=True)
