"""Deleting an app archives its entities with their records; an app of the same name brings them back."""

from __future__ import annotations

from typing import Any

import pytest

from engine.auth.principal import Principal
from engine.cli import main
from engine.errors import NotFoundError, PermissionDenied
from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.records import RecordService


def test_delete_archives_and_the_same_app_restores(db: Database, sales_doc: dict[str, Any]) -> None:
    apps = AppService(db)
    apps.apply(sales_doc)
    records = RecordService(db, "sales_crm", "ops")
    customer = records.create("customer", {"name": "Li Wei"})
    deal = records.create("deal", {"title": "Kept", "customer": customer["id"]})
    records.transition("deal", deal["id"], "qualify")
    with pytest.raises(PermissionDenied):
        apps.delete("sales_crm", actor=Principal(name="vic", roles=("viewer",)))
    plan = apps.delete("sales_crm", actor="ops")
    assert "  archive entity deal (records kept, restorable)" in plan.lines()
    assert apps.list() == []
    with pytest.raises(NotFoundError):
        records.get("deal", deal["id"])
    with pytest.raises(NotFoundError):
        apps.delete("sales_crm")
    again = apps.apply(sales_doc)
    assert "  restore entity deal from the archive (records kept)" in again.lines()
    assert records.get("deal", deal["id"])["stage"] == "qualified"
    assert [h["action"] for h in records.history("deal", deal["id"])] == ["create", "transition"]
    assert [v.version for v in apps.history("sales_crm")] == [1, 2]  # version numbers are never reused


def test_cli_delete_asks_for_confirmation(sqlite_db: Database, sales_doc: dict[str, Any],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    AppService(sqlite_db).apply(sales_doc)
    assert main(["--db", sqlite_db.url, "app", "delete", "sales_crm"]) == 1
    assert "not confirmed" in capsys.readouterr().err
    assert main(["--db", sqlite_db.url, "app", "delete", "sales_crm", "--yes"]) == 0
    assert "deleted: app sales_crm" in capsys.readouterr().out
    assert AppService(sqlite_db).list() == []
