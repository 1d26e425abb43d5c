"""Records: create, read, update and delete through the records service, with checks, conflicts and history."""

from __future__ import annotations

import re
from typing import Any

import pytest

from engine.errors import ConflictError, NotFoundError, RecordValidationError
from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.records import RecordService

_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
_MISSING_ID = "0b8e3f7a-0000-4000-8000-000000000000"


@pytest.fixture
def records(db: Database, mini_doc: dict[str, Any]) -> RecordService:
    """The mini app plus a deal (restrict) and a note (cascade) pointing at customers, acting as alice."""
    defs = mini_doc["$defs"]
    defs["deal"] = {"type": "object", "title": "Deal", "x-crm-entity": {"plural": "Deals"}, "properties": {
        "title": {"title": "Title", "x-crm-field": {"kind": "text"}},
        "customer": {"title": "Customer", "x-crm-field": {"kind": "relation", "entity": "customer"}},
    }}
    defs["note"] = {"type": "object", "title": "Note", "x-crm-entity": {"plural": "Notes"}, "properties": {
        "text": {"title": "Text", "x-crm-field": {"kind": "long_text"}},
        "customer": {"title": "Customer", "x-crm-field": {"kind": "relation", "entity": "customer",
                                                           "onDelete": "cascade"}},
    }}
    AppService(db).apply(mini_doc)
    return RecordService(db, "mini", actor="alice")


def _errors(exc: pytest.ExceptionInfo[RecordValidationError]) -> list[tuple[str, str, int | None]]:
    return [(e.field, e.message, e.line) for e in exc.value.errors]


# --- create and read ------------------------------------------------------------------------------------------------

def test_create_returns_id_version_and_who_created_it(records: RecordService) -> None:
    created = records.create("customer", {"name": "Li Wei", "email": "Li.Wei@Example.com", "phone": "030 1234567",
                                          "spend": "19.9", "last_seen": "2026-01-31T10:30:00+01:00"})

    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", created["id"])
    assert created["version"] == 1
    assert created["created_by"] == created["updated_by"] == "alice"
    assert _UTC.match(created["created_at"]) and created["created_at"] == created["updated_at"]
    assert (created["email"], created["phone"], created["spend"], created["last_seen"]) == (
        "Li.Wei@example.com", "+49301234567", "19.90", "2026-01-31T09:30:00Z")
    assert created["segment"] == "b2c" and created["vip"] is False  # defaults filled in
    assert created["number"] == "CUS-00001"


def test_get_returns_what_create_returned(records: RecordService) -> None:
    company = records.create("company", {"name": "Acme"})
    created = records.create("customer", {"name": "Li", "age": 36, "score": "2.5", "discount": "12.5",
                                          "birthday": "1990-05-01", "tags": ["new", "vip"], "company": company["id"],
                                          "partners": [company["id"]], "rating": 4, "notes": "a\nb"})

    assert records.get("customer", created["id"]) == created


def test_get_of_a_missing_record_is_not_found(records: RecordService) -> None:
    with pytest.raises(NotFoundError, match="there is no Customer with id"):
        records.get("customer", _MISSING_ID)


def test_invalid_record_lists_every_problem_and_writes_nothing(records: RecordService) -> None:
    with pytest.raises(RecordValidationError) as caught:
        records.create("customer", {"age": "old", "rating": 7, "colour": "red"})

    assert sorted(_errors(caught)) == [
        ("age", "'old' is not a number", None),
        ("colour", "Customer has no field 'colour'", None),
        ("name", "is required", None),
        ("rating", "must be at most 5", None),
    ]
    assert records.count("customer") == 0


def test_unique_violation_is_a_field_error(records: RecordService) -> None:
    records.create("customer", {"name": "Li", "email": "li@example.com"})

    with pytest.raises(RecordValidationError) as caught:
        records.create("customer", {"name": "Other Li", "email": "li@EXAMPLE.com"})

    assert _errors(caught) == [("email", "'li@example.com' is already used by another Customer", None)]
    assert records.count("customer") == 1


def test_unique_violation_on_update_is_a_field_error(records: RecordService) -> None:
    records.create("company", {"name": "Acme"})
    other = records.create("company", {"name": "Initech"})

    with pytest.raises(RecordValidationError) as caught:
        records.update("company", other["id"], {"name": "Acme"})

    assert [e.field for e in caught.value.errors] == ["name"]
    assert records.get("company", other["id"])["name"] == "Initech"


def test_updating_a_record_keeps_its_own_unique_value(records: RecordService) -> None:
    acme = records.create("company", {"name": "Acme"})

    updated = records.update("company", acme["id"], {"name": "Acme", "website": "acme.example"})

    assert updated["website"] == "https://acme.example"


def test_relation_to_a_missing_record_is_a_field_error(records: RecordService) -> None:
    with pytest.raises(RecordValidationError) as caught:
        records.create("customer", {"name": "Li", "company": _MISSING_ID, "partners": [_MISSING_ID]})

    assert sorted(_errors(caught)) == [("company", f"there is no Company with id {_MISSING_ID}", None),
                                       ("partners", f"there is no Company with id {_MISSING_ID}", None)]


def test_autonumber_cannot_be_set_by_hand(records: RecordService) -> None:
    with pytest.raises(RecordValidationError) as caught:
        records.create("customer", {"name": "Li", "number": "CUS-99999"})

    assert _errors(caught) == [("number", "is generated and cannot be set", None)]


def test_relation_many_is_stored_and_returned(records: RecordService) -> None:
    a = records.create("company", {"name": "A"})["id"]
    b = records.create("company", {"name": "B"})["id"]
    c = records.create("company", {"name": "C"})["id"]

    created = records.create("customer", {"name": "Li", "partners": [c, a, a]})
    assert created["partners"] == sorted([a, c])
    assert records.get("customer", created["id"])["partners"] == sorted([a, c])

    records.update("customer", created["id"], {"partners": [b]})
    assert records.get("customer", created["id"])["partners"] == [b]

    records.update("customer", created["id"], {"partners": []})
    assert "partners" not in records.get("customer", created["id"])


# --- update and conflicts -------------------------------------------------------------------------------------------

def test_update_changes_values_and_bumps_the_version(records: RecordService, db: Database) -> None:
    created = records.create("customer", {"name": "Li", "age": 30})

    updated = RecordService(db, "mini", actor="bob").update("customer", created["id"], {"age": "31", "notes": "hi"},
                                                             expected_version=1)

    stored = records.get("customer", created["id"])
    assert updated == stored
    assert (stored["age"], stored["notes"], stored["version"]) == (31, "hi", 2)
    assert (stored["created_by"], stored["updated_by"]) == ("alice", "bob")


def test_clearing_a_value_removes_it_from_the_record(records: RecordService) -> None:
    created = records.create("customer", {"name": "Li", "age": 30})

    records.update("customer", created["id"], {"age": None})

    assert "age" not in records.get("customer", created["id"])


def test_update_with_a_stale_version_is_a_conflict_and_changes_nothing(records: RecordService) -> None:
    created = records.create("customer", {"name": "Li", "age": 30})
    records.update("customer", created["id"], {"age": 31}, expected_version=1)
    before = records.get("customer", created["id"])

    with pytest.raises(ConflictError) as caught:
        records.update("customer", created["id"], {"age": 99, "name": "Someone else"}, expected_version=1)

    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert caught.value.current is not None and caught.value.current["age"] == 31
    assert "nothing was saved" in str(caught.value)
    assert records.get("customer", created["id"]) == before
    assert [h["action"] for h in records.history("customer", created["id"])] == ["create", "update"]


def test_delete_with_a_stale_version_is_a_conflict(records: RecordService) -> None:
    created = records.create("company", {"name": "Acme"})
    records.update("company", created["id"], {"website": "acme.example"})

    with pytest.raises(ConflictError):
        records.delete("company", created["id"], expected_version=1)

    assert records.get("company", created["id"])["name"] == "Acme"


def test_update_that_changes_nothing_keeps_the_version(records: RecordService) -> None:
    created = records.create("customer", {"name": "Li", "age": 30})

    records.update("customer", created["id"], {"age": "30", "name": " Li "})

    assert records.get("customer", created["id"])["version"] == 1
    assert len(records.history("customer", created["id"])) == 1


# --- history --------------------------------------------------------------------------------------------------------

def test_history_records_actor_action_and_old_and_new_values(records: RecordService, db: Database) -> None:
    created = records.create("company", {"name": "Acme"})
    RecordService(db, "mini", actor="bob").update("company", created["id"], {"name": "Acme Inc", "website": "acme.io"})
    RecordService(db, "mini", actor="carol").delete("company", created["id"])

    history = records.history("company", created["id"])

    assert [(h["actor"], h["action"], h["version"], h["changes"]) for h in history] == [
        ("alice", "create", 1, {"name": [None, "Acme"]}),
        ("bob", "update", 2, {"name": ["Acme", "Acme Inc"], "website": [None, "https://acme.io"]}),
        ("carol", "delete", 3, {"name": ["Acme Inc", None], "website": ["https://acme.io", None]}),
    ]
    assert all(_UTC.match(h["at"]) for h in history)


def test_history_keeps_values_in_their_json_shape(records: RecordService) -> None:
    created = records.create("customer", {"name": "Li", "spend": "5", "score": "1.25", "tags": ["new"]})

    changes = records.history("customer", created["id"])[0]["changes"]

    assert changes["spend"] == [None, "5.00"]
    assert changes["score"] == [None, "1.25"]
    assert changes["tags"] == [None, ["new"]]


# --- delete ---------------------------------------------------------------------------------------------------------

def test_delete_removes_the_record(records: RecordService) -> None:
    created = records.create("company", {"name": "Acme"})

    records.delete("company", created["id"])

    with pytest.raises(NotFoundError):
        records.get("company", created["id"])


def test_delete_refused_while_restricting_records_point_at_it(records: RecordService) -> None:
    customer = records.create("customer", {"name": "Li"})
    records.create("deal", {"title": "Big one", "customer": customer["id"]})

    with pytest.raises(RecordValidationError) as caught:
        records.delete("customer", customer["id"])

    assert _errors(caught) == [("", "cannot delete: 1 Deals refer to it (field Customer); change or delete them first",
                                None)]
    assert records.get("customer", customer["id"])["name"] == "Li"


def test_delete_with_set_null_clears_the_reference_with_history(records: RecordService, db: Database) -> None:
    company = records.create("company", {"name": "Acme"})
    customer = records.create("customer", {"name": "Li", "company": company["id"]})

    RecordService(db, "mini", actor="bob").delete("company", company["id"])

    after = records.get("customer", customer["id"])
    assert "company" not in after
    assert after["version"] == 2
    last = records.history("customer", customer["id"])[-1]
    assert (last["actor"], last["action"], last["changes"]) == ("bob", "update", {"company": [company["id"], None]})


def test_delete_with_cascade_deletes_the_children_with_history(records: RecordService) -> None:
    customer = records.create("customer", {"name": "Li"})
    other = records.create("customer", {"name": "Other"})
    notes = [records.create("note", {"text": f"note {i}", "customer": customer["id"]}) for i in range(3)]
    kept = records.create("note", {"text": "keep", "customer": other["id"]})

    records.delete("customer", customer["id"])

    assert records.count("note") == 1
    assert records.get("note", kept["id"])["text"] == "keep"
    for note in notes:
        assert records.history("note", note["id"])[-1]["action"] == "delete"


def test_autonumbers_are_never_reused_after_delete(records: RecordService) -> None:
    first = records.create("customer", {"name": "A"})
    second = records.create("customer", {"name": "B"})
    records.delete("customer", second["id"])
    records.delete("customer", first["id"])

    third = records.create("customer", {"name": "C"})

    assert (first["number"], second["number"], third["number"]) == ("CUS-00001", "CUS-00002", "CUS-00003")


# --- batches --------------------------------------------------------------------------------------------------------

def test_create_many_creates_all_with_consecutive_numbers(records: RecordService) -> None:
    created = records.create_many("customer", [{"name": f"C{i}"} for i in range(5)])

    assert [c["number"] for c in created] == [f"CUS-0000{i}" for i in range(1, 6)]
    assert records.count("customer") == 5


def test_create_many_is_all_or_nothing_with_line_numbers(records: RecordService) -> None:
    records.create("customer", {"name": "Existing", "email": "taken@example.com"})
    rows = [{"name": "Fine"}, {"name": "Bad age", "age": "x"}, {"age": 5},
            {"name": "Dup", "email": "taken@example.com"}, {"name": "In batch", "email": "new@example.com"},
            {"name": "In batch again", "email": "new@example.com"}]

    with pytest.raises(RecordValidationError) as caught:
        records.create_many("customer", rows, lines=[2, 3, 4, 5, 6, 7])

    assert _errors(caught) == [
        ("age", "'x' is not a number", 3),
        ("name", "is required", 4),
        ("email", "'taken@example.com' is already used by another Customer", 5),
        ("email", "'new@example.com' is already used by another record in this batch", 7),
    ]
    assert "line 3: age: 'x' is not a number" in caught.value.lines()
    assert records.count("customer") == 1
    assert records.create("customer", {"name": "Next"})["number"] == "CUS-00002"  # no number used by the failed batch
