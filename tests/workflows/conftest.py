"""Fixtures for workflow tests: the Sales CRM installed, and principals with the default roles."""

from __future__ import annotations

from typing import Any

import pytest

from engine.auth.accounts import DEFAULT_ROLES
from engine.auth.principal import Principal, merge_grants
from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.records import RecordService


def as_role(name: str, role: str) -> Principal:
    """A principal holding one of the default roles."""
    return Principal(name=name, roles=(role,), grants=merge_grants([DEFAULT_ROLES[role][3]]))


@pytest.fixture
def crm(db: Database, sales_doc: dict[str, Any]) -> Database:
    """The Sales CRM, empty."""
    AppService(db).apply(sales_doc)
    return db


@pytest.fixture
def system(crm: Database) -> RecordService:
    """The trusted records service (the command line)."""
    return RecordService(crm, "sales_crm", "ops")


def new_deal(service: RecordService, state: str = "lead", **values: Any) -> dict[str, Any]:
    """A deal moved on to `state` through the transitions (by the trusted service)."""
    customer = service.create("customer", {"name": "Li Wei"})
    deal = service.create("deal", {"title": "Big one", "customer": customer["id"], **values})
    path = {"lead": [], "qualified": ["qualify"], "proposal": ["qualify", "propose"],
            "negotiation": ["qualify", "propose", "negotiate"]}[state]
    for name in path:
        deal = service.transition("deal", deal["id"], name)
    return deal
