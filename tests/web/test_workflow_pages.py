"""Workflow pages over HTTP: the record page's transition buttons per role, firing and refusing transitions, the
state field kept out of forms and bulk changes, the board's columns, counts and sums, and moving cards; SQLite and
PostgreSQL."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from engine.storage.database import Database
from engine.storage.records import RecordService
from tests.web.conftest import csrf, log_in_as

Client = TestClient[Litestar]
DEALS = "/apps/sales_crm/deal"
REP, MANAGER = "rep@example.com", "manager@example.com"


@pytest.fixture
def records(web_db: Database) -> RecordService:
    """A trusted writer that puts deals in any state (as the demo data does)."""
    return RecordService(web_db, "sales_crm", actor="seed")


@pytest.fixture
def customer(records: RecordService) -> str:
    return str(records.create("customer", {"name": "Jonas Becker"})["id"])


#: The transitions that take a new deal to a stage.
_PATH = {"lead": (), "qualified": ("qualify",), "proposal": ("qualify", "propose"),
         "negotiation": ("qualify", "propose", "negotiate")}


def deal(records: RecordService, stage: str = "lead", **values: Any) -> dict[str, Any]:
    """A deal of the demo sales rep, taken to `stage` by its transitions (as the trusted seed writer)."""
    record = records.create("deal", {"title": "Solar roof", "owner": REP, **values})
    for name in _PATH[stage]:
        record = records.transition("deal", record["id"], name)
    return record


def as_user(client: Client, db: Database, email: str, role: str) -> Client:
    client.cookies.clear()
    log_in_as(client, db, email, roles=(role,))
    return client


def htmx(client: Client) -> dict[str, str]:
    return {**csrf(client), "HX-Request": "true"}


def buttons(page: str) -> dict[str, bool]:
    """The transition buttons of a record page: {name: enabled}."""
    found = re.findall(r'<button type="submit" id="transition-(\w+)"[^>]*?>', page, re.S)
    tags = re.findall(r'(<button type="submit" id="transition-\w+"[^>]*?>)', page, re.S)
    return {name: " disabled" not in tag for name, tag in zip(found, tags, strict=True)}


def state_badge(page: str) -> str:
    match = re.search(r'id="record-state"[^>]*>([^<]*)<', page)
    assert match, "no state badge"
    return match.group(1)


# --- the record page ---------------------------------------------------------------------------------------------
def test_the_buttons_follow_the_roles(client: Client, web_db: Database, records: RecordService,
                                      customer: str) -> None:
    d = deal(records, "proposal", amount="5000", expected_close="2026-09-30", customer=customer)
    rep = as_user(client, web_db, REP, "sales_rep").get(f"{DEALS}/{d['id']}")
    assert rep.status_code == 200
    assert state_badge(rep.text) == "Proposal"
    assert buttons(rep.text) == {"negotiate": True, "lose": True}  # only a sales manager may mark it won

    manager = as_user(client, web_db, MANAGER, "sales_manager").get(f"{DEALS}/{d['id']}")
    assert buttons(manager.text) == {"negotiate": True, "win": True, "lose": True}
    assert 'hx-confirm="Mark this deal as won? An order is created for the customer."' in manager.text

    viewer = as_user(client, web_db, "viewer@example.com", "viewer")
    page = viewer.get(f"{DEALS}/{d['id']}").text
    assert state_badge(page) == "Proposal" and buttons(page) == {}


def test_a_transition_that_cannot_run_is_disabled_with_its_reason(client: Client, records: RecordService) -> None:
    d = deal(records, "qualified")
    page = client.get(f"{DEALS}/{d['id']}").text
    assert buttons(page) == {"propose": False, "lose": True}
    assert 'aria-describedby="transition-propose-reason"' in page
    assert re.search(r'id="transition-propose-reason">Enter the amount before sending a proposal\.</p>', page)


def test_firing_a_transition_shows_the_new_state_and_history(client: Client, records: RecordService) -> None:
    d = deal(records)
    response = client.post(f"{DEALS}/{d['id']}/transition/qualify", data={"seen_state": "lead"}, headers=htmx(client))
    assert response.status_code == 200
    assert state_badge(response.text) == "Qualified"
    assert "Qualify: Lead → Qualified." in response.text  # the notice
    history = response.text[response.text.index('id="record-history"'):]
    assert re.search(r"<strong>Qualify</strong>:\s+Lead → Qualified", history)
    assert buttons(response.text) == {"propose": False, "lose": True}
    assert records.get("deal", d["id"])["stage"] == "qualified"

    plain = client.post(f"{DEALS}/{d['id']}/transition/lose", data={"seen_state": "qualified"}, headers=csrf(client),
                        follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == f"{DEALS}/{d['id']}"
    assert records.get("deal", d["id"])["stage"] == "lost"


def test_a_refused_transition_changes_nothing(client: Client, web_db: Database, records: RecordService,
                                             customer: str) -> None:
    d = deal(records, "qualified")
    response = client.post(f"{DEALS}/{d['id']}/transition/propose", data={"seen_state": "qualified"},
                           headers=htmx(client))
    assert response.status_code == 200
    assert re.search(r'role="alert" id="transition-message"><p>Enter the amount before sending a proposal\.</p>',
                     response.text)
    assert state_badge(response.text) == "Qualified"
    after = records.get("deal", d["id"])
    assert after["stage"] == "qualified" and after["version"] == d["version"]

    # the page showed another state than the record now has: refused, and the page shows the state it has now
    stale = client.post(f"{DEALS}/{d['id']}/transition/qualify", data={"seen_state": "lead"}, headers=csrf(client))
    assert stale.status_code == 409
    assert "moved to Qualified" in html.unescape(stale.text) and state_badge(stale.text) == "Qualified"

    # a sales rep may not mark a deal won, even by posting the form by hand
    won = deal(records, "negotiation", amount="900", expected_close="2026-09-30", customer=customer)
    as_user(client, web_db, REP, "sales_rep")
    refused = client.post(f"{DEALS}/{won['id']}/transition/win", data={"seen_state": "negotiation"},
                          headers=htmx(client))
    assert "Your roles may not mark won" in html.unescape(refused.text)
    assert records.get("deal", won["id"])["stage"] == "negotiation"
    assert records.count("sales_order") == 0


def test_a_transition_needs_the_csrf_token_and_update_rights(client: Client, web_db: Database,
                                                            records: RecordService) -> None:
    d = deal(records)
    assert client.post(f"{DEALS}/{d['id']}/transition/qualify", data={"seen_state": "lead"}).status_code == 403
    as_user(client, web_db, "viewer@example.com", "viewer")
    denied = client.post(f"{DEALS}/{d['id']}/transition/qualify", data={"seen_state": "lead"}, headers=csrf(client))
    assert denied.status_code == 403 and "Not allowed" in denied.text
    assert records.get("deal", d["id"])["stage"] == "lead"


def test_winning_shows_the_note_in_the_history(client: Client, records: RecordService, customer: str) -> None:
    d = deal(records, "negotiation", amount="1200", expected_close="2026-09-30", customer=customer)
    response = client.post(f"{DEALS}/{d['id']}/transition/win", data={"seen_state": "negotiation"},
                           headers=htmx(client))
    assert state_badge(response.text) == "Won" and buttons(response.text) == {}
    assert re.search(r'<blockquote class="history-note">Won by admin@example.com: order created for EUR 1,200.00\.'
                     r"</blockquote>", response.text)
    assert records.count("sales_order") == 1


# --- forms and lists ---------------------------------------------------------------------------------------------
def test_the_state_field_is_shown_but_not_editable_in_forms(client: Client, records: RecordService) -> None:
    new = client.get(f"{DEALS}/new").text
    assert 'name="stage"' not in new
    assert re.search(r'<output id="f-stage" class="read-only-value"><span class="badge"[^>]*>Lead</span></output>', new)

    d = deal(records, "qualified")
    edit = client.get(f"{DEALS}/{d['id']}/edit").text
    assert 'name="stage"' not in edit and ">Qualified</span></output>" in edit

    # posted anyway (by hand): ignored, the other fields are saved
    response = client.post(f"{DEALS}/{d['id']}/edit", data={"title": "Solar roof XL", "stage": "won",
                                                            "version": str(d["version"])},
                           headers=csrf(client), follow_redirects=False)
    assert response.status_code == 303
    after = records.get("deal", d["id"])
    assert after["title"] == "Solar roof XL" and after["stage"] == "qualified"

    created = client.post(f"{DEALS}/new", data={"title": "Wind farm", "stage": "won"}, headers=csrf(client),
                          follow_redirects=False)
    assert created.status_code == 303
    assert records.get("deal", created.headers["location"].rsplit("/", 1)[1])["stage"] == "lead"


def test_the_list_links_to_the_board_and_bulk_changes_leave_the_state_alone(client: Client,
                                                                            records: RecordService) -> None:
    deal(records)
    page = client.get(DEALS).text
    assert f'id="board-link" href="{DEALS}/board"' in page
    bulk = re.search(r'<select id="bulk-field".*?</select>', page, re.S)
    assert bulk and 'value="title"' in bulk.group(0) and 'value="stage"' not in bulk.group(0)
    assert 'id="board-link"' not in client.get("/apps/sales_crm/customer").text
    assert client.get("/apps/sales_crm/customer/board").status_code == 404


# --- the board ---------------------------------------------------------------------------------------------------
def column(page: str, state: str) -> str:
    match = re.search(rf'<section class="board-column" id="column-{state}".*?</section>', page, re.S)
    assert match, f"no column {state}"
    return match.group(0)


def counts(page: str) -> dict[str, int]:
    return {state: int(n) for state, n in re.findall(r'id="column-(\w+)".*?data-count="(\d+)"', page, re.S)}


def test_the_board_shows_a_column_per_state_with_count_sum_and_cards(client: Client, records: RecordService,
                                                                    customer: str) -> None:
    deal(records, title="Solar roof", amount="1000", customer=customer, expected_close="2026-07-01")
    deal(records, title="Heat pump", amount="250.5")
    deal(records, "qualified", title="Wind farm", amount="99")
    page = client.get(f"{DEALS}/board").text
    assert counts(page) == {"lead": 2, "qualified": 1, "proposal": 0, "negotiation": 0, "won": 0, "lost": 0}
    lead = column(page, "lead")
    assert '<span class="board-sum">EUR 1,250.50</span>' in lead
    assert 'data-color="#94a3b8">Lead</span>' in lead
    assert ">Solar roof</a>" in lead and ">Heat pump</a>" in lead and "Wind farm" not in lead
    assert ">Jonas Becker</a>" in lead and "<dt>Expected close</dt>" in lead and "EUR 1,000.00" in lead
    assert 'draggable="true"' in lead

    search = client.get(f"{DEALS}/board?q=heat").text
    assert counts(search)["lead"] == 1 and "Solar roof" not in search
    filtered = client.get(f"{DEALS}/board?f.title.contains=wind").text
    assert counts(filtered) == {"lead": 0, "qualified": 1, "proposal": 0, "negotiation": 0, "won": 0, "lost": 0}


def test_a_column_shows_at_most_fifty_cards_and_links_to_the_rest(client: Client, records: RecordService) -> None:
    records.create_many("deal", [{"title": f"Deal {i:02}", "owner": REP} for i in range(53)])
    lead = column(client.get(f"{DEALS}/board").text, "lead")
    assert lead.count('class="board-card"') == 50
    assert f'<a class="board-more" href="{DEALS}?f.stage.eq=lead">3 more</a>' in lead


def test_the_board_hides_hidden_fields_and_shows_a_rep_only_their_deals(client: Client, web_db: Database,
                                                                       records: RecordService) -> None:
    deal(records, title="Mine", amount="10")
    deal(records, title="Not mine", owner="someone@example.com", amount="20")
    page = as_user(client, web_db, REP, "sales_rep").get(f"{DEALS}/board").text
    assert "Mine" in page and "Not mine" not in page
    assert '<span class="board-sum">EUR 10.00</span>' in column(page, "lead")


def move(client: Client, record_id: str, to: str, seen: str, query: str = "") -> Any:
    return client.post(f"{DEALS}/{record_id}/move{query}", data={"to": to, "seen_state": seen}, headers=htmx(client))


def test_an_allowed_move_fires_the_transition(client: Client, records: RecordService) -> None:
    d = deal(records, amount="700")
    response = move(client, d["id"], "qualified", "lead")
    assert response.status_code == 200
    assert counts(response.text)["lead"] == 0 and counts(response.text)["qualified"] == 1
    assert "EUR 700.00" in column(response.text, "qualified")
    assert re.search(r'id="board-message" class="alert" role="alert"></div>', response.text)
    assert records.get("deal", d["id"])["stage"] == "qualified"
    history = records.history("deal", d["id"])
    assert history[-1]["changes"]["_transition"] == "qualify"
    assert history[-1]["changes"]["stage"] == ["lead", "qualified"]


def test_a_refused_move_says_why_and_changes_nothing(client: Client, web_db: Database, records: RecordService,
                                                    customer: str) -> None:
    d = deal(records, "qualified")
    response = move(client, d["id"], "proposal", "qualified")  # the guard needs an amount
    assert response.status_code == 200
    assert re.search(r'role="alert"><p>Enter the amount before sending a proposal\.</p>', response.text)
    assert 'data-id="{}" data-state="qualified"'.format(d["id"]) in column(response.text, "qualified")
    assert records.get("deal", d["id"])["version"] == d["version"]

    no_way = move(client, d["id"], "won", "qualified")
    assert "This deal cannot move from Qualified to Won. From Qualified it can go to Proposal, Lost." in \
        html.unescape(no_way.text)

    stale = move(client, d["id"], "qualified", "lead")
    assert "moved to Qualified" in html.unescape(stale.text)

    ready = deal(records, "negotiation", amount="900", expected_close="2026-09-30", customer=customer)
    as_user(client, web_db, REP, "sales_rep")
    refused = move(client, ready["id"], "won", "negotiation")
    assert "Your roles may not mark won" in html.unescape(refused.text)
    assert records.get("deal", ready["id"])["stage"] == "negotiation"

    plain = client.post(f"{DEALS}/{d['id']}/move", data={"to": "proposal", "seen_state": "qualified"},
                        headers=csrf(client))
    assert plain.status_code == 409 and "Enter the amount" in plain.text
    assert client.post(f"{DEALS}/{d['id']}/move", data={"to": "lost", "seen_state": "qualified"}).status_code == 403
    assert records.get("deal", d["id"])["stage"] == "qualified"


def test_a_move_keeps_the_boards_search(client: Client, records: RecordService) -> None:
    d = deal(records, title="Heat pump")
    deal(records, title="Solar roof")
    response = move(client, d["id"], "lost", "lead", query="?q=heat")
    assert counts(response.text)["lead"] == 0 and counts(response.text)["lost"] == 1
    assert "Solar roof" not in response.text
    assert records.get("deal", d["id"])["stage"] == "lost"
