"""Field kinds: how typed and imported values are normalised, refused, shown as text and read back."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from engine.schema import Field, load_definition
from engine.schema.kinds import KINDS, ConversionError, kind_of
from engine.schema.validation import field_errors


@pytest.fixture
def fields(mini_doc: dict[str, Any]) -> dict[str, Field]:
    """Every field of the mini app by key (company's fields prefixed `company.`)."""
    app = load_definition(mini_doc)
    out = dict(app.entity("customer").field_map())
    out.update({f"company.{k}": f for k, f in app.entity("company").field_map().items()})
    return out


def _coerce(field: Field, value: Any) -> Any:
    return kind_of(field.kind).coerce(field, value)


def _parse(field: Field, text: str) -> Any:
    return kind_of(field.kind).parse_text(field, text)


def _refused(field: Field, value: Any, text: bool = False) -> str:
    with pytest.raises(ConversionError) as caught:
        _parse(field, value) if text else _coerce(field, value)
    return str(caught.value)


# --- text-like -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "stored"), [
    ("030 1234567", "+49301234567"),  # the field's region (DE) is assumed without +
    ("+49 30 1234567", "+49301234567"),
    ("+1 (415) 555-2671", "+14155552671"),  # + overrides the region
    ("0049 30 1234567", "+49301234567"),
])
def test_phone_is_normalised_to_e164(fields: dict[str, Field], typed: str, stored: str) -> None:
    assert _coerce(fields["phone"], typed) == stored


def test_phone_that_is_not_a_number_is_refused(fields: dict[str, Field]) -> None:
    assert _refused(fields["phone"], "call me") == "'call me' is not a phone number"


def test_phone_without_region_needs_a_country_code(fields: dict[str, Field]) -> None:
    no_region = Field(key="tel", kind="phone", title="Tel")

    assert _coerce(no_region, "+44 20 7946 0958") == "+442079460958"
    assert "include the country code" in _refused(no_region, "020 7946 0958")


def test_email_domain_is_lower_cased_but_not_the_local_part(fields: dict[str, Field]) -> None:
    assert _coerce(fields["email"], "  Li.Wei@Example.COM ") == "Li.Wei@example.com"


def test_url_without_scheme_gets_https(fields: dict[str, Field]) -> None:
    assert _coerce(fields["company.website"], "acme.example/about") == "https://acme.example/about"
    assert _coerce(fields["company.website"], "http://acme.example") == "http://acme.example"


def test_text_is_trimmed_and_long_text_keeps_inner_lines(fields: dict[str, Field]) -> None:
    assert _coerce(fields["name"], "  Li Wei ") == "Li Wei"
    assert _coerce(fields["notes"], "first line\n\nsecond line  \n") == "first line\n\nsecond line"


def test_autonumber_is_formatted_with_prefix_and_digits(fields: dict[str, Field]) -> None:
    deal_number = Field(key="deal_number", kind="autonumber", title="Deal no.", prefix="DEAL-", digits=5)

    assert kind_of("autonumber").format_number(deal_number, 42) == "DEAL-00042"  # type: ignore[attr-defined]
    assert kind_of("autonumber").format_number(fields["number"], 123456) == "CUS-123456"  # type: ignore[attr-defined]


# --- numbers -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "stored"), [
    ("19.9", "19.90"), ("19", "19.00"), (19.9, "19.90"), (7, "7.00"), ("1,234.5", "1234.50"), ("12.30 EUR", "12.30"),
    ("-0.5", "-0.50"),
])
def test_currency_is_a_decimal_string_with_the_fields_scale(fields: dict[str, Field], typed: Any, stored: str) -> None:
    assert _coerce(fields["spend"], typed) == stored


def test_currency_with_too_many_decimals_is_refused(fields: dict[str, Field]) -> None:
    assert _refused(fields["spend"], "19.999") == "at most 2 decimal places"


def test_currency_trailing_zeros_beyond_scale_are_accepted(fields: dict[str, Field]) -> None:
    assert _coerce(fields["spend"], "19.900") == "19.90"


def test_currency_too_large_for_its_precision_is_refused(fields: dict[str, Field]) -> None:
    assert "too large" in _refused(fields["spend"], "1" + "0" * 13)


def test_currency_below_its_minimum_is_an_error_naming_the_currency(fields: dict[str, Field]) -> None:
    assert field_errors(fields["spend"], "-1.00") == ["must be at least 0 EUR"]


@pytest.mark.parametrize("typed", ["abc", "", "NaN", "Infinity", True])
def test_currency_that_is_not_a_number_is_refused(fields: dict[str, Field], typed: Any) -> None:
    _refused(fields["spend"], typed)


def test_integer_accepts_whole_numbers_only(fields: dict[str, Field]) -> None:
    assert _parse(fields["age"], " 42 ") == 42
    assert _parse(fields["age"], "42.0") == 42
    assert _refused(fields["age"], "4.5", text=True) == "'4.5' is not a whole number"
    assert _refused(fields["age"], True) == "must be a whole number"


def test_decimal_keeps_its_scale(fields: dict[str, Field]) -> None:
    assert _coerce(fields["score"], "3.10") == Decimal("3.1")
    assert _coerce(fields["score"], 3.1) == Decimal("3.1")  # no binary float noise
    assert _refused(fields["score"], "3.14159") == "at most 2 decimal places"


@pytest.mark.parametrize(("typed", "stored"), [("12.5%", Decimal("12.5")), ("80 %", Decimal("80")),
                                               ("0", Decimal("0")), ("100%", Decimal("100"))])
def test_percent_is_read_with_or_without_the_percent_sign(fields: dict[str, Field], typed: str,
                                                          stored: Decimal) -> None:
    assert _parse(fields["discount"], typed) == stored


def test_percent_outside_0_to_100_is_an_error(fields: dict[str, Field]) -> None:
    assert field_errors(fields["discount"], Decimal("100.5")) == ["must be at most 100"]
    assert field_errors(fields["discount"], Decimal("-1")) == ["must be at least 0"]


def test_rating_is_bounded_by_one_and_its_maximum(fields: dict[str, Field]) -> None:
    rating = fields["rating"]

    assert field_errors(rating, 1) == []
    assert field_errors(rating, 5) == []
    assert field_errors(rating, 0) == ["must be at least 1"]
    assert field_errors(rating, 6) == ["must be at most 5"]


def test_rating_maximum_outside_3_to_10_is_refused(mini_doc: dict[str, Any]) -> None:
    from engine.errors import DefinitionError

    mini_doc["$defs"]["customer"]["properties"]["rating"]["maximum"] = 11
    with pytest.raises(DefinitionError) as caught:
        load_definition(mini_doc)

    assert [(p.path, p.message) for p in caught.value.problems] == [
        ("$defs/customer/properties/rating/maximum", "a rating goes up to between 3 and 10 stars")]


# --- dates and times -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "stored"), [
    ("2026-01-31T10:30:00+01:00", "2026-01-31T09:30:00Z"),
    ("2026-01-31T04:30:00-05:00", "2026-01-31T09:30:00Z"),
    ("2026-01-31T09:30:00Z", "2026-01-31T09:30:00Z"),
    ("2026-01-31 09:30", "2026-01-31T09:30:00Z"),  # no offset: taken as UTC
    ("2026-01-01T00:30:00+02:00", "2025-12-31T22:30:00Z"),  # crosses a year boundary
    ("2026-01-31T09:30:00.250Z", "2026-01-31T09:30:00.250000Z"),
])
def test_datetime_is_stored_in_utc_with_z(fields: dict[str, Field], typed: str, stored: str) -> None:
    assert _coerce(fields["last_seen"], typed) == stored


def test_datetime_that_is_not_a_time_is_refused(fields: dict[str, Field]) -> None:
    assert "is not a date and time" in _refused(fields["last_seen"], "yesterday")


@pytest.mark.parametrize("typed", ["2026-01-31", " 2026-01-31 ", "20260131"])
def test_date_is_read_in_iso_form(fields: dict[str, Field], typed: str) -> None:
    assert _parse(fields["birthday"], typed) == "2026-01-31"


@pytest.mark.parametrize("typed", ["31/01/2026", "2026-02-30", "Jan 31"])
def test_date_that_is_not_a_real_iso_date_is_refused(fields: dict[str, Field], typed: str) -> None:
    assert "is not a date (use YYYY-MM-DD)" in _refused(fields["birthday"], typed, text=True)


# --- choices -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "stored"), [
    ("yes", True), ("Y", True), ("TRUE", True), ("1", True), ("on", True), ("ja", True), ("是", True),
    ("no", False), ("N", False), ("false", False), ("0", False), ("off", False), ("nein", False), ("否", False),
])
def test_boolean_text_forms(fields: dict[str, Field], typed: str, stored: bool) -> None:
    assert _parse(fields["vip"], typed) is stored


def test_boolean_that_is_not_yes_or_no_is_refused(fields: dict[str, Field]) -> None:
    assert _refused(fields["vip"], "maybe", text=True) == "'maybe' is not yes or no"


@pytest.mark.parametrize(("typed", "stored"), [("b2b", "b2b"), ("Business", "b2b"), ("business", "b2b"),
                                               ("CONSUMER", "b2c"), (" Government ", "gov"), ("B2B", "b2b")])
def test_select_matches_values_and_labels_case_insensitively(fields: dict[str, Field], typed: str, stored: str) -> None:
    assert _parse(fields["segment"], typed) == stored


def test_select_matches_translated_labels(sales_doc: dict[str, Any]) -> None:
    stage = load_definition(sales_doc).entity("deal").field("stage")

    assert _parse(stage, "gewonnen") == "won"
    assert _parse(stage, "赢单") == "won"


def test_unknown_select_option_is_left_for_the_validator_to_name_the_options(fields: dict[str, Field]) -> None:
    value = _parse(fields["segment"], "retail")

    assert field_errors(fields["segment"], value) == [
        '"retail" is not one of the options (Business, Consumer, Government)']


def test_multi_select_is_stored_in_option_order(fields: dict[str, Field]) -> None:
    assert _coerce(fields["tags"], ["new", "vip"]) == ["vip", "new"]
    assert _parse(fields["tags"], "New; VIP") == ["vip", "new"]
    assert _coerce(fields["tags"], ["new"]) == ["new"]


def test_multi_select_with_an_unknown_option_is_an_error(fields: dict[str, Field]) -> None:
    value = _parse(fields["tags"], "vip;gold")

    assert field_errors(fields["tags"], value) == ['"gold" is not one of the options (VIP, New)']


def test_relation_many_ids_are_normalised_sorted_and_deduplicated(fields: dict[str, Field]) -> None:
    a, b = "0a000000-0000-4000-8000-000000000000", "0b000000-0000-4000-8000-000000000000"

    assert _coerce(fields["partners"], [b.upper(), a, b]) == [a, b]
    assert _refused(fields["partners"], ["not-an-id"]) == "'not-an-id' is not a record id"


# --- text round trip: to_text then parse_text gives the same value --------------------------------------------------

_ROUND_TRIP: dict[str, tuple[str, list[Any]]] = {
    "text": ("name", ["Li Wei", "李伟", "a;b, c"]),
    "long_text": ("notes", ["line one\nline two", "x"]),
    "email": ("email", ["li.wei@example.com"]),
    "phone": ("phone", ["+49301234567", "+14155552671"]),
    "url": ("company.website", ["https://acme.example/path?q=1"]),
    "integer": ("age", [0, 42, 150]),
    "decimal": ("score", [Decimal("3.1"), Decimal("-0.05"), Decimal("1000000")]),
    "currency": ("spend", ["19.90", "0.00", "1234567.89"]),
    "percent": ("discount", [Decimal("12.5"), Decimal("100"), Decimal("0.01")]),
    "boolean": ("vip", [True, False]),
    "date": ("birthday", ["2026-01-31", "1999-12-31"]),
    "datetime": ("last_seen", ["2026-01-31T09:30:00Z", "2026-01-31T09:30:00.123456Z"]),
    "select": ("segment", ["b2b", "gov"]),
    "multi_select": ("tags", [["vip"], ["vip", "new"]]),
    "relation": ("company", ["3f2c1e7a-9b1d-4c8e-a2f4-5d6e7f8a9b0c"]),
    "relation_many": ("partners", [["3f2c1e7a-9b1d-4c8e-a2f4-5d6e7f8a9b0c", "8d0b0000-9b1d-4c8e-a2f4-5d6e7f8a9b0c"]]),
    "autonumber": ("number", ["CUS-00042"]),
    "rating": ("rating", [1, 5]),
}


def test_round_trip_table_covers_every_kind() -> None:
    assert set(_ROUND_TRIP) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(_ROUND_TRIP))
def test_to_text_then_parse_text_gives_the_value_back(fields: dict[str, Field], kind: str) -> None:
    key, values = _ROUND_TRIP[kind]
    field = fields[key]
    assert field.kind == kind
    for value in values:
        text = kind_of(kind).to_text(field, value)

        assert _parse(field, text) == value
        assert field_errors(field, value) == []


@pytest.mark.parametrize("kind", sorted(_ROUND_TRIP))
def test_empty_value_is_empty_text(fields: dict[str, Field], kind: str) -> None:
    key, _ = _ROUND_TRIP[kind]

    assert kind_of(kind).to_text(fields[key], None) == ""
