"""Loading app definitions: problems named by JSON path in plain words, caps refused fast, canonical export."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from engine.errors import DefinitionError, Problem
from engine.schema import load_definition, to_bytes
from engine.schema.canonical import to_entity_schema
from engine.storage.apps import AppService
from engine.storage.database import Database

Doc = dict[str, Any]


def _problems(doc: Doc | bytes | str) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        load_definition(doc)
    assert caught.value.problems, "a refused definition must say why"
    return caught.value.problems


def _fields(doc: Doc, entity: str = "customer") -> dict[str, Any]:
    return doc["$defs"][entity]["properties"]


def _one_problem_at(doc: Doc, path: str) -> str:
    """The message of the only problem, which must be at `path`."""
    problems = _problems(doc)
    assert [p.path for p in problems] == [path], problems
    return problems[0].message


# --- the meta-schema and the checks around it ---------------------------------------------------------------------

def test_unknown_keyword_is_named_at_its_own_path(mini_doc: Doc) -> None:
    _fields(mini_doc)["name"]["x-crm-field"]["colour"] = "red"

    message = _one_problem_at(mini_doc, "$defs/customer/properties/name/x-crm-field/colour")

    assert "unknown keyword 'colour'" in message
    assert "kind" in message  # says what is allowed instead


def test_unknown_top_level_keyword_is_named(mini_doc: Doc) -> None:
    mini_doc["version"] = 3

    message = _one_problem_at(mini_doc, "version")

    assert "unknown keyword 'version'" in message


def test_entity_key_with_capitals_is_refused_as_a_bad_key(mini_doc: Doc) -> None:
    mini_doc["$defs"]["Customer"] = mini_doc["$defs"].pop("customer")

    message = _one_problem_at(mini_doc, "$defs")

    assert "'Customer' is not a valid key" in message
    assert "lowercase" in message


def test_field_without_kind_is_refused(mini_doc: Doc) -> None:
    del _fields(mini_doc)["name"]["x-crm-field"]["kind"]

    message = _one_problem_at(mini_doc, "$defs/customer/properties/name/x-crm-field")

    assert message == "missing 'kind'"


def test_unknown_kind_is_refused_listing_the_kinds(mini_doc: Doc) -> None:
    _fields(mini_doc)["name"]["x-crm-field"]["kind"] = "money"

    message = _one_problem_at(mini_doc, "$defs/customer/properties/name/x-crm-field/kind")

    assert message.startswith('"money" is not one of: ')
    assert "currency" in message and "relation_many" in message


def test_relation_to_a_missing_entity_is_refused(mini_doc: Doc) -> None:
    _fields(mini_doc)["company"]["x-crm-field"]["entity"] = "vendor"

    message = _one_problem_at(mini_doc, "$defs/customer/properties/company/x-crm-field/entity")

    assert message == "there is no entity 'vendor' in this app"


def test_relation_without_target_entity_is_refused(mini_doc: Doc) -> None:
    del _fields(mini_doc)["partners"]["x-crm-field"]["entity"]

    message = _one_problem_at(mini_doc, "$defs/customer/properties/partners/x-crm-field")

    assert "missing 'entity'" in message


def test_currency_without_currency_code_is_refused(mini_doc: Doc) -> None:
    del _fields(mini_doc)["spend"]["x-crm-field"]["currency"]

    message = _one_problem_at(mini_doc, "$defs/customer/properties/spend/x-crm-field")

    assert "missing 'currency'" in message
    assert "ISO 4217" in message


def test_reserved_word_as_field_key_is_refused(mini_doc: Doc) -> None:
    _fields(mini_doc)["order"] = {"title": "Order", "x-crm-field": {"kind": "text"}}

    message = _one_problem_at(mini_doc, "$defs/customer/properties/order")

    assert message == "'order' is an SQL reserved word; choose another key"


def test_reserved_word_as_entity_key_is_refused(mini_doc: Doc) -> None:
    mini_doc["$defs"]["order"] = copy.deepcopy(mini_doc["$defs"]["company"])

    message = _one_problem_at(mini_doc, "$defs/order")

    assert "SQL reserved word" in message


def test_system_column_as_field_key_is_refused(mini_doc: Doc) -> None:
    _fields(mini_doc)["id"] = {"title": "Id", "x-crm-field": {"kind": "text"}}

    message = _one_problem_at(mini_doc, "$defs/customer/properties/id")

    assert message == "'id' is a system column every entity has; choose another key"


def test_select_with_duplicate_options_is_refused(mini_doc: Doc) -> None:
    _fields(mini_doc)["segment"]["anyOf"].append({"const": "b2b", "title": "Business again"})

    message = _one_problem_at(mini_doc, "$defs/customer/properties/segment/anyOf")

    assert message == "option 'b2b' is listed twice"


def test_setting_of_another_kind_is_refused(mini_doc: Doc) -> None:
    _fields(mini_doc)["name"]["x-crm-field"]["region"] = "DE"

    message = _one_problem_at(mini_doc, "$defs/customer/properties/name/x-crm-field/region")

    assert message == "'region' does not apply to a text field"


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)b", r"(?<!a)b"], ids=["backreference", "lookahead", "lookbehind"])
def test_pattern_outside_re2_syntax_is_refused(mini_doc: Doc, pattern: str) -> None:
    _fields(mini_doc)["name"]["pattern"] = pattern

    message = _one_problem_at(mini_doc, "$defs/customer/properties/name/pattern")

    assert message.startswith("not a valid pattern (RE2 syntax: no look-around or back-references): ")
    assert "b'" not in message  # plain words, not a bytes repr


def test_pattern_longer_than_the_cap_is_refused(mini_doc: Doc) -> None:
    _fields(mini_doc)["name"]["pattern"] = "a" * 1001

    message = _one_problem_at(mini_doc, "$defs/customer/properties/name/pattern")

    assert "1000" in message


def test_pattern_in_a_condition_is_checked_as_re2(mini_doc: Doc) -> None:
    _fields(mini_doc)["won_reason"]["x-crm-field"]["visibleIf"] = {"properties": {"name": {"pattern": r"(\w)\1"}}}

    where = "$defs/customer/properties/won_reason/x-crm-field/visibleIf/properties/name/pattern"
    message = _one_problem_at(mini_doc, where)

    assert message.startswith("not a valid pattern")


def test_ref_inside_visible_if_is_refused(mini_doc: Doc) -> None:
    _fields(mini_doc)["won_reason"]["x-crm-field"]["visibleIf"] = {"$ref": "#/$defs/company"}

    message = _one_problem_at(mini_doc, "$defs/customer/properties/won_reason/x-crm-field/visibleIf/$ref")

    assert message == "'$ref' is not allowed in a condition"


def test_ref_inside_an_if_condition_is_refused(mini_doc: Doc) -> None:
    mini_doc["$defs"]["customer"]["allOf"][0]["if"] = {"properties": {"stage": {"$ref": "https://example.com/x"}}}

    message = _one_problem_at(mini_doc, "$defs/customer/allOf/0/if/properties/stage/$ref")

    assert message == "'$ref' is not allowed in a condition"


def test_every_problem_with_fields_is_reported_not_only_the_first(mini_doc: Doc) -> None:
    del _fields(mini_doc)["partners"]["x-crm-field"]["entity"]
    del _fields(mini_doc)["spend"]["x-crm-field"]["currency"]
    _fields(mini_doc)["name"]["pattern"] = r"(a)\1"

    paths = [p.path for p in _problems(mini_doc)]

    assert paths == ["$defs/customer/properties/name/pattern", "$defs/customer/properties/spend/x-crm-field",
                     "$defs/customer/properties/partners/x-crm-field"]


def test_every_meta_schema_problem_is_reported(mini_doc: Doc) -> None:
    _fields(mini_doc)["name"]["x-crm-field"]["colour"] = "red"
    _fields(mini_doc, "company")["website"]["x-crm-field"]["kind"] = "web"
    del mini_doc["title"]

    paths = sorted(p.path for p in _problems(mini_doc))

    assert paths == ["", "$defs/company/properties/website/x-crm-field/kind",
                     "$defs/customer/properties/name/x-crm-field/colour"]


# --- caps: refused cleanly and fast -------------------------------------------------------------------------------

def _refused_quickly(source: Doc | bytes | str) -> list[Problem]:
    start = time.perf_counter()
    problems = _problems(source)
    assert time.perf_counter() - start < 2.0
    return problems


def test_definition_over_the_size_cap_is_refused(mini_doc: Doc) -> None:
    mini_doc["description"] = "x" * (2 * 1024 * 1024)

    problems = _refused_quickly(json.dumps(mini_doc).encode())

    assert [p.path for p in problems] == [""]
    assert "the limit is 2,097,152" in problems[0].message


def _nested(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for _ in range(levels):
        node = {"a": node}
    return node


def test_definition_nested_deeper_than_the_cap_is_refused(mini_doc: Doc) -> None:
    mini_doc["$defs"]["customer"]["x-crm-workflow"] = _nested(40)

    problems = _refused_quickly(mini_doc)

    assert [p.message for p in problems] == ["the definition is nested more than 32 levels deep"]


@pytest.mark.parametrize("text", ["[" * 200_000 + "]" * 200_000, '{"a":' * 300_000 + "1" + "}" * 300_000],
                         ids=["arrays", "objects"])
def test_absurdly_deep_json_text_is_refused_without_crashing(text: str) -> None:
    problems = _refused_quickly(text)

    assert [p.message for p in problems] == ["the definition is nested more than 32 levels deep"]


def test_condition_nested_deeper_than_its_cap_is_refused(mini_doc: Doc) -> None:
    condition: dict[str, Any] = {"required": ["stage"]}
    for _ in range(14):
        condition = {"not": condition}
    _fields(mini_doc)["won_reason"]["x-crm-field"]["visibleIf"] = condition

    message = _one_problem_at(mini_doc, "$defs/customer/properties/won_reason/x-crm-field/visibleIf")

    assert "nested more than 12 levels" in message


def test_text_that_is_not_json_is_refused() -> None:
    problems = _problems(b'{"$schema": ')

    assert problems[0].message.startswith("not valid JSON")


# --- the sample app and canonical export -------------------------------------------------------------------------

def test_sample_sales_app_loads(sales_doc: Doc) -> None:
    app = load_definition(sales_doc)

    assert app.name == "sales_crm"
    assert [e.key for e in app.entities] == list(sales_doc["$defs"])
    assert app.entity("deal").field("stage").default == "lead"


def test_export_is_valid_json_schema_as_a_whole_and_per_entity(sales_doc: Doc) -> None:
    app = load_definition(sales_doc)
    exported = json.loads(to_bytes(app))

    Draft202012Validator.check_schema(exported)
    for entity in app.entities:
        Draft202012Validator.check_schema(to_entity_schema(entity))
        Draft202012Validator.check_schema(exported["$defs"][entity.key])


def test_exported_entity_validates_a_record_with_plain_jsonschema(sales_doc: Doc) -> None:
    exported = json.loads(to_bytes(load_definition(sales_doc)))
    deal = exported["$defs"]["deal"]
    validator = Draft202012Validator(deal, format_checker=Draft202012Validator.FORMAT_CHECKER)

    assert validator.is_valid({"title": "Big one", "stage": "lead"})
    assert not validator.is_valid({"title": "Big one", "stage": "won"})  # won needs amount and expected close
    assert not validator.is_valid({"stage": "lead"})


@pytest.mark.parametrize("fixture", ["mini_doc", "sales_doc"])
def test_export_is_canonical(fixture: str, request: pytest.FixtureRequest) -> None:
    doc = request.getfixturevalue(fixture)
    once = to_bytes(load_definition(doc))

    twice = to_bytes(load_definition(once))

    assert twice == once
    assert once.endswith(b"\n")


@pytest.mark.parametrize("fixture", ["mini_doc", "sales_doc"])
def test_apply_export_apply_export_is_byte_identical(fixture: str, request: pytest.FixtureRequest,
                                                     sqlite_db: Database) -> None:
    doc = request.getfixturevalue(fixture)
    apps = AppService(sqlite_db)
    apps.apply(doc)
    name = doc["x-crm-app"]["name"]
    first = apps.export(name)

    plan = apps.apply(first)
    second = apps.export(name)

    assert second == first
    assert not plan.changes_anything
    assert [v.version for v in apps.history(name)] == [1]
