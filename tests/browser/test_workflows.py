"""Workflows in a real browser: a transition button on the record page (with its confirm dialog), and dragging
cards on the board: to a column a transition leads to (the card stays, the counts change) and to one whose guard
refuses (the card goes back, the reason is shown). Screenshots on a desktop and a 390 px phone."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from engine.storage.database import Database
from engine.storage.records import RecordService
from tests.browser.conftest import LiveServer, screenshot

DEALS = "/apps/sales_crm/deal"


def _seed(db: Database) -> dict[str, str]:
    """Deals in several stages (the trusted seed writer fires the transitions)."""
    records = RecordService(db, "sales_crm", actor="seed")
    customer = records.create("customer", {"name": "Jonas Becker"})["id"]
    ids = {}
    for title, amount, steps in (("Solar roof", "12000", ()), ("Heat pump", "4500.5", ()),
                                 ("Wind farm", None, ("qualify",)), ("Battery pack", "800", ("qualify",)),
                                 ("Green office", "25000", ("qualify", "propose"))):
        values = {"title": title, "customer": customer, "owner": "rep@example.com", "expected_close": "2026-09-30"}
        if amount:
            values["amount"] = amount
        record = records.create("deal", values)
        for name in steps:
            record = records.transition("deal", record["id"], name)
        ids[title] = record["id"]
    return ids


def _count(page: Any, state: str) -> Any:
    return page.locator(f"#column-{state} .board-count")


def test_a_transition_button_on_the_record_page(page: Any, live: tuple[LiveServer, Database]) -> None:
    server, db = live
    ids = _seed(db)
    page.goto(f"{server.url}{DEALS}/{ids['Wind farm']}")
    expect(page.locator("#record-state")).to_have_text("Qualified")
    # no amount: "Send proposal" is disabled and says why before anyone clicks it
    expect(page.locator("#transition-propose")).to_be_disabled()
    expect(page.locator("#transition-propose-reason")).to_have_text("Enter the amount before sending a proposal.")
    screenshot(page, "workflow-record")

    page.goto(f"{server.url}{DEALS}/{ids['Green office']}")
    messages: list[str] = []

    def accept(dialog: Any) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("#transition-lose")
    expect(page.locator("#record-state")).to_have_text("Lost")
    assert messages == ["Mark this deal as lost?"]
    expect(page.locator("#record-notice")).to_have_text("Mark lost: Proposal → Lost.")
    expect(page.locator("#record-history .transition-step").first).to_contain_text("Mark lost: Proposal → Lost")
    expect(page.locator("#value-probability")).to_have_text("0 %")
    expect(page.locator("#transition-bar button")).to_have_count(0)  # a terminal state

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}{DEALS}/{ids['Battery pack']}")
    expect(page.locator("#transition-propose")).to_be_enabled()
    screenshot(page, "workflow-record-phone")


def test_dragging_cards_on_the_board(page: Any, live: tuple[LiveServer, Database]) -> None:
    server, db = live
    ids = _seed(db)
    page.goto(f"{server.url}{DEALS}")
    page.click("#board-link")
    expect(page.locator("#board-title")).to_have_text("Deals board")
    expect(_count(page, "lead")).to_have_text("2")
    expect(page.locator("#column-lead .board-sum")).to_have_text("EUR 16,500.50")
    expect(_count(page, "qualified")).to_have_text("2")
    screenshot(page, "workflow-board")

    # to a column a transition leads to: the card stays there and the counts and sums follow
    solar = page.locator(f".board-card[data-id='{ids['Solar roof']}']")
    solar.drag_to(page.locator("#column-qualified .board-cards"))
    expect(_count(page, "qualified")).to_have_text("3")
    expect(_count(page, "lead")).to_have_text("1")
    expect(page.locator("#column-lead .board-sum")).to_have_text("EUR 4,500.50")
    expect(page.locator(f"#column-qualified .board-card[data-id='{ids['Solar roof']}']")).to_be_visible()
    expect(page.locator("#board-message")).to_be_empty()

    # to a column whose guard refuses (no amount): the card goes back and the reason is shown
    wind = page.locator(f".board-card[data-id='{ids['Wind farm']}']")
    wind.drag_to(page.locator("#column-proposal"))
    expect(page.locator("#board-message")).to_have_text("Enter the amount before sending a proposal.")
    expect(page.locator(f"#column-qualified .board-card[data-id='{ids['Wind farm']}']")).to_be_visible()
    expect(_count(page, "proposal")).to_have_text("1")
    expect(_count(page, "qualified")).to_have_text("3")
    screenshot(page, "workflow-board-refused")

    # the cards are links: the keyboard reaches the record
    page.locator(f".board-card[data-id='{ids['Heat pump']}'] a.board-card-title").focus()
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Heat pump")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}{DEALS}/board")
    columns = page.locator("#board-columns")
    assert columns.evaluate("el => el.scrollWidth > el.clientWidth")  # the columns scroll sideways on a phone
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # the page itself does not
    screenshot(page, "workflow-board-phone")
