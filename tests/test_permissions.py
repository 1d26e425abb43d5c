"""Permissions through the web pages, the CSV import and the role editor: a matrix of roles and paths. Allowed
requests succeed; forbidden ones answer 403 (or 404 for records outside an own-records rule), or the control is
absent from the page, and nothing changes.

The acting principal is set by replacing `engine.web.context.current_user` (login is not what is tested here)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient

from engine.auth.principal import Principal, merge_grants
from engine.errors import PermissionDenied
from engine.storage.apps import AppService
from engine.storage.database import Database, crm_audit, crm_roles
from engine.storage.query import Query
from engine.storage.records import RecordService
from engine.transfer import import_records
from engine.web import context, create_app
from tests.conftest import APPS

Client = TestClient[Litestar]
ALL = {"read": True, "create": True, "update": True, "delete": True, "export": True, "import": True}
ROLES: dict[str, dict[str, Any]] = {
    "viewer": {"deal": {"read": True}, "customer": {"read": True}},
    "rep": {"deal": {**ALL, "records": "own", "owner_field": "owner"}, "customer": {"read": True}},
    "manager": {"deal": ALL, "customer": ALL},
    "hidden": {"deal": {"read": True, "create": True, "update": True,
                        "fields": {"amount": "hidden", "probability": "read_only"}}},
}
BASE = "/apps/sales_crm/deal"


def principal(role: str, name: str = "ann") -> Principal:
    """A user called `name` with one of the test roles."""
    return Principal(name=name, roles=(role,), grants=merge_grants([{"sales_crm": ROLES[role]}]))


class Acting:
    """Who the web app thinks is acting; tests switch it."""

    user: Any = "web"


@pytest.fixture
def acting(monkeypatch: pytest.MonkeyPatch) -> Acting:
    """The acting user, as `context.current_user` answers it; the login middleware (if installed) is left out of
    the app so requests reach the pages without a session."""
    who = Acting()
    monkeypatch.setattr(context, "current_user", lambda request: who.user)
    try:
        from engine.web import auth
    except ModuleNotFoundError:
        pass
    else:
        monkeypatch.setattr(auth, "MIDDLEWARE", [])
    return who


@pytest.fixture
def crm(db: Database) -> Database:
    """The Sales CRM with deals: two of ann's (one worth 5000), one of bob's."""
    AppService(db).apply(json.loads((APPS / "sales_crm.json").read_text("utf-8")))
    system = RecordService(db, "sales_crm", actor="ann")
    system.create("deal", {"title": "Ann's big deal", "stage": "lead", "amount": "5000", "owner": "ann"})
    small = system.create("deal", {"title": "Ann's small deal", "amount": "100", "owner": "ann"})
    system.transition("deal", small["id"], "qualify")
    system.transition("deal", small["id"], "propose")
    system.create("deal", {"title": "Bob's deal", "stage": "lead", "amount": "700", "owner": "bob"})
    return db


@pytest.fixture
def client(crm: Database, acting: Acting) -> Iterator[Client]:
    with TestClient(app=create_app(crm)) as test_client:
        test_client.get("/")
        yield test_client


def deals(db: Database) -> dict[str, dict[str, Any]]:
    return {r["title"]: r for r in RecordService(db, "sales_crm").query("deal", Query(limit=100)).records}


def post(client: Client, url: str, data: dict[str, Any], htmx: bool = False) -> Any:
    headers = {"x-csrftoken": client.cookies["csrftoken"]}
    if htmx:
        headers |= {"HX-Request": "true", "HX-Target": "records"}
    return client.post(url, data=data, headers=headers, follow_redirects=False)


def audit_rows(db: Database, action: str) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [dict(r) for r in conn.execute(sa.select(crm_audit).where(crm_audit.c.action == action)).mappings()]


# --- reading: list page, table fragment, record page --------------------------------------------------------------
@pytest.mark.parametrize(("role", "fragment", "status", "titles"), [
    ("viewer", False, 200, {"Ann's big deal", "Ann's small deal", "Bob's deal"}),
    ("viewer", True, 200, {"Ann's big deal", "Ann's small deal", "Bob's deal"}),
    ("rep", False, 200, {"Ann's big deal", "Ann's small deal"}),
    ("rep", True, 200, {"Ann's big deal", "Ann's small deal"}),
    ("manager", False, 200, {"Ann's big deal", "Ann's small deal", "Bob's deal"}),
])
def test_list_shows_what_the_role_may_read(client: Client, acting: Acting, role: str, fragment: bool, status: int,
                                           titles: set[str]) -> None:
    acting.user = principal(role)
    headers = {"HX-Request": "true", "HX-Target": "records"} if fragment else {}
    page = client.get(BASE, headers=headers)
    assert page.status_code == status
    for title in ("Ann's big deal", "Ann's small deal", "Bob's deal"):
        assert (title.replace("'", "&#39;") in page.text) == (title in titles)


def test_list_of_an_entity_without_read_is_forbidden(client: Client, acting: Acting) -> None:
    acting.user = principal("viewer")
    assert client.get("/apps/sales_crm/company").status_code == 403
    assert client.get("/apps/sales_crm/company", headers={"HX-Request": "true", "HX-Target": "records"}
                      ).status_code == 403


def test_controls_follow_the_actions(client: Client, acting: Acting, crm: Database) -> None:
    deal = deals(crm)["Ann's big deal"]["id"]
    acting.user = principal("viewer")
    listing, record = client.get(BASE).text, client.get(f"{BASE}/{deal}").text
    for control in ('id="add-record"', 'id="bulk-delete"', 'id="bulk-set"', 'id="export-view"', 'id="export-selected"'):
        assert control not in listing
    assert 'id="record-edit"' not in record and 'id="record-delete"' not in record
    acting.user = principal("manager")
    listing, record = client.get(BASE).text, client.get(f"{BASE}/{deal}").text
    for control in ('id="add-record"', 'id="bulk-delete"', 'id="bulk-set"', 'id="export-view"', 'id="export-selected"'):
        assert control in listing
    assert 'id="record-edit"' in record and 'id="record-delete"' in record


def test_hidden_field_is_absent_and_read_only_field_locked(client: Client, acting: Acting, crm: Database) -> None:
    deal = deals(crm)["Ann's big deal"]["id"]
    acting.user = principal("hidden")
    listing = client.get(f"{BASE}?cols=title,amount,probability").text
    record = client.get(f"{BASE}/{deal}").text
    form = client.get(f"{BASE}/{deal}/edit").text
    for page in (listing, record, form):
        assert "5000" not in page and "5,000" not in page
        assert 'name="amount"' not in page
    assert 'id="value-amount"' not in record
    assert re.search(r'name="probability"[^>]* readonly', form)  # shown locked
    assert client.get(f"{BASE}?f.amount.gte=1000").status_code == 200  # the filter is left out, with a message
    assert "Ann&#39;s small deal" in client.get(f"{BASE}?f.amount.gte=1000").text


def test_record_outside_own_rule_is_not_found(client: Client, acting: Acting, crm: Database) -> None:
    bobs = deals(crm)["Bob's deal"]["id"]
    acting.user = principal("rep")
    assert client.get(f"{BASE}/{bobs}").status_code == 404
    assert client.get(f"{BASE}/{bobs}/edit").status_code == 404
    before = deals(crm)
    assert post(client, f"{BASE}/{bobs}/edit", {"title": "Taken", "stage": "lead"}).status_code == 404
    assert post(client, f"{BASE}/{bobs}/delete", {}).status_code == 404
    assert deals(crm) == before


# --- writing: forms, delete, bulk actions -------------------------------------------------------------------------
@pytest.mark.parametrize(("role", "allowed"), [("viewer", False), ("rep", True), ("manager", True)])
def test_new_record_form(client: Client, acting: Acting, crm: Database, role: str, allowed: bool) -> None:
    acting.user = principal(role)
    assert client.get(f"{BASE}/new").status_code == (200 if allowed else 403)
    answer = post(client, f"{BASE}/new", {"title": "Fresh", "stage": "lead"})
    assert answer.status_code == (303 if allowed else 403)
    assert ("Fresh" in deals(crm)) == allowed
    if allowed:
        assert deals(crm)["Fresh"]["created_by"] == "ann"
    if role == "rep":
        assert deals(crm)["Fresh"]["owner"] == "ann"


@pytest.mark.parametrize(("role", "allowed"), [("viewer", False), ("rep", True), ("manager", True), ("hidden", True)])
def test_edit_record_form(client: Client, acting: Acting, crm: Database, role: str, allowed: bool) -> None:
    deal = deals(crm)["Ann's big deal"]
    acting.user = principal(role)
    assert client.get(f"{BASE}/{deal['id']}/edit").status_code == (200 if allowed else 403)
    answer = post(client, f"{BASE}/{deal['id']}/edit", {"title": "Renamed", "stage": "lead",
                                                         "version": str(deal["version"])})
    assert answer.status_code == (303 if allowed else 403)
    after = deals(crm)
    assert ("Renamed" in after) == allowed
    if allowed:
        assert after["Renamed"]["amount"] == deal["amount"]


def test_read_only_field_posted_anyway_is_refused(client: Client, acting: Acting, crm: Database) -> None:
    deal = deals(crm)["Ann's big deal"]
    acting.user = principal("hidden")
    post(client, f"{BASE}/{deal['id']}/edit", {"title": "X", "stage": "lead", "amount": "1", "probability": "90"})
    after = deals(crm)["X"]  # the editable field was saved; the locked and hidden ones were not taken from the form
    assert after["amount"] == deal["amount"] and "probability" not in after


@pytest.mark.parametrize(("role", "allowed"), [("viewer", False), ("hidden", False), ("rep", True), ("manager", True)])
def test_delete_record(client: Client, acting: Acting, crm: Database, role: str, allowed: bool) -> None:
    deal = deals(crm)["Ann's big deal"]["id"]
    acting.user = principal(role)
    assert client.get(f"{BASE}/{deal}/delete").status_code == (200 if allowed else 403)
    assert post(client, f"{BASE}/{deal}/delete", {}).status_code == (303 if allowed else 403)
    assert ("Ann's big deal" not in deals(crm)) == allowed


@pytest.mark.parametrize(("role", "allowed"), [("viewer", False), ("manager", True)])
def test_bulk_actions(client: Client, acting: Acting, crm: Database, role: str, allowed: bool) -> None:
    before = deals(crm)
    ids = [before["Ann's small deal"]["id"], before["Bob's deal"]["id"]]
    acting.user = principal(role)
    answer = post(client, f"{BASE}/bulk-update", {"ids": ids, "bulk_field": "source", "bulk_value": "partner"},
                  htmx=True)
    assert answer.status_code == (200 if allowed else 403)
    assert all((deals(crm)[t].get("source") == "partner") == allowed for t in ("Ann's small deal", "Bob's deal"))
    answer = post(client, f"{BASE}/bulk-delete", {"ids": ids}, htmx=True)
    assert answer.status_code == (200 if allowed else 403)
    assert (set(deals(crm)) == {"Ann's big deal"}) == allowed


def test_bulk_update_of_own_only_role_skips_others_records(client: Client, acting: Acting, crm: Database) -> None:
    before = deals(crm)
    acting.user = principal("rep")
    ids = [before["Ann's small deal"]["id"], before["Bob's deal"]["id"]]
    post(client, f"{BASE}/bulk-update", {"ids": ids, "bulk_field": "source", "bulk_value": "partner"}, htmx=True)
    after = deals(crm)
    assert after["Ann's small deal"]["source"] == "partner" and after["Bob's deal"] == before["Bob's deal"]


# --- export and import --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("role", "allowed"), [("viewer", False), ("hidden", False), ("rep", True), ("manager", True)])
def test_csv_export(client: Client, acting: Acting, crm: Database, role: str, allowed: bool) -> None:
    acting.user = principal(role)
    answer = client.get(f"{BASE}/export.csv?cols=title,amount")
    assert answer.status_code == (200 if allowed else 403)
    assert ("Bob's deal" in answer.text) == (role == "manager")
    assert len(audit_rows(crm, "export")) == (1 if allowed else 0)
    ids = [d["id"] for d in deals(crm).values()]
    assert post(client, f"{BASE}/export.csv", {"ids": ids}).status_code == (200 if allowed else 403)


def test_csv_export_leaves_out_hidden_fields(client: Client, acting: Acting, crm: Database) -> None:
    ROLES["exporter"] = {"deal": {"read": True, "export": True, "fields": {"amount": "hidden"}}}
    try:
        acting.user = principal("exporter")
        text = client.get(f"{BASE}/export.csv?cols=title,amount").text
    finally:
        del ROLES["exporter"]
    assert "amount" not in text and "5000" not in text and "Bob's deal" in text
    assert audit_rows(crm, "export")[0]["actor"] == "ann"


@pytest.mark.parametrize(("role", "allowed"), [("viewer", False), ("rep", True), ("manager", True)])
def test_csv_import(crm: Database, role: str, allowed: bool) -> None:
    data = io.StringIO("title,stage\nImported,lead\n")
    if allowed:
        assert import_records(crm, "sales_crm", "deal", data, "csv", actor=principal(role)) == 1
    else:
        with pytest.raises(PermissionDenied):
            import_records(crm, "sales_crm", "deal", data, "csv", actor=principal(role))
    assert ("Imported" in deals(crm)) == allowed


def test_cli_acts_as_the_trusted_system(crm: Database) -> None:
    """The command line passes a plain name: not subject to roles (see engine.cli)."""
    assert import_records(crm, "sales_crm", "deal", io.StringIO("title,stage,amount\nCLI,lead,3\n"), "csv") == 1
    assert deals(crm)["CLI"]["amount"] is not None


# --- the role editor ----------------------------------------------------------------------------------------------
def test_roles_are_for_admins_only(client: Client, acting: Acting, crm: Database) -> None:
    acting.user = principal("manager")
    assert client.get("/roles").status_code == 403
    assert client.get("/roles/new").status_code == 403
    assert post(client, "/roles/new", {"name": "x", "title": "X"}).status_code == 403
    with crm.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(crm_roles)).scalar() == 0


def test_admin_creates_changes_and_deletes_a_role(client: Client, acting: Acting, crm: Database) -> None:
    acting.user = Principal(name="root", is_admin=True)
    assert client.get("/roles/new").status_code == 200
    answer = post(client, "/roles/new", {
        "name": "rep", "title": "Sales rep", "description": "", "p.sales_crm.deal.read": "1",
        "p.sales_crm.deal.update": "1", "p.sales_crm.deal.records": "own", "p.sales_crm.deal.owner_field": "owner",
        "p.sales_crm.deal.f.amount": "read_only", "p.sales_crm.deal.f.probability": "hidden"})
    assert answer.status_code == 303
    with crm.read() as conn:
        role = conn.execute(sa.select(crm_roles).where(crm_roles.c.name == "rep")).mappings().one()
    assert role["permissions"] == {"sales_crm": {"deal": {"read": True, "update": True, "records": "own",
                                                          "owner_field": "owner",
                                                          "fields": {"amount": "read_only", "probability": "hidden"}}}}
    page = client.get("/roles/rep").text
    assert 'name="p.sales_crm.deal.update" value="1" checked' in page
    assert client.get("/roles").status_code == 200 and "Sales rep" in client.get("/roles").text
    post(client, "/roles/rep", {"title": "Sales rep", "designer": "1", "p.sales_crm.deal.read": "1"})
    changed = audit_rows(crm, "role_changed")
    assert changed[0]["actor"] == "root" and changed[0]["target"] == "rep"
    assert set(changed[0]["detail"]) == {"designer", "permissions.sales_crm.deal"}
    assert post(client, "/roles/rep/delete", {}).status_code == 303
    assert client.get("/roles/rep").status_code == 404
    assert [len(audit_rows(crm, a)) for a in ("role_created", "role_changed", "role_deleted")] == [1, 1, 1]


def test_role_name_and_title_are_checked(client: Client, acting: Acting) -> None:
    acting.user = Principal(name="root", is_admin=True)
    answer = post(client, "/roles/new", {"name": "Bad Name", "title": ""})
    assert answer.status_code == 422 and 'id="role-errors"' in answer.text


# --- titles of linked records the user may not read ---------------------------------------------------------------
def test_linked_record_titles_are_restricted_without_read_on_the_target(client: Client, acting: Acting,
                                                                        crm: Database) -> None:
    from engine.web.lists import record_title

    system = RecordService(crm, "sales_crm", actor="ann")
    customer = system.create("customer", {"name": "Zoe Hidden-Customer"})
    deal = deals(crm)["Ann's big deal"]
    system.update("deal", deal["id"], {"customer": customer["id"]})
    names = {"Zoe Hidden-Customer", record_title(AppService(crm).current("sales_crm").entity("customer"), customer)}
    deals_only = Principal(name="ann", roles=("deals-only",),
                           grants=merge_grants([{"sales_crm": {"deal": {"read": True}}}]))

    acting.user = principal("viewer")  # may read customers: sees the name, linked
    listing, record = client.get(BASE).text, client.get(f"{BASE}/{deal['id']}").text
    assert "Zoe Hidden-Customer" in listing and f"/apps/sales_crm/customer/{customer['id']}" in listing
    assert "Zoe Hidden-Customer" in record

    acting.user = deals_only
    listing_page, record_page = client.get(BASE), client.get(f"{BASE}/{deal['id']}")
    fragment = client.get(BASE, headers={"HX-Request": "true", "HX-Target": "records"}).text
    assert listing_page.status_code == record_page.status_code == 200
    for text in (listing_page.text, record_page.text, fragment):
        assert "(restricted)" in text
        assert f"/apps/sales_crm/customer/{customer['id']}" not in text
        for name in names:
            assert name not in text
