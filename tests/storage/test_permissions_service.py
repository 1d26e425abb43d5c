"""Permissions in the records and definition services: actions, own records, hidden and read-only fields, designers."""

from __future__ import annotations

import io
from typing import Any

import pytest
import sqlalchemy as sa

from engine.auth.principal import Principal, merge_grants
from engine.errors import NotFoundError, PermissionDenied, RecordValidationError
from engine.storage.apps import AppService
from engine.storage.database import Database, crm_audit
from engine.storage.query import Filter, Query, Sort
from engine.storage.records import RecordService
from engine.transfer import export_records, import_records

ALL = {"read": True, "create": True, "update": True, "delete": True, "export": True, "import": True}


def _principal(name: str, deal: dict[str, Any], designer: bool = False) -> Principal:
    return Principal(name=name, designer=designer, grants=merge_grants([{"sales_crm": {"deal": deal}}]))


@pytest.fixture
def crm(db: Database, sales_doc: dict[str, Any]) -> Database:
    """The Sales CRM with three deals: two owned by ann (one created by bob), one owned by bob."""
    AppService(db).apply(sales_doc)
    system = RecordService(db, "sales_crm", actor="ann")
    system.create("deal", {"title": "Ann's big deal", "stage": "lead", "amount": "5000", "owner": "ann"})
    small = system.create("deal", {"title": "Ann's small deal", "amount": "100", "owner": "ann"})
    system.transition("deal", small["id"], "qualify")
    system.transition("deal", small["id"], "propose")
    RecordService(db, "sales_crm", actor="bob").create("deal", {"title": "Bob's deal", "stage": "lead",
                                                                "amount": "700", "owner": "bob"})
    return db


def _deals(db: Database) -> dict[str, dict[str, Any]]:
    return {r["title"]: r for r in RecordService(db, "sales_crm").query("deal", Query(limit=100)).records}


VIEWER = {"read": True}
REP = {**ALL, "records": "own", "owner_field": "owner"}
HIDDEN = {**ALL, "fields": {"amount": "hidden", "probability": "read_only"}}


@pytest.mark.parametrize("action", ["create", "update", "delete"])
def test_forbidden_write_changes_nothing(crm: Database, action: str) -> None:
    viewer = RecordService(crm, "sales_crm", _principal("vic", VIEWER))
    before = _deals(crm)
    deal = before["Bob's deal"]
    with pytest.raises(PermissionDenied, match=action):
        if action == "create":
            viewer.create("deal", {"title": "New", "stage": "lead"})
        elif action == "update":
            viewer.update("deal", deal["id"], {"title": "Renamed"})
        else:
            viewer.delete("deal", deal["id"])
    assert _deals(crm) == before


@pytest.mark.parametrize("action", ["create", "update", "delete"])
def test_granted_write_is_done_and_recorded_under_the_principal(crm: Database, action: str) -> None:
    service = RecordService(crm, "sales_crm", _principal("mia", ALL))
    deal = _deals(crm)["Bob's deal"]
    if action == "create":
        created = service.create("deal", {"title": "New", "stage": "lead"})
        assert created["created_by"] == "mia"
        assert "New" in _deals(crm)
    elif action == "update":
        assert service.update("deal", deal["id"], {"title": "Renamed"})["updated_by"] == "mia"
        assert "Renamed" in _deals(crm)
    else:
        service.delete("deal", deal["id"])
        assert "Bob's deal" not in _deals(crm)


def test_read_needs_the_read_permission(crm: Database) -> None:
    nobody = RecordService(crm, "sales_crm", _principal("nob", {"create": True}))
    deal = _deals(crm)["Bob's deal"]
    for call in (lambda: nobody.get("deal", deal["id"]), lambda: nobody.query("deal"), lambda: nobody.count("deal"),
                 lambda: nobody.history("deal", deal["id"])):
        with pytest.raises(PermissionDenied, match="read deals"):
            call()
    with pytest.raises(PermissionDenied):
        RecordService(crm, "sales_crm", _principal("nob", ALL)).query("customer")  # no grant for customers


def test_own_only_sees_and_changes_only_own_records(crm: Database) -> None:
    rep = RecordService(crm, "sales_crm", _principal("ann", REP))
    deals = _deals(crm)
    assert {r["title"] for r in rep.query("deal").records} == {"Ann's big deal", "Ann's small deal"}
    assert rep.count("deal") == 2
    assert rep.get("deal", deals["Ann's big deal"]["id"])["owner"] == "ann"
    bobs = deals["Bob's deal"]["id"]
    for call in (lambda: rep.get("deal", bobs), lambda: rep.update("deal", bobs, {"title": "Mine now"}),
                 lambda: rep.delete("deal", bobs), lambda: rep.history("deal", bobs)):
        with pytest.raises(NotFoundError):
            call()
    assert _deals(crm)["Bob's deal"] == deals["Bob's deal"]
    rep.update("deal", deals["Ann's big deal"]["id"], {"amount": "6000"})
    assert _deals(crm)["Ann's big deal"]["amount"] == "6000.00"


def test_own_only_creates_own_records_and_cannot_give_them_away(crm: Database) -> None:
    rep = RecordService(crm, "sales_crm", _principal("ann", REP))
    assert rep.create("deal", {"title": "Fresh", "stage": "lead"})["owner"] == "ann"
    with pytest.raises(RecordValidationError) as exc:
        rep.create("deal", {"title": "For Bob", "stage": "lead", "owner": "bob"})
    assert [e.field for e in exc.value.errors] == ["owner"]
    with pytest.raises(RecordValidationError):
        rep.update("deal", _deals(crm)["Fresh"]["id"], {"owner": "bob"})
    assert _deals(crm)["Fresh"]["owner"] == "ann"


def test_own_only_defaults_to_created_by(crm: Database) -> None:
    rep = RecordService(crm, "sales_crm", _principal("bob", {**ALL, "records": "own"}))
    assert [r["title"] for r in rep.query("deal").records] == ["Bob's deal"]


def test_hidden_fields_are_absent_from_reads_history_and_export(crm: Database) -> None:
    service = RecordService(crm, "sales_crm", _principal("hal", HIDDEN))
    deal = _deals(crm)["Ann's big deal"]
    assert "amount" not in service.get("deal", deal["id"])
    assert all("amount" not in r for r in service.query("deal").records)
    updated = service.update("deal", deal["id"], {"title": "Ann's bigger deal"})
    assert "amount" not in updated
    assert all("amount" not in h["changes"] for h in service.history("deal", deal["id"]))
    assert "amount" in RecordService(crm, "sales_crm").history("deal", deal["id"])[0]["changes"]
    out = io.StringIO()
    export_records(crm, "sales_crm", "deal", out, "csv", actor=_principal("hal", HIDDEN))
    assert "amount" not in out.getvalue().splitlines()[0] and "5000" not in out.getvalue()
    assert _deals(crm)["Ann's bigger deal"]["amount"] == deal["amount"]  # kept, though not shown


def test_hidden_fields_cannot_be_filtered_sorted_searched_or_written(crm: Database) -> None:
    service = RecordService(crm, "sales_crm", _principal("hal", HIDDEN))
    with pytest.raises(RecordValidationError):
        service.query("deal", Query(filters=[Filter("amount", "gte", "1000")]))
    with pytest.raises(RecordValidationError):
        service.count("deal", Query(filters=[Filter("amount", "gte", "1000")]))
    with pytest.raises(RecordValidationError):
        service.query("deal", Query(sort=[Sort("amount")]))
    assert service.query("deal", Query(search="5000")).records == []
    before = _deals(crm)
    deal = before["Bob's deal"]
    with pytest.raises(RecordValidationError) as exc:
        service.update("deal", deal["id"], {"amount": "1"})
    assert "700" not in str(exc.value)
    with pytest.raises(RecordValidationError):
        service.create("deal", {"title": "X", "stage": "lead", "amount": "1"})
    assert _deals(crm) == before


def test_read_only_fields_are_refused_on_write(crm: Database) -> None:
    service = RecordService(crm, "sales_crm", _principal("hal", HIDDEN))
    deal = _deals(crm)["Bob's deal"]
    with pytest.raises(RecordValidationError) as exc:
        service.update("deal", deal["id"], {"probability": "50"})
    assert [(e.field, e.message) for e in exc.value.errors] == [("probability", "is read-only for you")]
    assert "probability" not in _deals(crm)["Bob's deal"]
    assert service.get("deal", deal["id"])["title"] == "Bob's deal"  # shown


def test_export_and_import_need_their_permissions(crm: Database) -> None:
    reader = _principal("vic", VIEWER)
    with pytest.raises(PermissionDenied, match="export"):
        export_records(crm, "sales_crm", "deal", io.StringIO(), "csv", actor=reader)
    with pytest.raises(PermissionDenied, match="import"):
        import_records(crm, "sales_crm", "deal", io.StringIO("title,stage\nX,lead\n"), "csv", actor=reader)
    assert "X" not in _deals(crm)
    without_create = _principal("imp", {"read": True, "import": True})
    with pytest.raises(PermissionDenied, match="create"):
        import_records(crm, "sales_crm", "deal", io.StringIO("title,stage\nX,lead\n"), "csv", actor=without_create)
    importer = _principal("imp", {"read": True, "import": True, "create": True})
    assert import_records(crm, "sales_crm", "deal", io.StringIO("title,stage\nX,lead\n"), "csv", actor=importer) == 1
    assert _deals(crm)["X"]["created_by"] == "imp"


def test_import_refuses_hidden_columns(crm: Database) -> None:
    with pytest.raises(RecordValidationError):
        import_records(crm, "sales_crm", "deal", io.StringIO("title,stage,amount\nX,lead,9\n"), "csv",
                       actor=_principal("hal", HIDDEN))
    assert "X" not in _deals(crm)


def test_applying_definitions_needs_a_designer(db: Database, sales_doc: dict[str, Any]) -> None:
    apps = AppService(db)
    with pytest.raises(PermissionDenied):
        apps.apply(sales_doc, actor=_principal("vic", VIEWER))
    assert apps.list() == []
    apps.apply(sales_doc, actor=_principal("dee", {}, designer=True))
    sales_doc["$defs"]["deal"]["properties"]["note"] = {"title": "Note", "x-crm-field": {"kind": "text"}}
    apps.apply(sales_doc, actor="system")
    with pytest.raises(PermissionDenied):
        apps.rollback("sales_crm", 1, actor=_principal("vic", VIEWER))
    apps.rollback("sales_crm", 1, actor=Principal(name="root", is_admin=True))
    with db.read() as conn:
        rows = conn.execute(sa.select(crm_audit.c.actor, crm_audit.c.action, crm_audit.c.target)
                            .order_by(crm_audit.c.id)).all()
    assert [tuple(r) for r in rows] == [("dee", "definition_applied", "sales_crm"),
                                        ("system", "definition_applied", "sales_crm"),
                                        ("root", "definition_rolled_back", "sales_crm")]
