"""Drafts: edits wait in a draft until Publish, which shows and applies the plan; designers never overwrite each
other silently; only designers may touch drafts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.auth.principal import Principal
from engine.designer import edits
from engine.designer.drafts import DraftConflict, DraftService, templates
from engine.designer.edits import EditError
from engine.errors import DefinitionError, NotFoundError, PermissionDenied, PlanRefused
from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.records import RecordService

ADA = Principal(name="ada@example.com", designer=True)
BOB = Principal(name="bob@example.com", designer=True)


def contacts_app(name: str = "shop", title: str = "Shop") -> dict[str, Any]:
    """A small app document: a blank app with a Contact entity (a required Name)."""
    doc = edits.blank_app(name, title)
    edits.add_entity(doc, "Contact", "Contacts")
    return doc


def contacts_draft(drafts: DraftService, name: str = "shop") -> int:
    """A new app's draft with a Contact entity; its revision."""
    start = drafts.create(name, "Shop").revision
    draft, _ = drafts.edit(name, start, lambda doc: edits.add_entity(doc, "Contact", "Contacts"))
    return draft.revision


def build_customer_app(drafts: DraftService) -> int:
    """The Customer entity of the issue, made only with designer edits; the draft's revision."""
    draft = drafts.create("clients", "Clients")

    def customer(doc: dict[str, Any]) -> None:
        key = edits.add_entity(doc, "Customer", "Customers")
        gender = edits.add_field(doc, key, "select", "Gender")
        edits.update_field(doc, key, gender, {"options": [{"title": "Female"}, {"title": "Male"},
                                                          {"title": "Diverse"}]})
        edits.add_field(doc, key, "date", "Birthday")
        email = edits.add_field(doc, key, "email", "Email")
        edits.update_field(doc, key, email, {"unique": True})
        phone = edits.add_field(doc, key, "phone", "Phone")
        edits.update_field(doc, key, phone, {"region": "DE"})
        edits.add_field(doc, key, "text", "Street")
        edits.add_field(doc, key, "text", "City")
        frequency = edits.add_field(doc, key, "select", "Purchase frequency")
        edits.update_field(doc, key, frequency, {"options": [{"title": "Weekly"}, {"title": "Monthly"},
                                                             {"title": "Rarely"}], "default": "monthly"})
        edits.add_field(doc, key, "rating", "Service rating")
        edits.add_field(doc, key, "long_text", "Needs")
        edits.add_field(doc, key, "text", "Visits")
        edits.add_field(doc, key, "text", "Code")
        edits.set_list_view(doc, key, ["name", "email", "city"], [("name", "asc")], 50)
        edits.set_form_sections(doc, key, [
            {"title": "Person", "columns": 2, "fields": ["name", gender, "birthday", email, phone]},
            {"title": "Address", "columns": 2, "fields": ["street", "city"]},
            {"title": "Service", "columns": 1, "fields": [frequency, "service_rating", "needs", "visits", "code"]},
        ])

    draft, _ = drafts.edit("clients", draft.revision, customer)
    return draft.revision


def test_customer_app_built_by_clicking_publishes_and_changes_keep_values(db: Database) -> None:
    drafts = DraftService(db, ADA)
    revision = build_customer_app(drafts)
    assert drafts.problems("clients") == []
    assert "create entity customer" in "\n".join(drafts.plan("clients").lines())
    drafts.publish("clients", revision)
    assert drafts.list() == []
    records = RecordService(db, "clients", actor="ada@example.com")
    li = records.create("customer", {"name": "Li Wei", "gender": "male", "birthday": "1988-04-12",
                                     "email": "li.wei@example.com", "phone": "030 1234567", "city": "Berlin",
                                     "service_rating": 4, "visits": "42", "code": "abc"})
    assert li["purchase_frequency"] == "monthly"

    fresh = drafts.get("clients")
    assert fresh.revision == 0 and not fresh.is_new_app and fresh.base_version == 1
    assert drafts.published_keys("clients", "customer") >= {"name", "city", "visits"}
    with pytest.raises(EditError):
        drafts.edit("clients", 0, lambda doc: edits.rename_key(doc, "customer", "city", "visits",
                                                               drafts.published_keys("clients", "customer")))
    draft, _ = drafts.edit("clients", 0, lambda doc: edits.update_field(doc, "customer", "city", {"title": "Town"}))
    draft, _ = drafts.edit("clients", draft.revision,
                           lambda doc: edits.update_field(doc, "customer", "code", {"kind": "integer"}))

    with pytest.raises(PlanRefused) as caught:
        drafts.publish("clients", draft.revision)
    assert "Li Wei" in str(caught.value) or "Li Wei" in "\n".join(caught.value.lines())
    kept = drafts.get("clients")
    assert kept.revision == draft.revision and kept.document == draft.document  # the draft waits, unchanged
    assert AppService(db).history("clients")[-1].version == 1

    draft, _ = drafts.edit("clients", draft.revision, lambda doc: (
        edits.update_field(doc, "customer", "code", {"kind": "text"}),
        edits.update_field(doc, "customer", "visits", {"kind": "integer"})))
    drafts.publish("clients", draft.revision)
    after = records.get("customer", li["id"])
    assert after["visits"] == 42 and after["city"] == "Berlin" and after["code"] == "abc"
    current = AppService(db).current("clients").entity("customer")
    assert current.field("city").title == "Town" and current.field("visits").kind == "integer"
    assert drafts.list() == []


def test_two_designers_saving_the_same_revision_conflict_and_the_first_work_is_kept(db: Database) -> None:
    ada, bob = DraftService(db, ADA), DraftService(db, BOB)
    start = contacts_draft(ada)
    ada_draft, key = ada.edit("shop", start, lambda doc: edits.add_field(doc, "contact", "email", "Email"))
    with pytest.raises(DraftConflict) as caught:
        bob.edit("shop", start, lambda doc: edits.add_field(doc, "contact", "phone", "Phone"))
    assert "ada@example.com saved this draft at" in str(caught.value) and "reload" in str(caught.value)
    with pytest.raises(DraftConflict):
        bob.save("shop", contacts_app("shop", "Bob's"), start)
    stored = bob.get("shop")
    assert stored.revision == ada_draft.revision and key in stored.document["$defs"]["contact"]["properties"]
    assert stored.updated_by == "ada@example.com"
    bob.edit("shop", stored.revision, lambda doc: edits.add_field(doc, "contact", "phone", "Phone"))
    assert set(ada.get("shop").document["$defs"]["contact"]["properties"]) == {"name", "email", "phone"}


def test_first_saves_of_a_published_app_conflict_too(db: Database) -> None:
    AppService(db).apply(contacts_app())
    ada, bob = DraftService(db, ADA), DraftService(db, BOB)
    assert ada.get("shop").revision == bob.get("shop").revision == 0
    ada.edit("shop", 0, lambda doc: edits.update_entity(doc, "contact", title="Person"))
    with pytest.raises(DraftConflict):
        bob.edit("shop", 0, lambda doc: edits.update_entity(doc, "contact", title="Human"))
    assert bob.get("shop").document["$defs"]["contact"]["title"] == "Person"


def test_a_refused_edit_leaves_the_draft_unchanged(db: Database) -> None:
    drafts = DraftService(db, ADA)
    revision = contacts_draft(drafts)
    with pytest.raises(EditError):
        drafts.edit("shop", revision, lambda doc: edits.remove_field(doc, "contact", "name"))
    assert drafts.get("shop").revision == revision


def test_a_viewer_may_not_touch_drafts(db: Database) -> None:
    DraftService(db, ADA).create("shop", "Shop")
    viewer = DraftService(db, Principal(name="val@example.com", roles=("viewer",)))
    for call in (viewer.list, lambda: viewer.get("shop"), lambda: viewer.create("x", "X"),
                 lambda: viewer.save("shop", contacts_app("shop", "S"), 1), lambda: viewer.problems("shop"),
                 lambda: viewer.plan("shop"), lambda: viewer.publish("shop", 1), lambda: viewer.discard("shop"),
                 lambda: viewer.published_keys("shop", "contact"), lambda: viewer.edit("shop", 1, lambda d: None)):
        with pytest.raises(PermissionDenied):
            call()
    assert DraftService(db, ADA).get("shop").revision == 1


def test_templates_and_uploads(db: Database, sales_doc: dict[str, Any]) -> None:
    assert ("sales_crm", "Sales CRM") in templates()
    drafts = DraftService(db, ADA)
    draft = drafts.create("my_sales", "My sales", template="sales_crm")
    assert draft.is_new_app and draft.document["x-crm-app"] == {"name": "my_sales"}
    assert draft.document["title"] == "My sales" and drafts.problems("my_sales") == []
    with pytest.raises(EditError):
        drafts.create("other", "Other", template="nope")
    with pytest.raises(EditError):
        drafts.create("my_sales", "Again")  # a draft of that name exists

    bad = json.loads(json.dumps(sales_doc))
    bad["$defs"]["deal"]["properties"]["amount"]["x-crm-field"]["kind"] = "money"
    with pytest.raises(DefinitionError) as caught:
        drafts.create("", "", upload=json.dumps(bad).encode())
    assert any(p.path == "$defs/deal/properties/amount/x-crm-field/kind" for p in caught.value.problems)

    AppService(db).apply(contacts_app())
    with pytest.raises(EditError):
        drafts.create("shop", "Shop")  # a published app of that name exists
    upload = contacts_app("shop", "Shop 2")
    edits.add_field(upload, "contact", "email", "Email")
    draft = drafts.create("", "", upload=json.dumps(upload).encode())
    assert draft.app == "shop" and not draft.is_new_app and draft.base_version == 1
    assert "add field contact.email" in "\n".join(drafts.plan("shop").lines())
    drafts.discard("shop")
    assert drafts.get("shop").revision == 0
    with pytest.raises(NotFoundError):
        drafts.get("nope")


def test_a_blank_app_starts_without_entities_and_publishes_once_it_has_one(db: Database) -> None:
    drafts = DraftService(db, ADA)
    draft = drafts.create("desk", "Service desk")
    assert draft.document["$defs"] == {}
    assert [str(p) for p in drafts.problems("desk")] == ["add at least one entity before publishing"]
    with pytest.raises(DefinitionError) as caught:
        drafts.publish("desk", draft.revision)
    assert [str(p) for p in caught.value.problems] == ["add at least one entity before publishing"]
    assert drafts.get("desk").revision == draft.revision and AppService(db).list() == []
    draft, key = drafts.edit("desk", draft.revision, lambda doc: edits.add_entity(doc, "Customer"))
    assert key == "customer" and list(draft.document["$defs"]) == ["customer"] and drafts.problems("desk") == []
    drafts.publish("desk", draft.revision)
    assert [e.key for e in AppService(db).current("desk").entities] == ["customer"]


def test_renaming_a_published_key_moves_its_values(db: Database) -> None:
    drafts = DraftService(db, ADA)
    start = drafts.create("desk", "Service desk").revision

    def build(doc: dict[str, Any]) -> None:
        edits.add_entity(doc, "Customer")
        edits.add_field(doc, "customer", "text", "City")
        edits.set_list_view(doc, "customer", ["name", "city"], [("city", "asc")])
        edits.add_field(doc, "customer", "text", "Note")
        edits.update_field(doc, "customer", "note", {"visible_if": [{"field": "city", "op": "not_empty"}]})

    draft, _ = drafts.edit("desk", start, build)
    drafts.publish("desk", draft.revision)
    records = RecordService(db, "desk", actor="ada@example.com")
    ada = records.create("customer", {"name": "Ada", "city": "Berlin", "note": "calls on Mondays"})

    published = drafts.published_keys("desk", "customer")
    draft, _ = drafts.edit("desk", 0, lambda doc: edits.rename_key(doc, "customer", "city", "town", published))
    assert draft.document["$defs"]["customer"]["properties"]["town"]["x-crm-field"]["renamedFrom"] == "city"
    draft, _ = drafts.edit("desk", draft.revision,
                           lambda doc: edits.rename_key(doc, "customer", "town", "place", published))
    customer = draft.document["$defs"]["customer"]
    assert customer["properties"]["place"]["x-crm-field"]["renamedFrom"] == "city"  # still the published key
    assert customer["x-crm-views"]["list"] == {"columns": ["name", "place"], "sort": [{"field": "place",
                                                                                        "dir": "asc"}]}
    assert customer["properties"]["note"]["x-crm-field"]["visibleIf"] == {"required": ["place"]}
    lines = "\n".join(drafts.plan("desk").lines())
    assert "rename field customer.city -> place (values kept)" in lines and "archive" not in lines
    drafts.publish("desk", draft.revision)
    after = records.get("customer", ada["id"])
    assert after["place"] == "Berlin" and "city" not in after and after["note"] == "calls on Mondays"

    published = drafts.published_keys("desk", "customer")
    draft, _ = drafts.edit("desk", 0, lambda doc: edits.rename_key(doc, "customer", "place", "town", published))
    draft, _ = drafts.edit("desk", draft.revision,
                           lambda doc: edits.rename_key(doc, "customer", "town", "place", published))
    assert "renamedFrom" not in draft.document["$defs"]["customer"]["properties"]["place"]["x-crm-field"]
    assert "rename" not in "\n".join(drafts.plan("desk").lines())


def test_keys_that_clash_with_the_designers_pages_are_refused_on_upload(db: Database) -> None:
    """An uploaded entity keyed like a designer page could never be opened in the editor: refused by path; an app
    key like one of the designer's own pages too."""
    drafts = DraftService(db, ADA)
    upload = contacts_app("shop", "Shop")
    upload["$defs"]["versions"] = upload["$defs"].pop("contact")
    with pytest.raises(EditError) as caught:
        drafts.create("", "", upload=json.dumps(upload).encode())
    assert caught.value.path == "$defs/versions" and "crm app apply" in caught.value.message
    with pytest.raises(EditError) as caught:
        drafts.create("import", "Import")
    assert caught.value.path == "x-crm-app/name"
    assert drafts.list() == []


def test_a_new_field_never_takes_a_removed_published_key(db: Database) -> None:
    """Remove the published Email and add a new field titled Email in the same draft: the new one gets email_2, so
    the plan archives the old values instead of checking them against the new field."""
    drafts = DraftService(db, ADA)
    AppService(db).apply(contacts_app())
    upload = contacts_app()
    edits.add_field(upload, "contact", "email", "Email")
    AppService(db).apply(upload)
    published = drafts.published_keys("shop", "contact")
    draft = drafts.get("shop")
    draft, _ = drafts.edit("shop", draft.revision, lambda doc: edits.remove_field(doc, "contact", "email"))
    draft, key = drafts.edit("shop", draft.revision,
                             lambda doc: edits.add_field(doc, "contact", "integer", "Email", reserved=published))
    assert key == "email_2"
    lines = drafts.plan("shop").lines()
    assert any("archive field contact.email" in line for line in lines), lines
