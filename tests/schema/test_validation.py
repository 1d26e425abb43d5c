"""Record validation: every problem at once, per field, in words a user understands; hostile patterns stay fast."""

from __future__ import annotations

import time
from typing import Any

import pytest

from engine.errors import FieldError
from engine.schema import load_definition
from engine.schema.validation import EntityValidator


def _validator(doc: dict[str, Any], entity: str = "customer") -> EntityValidator:
    return EntityValidator(load_definition(doc).entity(entity))


def _by_field(errors: list[FieldError]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in errors:
        out.setdefault(e.field, []).append(e.message)
    return out


def test_valid_record_has_no_errors(mini_doc: dict[str, Any]) -> None:
    record = {"name": "Li Wei", "email": "li@example.com", "age": 36, "rating": 4, "segment": "b2b", "tags": ["vip"],
              "birthday": "1990-05-01", "last_seen": "2026-01-31T09:30:00Z", "spend": "10.00", "vip": True}

    assert _validator(mini_doc).errors(record) == []


def test_every_error_is_collected_with_a_message_per_field(mini_doc: dict[str, Any]) -> None:
    record = {"age": -1, "rating": 9, "discount": 101, "email": "not-an-email", "segment": "retail",
              "tags": ["vip", "vip"], "vip": "yes", "spend": "-5.00"}

    errors = _by_field(_validator(mini_doc).errors(record))

    assert errors == {
        "name": ["is required"],
        "age": ["must be at least 0"],
        "rating": ["must be at most 5"],
        "discount": ["must be at most 100"],
        "email": ["is not a valid email address"],
        "segment": ['"retail" is not one of the options (Business, Consumer, Government)'],
        "tags": ["lists the same value twice"],
        "vip": ["must be yes or no"],
        "spend": ["must be at least 0 EUR"],
    }


def test_required_fields_are_each_named(sales_doc: dict[str, Any]) -> None:
    errors = _validator(sales_doc, "sales_order").errors({})

    assert sorted(e.field for e in errors) == ["customer", "product", "purchased_at"]
    assert {e.message for e in errors} == {"is required"}


def test_conditional_requirement_says_when_it_applies(mini_doc: dict[str, Any]) -> None:
    validator = _validator(mini_doc)

    assert validator.errors({"name": "Li", "stage": "lead"}) == []
    assert validator.errors({"name": "Li", "stage": "won"}) == [
        FieldError("won_reason", "is required when Stage is Won")]
    assert validator.errors({"name": "Li", "stage": "won", "won_reason": "price"}) == []


def test_conditional_requirement_names_every_missing_field(sales_doc: dict[str, Any]) -> None:
    errors = _validator(sales_doc, "deal").errors({"title": "Big one", "stage": "won"})

    assert errors == [FieldError("amount", "is required when Stage is Won"),
                      FieldError("expected_close", "is required when Stage is Won")]


def test_text_longer_than_max_length_says_how_long_it_is(mini_doc: dict[str, Any]) -> None:
    errors = _validator(mini_doc).errors({"name": "x" * 60})

    assert errors == [FieldError("name", "must be at most 50 characters (it has 60)")]


def test_pattern_mismatch_has_a_kind_specific_message(mini_doc: dict[str, Any]) -> None:
    errors = _by_field(_validator(mini_doc).errors({"name": "Li", "phone": "030 123", "spend": "1.234"}))

    assert errors == {"phone": ["is not a phone number in international format (+4930123456)"],
                      "spend": ["is not an amount with at most 2 decimal places"]}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("email", "li.wei", "is not a valid email address"),
    ("birthday", "2026-02-30", "is not a valid date (YYYY-MM-DD)"),
    ("birthday", "31.01.2026", "is not a valid date (YYYY-MM-DD)"),
    ("last_seen", "2026-01-31 25:00", "is not a valid date and time"),
    ("company", "not-a-uuid", "is not a valid record id"),
])
def test_format_checker_rejects_bad_values(mini_doc: dict[str, Any], field: str, value: str, message: str) -> None:
    assert _validator(mini_doc).errors({"name": "Li", field: value}) == [FieldError(field, message)]


@pytest.mark.parametrize("value", ["acme dot com", "/relative/path", "http://exa mple.com"])
def test_format_checker_rejects_bad_web_addresses(mini_doc: dict[str, Any], value: str) -> None:
    errors = _validator(mini_doc, "company").errors({"name": "Acme", "website": value})

    assert errors == [FieldError("website", "is not a valid web address (https://...)")]


def test_format_checker_accepts_good_values(mini_doc: dict[str, Any]) -> None:
    record = {"name": "Li", "email": "li@example.com", "birthday": "2026-02-28", "last_seen": "2026-01-31T09:30:00Z",
              "company": "3f2c1e7a-9b1d-4c8e-a2f4-5d6e7f8a9b0c"}

    assert _validator(mini_doc).errors(record) == []
    assert _validator(mini_doc, "company").errors({"name": "Acme", "website": "https://acme.example/x?y=1"}) == []


def _hostile_doc(mini_doc: dict[str, Any]) -> dict[str, Any]:
    props = mini_doc["$defs"]["customer"]["properties"]
    props["code"] = {"title": "Code", "type": "string", "maxLength": 200000, "pattern": "(a+)+$",
                     "x-crm-field": {"kind": "long_text"}}
    mini_doc["$defs"]["customer"]["allOf"].append(
        {"if": {"properties": {"notes": {"pattern": "^(a|a)*$"}}, "required": ["notes"]},
         "then": {"required": ["age"]}})
    return mini_doc


def test_hostile_pattern_finishes_quickly(mini_doc: dict[str, Any]) -> None:
    validator = _validator(_hostile_doc(mini_doc))
    evil = "a" * 100_000 + "b"  # backtracking engines need ~2**n steps for this

    start = time.perf_counter()
    errors = validator.errors({"name": "Li", "code": evil, "notes": evil[-9_000:]})
    elapsed = time.perf_counter() - start

    assert errors == [FieldError("code", "does not have the required format")]
    assert elapsed < 1.0


def test_hostile_pattern_still_matches_what_it_should(mini_doc: dict[str, Any]) -> None:
    validator = _validator(_hostile_doc(mini_doc))

    assert validator.errors({"name": "Li", "code": "xaaaa"}) == []  # pattern is searched, not anchored at the start
    assert validator.errors({"name": "Li", "notes": "aaaa"}) == [FieldError("age", "is required")]
