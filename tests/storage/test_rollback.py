"""Rollback across several versions: renames are followed home, archived values come back."""

from __future__ import annotations

from typing import Any

from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.records import RecordService


def _rename(doc: dict[str, Any], entity: str, old: str, new: str) -> None:
    props = doc["$defs"][entity]["properties"]
    prop = props.pop(old)
    prop["x-crm-field"]["renamedFrom"] = old
    props[new] = prop


def test_rollback_follows_a_chain_of_renames_back_home(db: Database, mini_doc: dict[str, Any]) -> None:
    apps = AppService(db)
    apps.apply(mini_doc)
    records = RecordService(db, "mini")
    customer = records.create("customer", {"name": "Ada", "age": 36, "notes": "likes tea"})

    _rename(mini_doc, "customer", "age", "years")
    apps.apply(mini_doc)
    _rename(mini_doc, "customer", "years", "age_in_years")
    del mini_doc["$defs"]["customer"]["properties"]["notes"]
    apps.apply(mini_doc)
    assert records.get("customer", customer["id"])["age_in_years"] == 36
    assert "notes" not in records.get("customer", customer["id"])

    plan = apps.rollback("mini", 1)

    assert "rename field customer.age_in_years -> age (values kept)" in [s.describe() for s in plan.steps]
    restored = records.get("customer", customer["id"])
    assert restored["age"] == 36
    assert restored["notes"] == "likes tea"
    assert [v.version for v in apps.history("mini")] == [1, 2, 3, 4]
    assert apps.history("mini")[-1].note == "rollback to version 1"


def test_another_process_sees_a_new_version_on_its_next_operation(db: Database, mini_doc: dict[str, Any]) -> None:
    AppService(db).apply(mini_doc)
    other_process = Database(db.url, **db.engine_kwargs)
    other_records = RecordService(other_process, "mini")
    first = other_records.create("company", {"name": "ACME"})

    mini_doc["$defs"]["company"]["properties"]["city"] = {"title": "City", "x-crm-field": {"kind": "text"}}
    AppService(db).apply(mini_doc)

    second = other_records.create("company", {"name": "Initech", "city": "Austin"})
    assert second["city"] == "Austin"
    assert other_records.get("company", first["id"])["name"] == "ACME"
    other_process.dispose()

