"""Changing an app definition: plans that keep data, plans that are refused (changing nothing), archive and rollback."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from engine.errors import NotFoundError, PlanRefused, RecordValidationError
from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.query import Filter, Query, Sort
from engine.storage.records import RecordService

Doc = dict[str, Any]


class App:
    """The mini app installed in a database, with its services."""

    def __init__(self, db: Database, doc: Doc) -> None:
        self.db = db
        self.doc = doc
        self.apps = AppService(db)
        self.apps.apply(doc)
        self.records = RecordService(db, "mini", actor="alice")

    def fields(self, entity: str = "customer") -> dict[str, Any]:
        """The editable properties of an entity in the working document."""
        return self.doc["$defs"][entity]["properties"]

    def apply(self, purge: bool = False) -> list[str]:
        """Apply the working document; the steps done, in words."""
        return [s.describe() for s in self.apps.apply(self.doc, purge=purge).steps]

    def refused(self) -> PlanRefused:
        """Apply the working document, which must be refused without changing anything."""
        version = self.version()
        exported = self.apps.export("mini")
        with pytest.raises(PlanRefused) as caught:
            self.apps.apply(self.doc)
        assert self.version() == version
        assert self.apps.export("mini") == exported
        return caught.value

    def version(self) -> int:
        """The current version number."""
        return self.apps.history("mini")[-1].version

    def customers(self) -> dict[str, dict[str, Any]]:
        """Every customer by name."""
        return {r["name"]: r for r in self.records.query("customer", Query(limit=1000)).records}


@pytest.fixture
def app(db: Database, mini_doc: Doc) -> App:
    """The mini app with three customers and a company."""
    installed = App(db, mini_doc)
    acme = installed.records.create("company", {"name": "Acme"})
    installed.records.create("customer", {"name": "Li Wei", "age": 36, "notes": "likes tea", "segment": "b2b",
                                          "company": acme["id"], "partners": [acme["id"]], "tags": ["vip"]})
    installed.records.create("customer", {"name": "Anna", "age": 52, "segment": "gov"})
    installed.records.create("customer", {"name": "Bob", "notes": "a rather long note"})
    return installed


def _rename(doc: Doc, entity: str, old: str, new: str) -> None:
    props = doc["$defs"][entity]["properties"]
    items = list(props.items())
    props.clear()
    for key, prop in items:
        if key == old:
            prop["x-crm-field"]["renamedFrom"] = old
            key = new
        props[key] = prop


# --- adding ----------------------------------------------------------------------------------------------------------

def test_add_field(app: App) -> None:
    app.fields("company")["city"] = {"title": "City", "x-crm-field": {"kind": "text", "indexed": True}}

    assert app.apply() == ["add field company.city"]

    acme = app.records.query("company").records[0]
    assert "city" not in acme
    app.records.update("company", acme["id"], {"city": "Berlin"})
    assert app.records.get("company", acme["id"])["city"] == "Berlin"
    assert b'"city"' in app.apps.export("mini")
    assert app.version() == 2


def test_add_required_field_without_default_to_a_non_empty_table_is_refused(app: App) -> None:
    app.fields()["source"] = {"title": "Source", "x-crm-field": {"kind": "text"}}
    app.doc["$defs"]["customer"]["required"].append("source")

    plan = app.apps.plan(app.doc)
    refused = app.refused()

    assert [(b.entity, b.field, b.count) for b in plan.blockers] == [("customer", "source", 3)]
    assert "give it a default or make it optional" in plan.blockers[0].message
    assert any("customer.source" in line for line in refused.lines())


def test_add_required_field_to_an_empty_table_needs_no_default(app: App) -> None:
    app.fields("company")["city"] = {"title": "City", "x-crm-field": {"kind": "text"}}
    app.doc["$defs"]["company"]["required"].append("city")
    app.doc["$defs"]["customer"]["properties"]["company"]["x-crm-field"]["onDelete"] = "set-null"
    for company in app.records.query("company").records:
        app.records.delete("company", company["id"])

    assert "add field company.city" in app.apply()


def test_add_required_field_with_default_fills_existing_records(app: App) -> None:
    app.fields()["source"] = {"title": "Source", "default": "web", "x-crm-field": {"kind": "text"}}
    app.doc["$defs"]["customer"]["required"].append("source")

    assert app.apply() == ["add field customer.source", "fill empty customer.source with its default"]

    assert {c["source"] for c in app.customers().values()} == {"web"}


def test_making_an_existing_field_required_fills_it_from_its_new_default(app: App) -> None:
    app.fields()["age"]["default"] = 18
    app.doc["$defs"]["customer"]["required"].append("age")

    app.apply()

    assert {n: c["age"] for n, c in app.customers().items()} == {"Li Wei": 36, "Anna": 52, "Bob": 18}


def test_making_a_field_required_while_records_lack_it_is_refused(app: App) -> None:
    app.doc["$defs"]["customer"]["required"].append("age")

    plan = app.apps.plan(app.doc)
    app.refused()

    bob = app.customers()["Bob"]["id"]
    assert [(b.field, b.count) for b in plan.blockers] == [("age", 1)]
    assert plan.blockers[0].records[0].startswith(f"{bob} (Bob)")


# --- renaming --------------------------------------------------------------------------------------------------------

def test_rename_field_keeps_values(app: App) -> None:
    _rename(app.doc, "customer", "age", "years")

    assert app.apply() == ["rename field customer.age -> years (values kept)"]

    customers = app.customers()
    assert {n: c.get("years") for n, c in customers.items()} == {"Li Wei": 36, "Anna": 52, "Bob": None}
    assert all("age" not in c for c in customers.values())
    assert app.records.query("customer", Query(filters=[Filter("years", "gt", 40)])).records[0]["name"] == "Anna"


def test_rename_relation_many_field_keeps_links(app: App) -> None:
    _rename(app.doc, "customer", "partners", "allies")

    app.apply()

    acme = app.records.query("company").records[0]["id"]
    assert app.customers()["Li Wei"]["allies"] == [acme]


def test_rename_entity_keeps_records(app: App) -> None:
    defs = app.doc["$defs"]
    defs["client"] = defs.pop("customer")
    defs["client"]["x-crm-entity"]["renamedFrom"] = "customer"
    before = app.customers()

    assert app.apply() == ["rename entity customer -> client (records kept)"]

    after = {r["name"]: r for r in app.records.query("client", Query(limit=100)).records}
    assert after == before
    new = app.records.create("client", {"name": "Dora"})
    assert new["number"] == "CUS-00004"  # the sequence moved with the entity
    assert app.records.history("client", before["Li Wei"]["id"])[0]["action"] == "create"  # and the history


def test_rename_entity_that_others_point_to_keeps_the_links(app: App) -> None:
    defs = app.doc["$defs"]
    defs["organisation"] = defs.pop("company")
    defs["organisation"]["x-crm-entity"]["renamedFrom"] = "company"
    for key in ("company", "partners"):
        defs["customer"]["properties"][key]["x-crm-field"]["entity"] = "organisation"

    app.apply()

    acme = app.records.query("organisation").records[0]
    li = app.customers()["Li Wei"]
    assert (li["company"], li["partners"]) == (acme["id"], [acme["id"]])
    app.records.create("customer", {"name": "Eve", "company": acme["id"]})


# --- converting ------------------------------------------------------------------------------------------------------

def test_integer_to_decimal_converts_values(app: App) -> None:
    app.fields()["age"]["x-crm-field"] = {"kind": "decimal", "scale": 1}

    assert app.apply() == ["convert field customer.age: integer -> decimal"]

    customers = app.customers()
    assert customers["Li Wei"]["age"] == Decimal("36")
    assert customers["Anna"]["age"] == Decimal("52")
    assert "age" not in customers["Bob"]
    updated = app.records.update("customer", customers["Bob"]["id"], {"age": "7.5"})
    assert updated["age"] == Decimal("7.5")
    assert [c["name"] for c in app.records.query("customer", Query(sort=[Sort("age")])).records] == [
        "Bob", "Li Wei", "Anna"]


def test_text_to_integer_converts_when_every_value_is_a_number(app: App) -> None:
    app.fields()["won_reason"]["x-crm-field"]["kind"] = "integer"  # empty for everyone: nothing to refuse
    app.fields()["won_reason"]["x-crm-field"].pop("visibleIf")
    app.fields()["code"] = {"title": "Code", "x-crm-field": {"kind": "text"}}
    app.apply()
    for name, code in (("Li Wei", " 42 "), ("Anna", "7")):
        app.records.update("customer", app.customers()[name]["id"], {"code": code})

    app.fields()["code"]["x-crm-field"]["kind"] = "integer"
    app.apply()

    assert {n: c.get("code") for n, c in app.customers().items()} == {"Li Wei": 42, "Anna": 7, "Bob": None}


def test_text_to_integer_with_non_numbers_is_refused_naming_the_records(app: App) -> None:
    app.fields()["code"] = {"title": "Code", "x-crm-field": {"kind": "text"}}
    app.apply()
    customers = app.customers()
    for name, code in (("Li Wei", "abc"), ("Anna", "12"), ("Bob", "x1")):
        app.records.update("customer", customers[name]["id"], {"code": code})
    app.fields()["code"]["x-crm-field"]["kind"] = "integer"

    plan = app.apps.plan(app.doc)
    refused = app.refused()

    [blocker] = plan.blockers
    assert (blocker.entity, blocker.field, blocker.count) == ("customer", "code", 2)
    assert "cannot become integer" in blocker.message
    offenders = "\n".join(blocker.records)
    assert customers["Li Wei"]["id"] in offenders and '"abc"' in offenders
    assert customers["Bob"]["id"] in offenders and customers["Anna"]["id"] not in offenders
    assert any("(2 records)" in line for line in refused.lines())
    assert {n: c["code"] for n, c in app.customers().items()} == {"Li Wei": "abc", "Anna": "12", "Bob": "x1"}


def test_text_to_long_text_keeps_values(app: App) -> None:
    app.fields()["name"]["x-crm-field"]["kind"] = "long_text"

    app.apply()

    assert set(app.customers()) == {"Li Wei", "Anna", "Bob"}


def test_shorter_max_length_with_longer_values_is_refused(app: App) -> None:
    app.fields()["notes"]["maxLength"] = 10

    plan = app.apps.plan(app.doc)
    app.refused()

    [blocker] = plan.blockers
    assert (blocker.field, blocker.count) == ("notes", 1)
    assert "do not fit the new rules" in blocker.message
    assert "must be at most 10 characters (it has 18)" in blocker.records[0]


def test_shorter_max_length_that_every_value_fits_is_applied(app: App) -> None:
    app.fields()["notes"]["maxLength"] = 18

    assert app.apply() == ["change rules of field customer.notes"]


def test_removing_a_select_option_still_in_use_is_refused(app: App) -> None:
    options = app.fields()["segment"]["anyOf"]
    options[:] = [o for o in options if o["const"] != "gov"]

    plan = app.apps.plan(app.doc)
    app.refused()

    assert [(b.field, b.count) for b in plan.blockers] == [("segment", 1)]
    assert '"gov"' in plan.blockers[0].records[0]


def test_removing_a_select_option_no_longer_in_use_is_applied(app: App) -> None:
    app.records.update("customer", app.customers()["Anna"]["id"], {"segment": "b2b"})
    options = app.fields()["segment"]["anyOf"]
    options[:] = [o for o in options if o["const"] != "gov"]

    assert app.apply() == ["change rules of field customer.segment"]

    assert {c["segment"] for c in app.customers().values()} == {"b2b", "b2c"}


def test_making_a_field_unique_with_duplicates_is_refused(app: App) -> None:
    app.records.create("customer", {"name": "Anna", "age": 36})
    app.fields()["name"]["x-crm-field"]["unique"] = True

    plan = app.apps.plan(app.doc)
    app.refused()

    [blocker] = plan.blockers
    assert (blocker.field, blocker.count) == ("name", 2)
    ids = sorted(r["id"] for r in app.records.query("customer").records if r["name"] == "Anna")
    assert blocker.records == [f"{rid} (Anna): Anna is used by 2 records" for rid in ids]


def test_making_a_field_unique_without_duplicates_is_enforced_afterwards(app: App) -> None:
    app.fields()["name"]["x-crm-field"]["unique"] = True
    app.apply()

    with pytest.raises(RecordValidationError) as caught:
        app.records.create("customer", {"name": "Anna"})

    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("name", "'Anna' is already used by another Customer")]


# --- removing, archive, purge ----------------------------------------------------------------------------------------

def test_remove_field_archives_it_and_readding_restores_values(app: App) -> None:
    removed = app.fields().pop("notes")
    partners = app.fields().pop("partners")

    assert sorted(app.apply()) == ["archive field customer.notes (values kept, restorable)",
                                   "archive field customer.partners (values kept, restorable)"]
    assert all("notes" not in c and "partners" not in c for c in app.customers().values())
    with pytest.raises(RecordValidationError, match="has no field 'notes'"):
        app.records.create("customer", {"name": "X", "notes": "y"})

    app.fields()["notes"] = removed
    app.fields()["partners"] = partners
    assert sorted(app.apply()) == ["restore field customer.notes from the archive (values kept)",
                                   "restore field customer.partners from the archive (values kept)"]

    customers = app.customers()
    acme = app.records.query("company").records[0]["id"]
    assert {n: c.get("notes") for n, c in customers.items()} == {"Li Wei": "likes tea", "Anna": None,
                                                                  "Bob": "a rather long note"}
    assert customers["Li Wei"]["partners"] == [acme]


def test_field_removed_twice_restores_the_latest_values(app: App) -> None:
    removed = app.fields().pop("notes")
    app.apply()
    app.fields()["notes"] = copy.deepcopy(removed)
    app.apply()
    li = app.customers()["Li Wei"]["id"]
    app.records.update("customer", li, {"notes": "now prefers coffee"})
    app.fields().pop("notes")
    app.apply()

    app.fields()["notes"] = removed
    app.apply()

    assert app.customers()["Li Wei"]["notes"] == "now prefers coffee"


def test_remove_entity_archives_it_and_readding_restores_records(app: App) -> None:
    customer = app.doc["$defs"].pop("customer")
    before = app.customers()

    assert app.apply() == ["archive entity customer (records kept, restorable)"]
    with pytest.raises(NotFoundError, match="has no entity 'customer'"):
        app.records.query("customer")

    app.doc["$defs"]["customer"] = customer
    assert app.apply() == ["restore entity customer from the archive (records kept)"]

    assert app.customers() == before
    assert app.records.create("customer", {"name": "Dora"})["number"] == "CUS-00004"


def test_purge_destroys_an_archived_field(app: App) -> None:
    removed = app.fields().pop("notes")

    assert app.apply(purge=True) == ["DESTROY field customer.notes and its values"]

    app.fields()["notes"] = removed
    assert app.apply() == ["add field customer.notes"]
    assert all("notes" not in c for c in app.customers().values())


def test_purge_destroys_a_removed_entity(app: App) -> None:
    customer = app.doc["$defs"].pop("customer")

    assert app.apply(purge=True) == ["DESTROY entity customer and all its records"]

    app.doc["$defs"]["customer"] = customer
    assert app.apply() == ["create entity customer"]
    assert app.customers() == {}
    assert app.records.create("customer", {"name": "Dora"})["number"] == "CUS-00001"


# --- rollback and other processes ------------------------------------------------------------------------------------

def test_rollback_restores_removed_fields_and_undoes_renames(app: App) -> None:
    before = app.customers()
    _rename(app.doc, "customer", "name", "full_name")
    app.doc["$defs"]["customer"]["required"] = ["full_name"]
    app.doc["$defs"]["customer"]["x-crm-entity"]["titleField"] = "full_name"
    app.doc["$defs"]["customer"]["x-crm-views"]["list"] = {"columns": ["full_name"]}
    app.fields().pop("notes")
    app.fields().pop("age")
    app.apply()
    anna = before["Anna"]["id"]
    app.records.update("customer", anna, {"full_name": "Anna K."})

    plan = app.apps.rollback("mini", 1)

    steps = sorted(s.describe() for s in plan.steps)
    assert "rename field customer.full_name -> name (values kept)" in steps
    assert "restore field customer.age from the archive (values kept)" in steps
    after = app.customers()
    assert {n: (c.get("age"), c.get("notes")) for n, c in after.items()} == {
        "Li Wei": (36, "likes tea"), "Anna K.": (52, None), "Bob": (None, "a rather long note")}
    assert app.version() == 3
    assert app.apps.history("mini")[-1].note == "rollback to version 1"
    assert app.apps.export("mini", 3).replace(b'"version": 3', b"") == app.apps.export("mini", 1).replace(
        b'"version": 1', b"")


def test_rollback_restores_a_field_that_was_renamed_and_then_removed(app: App) -> None:
    _rename(app.doc, "customer", "age", "years")
    app.apply()
    app.fields().pop("years")
    app.apply()

    plan = app.apps.rollback("mini", 1)

    assert "restore field customer.age from the archive (values kept)" in [s.describe() for s in plan.steps]
    assert {n: c.get("age") for n, c in app.customers().items()} == {"Li Wei": 36, "Anna": 52, "Bob": None}


def test_going_back_to_a_middle_version_restores_a_field_renamed_twice_then_removed(app: App) -> None:
    _rename(app.doc, "customer", "age", "years")
    app.apply()
    middle = copy.deepcopy(app.doc)  # v2: age is now "years"
    _rename(app.doc, "customer", "years", "age_in_years")
    app.apply()
    app.fields().pop("age_in_years")
    app.apply()

    steps = [s.describe() for s in app.apps.apply(middle).steps]

    assert steps == ["restore field customer.years from the archive (values kept)"]
    assert {n: c.get("years") for n, c in app.customers().items()} == {"Li Wei": 36, "Anna": 52, "Bob": None}


def test_rollback_that_would_lose_data_is_refused(app: App) -> None:
    app.fields()["code"] = {"title": "Code", "x-crm-field": {"kind": "text"}}
    app.fields()["age"]["x-crm-field"] = {"kind": "decimal", "scale": 1}
    app.apply()
    app.records.update("customer", app.customers()["Bob"]["id"], {"age": "7.5"})

    with pytest.raises(PlanRefused) as caught:
        app.apps.rollback("mini", 1)

    assert any("customer.age" in line and "cannot become integer" in line for line in caught.value.lines())
    assert app.version() == 2


def test_another_process_sees_the_new_version_on_its_next_operation(app: App, db: Database) -> None:
    with db.read() as conn:
        options = {} if db.is_sqlite else {
            "connect_args": {"options": f"-csearch_path={conn.exec_driver_sql('SHOW search_path').scalar()}"}}
    other = Database(db.url, **options)
    try:
        other_records = RecordService(other, "mini")
        assert "city" not in other_records.query("company").records[0]

        app.fields("company")["city"] = {"title": "City", "x-crm-field": {"kind": "text"}}
        app.apply()

        created = other_records.create("company", {"name": "Initech", "city": "Austin"})
        assert other_records.get("company", created["id"])["city"] == "Austin"
        assert AppService(other).current("mini").version == 2
    finally:
        other.dispose()
