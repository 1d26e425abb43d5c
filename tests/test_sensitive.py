"""Sensitive fields: encrypted at rest with a key from CRM_SECRET_KEY, refused where ciphertext cannot work,
converted when a field becomes (or stops being) sensitive, masked in lists; SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from engine.errors import DefinitionError, PlanRefused
from engine.schema import load_definition, to_bytes
from engine.storage.apps import AppService
from engine.storage.crypto import KEY_ENV, KeyMissing, decrypt, encrypt, mask
from engine.storage.database import Database, crm_history
from engine.storage.records import RecordService
from engine.web.formatting import masked

SECRET = "correct horse battery staple"


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    """CRM_SECRET_KEY set for the test."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    return SECRET


def _sensitive(doc: dict[str, Any], entity: str, field: str, **flags: Any) -> dict[str, Any]:
    doc["$defs"][entity]["properties"][field]["x-crm-field"].update({"sensitive": True, **flags})
    return doc


def _problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        load_definition(doc)
    return [str(p) for p in info.value.problems]


def _stored(db: Database, column: str, record_id: str) -> Any:
    with db.read() as conn:
        return conn.execute(sa.text(f"SELECT {column} FROM mini__customer WHERE id = :id"), {"id": record_id}).scalar()


# --- the definition ------------------------------------------------------------------------------------------
def test_sensitive_flag_round_trips_through_canonical_export(mini_doc: dict[str, Any]) -> None:
    app = load_definition(_sensitive(mini_doc, "customer", "notes"))

    notes = app.entity("customer").field("notes")
    assert notes.sensitive and not notes.searchable
    again = load_definition(to_bytes(app))
    assert to_bytes(again) == to_bytes(app)
    assert b'"sensitive": true' in to_bytes(app)


def test_canonical_export_omits_sensitive_when_false(mini_doc: dict[str, Any]) -> None:
    assert b"sensitive" not in to_bytes(load_definition(mini_doc))


def test_text_sensitive_field_is_not_searchable_by_default(mini_doc: dict[str, Any]) -> None:
    app = load_definition(_sensitive(mini_doc, "customer", "won_reason"))

    assert app.entity("customer").field("won_reason").searchable is False
    assert "won_reason" not in [f.key for f in app.entity("customer").search_fields()]


@pytest.mark.parametrize("field", ["vip", "tags", "company", "partners", "number", "age", "birthday"])
def test_sensitive_is_refused_on_kinds_that_are_not_text(mini_doc: dict[str, Any], field: str) -> None:
    problems = _problems(_sensitive(mini_doc, "customer", field))

    assert any(p.startswith(f"$defs/customer/properties/{field}/x-crm-field/sensitive: ") and "cannot be sensitive"
               in p for p in problems)


@pytest.mark.parametrize("flag", ["unique", "indexed", "searchable"])
def test_sensitive_field_cannot_be_compared_in_sql(mini_doc: dict[str, Any], flag: str) -> None:
    problems = _problems(_sensitive(mini_doc, "customer", "notes", **{flag: True}))

    assert f"$defs/customer/properties/notes/x-crm-field/{flag}: a sensitive field cannot be {flag}: its values are" \
           " stored encrypted, so the database cannot compare them" in problems


def test_sensitive_field_cannot_be_sorted_indexed_or_the_title(mini_doc: dict[str, Any]) -> None:
    doc = _sensitive(mini_doc, "customer", "notes")
    customer = doc["$defs"]["customer"]
    customer["x-crm-views"] = {"list": {"sort": [{"field": "notes"}]}}
    customer["x-crm-indexes"] = [{"fields": ["notes"]}]
    customer.setdefault("x-crm-entity", {})["titleField"] = "notes"

    problems = _problems(doc)

    assert "$defs/customer/x-crm-views/list/sort/0/field: cannot sort by 'notes'" in problems
    assert "$defs/customer/x-crm-indexes/0/fields: 'notes' is sensitive (encrypted)" in problems
    assert any(p.startswith("$defs/customer/x-crm-entity/titleField: 'notes' is sensitive") for p in problems)


# --- encryption --------------------------------------------------------------------------------------------
def test_encrypt_is_randomised_and_round_trips(key: str) -> None:
    a, b = encrypt("DE89 3704 0044 0532 0130 00"), encrypt("DE89 3704 0044 0532 0130 00")

    assert a != b and a.startswith("v1:") and "3704" not in a
    assert decrypt(a) == decrypt(b) == "DE89 3704 0044 0532 0130 00"


def test_decrypt_with_another_key_or_tampered_value_is_refused(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = encrypt("secret")
    tampered = stored[:-4] + ("AAAA" if stored[-4:] != "AAAA" else "BBBB")
    with pytest.raises(KeyMissing, match="not the key it was written with"):
        decrypt(tampered)
    monkeypatch.setenv(KEY_ENV, "another key")
    with pytest.raises(KeyMissing, match="not the key it was written with"):
        decrypt(stored)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(KeyMissing, match=KEY_ENV):
        decrypt(stored)


def test_values_are_stored_encrypted_and_read_back_plain(db: Database, mini_doc: dict[str, Any], key: str) -> None:
    AppService(db).apply(_sensitive(mini_doc, "customer", "notes"))
    records = RecordService(db, "mini")

    rec = records.create("customer", {"name": "Li Wei", "notes": "IBAN DE89370400440532013000"})

    stored = _stored(db, "notes", rec["id"])
    assert stored.startswith("v1:") and "DE89" not in stored
    assert records.get("customer", rec["id"])["notes"] == "IBAN DE89370400440532013000"
    updated = records.update("customer", rec["id"], {"notes": "changed"}, expected_version=rec["version"])
    assert updated["notes"] == "changed"
    assert "changed" not in _stored(db, "notes", rec["id"])


def test_applying_a_sensitive_field_without_the_key_is_refused(db: Database, mini_doc: dict[str, Any],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)

    with pytest.raises(PlanRefused) as info:
        AppService(db).apply(_sensitive(mini_doc, "customer", "notes"))

    assert any("customer.notes" in line and KEY_ENV in line for line in info.value.lines())


def test_reading_without_the_key_is_a_clear_error(db: Database, mini_doc: dict[str, Any], key: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    AppService(db).apply(_sensitive(mini_doc, "customer", "notes"))
    rec = RecordService(db, "mini").create("customer", {"name": "Li Wei", "notes": "secret"})
    monkeypatch.delenv(KEY_ENV)

    with pytest.raises(KeyMissing, match=KEY_ENV):
        RecordService(db, "mini").get("customer", rec["id"])


def test_field_becoming_sensitive_encrypts_stored_values_and_back(db: Database, mini_doc: dict[str, Any],
                                                                  key: str) -> None:
    apps, records = AppService(db), RecordService(db, "mini")
    apps.apply(mini_doc)
    rec = records.create("customer", {"name": "Li Wei", "phone": "+49 30 1234567"})
    assert _stored(db, "phone", rec["id"]) == "+49301234567"

    plan = apps.apply(_sensitive(mini_doc, "customer", "phone"))

    assert any("encrypt values" in line for line in plan.lines())
    assert _stored(db, "phone", rec["id"]).startswith("v1:")
    assert RecordService(db, "mini").get("customer", rec["id"])["phone"] == "+49301234567"
    with db.read() as conn:  # the earlier value in history is encrypted too; the history read shows it plain
        (changes,) = conn.execute(sa.select(crm_history.c.changes).where(crm_history.c.record_id == rec["id"])).one()
    assert changes["phone"][0] is None and changes["phone"][1]["enc"].startswith("v1:")
    assert "1234567" not in json.dumps(changes) and changes["name"] == [None, "Li Wei"]
    assert RecordService(db, "mini").history("customer", rec["id"])[0]["changes"]["phone"] == [None, "+49301234567"]

    mini_doc["$defs"]["customer"]["properties"]["phone"]["x-crm-field"].pop("sensitive")
    plan = apps.apply(mini_doc)

    assert any("decrypt values" in line for line in plan.lines())
    assert _stored(db, "phone", rec["id"]) == "+49301234567"


def test_filter_on_a_sensitive_field_finds_nothing_and_leaks_nothing(db: Database, mini_doc: dict[str, Any],
                                                                     key: str) -> None:
    from engine.storage.query import Filter, Query

    AppService(db).apply(_sensitive(mini_doc, "customer", "notes"))
    records = RecordService(db, "mini")
    records.create("customer", {"name": "Li Wei", "notes": "secret"})

    page = records.query("customer", Query(filters=[Filter("notes", "eq", "secret")]))

    assert list(page.records) == []


# --- masking -----------------------------------------------------------------------------------------------
def test_mask_shows_only_the_last_two_characters(mini_doc: dict[str, Any]) -> None:
    field = load_definition(_sensitive(mini_doc, "customer", "notes")).entity("customer").field("notes")
    plain = load_definition(mini_doc).entity("customer").field("name")

    assert mask("DE89370400440532013000") == "•••••00"
    assert mask("abc") == "•••••"
    assert mask(None) == mask("") == ""
    assert masked("secret value", field) == "•••••ue"
    assert masked("Li Wei", plain) == "Li Wei"


def test_list_view_masks_a_sensitive_field_and_the_record_page_shows_it(db: Database, mini_doc: dict[str, Any],
                                                                         key: str) -> None:
    from litestar.testing import TestClient

    from engine.auth.accounts import create_user
    from engine.web import create_app

    _sensitive(mini_doc, "customer", "phone")
    mini_doc["$defs"]["customer"]["x-crm-views"]["list"]["columns"].append("phone")
    AppService(db).apply(mini_doc)
    rec = RecordService(db, "mini").create("customer", {"name": "Li Wei", "phone": "+4930123456789"})
    create_user(db, "boss@example.com", name="Boss", password="a long password 1", is_admin=True)
    with TestClient(app=create_app(db)) as client:
        client.get("/login")
        token = client.cookies["csrftoken"]
        client.post("/login", data={"email": "boss@example.com", "password": "a long password 1",
                                    "_csrf_token": token})
        listing = client.get("/apps/mini/customer").text
        page = client.get(f"/apps/mini/customer/{rec['id']}").text
    assert "Li Wei" in listing and "+4930123456789" not in listing and "89" in listing
    assert "+4930123456789" in page


# --- history -----------------------------------------------------------------------------------------------
def _history_rows(db: Database, record_id: str) -> list[str]:
    from engine.storage.database import crm_history

    with db.read() as conn:
        return [str(c) for c in conn.execute(sa.select(sa.cast(crm_history.c.changes, sa.Text)).where(
            crm_history.c.record_id == record_id).order_by(crm_history.c.id)).scalars()]


def test_history_stores_sensitive_values_encrypted(db: Database, mini_doc: dict[str, Any], key: str) -> None:
    AppService(db).apply(_sensitive(mini_doc, "customer", "notes"))
    records = RecordService(db, "mini")
    rec = records.create("customer", {"name": "Li Wei", "notes": "IBAN DE89370400440532013000"})
    records.update("customer", rec["id"], {"notes": "PIN 4711 secret"}, expected_version=rec["version"])

    rows = _history_rows(db, rec["id"])

    assert len(rows) == 2
    for row in rows:
        assert "DE89370400440532013000" not in row and "4711" not in row and '"enc"' in row and "v1:" in row
    assert "Li Wei" in rows[0]  # fields that are not sensitive stay readable


def test_history_decrypts_sensitive_values_for_the_caller(db: Database, mini_doc: dict[str, Any], key: str) -> None:
    AppService(db).apply(_sensitive(mini_doc, "customer", "notes"))
    records = RecordService(db, "mini")
    rec = records.create("customer", {"name": "Li Wei", "notes": "IBAN DE89370400440532013000"})
    records.update("customer", rec["id"], {"notes": "PIN 4711 secret"}, expected_version=rec["version"])

    created, updated = records.history("customer", rec["id"])

    assert created["changes"]["notes"] == [None, "IBAN DE89370400440532013000"]
    assert created["changes"]["name"] == [None, "Li Wei"]
    assert updated["changes"]["notes"] == ["IBAN DE89370400440532013000", "PIN 4711 secret"]
