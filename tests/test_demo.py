"""`crm demo`: the Sales CRM filled with valid, linked, multilingual sample data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.demo import DEFAULT_SIZES, DemoSizes, load_demo
from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.query import Filter, Query
from engine.storage.records import RecordService
from engine.transfer import iter_records
from tests.test_cli import crm

ENTITIES = ("company", "customer", "campaign", "deal", "sales_order", "interaction", "ticket")


def counts(db: Database) -> dict[str, int]:
    service = RecordService(db, "sales_crm")
    return {e: service.count(e) for e in ENTITIES}


def test_demo_fills_a_fresh_database_and_if_empty_adds_nothing_later(capsys: pytest.CaptureFixture[str],
                                                                     db: Database) -> None:
    code, out, err = crm(capsys, db, "demo", "--size", "30", "--seed", "7")
    assert code == 0, err
    assert "installed the app sales_crm" in out and "30 customers" in out and "6 companies" in out
    sizes = DemoSizes.for_customers(30)
    assert counts(db) == {"company": sizes.companies, "customer": 30, "campaign": sizes.campaigns,
                          "deal": sizes.deals, "sales_order": sizes.orders, "interaction": sizes.interactions,
                          "ticket": sizes.tickets}
    code, out, _ = crm(capsys, db, "demo", "--if-empty")
    assert code == 0 and "already has customers" in out
    assert counts(db)["customer"] == 30 and [v.version for v in AppService(db).history("sales_crm")] == [1]


def test_demo_data_is_linked_multilingual_and_follows_the_rules(sqlite_db: Database) -> None:
    load_demo(sqlite_db, DemoSizes.for_customers(60), seed=3)
    service = RecordService(sqlite_db, "sales_crm")
    customers = list(iter_records(sqlite_db, "sales_crm", "customer"))
    names = " ".join(c["name"] for c in customers)
    assert re.search(r"[\u4e00-\u9fff]", names) and re.search(r"[äöüßéèñ]", names + " ".join(
        c.get("street", "") for c in customers))
    assert len({c["country"] for c in customers}) >= 4
    assert all(c["phone"].startswith("+") for c in customers)
    companies = {c["id"] for c in iter_records(sqlite_db, "sales_crm", "company")}
    linked = [c for c in customers if "company" in c]
    assert linked and all(c["company"] in companies for c in linked)
    won = service.query("deal", Query(filters=[Filter("stage", "eq", "won")], limit=1000)).records
    assert won and all("amount" in d and "expected_close" in d for d in won)
    campaigns = list(iter_records(sqlite_db, "sales_crm", "campaign"))
    assert any(c.get("customers_reached") for c in campaigns)
    assert all(c["customer_number"].startswith("CUS-") for c in customers)


def test_demo_runs_again_without_clashing_with_its_earlier_data(sqlite_db: Database) -> None:
    load_demo(sqlite_db, DemoSizes.for_customers(20), seed=5)
    again = load_demo(sqlite_db, DemoSizes.for_customers(20), seed=5)
    assert not again.installed and again.created["customer"] == 20
    assert counts(sqlite_db)["customer"] == 40


def test_demo_default_sizes(sqlite_db: Database) -> None:
    result = load_demo(sqlite_db)
    assert result.created == {"company": 40, "customer": 200, "campaign": 10, "deal": 150, "sales_order": 300,
                              "interaction": 400, "ticket": 80}
    assert DEFAULT_SIZES.customers == 200


def test_demo_needs_an_initialised_database(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = crm(capsys, f"sqlite:///{tmp_path}/none.db", "demo")
    assert code == 1 and "crm init" in err
    assert crm(capsys, f"sqlite:///{tmp_path}/none.db", "demo", "--size", "0")[0] == 2
