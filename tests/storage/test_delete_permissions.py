"""Deleting a record applies the on-delete rules of relations pointing at it; the records a cascade deletes or a
set-null changes are held to the deleting user's rights too."""

from __future__ import annotations

from typing import Any

import pytest

from engine.auth.principal import Principal, merge_grants
from engine.errors import RecordValidationError
from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.records import RecordService


def _user(permissions: dict[str, dict[str, Any]]) -> Principal:
    return Principal(name="dora", roles=("custom",), grants=merge_grants([{"sales_crm": permissions}]))


ALL = {"read": True, "create": True, "update": True, "delete": True}


def test_cascades_and_set_null_need_the_rights_on_the_related_entity(db: Database, sales_doc: dict[str, Any]) -> None:
    AppService(db).apply(sales_doc)
    system = RecordService(db, "sales_crm", "ops")
    company = system.create("company", {"name": "Acme"})
    customer = system.create("customer", {"name": "Li Wei", "company": company["id"]})
    system.create("interaction", {"customer": customer["id"], "subject": "Call", "interaction_type": "call",
                                  "occurred_at": "2026-11-01T10:00:00Z"})

    no_interactions = RecordService(db, "sales_crm", _user({"customer": ALL, "interaction": {"read": True}}))
    with pytest.raises(RecordValidationError) as caught:
        no_interactions.delete("customer", customer["id"])
    assert str(caught.value) == ("cannot delete: 1 interactions refer to it (field Customer) and you may not delete"
                                 " interactions")
    assert system.count("interaction") == 1 and system.get("customer", customer["id"]) == customer

    read_only_customers = RecordService(db, "sales_crm", _user({"company": ALL, "customer": {"read": True}}))
    with pytest.raises(RecordValidationError) as caught:
        read_only_customers.delete("company", company["id"])
    assert "you may not update customers" in str(caught.value)
    assert system.get("customer", customer["id"])["company"] == company["id"]

    allowed = RecordService(db, "sales_crm", _user({"customer": ALL, "interaction": ALL, "company": ALL}))
    allowed.delete("company", company["id"])
    assert "company" not in system.get("customer", customer["id"])
    allowed.delete("customer", customer["id"])
    assert system.count("interaction") == 0 and system.count("customer") == 0
