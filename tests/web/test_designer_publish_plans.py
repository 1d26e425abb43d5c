"""The plan the designer shows at publish, for each kind of change, made through the designer's own routes on a
published app with records (SQLite and PostgreSQL): what the review page says, that a planned change keeps the
values it promises to keep, and that a refused change names and links the records in its way, offers no Publish,
refuses a posted one and leaves the draft and the data as they were."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.records import RecordService
from tests.web.conftest import csrf

HX = {"HX-Request": "true"}
APP = "/designer/shop"
CUSTOMER = APP + "/customer"


@dataclass
class Shop:
    """The published app "shop" (Company; Customer with a field of each kind the tests change) and its records."""

    client: TestClient[Litestar]
    db: Database
    ada: str  # customer ids
    bob: str
    acme: str  # a company id

    def records(self) -> RecordService:
        return RecordService(self.db, "shop", actor="admin@example.com")

    def customer(self, record_id: str) -> dict[str, Any]:
        return self.records().get("customer", record_id)

    def post(self, url: str, data: dict[str, Any]) -> Any:
        """A designer post carrying the revision the draft page shows now."""
        data = {**data, "revision": _revision(self.client.get(APP).text)}
        return self.client.post(url, data=data, headers={**csrf(self.client), **HX}, follow_redirects=False)

    def field(self, key: str, settings: dict[str, Any], entity: str = "customer") -> Any:
        return self.post(f"{APP}/{entity}/fields/{key}", settings)

    def add_field(self, kind: str, label: str, entity: str = "customer") -> Any:
        return self.post(f"{APP}/{entity}/fields", {"kind": kind, "label": label})

    def review(self) -> Review:
        page = self.client.get(APP + "/publish").text
        steps = [html.unescape(s) for s in re.findall(r"<li>(.*?)</li>",
                                                      _between(page, 'id="plan-steps"', "</ul>"))]
        return Review(page, steps, html.unescape(_between(page, 'id="plan-blockers"', "</details>")))

    def publish(self) -> Any:
        page = self.client.get(APP + "/publish").text
        return self.client.post(APP + "/publish", data={"revision": _revision(page)},
                                headers={**csrf(self.client), **HX})


@dataclass
class Review:
    """The review page: its plan steps and the text of its refused changes."""

    page: str
    steps: list[str]
    blockers: str


def _revision(page: str) -> str:
    found = re.search(r'name="revision" value="(\d+)"', page)
    assert found, "the page shows no draft revision"
    return found.group(1)


def _between(page: str, start: str, end: str) -> str:
    if start not in page:
        return ""
    rest = page[page.index(start):]
    return rest[:rest.index(end)] if end in rest else rest


def _published(shop: Shop) -> None:
    response = shop.publish()
    assert response.status_code == 200 and 'id="publish-notice"' in response.text, response.text[:2000]


@pytest.fixture
def shop(client: TestClient[Litestar], web_db: Database) -> Shop:
    created = client.post("/designer/new", data={"title": "Shop", "name": "shop"}, headers=csrf(client),
                          follow_redirects=False)
    assert created.headers["location"] == APP
    s = Shop(client, web_db, "", "", "")
    for title in ("Company", "Customer"):
        s.post(APP + "/entities", {"title": title})
    for kind, label in (("text", "City"), ("text", "Visits"), ("text", "Code"), ("select", "Tier"),
                        ("text", "Note"), ("text", "Phone"), ("relation", "Employer"), ("relation_many", "Partners")):
        s.add_field(kind, label)
    s.field("tier", {"opt_value": ["option_1", "option_2"], "opt_title": ["Gold", "Silver"], "opt_color": ["", ""]})
    _published(s)
    records = s.records()
    s.acme = records.create("company", {"name": "Acme"})["id"]
    records.create("company", {"name": "Umbrella"})
    s.ada = records.create("customer", {"name": "Ada", "city": "Berlin", "visits": "12", "code": "abc",
                                        "tier": "silver", "note": "a long note", "employer": s.acme,
                                        "partners": [s.acme]})["id"]
    s.bob = records.create("customer", {"name": "Bob", "city": "Berlin", "visits": "3", "code": "7", "tier": "gold",
                                        "note": "ok"})["id"]
    return s


def _refused(shop: Shop, review: Review, head: str, record_ids: list[str]) -> None:
    """The change is refused: the blocker says why and links its records, Publish is not offered, a posted publish
    changes nothing and the draft waits as it was."""
    assert head in review.blockers, review.blockers
    for record_id in record_ids:
        assert f'href="/apps/shop/customer/{record_id}"' in review.page
    assert 'id="publish-confirm"' not in review.page
    version = AppService(shop.db).current("shop").version
    before = shop.client.get(APP).text
    response = shop.client.post(APP + "/publish", data={"revision": _revision(before)},
                                headers={**csrf(shop.client), **HX})
    assert 'id="publish-refused"' in response.text and "Nothing was published; the draft is kept" in response.text
    assert _revision(shop.client.get(APP).text) == _revision(before)
    assert AppService(shop.db).current("shop").version == version


def test_add_entity(shop: Shop) -> None:
    shop.post(APP + "/entities", {"title": "Order"})
    review = shop.review()
    assert review.steps == ["create entity order_value"] and not review.blockers
    _published(shop)
    assert shop.customer(shop.ada)["city"] == "Berlin"


def test_add_field(shop: Shop) -> None:
    shop.add_field("email", "Email")
    assert shop.review().steps == ["add field customer.email"]
    _published(shop)
    assert shop.customer(shop.ada).get("email") is None


def test_add_required_field_with_a_default_fills_existing_records(shop: Shop) -> None:
    shop.add_field("text", "Source")
    shop.field("source", {"required": "on", "default": "web"})
    assert shop.review().steps == ["add field customer.source", "fill empty customer.source with its default"]
    _published(shop)
    assert shop.customer(shop.ada)["source"] == shop.customer(shop.bob)["source"] == "web"


def test_add_required_field_without_a_default_is_refused(shop: Shop) -> None:
    shop.add_field("text", "Source")
    shop.field("source", {"required": "on"})
    review = shop.review()
    assert "add field customer.source" in review.steps
    _refused(shop, review, "REFUSED customer.source: is new and required, but 2 existing record(s) would have no"
                           " value; give it a default or make it optional (2 records)", [])


def test_retitle_changes_no_data(shop: Shop) -> None:
    shop.field("city", {"title": "Town"})
    assert shop.review().steps == ["update label/settings of field customer.city"]
    _published(shop)
    assert AppService(shop.db).current("shop").entity("customer").field("city").title == "Town"
    assert shop.customer(shop.ada)["city"] == "Berlin"


def test_rename_key_moves_the_values(shop: Shop) -> None:
    editor = shop.client.get(CUSTOMER).text
    assert 'id="dk-city-input" name="new_key"' in editor and 'id="dk-city-help"' in editor
    assert "stored values are kept and move to the new key" in editor
    page = shop.post(CUSTOMER + "/fields/city/key", {"new_key": "town"}).text
    assert 'id="df-town"' in page and "Published as <code>city</code>" in page
    assert shop.review().steps == ["rename field customer.city -> town (values kept)"]
    _published(shop)
    ada = shop.customer(shop.ada)
    assert ada["town"] == "Berlin" and "city" not in ada


def test_change_kind_that_converts(shop: Shop) -> None:
    shop.field("visits", {"kind": "integer"})
    assert shop.review().steps == ["convert field customer.visits: text -> integer"]
    _published(shop)
    assert shop.customer(shop.ada)["visits"] == 12 and shop.customer(shop.bob)["visits"] == 3


def test_change_kind_that_does_not_convert_is_refused(shop: Shop) -> None:
    shop.field("code", {"kind": "integer"})
    review = shop.review()
    assert review.steps == ["convert field customer.code: text -> integer"]
    _refused(shop, review, "REFUSED customer.code: stored values cannot become integer; change those records first"
                           " (1 record)", [shop.ada])
    assert f'{shop.ada} (Ada): "abc"' in review.blockers
    assert shop.customer(shop.ada)["code"] == "abc"


def test_remove_field_archives_its_values_and_adding_it_back_restores_them(shop: Shop) -> None:
    shop.post(CUSTOMER + "/fields/city/remove", {})
    assert shop.review().steps == ["archive field customer.city (values kept, restorable)"]
    _published(shop)
    assert "city" not in shop.customer(shop.ada)
    shop.add_field("text", "City")
    assert shop.review().steps == ["restore field customer.city from the archive (values kept)"]
    _published(shop)
    assert shop.customer(shop.ada)["city"] == "Berlin"


def test_remove_entity_archives_its_records(shop: Shop) -> None:
    for key in ("employer", "partners"):
        shop.post(f"{CUSTOMER}/fields/{key}/remove", {})
    shop.post(APP + "/company/remove", {})
    steps = shop.review().steps
    assert "archive entity company (records kept, restorable)" in steps
    assert "archive field customer.employer (values kept, restorable)" in steps
    _published(shop)
    assert [e.key for e in AppService(shop.db).current("shop").entities] == ["customer"]


def test_remove_an_option_still_used_is_refused(shop: Shop) -> None:
    editor = shop.client.get(CUSTOMER).text
    assert ">gold (fixed)</code>" in editor  # published option values are fixed
    shop.field("tier", {"opt_value": ["gold", "silver"], "opt_title": ["Gold", "Silver"], "opt_color": ["", ""],
                        "_action": "option_remove:1"})
    review = shop.review()
    assert review.steps == ["change rules of field customer.tier"]
    _refused(shop, review, "REFUSED customer.tier: stored values do not fit the new rules; change those records first"
                           " (1 record)", [shop.ada])
    assert f'{shop.ada} (Ada): "silver"' in review.blockers


def test_retitle_a_published_option_keeps_its_value(shop: Shop) -> None:
    shop.field("tier", {"opt_value": ["gold", "silver"], "opt_title": ["Gold", "Platinum"], "opt_color": ["", ""]})
    assert shop.review().steps == ["update label/settings of field customer.tier"]
    _published(shop)
    field = AppService(shop.db).current("shop").entity("customer").field("tier")
    assert field.option_values() == ["gold", "silver"] and field.options[1].title == "Platinum"
    assert shop.customer(shop.ada)["tier"] == "silver"


def test_tighter_max_length_is_refused_naming_the_records(shop: Shop) -> None:
    shop.field("note", {"max_length": "5"})
    review = shop.review()
    assert review.steps == ["change rules of field customer.note"]
    _refused(shop, review, "REFUSED customer.note: stored values do not fit the new rules; change those records first"
                           " (1 record)", [shop.ada])


def test_unique_with_duplicates_is_refused_naming_the_records(shop: Shop) -> None:
    shop.field("city", {"unique": "on"})
    review = shop.review()
    _refused(shop, review, "REFUSED customer.city: is now unique but some values are used more than once"
                           " (2 records)", [shop.ada, shop.bob])
    assert "Berlin is used by 2 records" in review.blockers


def test_required_with_empty_records(shop: Shop) -> None:
    shop.field("phone", {"required": "on"})
    review = shop.review()
    _refused(shop, review, "REFUSED customer.phone: is now required but some records have no value; give it a"
                           " default or fill them in first (2 records)", [shop.ada, shop.bob])
    shop.field("phone", {"default": "+49 30 1234567"})
    assert shop.review().steps == ["update label/settings of field customer.phone",
                                   "fill empty customer.phone with its default"]
    _published(shop)
    assert shop.customer(shop.bob)["phone"] == "+49 30 1234567"


def test_relation_target_change_with_links_is_refused(shop: Shop) -> None:
    shop.post(APP + "/entities", {"title": "Supplier"})
    _published(shop)
    shop.field("employer", {"target": "supplier"})
    review = shop.review()
    assert review.steps == ["convert field customer.employer: new storage settings"]
    _refused(shop, review, "REFUSED customer.employer: stored values cannot move to the new target (add a new"
                           " relation field instead); change those records first (1 record)", [shop.ada])


def test_relation_many_target_change_is_refused(shop: Shop) -> None:
    shop.post(APP + "/entities", {"title": "Supplier"})
    _published(shop)
    shop.field("partners", {"target": "supplier"})
    review = shop.review()
    assert review.steps == ["convert field customer.partners: new storage settings"]
    _refused(shop, review, "REFUSED customer.partners: a many-to-many relation cannot change its target; add a new"
                           " relation field instead (1 record)", [shop.ada])
    assert shop.customer(shop.ada)["partners"] == [shop.acme]
    shop.records().update("customer", shop.ada, {"partners": []})  # no links left: still refused, by name
    _refused(shop, shop.review(), "REFUSED customer.partners: a many-to-many relation cannot change its target;"
                                  " add a new relation field instead", [])


def test_relation_target_change_without_links_applies(shop: Shop) -> None:
    shop.records().update("customer", shop.ada, {"employer": None})
    shop.post(APP + "/entities", {"title": "Supplier"})
    _published(shop)
    shop.field("employer", {"target": "supplier"})
    assert shop.review().steps == ["convert field customer.employer: new storage settings"]
    _published(shop)
    supplier = shop.records().create("supplier", {"name": "Initech"})["id"]
    shop.records().update("customer", shop.bob, {"employer": supplier})
    assert shop.customer(shop.bob)["employer"] == supplier
