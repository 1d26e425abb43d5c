"""Queries: filters per field kind, quick search, sorting with empty values last, keyset pages, counts."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from engine.errors import RecordValidationError
from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.query import Filter, Query, Sort
from engine.storage.records import RecordService


class Seeded:
    """The mini app with a few companies and customers, and the created records by name."""

    def __init__(self, records: RecordService, companies: dict[str, str], customers: dict[str, dict[str, Any]]) -> None:
        self.records = records
        self.companies = companies
        self.customers = customers

    def names(self, *filters: Filter, search: str | None = None) -> set[str]:
        """Names of the customers a query finds (one big page)."""
        page = self.records.query("customer", Query(filters=list(filters), search=search, limit=1000))
        assert page.next_cursor is None
        return {r["name"] for r in page.records}


_CUSTOMERS: list[dict[str, Any]] = [
    {"name": "Li Wei", "email": "li.wei@example.com", "phone": "+8613812345678", "age": 36, "score": "4.5",
     "spend": "1200.00", "discount": "10", "birthday": "1990-05-01", "last_seen": "2026-01-31T09:30:00Z",
     "segment": "b2b", "tags": ["vip"], "company": "acme", "partners": ["acme", "initech"], "notes": "wants a demo"},
    {"name": "Anna Schmidt", "email": "anna@firma.de", "phone": "030 1234567", "age": 52, "score": "3",
     "spend": "99.99", "discount": "12.5", "birthday": "1974-12-24", "last_seen": "2026-02-01T00:00:00+01:00",
     "segment": "gov", "tags": ["new", "vip"], "company": "initech", "partners": ["initech"]},
    {"name": "Bob Stone", "email": "bob@stone.example", "age": 36, "spend": "15.50", "birthday": "2001-01-01",
     "segment": "b2c", "tags": ["new"], "company": "acme"},
    {"name": "Carla 50% Off", "age": 19, "score": "-1.25", "spend": "0", "segment": "b2c"},
    {"name": "Dmitri_Ivanov", "email": "dmitri@example.org", "phone": "+14155552671", "segment": "b2b"},
    {"name": "张伟", "age": 70, "score": "10", "birthday": "1956-07-07", "last_seen": "2025-12-31T23:59:59Z"},
]


@pytest.fixture
def seeded(db: Database, mini_doc: dict[str, Any]) -> Seeded:
    """Six customers with a spread of values and gaps, linked to three companies."""
    AppService(db).apply(mini_doc)
    records = RecordService(db, "mini")
    companies = {key: records.create("company", {"name": key.title()})["id"] for key in ("acme", "initech", "umbrella")}
    customers = {}
    for row in _CUSTOMERS:
        values = dict(row)
        if "company" in values:
            values["company"] = companies[values["company"]]
        if "partners" in values:
            values["partners"] = [companies[p] for p in values["partners"]]
        customers[row["name"]] = records.create("customer", values)
    records.update("customer", customers["Carla 50% Off"]["id"], {"segment": None})
    return Seeded(records, companies, customers)


def _all_names() -> set[str]:
    return {c["name"] for c in _CUSTOMERS}


# --- filters per kind ------------------------------------------------------------------------------------------------

def test_text_filters(seeded: Seeded) -> None:
    assert seeded.names(Filter("name", "contains", "wei")) == {"Li Wei"}
    assert seeded.names(Filter("name", "contains", "WEI")) == {"Li Wei"}  # case-insensitive
    assert seeded.names(Filter("name", "starts_with", "b")) == {"Bob Stone"}
    assert seeded.names(Filter("name", "eq", "Bob Stone")) == {"Bob Stone"}
    assert seeded.names(Filter("name", "eq", "bob stone")) == set()  # eq is exact
    assert seeded.names(Filter("name", "ne", "Bob Stone")) == _all_names() - {"Bob Stone"}
    assert seeded.names(Filter("name", "in", ["Bob Stone", "张伟"])) == {"Bob Stone", "张伟"}
    assert seeded.names(Filter("name", "contains", "伟")) == {"张伟"}


def test_like_wildcards_in_filter_text_are_taken_literally(seeded: Seeded) -> None:
    assert seeded.names(Filter("name", "contains", "50%")) == {"Carla 50% Off"}
    assert seeded.names(Filter("name", "contains", "%")) == {"Carla 50% Off"}
    assert seeded.names(Filter("name", "contains", "_")) == {"Dmitri_Ivanov"}


def test_email_and_phone_filters_use_the_stored_form(seeded: Seeded) -> None:
    assert seeded.names(Filter("email", "contains", "example")) == {"Li Wei", "Bob Stone", "Dmitri_Ivanov"}
    assert seeded.names(Filter("phone", "eq", "+49301234567")) == {"Anna Schmidt"}


def test_integer_ranges(seeded: Seeded) -> None:
    assert seeded.names(Filter("age", "gt", 36)) == {"Anna Schmidt", "张伟"}
    assert seeded.names(Filter("age", "gte", "36")) == {"Li Wei", "Anna Schmidt", "Bob Stone", "张伟"}
    assert seeded.names(Filter("age", "lt", 36)) == {"Carla 50% Off"}
    assert seeded.names(Filter("age", "lte", 36)) == {"Li Wei", "Bob Stone", "Carla 50% Off"}
    assert seeded.names(Filter("age", "between", [19, 36])) == {"Li Wei", "Bob Stone", "Carla 50% Off"}
    assert seeded.names(Filter("age", "eq", 36)) == {"Li Wei", "Bob Stone"}
    assert seeded.names(Filter("age", "ne", 36)) == _all_names() - {"Li Wei", "Bob Stone"}  # empty ages included
    assert seeded.names(Filter("age", "in", [19, 70])) == {"Carla 50% Off", "张伟"}


def test_decimal_currency_and_percent_ranges(seeded: Seeded) -> None:
    assert seeded.names(Filter("score", "gt", "3")) == {"Li Wei", "张伟"}
    assert seeded.names(Filter("score", "lt", 0)) == {"Carla 50% Off"}
    assert seeded.names(Filter("score", "between", ["-2", "3"])) == {"Anna Schmidt", "Carla 50% Off"}
    assert seeded.names(Filter("spend", "gte", "99.99")) == {"Li Wei", "Anna Schmidt"}
    assert seeded.names(Filter("spend", "between", ["10", "100"])) == {"Anna Schmidt", "Bob Stone"}
    assert seeded.names(Filter("spend", "eq", "0")) == {"Carla 50% Off"}
    assert seeded.names(Filter("discount", "gt", "10%")) == {"Anna Schmidt"}


def test_date_and_datetime_ranges(seeded: Seeded) -> None:
    assert seeded.names(Filter("birthday", "lt", "1980-01-01")) == {"Anna Schmidt", "张伟"}
    assert seeded.names(Filter("birthday", "between", ["1974-12-24", "1990-05-01"])) == {"Anna Schmidt", "Li Wei"}
    assert seeded.names(Filter("birthday", "eq", "2001-01-01")) == {"Bob Stone"}
    assert seeded.names(Filter("last_seen", "gte", "2026-01-31T23:00:00Z")) == {"Anna Schmidt"}
    # an offset in the filter value is converted to UTC like stored values
    assert seeded.names(Filter("last_seen", "lt", "2026-01-01T01:00:00+01:00")) == {"张伟"}
    assert seeded.names(Filter("last_seen", "between", ["2026-01-01", "2026-01-31T09:30:00Z"])) == {"Li Wei"}


def test_select_filters(seeded: Seeded) -> None:
    assert seeded.names(Filter("segment", "eq", "b2b")) == {"Li Wei", "Dmitri_Ivanov"}
    assert seeded.names(Filter("segment", "eq", "Business")) == {"Li Wei", "Dmitri_Ivanov"}  # by label too
    assert seeded.names(Filter("segment", "in", ["b2b", "gov"])) == {"Li Wei", "Dmitri_Ivanov", "Anna Schmidt"}
    assert seeded.names(Filter("segment", "not_in", ["b2b", "gov"])) == {"Bob Stone", "Carla 50% Off", "张伟"}
    assert seeded.names(Filter("segment", "empty")) == {"Carla 50% Off"}


def test_multi_select_has(seeded: Seeded) -> None:
    assert seeded.names(Filter("tags", "has", "vip")) == {"Li Wei", "Anna Schmidt"}
    assert seeded.names(Filter("tags", "has", ["vip", "new"])) == {"Li Wei", "Anna Schmidt", "Bob Stone"}
    assert seeded.names(Filter("tags", "has_all", ["vip", "new"])) == {"Anna Schmidt"}
    assert seeded.names(Filter("tags", "empty")) == {"Carla 50% Off", "Dmitri_Ivanov", "张伟"}


def test_relation_filters(seeded: Seeded) -> None:
    acme, initech = seeded.companies["acme"], seeded.companies["initech"]

    assert seeded.names(Filter("company", "eq", acme)) == {"Li Wei", "Bob Stone"}
    assert seeded.names(Filter("company", "in", [acme, initech])) == {"Li Wei", "Bob Stone", "Anna Schmidt"}
    assert seeded.names(Filter("company", "empty")) == {"Carla 50% Off", "Dmitri_Ivanov", "张伟"}


def test_relation_many_filters(seeded: Seeded) -> None:
    acme, initech, umbrella = (seeded.companies[k] for k in ("acme", "initech", "umbrella"))

    assert seeded.names(Filter("partners", "has", initech)) == {"Li Wei", "Anna Schmidt"}
    assert seeded.names(Filter("partners", "has", acme)) == {"Li Wei"}
    assert seeded.names(Filter("partners", "has", umbrella)) == set()
    assert seeded.names(Filter("partners", "not_empty")) == {"Li Wei", "Anna Schmidt"}
    assert seeded.names(Filter("partners", "empty")) == _all_names() - {"Li Wei", "Anna Schmidt"}


def test_empty_and_not_empty(seeded: Seeded) -> None:
    assert seeded.names(Filter("age", "empty")) == {"Dmitri_Ivanov"}
    assert seeded.names(Filter("email", "not_empty")) == {"Li Wei", "Anna Schmidt", "Bob Stone", "Dmitri_Ivanov"}
    assert seeded.names(Filter("birthday", "empty"), Filter("age", "not_empty")) == {"Carla 50% Off"}


def test_filters_combine_with_and(seeded: Seeded) -> None:
    assert seeded.names(Filter("age", "eq", 36), Filter("segment", "eq", "b2c")) == {"Bob Stone"}


def test_filter_on_created_at(seeded: Seeded) -> None:
    first = seeded.customers["Li Wei"]["created_at"]

    assert seeded.names(Filter("created_at", "gte", first)) == _all_names()
    assert seeded.names(Filter("created_at", "lt", first)) == set()


# --- bad filters -----------------------------------------------------------------------------------------------------

def _refused(seeded: Seeded, flt: Filter) -> list[tuple[str, str]]:
    with pytest.raises(RecordValidationError) as caught:
        seeded.records.query("customer", Query(filters=[flt]))
    return [(e.field, e.message) for e in caught.value.errors]


def test_invalid_operator_is_an_error_naming_the_field(seeded: Seeded) -> None:
    assert _refused(seeded, Filter("name", "gt", "a")) == [("name", "cannot filter a text field with 'gt'"
                                                                    " (use one of: eq, ne, contains, starts_with, in,"
                                                                    " empty, not_empty)")]
    assert [f for f, _ in _refused(seeded, Filter("tags", "eq", "vip"))] == ["tags"]
    assert [f for f, _ in _refused(seeded, Filter("age", "like", "3"))] == ["age"]


def test_filter_on_an_unknown_field_is_an_error(seeded: Seeded) -> None:
    assert _refused(seeded, Filter("colour", "eq", "red")) == [("colour", "there is no such field to filter by")]


def test_filter_value_of_the_wrong_kind_is_an_error(seeded: Seeded) -> None:
    assert _refused(seeded, Filter("age", "gt", "old")) == [("age", "filter value: 'old' is not a number")]
    assert _refused(seeded, Filter("birthday", "lt", "soon"))[0][0] == "birthday"


def test_between_needs_two_values(seeded: Seeded) -> None:
    assert _refused(seeded, Filter("age", "between", [1])) == [("age", "'between' needs two values: from and to")]


# --- quick search -----------------------------------------------------------------------------------------------------

def test_quick_search_looks_in_searchable_fields(seeded: Seeded) -> None:
    assert seeded.names(search="stone") == {"Bob Stone"}  # name and email
    assert seeded.names(search="FIRMA") == {"Anna Schmidt"}  # email, any case
    assert seeded.names(search="+1415") == {"Dmitri_Ivanov"}  # phone
    assert seeded.names(search=seeded.customers["张伟"]["number"]) == {"张伟"}  # autonumber
    assert seeded.names(search="  ") == _all_names()


def test_quick_search_ignores_fields_that_are_not_searchable(seeded: Seeded) -> None:
    assert seeded.names(search="demo") == set()  # notes (long_text) are not searched


def test_quick_search_combines_with_filters(seeded: Seeded) -> None:
    assert seeded.names(Filter("age", "eq", 36), search="example") == {"Li Wei", "Bob Stone"}
    assert seeded.names(Filter("segment", "eq", "b2b"), search="example") == {"Li Wei", "Dmitri_Ivanov"}


# --- sorting ----------------------------------------------------------------------------------------------------------

def _sorted_names(seeded: Seeded, *sort: Sort) -> list[str]:
    page = seeded.records.query("customer", Query(sort=list(sort), limit=1000))
    return [r["name"] for r in page.records]


def test_sort_ascending_puts_empty_values_last(seeded: Seeded) -> None:
    names = _sorted_names(seeded, Sort("birthday"))

    assert names == ["张伟", "Anna Schmidt", "Li Wei", "Bob Stone", *sorted(["Carla 50% Off", "Dmitri_Ivanov"],
                                                                             key=lambda n: seeded.customers[n]["id"])]


def test_sort_descending_puts_empty_values_last(seeded: Seeded) -> None:
    names = _sorted_names(seeded, Sort("score", desc=True))

    assert names[:4] == ["张伟", "Li Wei", "Anna Schmidt", "Carla 50% Off"]
    assert set(names[4:]) == {"Bob Stone", "Dmitri_Ivanov"}


def test_sort_by_currency_is_numeric_not_textual(seeded: Seeded) -> None:
    names = _sorted_names(seeded, Sort("spend", desc=True))

    assert names[:4] == ["Li Wei", "Anna Schmidt", "Bob Stone", "Carla 50% Off"]


def test_sort_by_several_fields(seeded: Seeded) -> None:
    names = _sorted_names(seeded, Sort("age", desc=True), Sort("name", desc=True))

    assert names == ["张伟", "Anna Schmidt", "Li Wei", "Bob Stone", "Carla 50% Off", "Dmitri_Ivanov"]


def test_sort_by_a_list_field_is_refused(seeded: Seeded) -> None:
    with pytest.raises(RecordValidationError) as caught:
        seeded.records.query("customer", Query(sort=[Sort("tags")]))

    assert [(e.field, e.message) for e in caught.value.errors] == [("tags", "cannot sort by this field")]


# --- keyset pagination ------------------------------------------------------------------------------------------------

@pytest.fixture
def many(db: Database, mini_doc: dict[str, Any]) -> RecordService:
    """57 customers whose ages, scores, dates and segments tie often and are often empty."""
    AppService(db).apply(mini_doc)
    records = RecordService(db, "mini")
    rng = random.Random(7)
    rows = []
    for i in range(57):
        row: dict[str, Any] = {"name": f"c{rng.randrange(10)}"}  # names tie a lot
        if rng.random() < 0.7:
            row["age"] = rng.choice([20, 30, 40])
        if rng.random() < 0.6:
            row["score"] = str(Decimal(rng.randrange(-3, 4)) / 2)
        if rng.random() < 0.5:
            row["birthday"] = rng.choice(["2000-01-01", "2000-01-02", "1999-12-31"])
        if rng.random() < 0.5:
            row["last_seen"] = f"2026-01-0{rng.randrange(1, 4)}T0{rng.randrange(3)}:00:00Z"
        if rng.random() < 0.3:
            row["spend"] = rng.choice(["1.10", "2.20", "10.00"])
        row["segment"] = rng.choice(["b2b", "b2c", "gov"]) if i % 4 else None
        rows.append(row)
    records.create_many("customer", rows)
    return records


_SORTS = {
    "default": [],
    "name": [Sort("name")],
    "age nulls-and-ties": [Sort("age")],
    "age desc": [Sort("age", desc=True)],
    "score desc then name": [Sort("score", desc=True), Sort("name")],
    "birthday then age desc": [Sort("birthday"), Sort("age", desc=True)],
    "last_seen desc": [Sort("last_seen", desc=True)],
    "spend": [Sort("spend")],
    "segment then created_at desc": [Sort("segment"), Sort("created_at", desc=True)],
    "number desc": [Sort("number", desc=True)],
}


@pytest.mark.parametrize("sort_name", list(_SORTS))
def test_keyset_pages_walk_every_record_exactly_once_in_order(many: RecordService, sort_name: str) -> None:
    sort = _SORTS[sort_name]
    everything = [r["id"] for r in many.query("customer", Query(sort=sort, limit=1000)).records]
    assert len(everything) == 57

    walked, cursor, pages = [], None, 0
    while True:
        page = many.query("customer", Query(sort=sort, limit=7, after=cursor))
        walked += [r["id"] for r in page.records]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert walked == everything
    assert pages == 9


def test_keyset_pages_with_filters(many: RecordService) -> None:
    query = Query(filters=[Filter("segment", "not_in", ["gov"])], sort=[Sort("age")], limit=5)
    expected = [r["id"] for r in many.query("customer", Query(filters=query.filters, sort=query.sort,
                                                                   limit=1000)).records]
    walked = []
    while True:
        page = many.query("customer", query)
        walked += [r["id"] for r in page.records]
        if page.next_cursor is None:
            break
        query.after = page.next_cursor

    assert walked == expected


def test_a_foreign_cursor_is_an_error(many: RecordService) -> None:
    with pytest.raises(RecordValidationError) as caught:
        many.query("customer", Query(after="bm90LWEtY3Vyc29y"))

    assert caught.value.errors[0].field == "after"


# --- counting ---------------------------------------------------------------------------------------------------------

def test_count_with_and_without_filters(many: RecordService) -> None:
    assert many.count("customer") == 57
    with_age = many.count("customer", Query(filters=[Filter("age", "not_empty")]))
    without_age = many.count("customer", Query(filters=[Filter("age", "empty")]))
    assert with_age + without_age == 57
    assert with_age == len(many.query("customer", Query(filters=[Filter("age", "not_empty")], limit=1000)).records)


def test_count_up_to_stops_at_the_limit(many: RecordService) -> None:
    assert many.count("customer", up_to=10) == 10
    assert many.count("customer", up_to=100) == 57
    assert many.count("customer", Query(filters=[Filter("name", "eq", "nobody")]), up_to=10) == 0
