"""Designer edits: every function keeps a definition loadable, and refuses bad input with a path and plain words."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from engine.designer import edits
from engine.designer.edits import EditError
from engine.errors import DefinitionError
from engine.schema import load_definition, to_document
from engine.schema.kinds import KINDS

Doc = dict[str, Any]


def loads(doc: Doc) -> None:
    load_definition(copy.deepcopy(doc))


def refused(doc: Doc, call: Any, *args: Any, **kwargs: Any) -> EditError:
    """Call an edit that must be refused and must leave the document exactly as it was."""
    before = copy.deepcopy(doc)
    with pytest.raises(EditError) as caught:
        call(doc, *args, **kwargs)
    assert doc == before
    return caught.value


@pytest.fixture
def shop() -> Doc:
    doc = edits.blank_app("shop", "Shop")
    edits.add_entity(doc, "Customer", "Customers")
    return doc


def test_blank_app_has_no_entities_and_edits_still_work() -> None:
    doc = edits.blank_app("shop", "My shop")
    assert doc["$defs"] == {}
    with pytest.raises(DefinitionError):
        load_definition(doc)  # the dialect needs an entity: publishing waits for the first one
    assert edits.add_entity(doc, "Customer") == "customer"
    app = load_definition(doc)
    assert [e.key for e in app.entities] == ["customer"] and app.entity("customer").title_field == "name"
    with pytest.raises(EditError) as caught:
        edits.blank_app("Shop!", "x")
    assert caught.value.path == "x-crm-app/name"


def test_entity_keys_never_take_a_designer_page_name() -> None:
    doc = edits.blank_app("shop", "Shop")
    assert [edits.add_entity(doc, title) for title in ("Publish", "Versions", "Relations", "Export", "Publish")] == [
        "publish_2", "versions_2", "relations_2", "export_2", "publish_3"]
    loads(doc)


def test_palette_lists_every_kind() -> None:
    assert {k for k, _, _ in edits.FIELD_KINDS} == set(KINDS)


def test_add_entity_gets_a_required_name_as_title_field(shop: Doc) -> None:
    key = edits.add_entity(shop, "客户")
    assert key == "ke_hu"
    entity = load_definition(shop).entity("ke_hu")
    assert entity.title == "客户" and entity.title_field == "name" and entity.field("name").required
    assert edits.add_entity(shop, "Customer") == "customer_2"
    assert edits.add_entity(shop, "Order") == "order_value"  # never an SQL reserved word
    loads(shop)


def test_update_entity(shop: Doc) -> None:
    edits.update_entity(shop, "customer", title="Client", plural="Clients", icon="user", color="#2563eb")
    entity = load_definition(shop).entity("customer")
    assert (entity.title, entity.plural, entity.icon, entity.color) == ("Client", "Clients", "user", "#2563eb")
    assert refused(shop, edits.update_entity, "customer", color="blue").path == "$defs/customer/x-crm-entity/color"
    assert "no field 'nope'" in str(refused(shop, edits.update_entity, "customer", title_field="nope"))
    assert refused(shop, edits.update_entity, "nope", title="X").path == "$defs/nope"


def test_remove_entity_refused_while_others_link_to_it(shop: Doc) -> None:
    edits.add_entity(shop, "Contact")
    key = edits.add_field(shop, "customer", "relation", "Company")
    assert edits.field_settings(shop, "customer", key)["target"] == "contact"
    error = refused(shop, edits.remove_entity, "contact")
    assert "Customer (customer.company)" in str(error) and error.path == "$defs/contact"
    edits.remove_field(shop, "customer", key)
    edits.remove_entity(shop, "contact")
    assert list(shop["$defs"]) == ["customer"]
    assert "at least one entity" in str(refused(shop, edits.remove_entity, "customer"))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_can_be_added_read_and_written_back(shop: Doc, kind: str) -> None:
    key = edits.add_field(shop, "customer", kind, f"My {kind}")
    loads(shop)
    settings = edits.field_settings(shop, "customer", key)
    assert settings["kind"] == kind and settings["title"] == f"My {kind}"
    before = copy.deepcopy(shop)
    edits.update_field(shop, "customer", key, settings)  # posting the whole form back changes nothing
    assert shop == before
    edits.update_field(shop, "customer", key, {"title": "Renamed", "description": "Help", "required": True,
                                               "indexed": True, "hidden": True})
    field = load_definition(shop).entity("customer").field(key)
    assert (field.title, field.description, field.required, field.indexed, field.hidden) == (
        "Renamed", "Help", True, True, True)


@pytest.mark.parametrize("old", sorted(KINDS))
def test_changing_kind_to_any_other_kind_keeps_the_document_loadable(shop: Doc, old: str) -> None:
    edits.add_entity(shop, "Company")
    key = edits.add_field(shop, "customer", old, "Field")
    edits.update_field(shop, "customer", key, {"indexed": True, "required": True})
    for new in sorted(KINDS):
        work = copy.deepcopy(shop)
        edits.update_field(work, "customer", key, {"kind": new})
        loads(work)
        settings = edits.field_settings(work, "customer", key)
        assert settings["kind"] == new and settings["title"] == "Field" and settings["required"]


def test_sample_app_settings_round_trip_unchanged(sales_doc: Doc) -> None:
    """Reading a field's settings and writing them back changes nothing, for every shape of field in the sample
    app (one field per kind and set of settings: each edit checks the whole app, so repeats only cost time)."""
    canonical = to_document(load_definition(sales_doc))
    seen: set[tuple[str, ...]] = set()
    for entity, schema in sales_doc["$defs"].items():
        for key, prop in schema["properties"].items():
            shape = (prop["x-crm-field"]["kind"], *sorted(prop["x-crm-field"]))
            if shape in seen:
                continue
            seen.add(shape)
            edits.update_field(sales_doc, entity, key, edits.field_settings(sales_doc, entity, key))
    assert len(seen) >= 20
    assert to_document(load_definition(sales_doc)) == canonical


def test_unknown_setting_for_a_kind_is_refused_by_name(shop: Doc) -> None:
    key = edits.add_field(shop, "customer", "integer", "Age")
    error = refused(shop, edits.update_field, "customer", key, {"max_length": 5})
    assert error.path == "$defs/customer/properties/age/max_length" and "max_length" in str(error)
    assert error.setting == "max_length"


def test_setting_values_are_checked(shop: Doc) -> None:
    age = edits.add_field(shop, "customer", "integer", "Age")
    assert "Min must not be larger than Max" in str(refused(shop, edits.update_field, "customer", age,
                                                            {"min": 10, "max": 1}))
    error = refused(shop, edits.update_field, "customer", age, {"max": 150, "default": 200})
    assert error.path.endswith("/default") and "Default value" in str(error)
    code = edits.add_field(shop, "customer", "text", "Code")
    error = refused(shop, edits.update_field, "customer", code, {"pattern": "^(?=a)"})
    assert error.setting == "pattern" and "RE2" in str(error)
    assert refused(shop, edits.update_field, "customer", code, {"title": " "}).setting == "title"
    assert refused(shop, edits.update_field, "customer", code, {"pattern_preset": "nope"}).setting == "pattern_preset"
    money = edits.add_field(shop, "customer", "currency", "Spend")
    assert refused(shop, edits.update_field, "customer", money, {"currency": "euro"}).setting == "currency"
    assert refused(shop, edits.update_field, "customer", money, {"min": "10", "max": "1"}).setting == "min"
    stars = edits.add_field(shop, "customer", "rating", "Stars")
    assert refused(shop, edits.update_field, "customer", stars, {"max": 20}).setting == "max"
    link = edits.add_field(shop, "customer", "relation", "Link")
    assert refused(shop, edits.update_field, "customer", link, {"target": "nope"}).setting == "target"
    assert refused(shop, edits.update_field, "customer", "nope", {"title": "x"}).path.endswith("/nope")
    assert refused(shop, edits.update_field, "customer", code, {"kind": "blob"}).setting == "kind"


def test_sensitive_fields_are_not_searchable_and_only_text_like(shop: Doc) -> None:
    key = edits.add_field(shop, "customer", "text", "Tax ID")
    edits.update_field(shop, "customer", key, {"sensitive": True})
    assert load_definition(shop).entity("customer").field(key).sensitive
    assert not edits.field_settings(shop, "customer", key)["searchable"]
    error = refused(shop, edits.update_field, "customer", key, {"unique": True})
    assert "sensitive" in str(error) and error.setting == "unique"


def test_pattern_presets_compile_and_set_the_pattern(shop: Doc) -> None:
    key = edits.add_field(shop, "customer", "text", "Postcode")
    for name, (_, pattern) in edits.PATTERN_PRESETS.items():
        edits.update_field(shop, "customer", key, {"pattern_preset": name})
        assert load_definition(shop).entity("customer").field(key).pattern == pattern
        assert edits.field_settings(shop, "customer", key)["pattern_preset"] == name
    edits.update_field(shop, "customer", key, {"pattern": "^[0-9]+$"})
    assert edits.field_settings(shop, "customer", key)["pattern_preset"] is None


def test_options_get_values_from_titles_and_keep_their_order(shop: Doc) -> None:
    key = edits.add_field(shop, "customer", "select", "Gender")
    assert [o["title"] for o in edits.field_settings(shop, "customer", key)["options"]] == ["Option 1", "Option 2"]
    edits.update_field(shop, "customer", key, {"options": [{"title": "女"}, {"title": "Male", "color": "#2563eb"},
                                                           {"title": "Divers", "value": "d"}], "default": "nu"})
    field = load_definition(shop).entity("customer").field(key)
    assert field.option_values() == ["nu", "male", "d"] and field.default == "nu"
    assert field.options[1].color == "#2563eb"
    error = refused(shop, edits.update_field, "customer", key, {"options": [{"title": "A"}, {"title": "B",
                                                                                              "value": "a"}]})
    assert "listed twice" in str(error) and error.setting == "options"
    assert "at least one option" in str(refused(shop, edits.update_field, "customer", key, {"options": []}))


def test_unpublished_option_values_follow_their_titles(shop: Doc) -> None:
    gender = edits.add_field(shop, "customer", "select", "Gender")
    why = edits.add_field(shop, "customer", "text", "Why")
    edits.update_field(shop, "customer", why, {"visible_if": [{"field": gender, "op": "eq", "value": "option_1"}]})
    edits.update_field(shop, "customer", gender, {"default": "option_2"})
    edits.update_field(shop, "customer", gender, {"options": [{"value": "option_1", "title": "Female"},
                                                              {"value": "option_2", "title": "Male"}]},
                       fixed_options=set())
    entity = load_definition(shop).entity("customer")
    assert entity.field(gender).option_values() == ["female", "male"] and entity.field(gender).default == "male"
    assert entity.field(why).visible_if == {"properties": {gender: {"const": "female"}}, "required": [gender]}
    # titles swapped: the values swap with them, and so do the default and the condition
    edits.update_field(shop, "customer", gender, {"options": [{"value": "female", "title": "Male"},
                                                              {"value": "male", "title": "Female"}]},
                       fixed_options=set())
    entity = load_definition(shop).entity("customer")
    assert entity.field(gender).option_values() == ["male", "female"] and entity.field(gender).default == "female"
    assert entity.field(why).visible_if == {"properties": {gender: {"const": "male"}}, "required": [gender]}


def test_published_option_values_are_fixed_and_new_ones_stay_unique(shop: Doc) -> None:
    gender = edits.add_field(shop, "customer", "multi_select", "Tags")
    edits.update_field(shop, "customer", gender, {"options": [{"title": "New"}, {"title": "VIP"}], "default": ["new"]})
    edits.update_field(shop, "customer", gender, {"options": [{"value": "new", "title": "Fresh"},
                                                              {"value": "vip", "title": "New"}]},
                       fixed_options={"new"})
    field = load_definition(shop).entity("customer").field(gender)
    assert field.option_values() == ["new", "new_2"] and [o.title for o in field.options] == ["Fresh", "New"]
    assert field.default == ["new"]
    edits.update_field(shop, "customer", gender, {"options": [{"value": "new", "title": "Fresh"},
                                                              {"value": "new_2", "title": "Gold"}]})
    assert load_definition(shop).entity("customer").field(gender).option_values() == ["new", "new_2"]  # as given


def test_remove_field_cleans_up_and_refuses_while_used(shop: Doc) -> None:
    stage = edits.add_field(shop, "customer", "select", "Stage")
    note = edits.add_field(shop, "customer", "text", "Why")
    edits.update_field(shop, "customer", note, {"visible_if": [{"field": stage, "op": "eq", "value": "option_1"}],
                                                "required": True})
    edits.set_list_view(shop, "customer", ["name", note, stage], [(note, "asc")], 25)
    edits.set_form_sections(shop, "customer", [{"title": "Main", "columns": 2, "fields": ["name", stage, note]}])
    error = refused(shop, edits.remove_field, "customer", stage)
    assert "the visibility of Why" in str(error)
    edits.remove_field(shop, "customer", note)
    entity = load_definition(shop).entity("customer")
    assert entity.views == {"list": {"columns": ["name", stage], "pageSize": 25}}
    assert entity.form == {"sections": [{"title": "Main", "columns": 2, "fields": ["name", stage]}]}
    assert [f.key for f in entity.fields if f.required] == ["name"]
    edits.remove_field(shop, "customer", stage)
    assert "at least one field" in str(refused(shop, edits.remove_field, "customer", "name"))


def test_move_field_sets_the_field_order(shop: Doc) -> None:
    for title in ("A", "B", "C"):
        edits.add_field(shop, "customer", "text", title)
    edits.move_field(shop, "customer", "c", 0)
    edits.move_field(shop, "customer", "name", 99)
    assert list(shop["$defs"]["customer"]["properties"]) == ["c", "a", "b", "name"]
    loads(shop)


def test_rename_key_renames_every_reference(shop: Doc) -> None:
    stage = edits.add_field(shop, "customer", "select", "Stage")
    note = edits.add_field(shop, "customer", "text", "Why")
    edits.update_field(shop, "customer", note, {"visible_if": [{"field": stage, "op": "in", "value": ["option_2"]}]})
    edits.set_list_view(shop, "customer", [stage], [(stage, "desc")])
    edits.rename_key(shop, "customer", stage, "phase", published_keys={"name"})
    entity = load_definition(shop).entity("customer")
    assert entity.field(note).visible_if == {"properties": {"phase": {"enum": ["option_2"]}}, "required": ["phase"]}
    assert entity.views == {"list": {"columns": ["phase"], "sort": [{"field": "phase", "dir": "desc"}]}}
    assert entity.field("phase").renamed_from is None  # never published: no rename to record
    assert "already used" in str(refused(shop, edits.rename_key, "customer", "phase", "why", published_keys=set()))
    assert refused(shop, edits.rename_key, "customer", "phase", "select", published_keys=set()).setting == "key"


def test_rename_a_published_key_records_renamed_from(shop: Doc) -> None:
    published = {"name", "city"}
    edits.add_field(shop, "customer", "text", "City")
    edits.update_entity(shop, "customer", title_field="city")
    edits.set_form_sections(shop, "customer", [{"title": "Main", "columns": 2, "fields": ["name", "city"]}])
    edits.update_field(shop, "customer", "name", {"required": True})
    edits.rename_key(shop, "customer", "city", "town", published_keys=published)
    entity = load_definition(shop).entity("customer")
    assert entity.field("town").renamed_from == "city" and entity.title_field == "town"
    assert entity.form == {"sections": [{"title": "Main", "columns": 2, "fields": ["name", "town"]}]}
    edits.rename_key(shop, "customer", "town", "place", published_keys=published)
    assert load_definition(shop).entity("customer").field("place").renamed_from == "city"  # the published key
    error = refused(shop, edits.rename_key, "customer", "name", "city", published_keys=published)
    assert "already used" in str(error) and error.path == "$defs/customer/properties/name/key"
    edits.rename_key(shop, "customer", "place", "city", published_keys=published)
    assert load_definition(shop).entity("customer").field("city").renamed_from is None  # back home


def test_rename_key_follows_into_other_workflows_create_actions(sales_doc: Doc) -> None:
    creates = [a for t in sales_doc["$defs"]["deal"]["x-crm-workflow"]["transitions"] for a in t.get("actions", [])
               if a.get("create") == "sales_order"]
    assert creates and all("unit_price" in a["values"] for a in creates)
    published = set(sales_doc["$defs"]["sales_order"]["properties"])
    edits.rename_key(sales_doc, "sales_order", "unit_price", "price", published_keys=published)
    creates = [a for t in sales_doc["$defs"]["deal"]["x-crm-workflow"]["transitions"] for a in t.get("actions", [])
               if a.get("create") == "sales_order"]
    assert all("price" in a["values"] and "unit_price" not in a["values"] for a in creates)
    loads(sales_doc)


def test_list_view_and_form_sections_are_checked(shop: Doc) -> None:
    edits.set_list_view(shop, "customer", ["name", "created_at"], [("updated_at", "desc")], 50)
    assert refused(shop, edits.set_list_view, "customer", ["nope"], []).path.endswith("/columns")
    assert "asc or desc" in str(refused(shop, edits.set_list_view, "customer", ["name"], [("name", "up")]))
    assert refused(shop, edits.set_list_view, "customer", ["name"], [], 0).path.endswith("/pageSize")
    error = refused(shop, edits.set_form_sections, "customer", [{"title": "A", "columns": 1, "fields": ["name"]},
                                                                {"title": "B", "columns": 2, "fields": ["name"]}])
    assert "placed twice" in str(error) and error.path == "$defs/customer/x-crm-form/sections/1/fields"
    assert refused(shop, edits.set_form_sections, "customer", [{"columns": 5, "fields": []}]).setting == "columns"
    edits.set_form_sections(shop, "customer", [])
    assert "x-crm-form" not in shop["$defs"]["customer"]
    loads(shop)


RULES = [
    ("integer", "gt", 3, {"exclusiveMinimum": 3}),
    ("integer", "lte", "10", {"maximum": 10}),
    ("integer", "in", [1, 2], {"enum": [1, 2]}),
    ("text", "contains", "a.b", {"pattern": "a\\.b"}),
    ("text", "ne", "x", {"not": {"const": "x"}}),
    ("select", "not_in", ["option_1"], {"not": {"enum": ["option_1"]}}),
    ("multi_select", "contains", "option_2", {"contains": {"const": "option_2"}}),
    ("boolean", "eq", "yes", {"const": True}),
    ("date", "eq", "2026-01-31", {"const": "2026-01-31"}),
    ("currency", "eq", "5", {"const": "5.00"}),
]


@pytest.mark.parametrize(("kind", "op", "value", "sub"), RULES)
def test_rules_become_conditions_and_back(shop: Doc, kind: str, op: str, value: Any, sub: Any) -> None:
    key = edits.add_field(shop, "customer", kind, "F")
    condition = edits.condition_from_rules(shop, "customer", [{"field": key, "op": op, "value": value}])
    assert condition == {"properties": {key: sub}, "required": [key]}
    rules = edits.rules_from_condition(condition)
    assert rules is not None and [(r["field"], r["op"]) for r in rules] == [(key, op)]
    assert edits.condition_from_rules(shop, "customer", rules) == condition


def test_several_rules_are_anded(shop: Doc) -> None:
    age = edits.add_field(shop, "customer", "integer", "Age")
    rules = [{"field": age, "op": "gte", "value": 18}, {"field": age, "op": "lt", "value": 65},
             {"field": "name", "op": "empty"}]
    condition = edits.condition_from_rules(shop, "customer", rules)
    assert condition == {"allOf": [{"properties": {age: {"minimum": 18}}, "required": [age]},
                                   {"properties": {age: {"exclusiveMaximum": 65}}, "required": [age]},
                                   {"not": {"required": ["name"]}}]}
    assert edits.rules_from_condition(condition) == [{"field": age, "op": "gte", "value": 18},
                                                     {"field": age, "op": "lt", "value": 65},
                                                     {"field": "name", "op": "empty"}]
    flat = edits.condition_from_rules(shop, "customer", [{"field": age, "op": "not_empty"},
                                                         {"field": "name", "op": "eq", "value": "x"}])
    assert flat == {"properties": {"name": {"const": "x"}}, "required": [age, "name"]}


def test_rules_are_checked_against_the_field_kind(shop: Doc) -> None:
    day = edits.add_field(shop, "customer", "date", "Day")
    stage = edits.add_field(shop, "customer", "select", "Stage")
    with pytest.raises(EditError) as caught:
        edits.condition_from_rules(shop, "customer", [{"field": day, "op": "gt", "value": "2026-01-01"}])
    assert caught.value.path == "rules/0/op" and "Day" in str(caught.value)
    with pytest.raises(EditError) as caught:
        edits.condition_from_rules(shop, "customer", [{"field": stage, "op": "eq", "value": "nope"}])
    assert caught.value.path == "rules/0/value" and "Stage" in str(caught.value)
    with pytest.raises(EditError) as caught:
        edits.condition_from_rules(shop, "customer", [{"field": "nope", "op": "empty"}])
    assert caught.value.path == "rules/0/field"


def test_hand_written_conditions_are_shown_when_possible(sales_doc: Doc) -> None:
    won = sales_doc["$defs"]["deal"]["allOf"][0]["if"]
    assert edits.rules_from_condition(won) == [{"field": "stage", "op": "eq", "value": "won"}]
    reason = sales_doc["$defs"]["sales_order"]["properties"]["return_reason"]
    assert edits.rules_from_condition(reason["x-crm-field"]["visibleIf"]) is None  # "returned or shipped": anyOf
    assert edits.rules_from_condition({"properties": {"a": {"const": 1}}}) is None  # no "required": not a rule
    assert edits.rules_from_condition({"anyOf": [{"required": ["a"]}]}) is None
    assert edits.rules_from_condition({"properties": {"a": {"pattern": "^a+$"}}, "required": ["a"]}) is None
    assert edits.rules_from_condition({}) == []


def test_hand_written_visibility_is_kept_when_other_settings_change(sales_doc: Doc) -> None:
    prop = sales_doc["$defs"]["sales_order"]["properties"]["return_reason"]
    prop["x-crm-field"]["visibleIf"] = {"anyOf": [{"required": ["returned"]}]}
    assert edits.field_settings(sales_doc, "sales_order", "return_reason")["visible_if"] is None
    edits.update_field(sales_doc, "sales_order", "return_reason", {"title": "Reason", "visible_if": None})
    assert prop is not sales_doc["$defs"]["sales_order"]["properties"]["return_reason"]
    kept = sales_doc["$defs"]["sales_order"]["properties"]["return_reason"]["x-crm-field"]["visibleIf"]
    assert kept == {"anyOf": [{"required": ["returned"]}]}
    edits.update_field(sales_doc, "sales_order", "return_reason", {"visible_if": []})
    assert "visibleIf" not in sales_doc["$defs"]["sales_order"]["properties"]["return_reason"]["x-crm-field"]
