"""Keys from labels in any language."""

from __future__ import annotations

import pytest

from engine.designer.keys import DESIGNER_PAGES, entity_key_from_label, is_key, key_from_label, option_value_from_label
from engine.schema.model import SYSTEM_COLUMNS
from engine.schema.names import RESERVED_WORDS


@pytest.mark.parametrize(("label", "key"), [
    ("客户", "ke_hu"),
    ("购买频率", "gou_mai_pin_lu"),
    ("Straße & Nr.", "strasse_nr"),
    ("Größe", "grosse"),
    ("1st contact", "f_1st_contact"),
    ("Имя", "imya"),
    ("E-Mail", "e_mail"),
    ("  Service   rating! ", "service_rating"),
    ("", "field"),
    ("!!!", "field"),
])
def test_key_from_label_transliterates_any_language(label: str, key: str) -> None:
    assert key_from_label(label) == key


def test_keys_are_never_reserved_words_or_system_columns() -> None:
    for word in ["Order", "User", "Group", "ID", "Version", "created at", "select"]:
        key = key_from_label(word)
        assert is_key(key), key
        assert key not in RESERVED_WORDS and key not in SYSTEM_COLUMNS


def test_keys_are_unique_against_taken_ones() -> None:
    assert key_from_label("Name", ["name"]) == "name_2"
    assert key_from_label("Name", ["name", "name_2"]) == "name_3"


def test_long_labels_stay_within_63_characters_even_with_a_suffix() -> None:
    first = key_from_label("x" * 200)
    assert len(first) == 63
    second = key_from_label("x" * 200, [first])
    assert len(second) <= 63 and second.endswith("_2") and is_key(second)


def test_option_values_are_words_of_the_title_without_key_rules() -> None:
    assert [option_value_from_label(t) for t in ("Female", "Très bien", "New", "1 star", "客户", "!!")] == [
        "female", "tres_bien", "new", "1_star", "ke_hu", "option"]
    assert option_value_from_label("Male", ["male"]) == "male_2"


def test_entity_keys_avoid_the_designer_pages() -> None:
    assert entity_key_from_label("Publish") == "publish_2"
    assert entity_key_from_label("Versions", ["versions_2"]) == "versions_3"
    assert entity_key_from_label("Customer") == "customer"
    assert {"publish", "discard", "export", "entities", "versions", "relations", "delete", "workflow"} <= DESIGNER_PAGES
