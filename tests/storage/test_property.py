"""Property: no sequence of definition changes loses a stored value.

Random records are created, then a random sequence of changes is applied (add a field of any kind, rename, remove,
re-add a removed field, widen a kind). After every step each stored value is still there under the field's current
name (converted where the kind was widened: integer 5 == decimal 5) or, for a removed field, comes back when it is
re-added. At the end a rollback to version 1 must give every record exactly its original values."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import string
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.query import Query
from engine.storage.records import RecordService

_APP_NUMBER = itertools.count(1)  # a fresh app per example: examples share one database
_COLOURS = ["red", "green", "blue"]
_SYSTEM = {"id", "created_at", "updated_at", "created_by", "updated_by", "version"}

# --- valid values per kind, as (what is written, what the record then holds) -----------------------------------------

_words = st.text(alphabet=string.ascii_letters + string.digits + " äß中-", min_size=1, max_size=20).map(str.strip) \
    .filter(bool)


def _decimal(low: int, high: int, places: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=low, max_value=high, places=places, allow_nan=False, allow_infinity=False)


_VALUES: dict[str, st.SearchStrategy[tuple[Any, Any]]] = {
    "text": _words.map(lambda s: (f" {s} ", s)),
    "long_text": _words.map(lambda s: (f"{s}\nsecond line", f"{s}\nsecond line")),
    "email": st.from_regex(r"[a-z]{1,8}", fullmatch=True).map(lambda s: (f"{s}@Example.COM", f"{s}@example.com")),
    "integer": st.integers(-10**6, 10**6).map(lambda n: (n, n)),
    "decimal": _decimal(-10**6, 10**6, 2).map(lambda d: (str(d), d)),
    "currency": _decimal(0, 10**6, 2).map(lambda d: (str(d), format(d.quantize(Decimal("0.01")), "f"))),
    "percent": _decimal(0, 100, 2).map(lambda d: (f"{d}", d)),
    "rating": st.integers(1, 5).map(lambda n: (n, n)),
    "boolean": st.booleans().map(lambda b: (b, b)),
    "date": st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31)).map(lambda d: (d.isoformat(), d.isoformat())),
    "datetime": st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2060, 1, 1)).map(
        lambda t: t.replace(microsecond=0)).map(lambda t: (f"{t.isoformat()}+00:00", f"{t.isoformat()}Z")),
    "select": st.sampled_from(_COLOURS).map(lambda c: (c.upper(), c)),
    "multi_select": st.lists(st.sampled_from(_COLOURS), min_size=1, max_size=3, unique=True).map(
        lambda cs: (cs, [c for c in _COLOURS if c in cs])),
}

_WIDER = {"integer": "decimal", "text": "long_text"}


def _field_schema(kind: str, title: str) -> dict[str, Any]:
    options = [{"const": c, "title": c.title()} for c in _COLOURS]
    schema: dict[str, Any] = {"title": title, "x-crm-field": {"kind": kind}}
    if kind == "select":
        schema["anyOf"] = options
    elif kind == "multi_select":
        schema.update(type="array", items={"anyOf": options})
    elif kind == "decimal":
        schema["x-crm-field"]["scale"] = 2
    elif kind == "currency":
        schema["x-crm-field"]["currency"] = "EUR"
    return schema


def _same(value: Any) -> Any:
    """Values compared across kinds: integer 5 and decimal 5 are the same stored value."""
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return Decimal(value).normalize()
    return value


# --- the model: what every record should hold -------------------------------------------------------------------------

@dataclass
class Model:
    """The app under test and the values it must keep."""

    db: Database
    name: str
    doc: dict[str, Any]
    kinds: dict[str, str] = field(default_factory=dict)  # live field -> kind
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # record id -> {live field: expected}
    removed: dict[str, tuple[dict[str, Any], str, dict[str, Any]]] = field(default_factory=dict)  # key -> saved
    next_key: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def props(self) -> dict[str, Any]:
        return self.doc["$defs"]["item"]["properties"]

    def new_key(self) -> str:
        return f"f{next(self.next_key)}"

    def apply(self) -> None:
        AppService(self.db).apply(copy.deepcopy(self.doc))

    def records(self) -> RecordService:
        return RecordService(self.db, self.name)

    def check(self, when: str) -> None:
        """Every live value is stored; removed fields are gone from records."""
        stored = {r["id"]: r for r in self.records().query("item", Query(limit=1000)).records}
        assert set(stored) == set(self.values), when
        for rid, expected in self.values.items():
            got = {k: _same(v) for k, v in stored[rid].items() if k not in _SYSTEM}
            assert got == {k: _same(v) for k, v in expected.items()}, f"{when}: record {rid}"


def _fill(data: st.DataObject, model: Model, key: str, kind: str) -> None:
    """Give some records a value for a field."""
    updates = {}
    for rid in model.values:
        if data.draw(st.booleans(), label=f"fill {key}"):
            written, expected = data.draw(_VALUES[kind], label=f"{key} value")
            updates[rid] = written
            model.values[rid][key] = expected
    records = model.records()
    for rid, written in updates.items():
        records.update("item", rid, {key: written})


# --- the steps --------------------------------------------------------------------------------------------------------

def _add(data: st.DataObject, model: Model) -> str:
    kind = data.draw(st.sampled_from(sorted(_VALUES)), label="kind")
    key = model.new_key()
    model.props[key] = _field_schema(kind, f"Field {key}")
    model.kinds[key] = kind
    model.apply()
    _fill(data, model, key, kind)
    return f"add {key} ({kind})"


def _rename(data: st.DataObject, model: Model) -> str:
    old = data.draw(st.sampled_from(sorted(model.kinds)), label="rename")
    new = model.new_key()
    items = list(model.props.items())
    model.props.clear()
    for key, schema in items:
        if key == old:
            schema["x-crm-field"]["renamedFrom"] = old
            key = new
        model.props[key] = schema
    model.kinds[new] = model.kinds.pop(old)
    for record in model.values.values():
        if old in record:
            record[new] = record.pop(old)
    model.apply()
    return f"rename {old} -> {new}"


def _remove(data: st.DataObject, model: Model) -> str:
    key = data.draw(st.sampled_from(sorted(model.kinds)), label="remove")
    saved = {rid: record.pop(key) for rid, record in model.values.items() if key in record}
    model.removed[key] = (model.props.pop(key), model.kinds.pop(key), saved)
    model.apply()
    return f"remove {key}"


def _readd(data: st.DataObject, model: Model) -> str:
    key = data.draw(st.sampled_from(sorted(model.removed)), label="re-add")
    schema, kind, saved = model.removed.pop(key)
    model.props[key] = schema
    model.kinds[key] = kind
    for rid, value in saved.items():
        model.values[rid][key] = value
    model.apply()
    return f"re-add {key}"


def _widen(data: st.DataObject, model: Model) -> str:
    choices = sorted(k for k, kind in model.kinds.items() if kind in _WIDER or kind in ("select", "multi_select"))
    key = data.draw(st.sampled_from(choices), label="widen")
    kind = model.kinds[key]
    schema = model.props[key]
    if kind in _WIDER:
        wider = _WIDER[kind]
        fresh = _field_schema(wider, schema["title"])
        if "renamedFrom" in schema["x-crm-field"]:
            fresh["x-crm-field"]["renamedFrom"] = schema["x-crm-field"]["renamedFrom"]
        model.props[key] = fresh
        model.kinds[key] = wider
        what = f"{kind} -> {wider}"
    else:
        options = schema["anyOf"] if kind == "select" else schema["items"]["anyOf"]
        options.append({"const": f"extra{len(options)}", "title": f"Extra {len(options)}"})
        what = "one more option"
    model.apply()
    return f"widen {key}: {what}"


def _possible_steps(model: Model) -> list[Any]:
    steps: list[Any] = [_add]
    if model.kinds:
        steps.append(_rename)
    if len(model.kinds) > 1:  # an entity needs at least one field
        steps.append(_remove)
    if model.removed:
        steps.append(_readd)
    if any(kind in _WIDER or kind in ("select", "multi_select") for kind in model.kinds):
        steps.append(_widen)
    return steps


def _start(data: st.DataObject, db: Database) -> tuple[Model, dict[str, dict[str, Any]]]:
    name = f"prop{next(_APP_NUMBER)}"
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"urn:crm:app:{name}", "title": "Property",
           "x-crm-app": {"name": name}, "$defs": {"item": {"type": "object", "title": "Item", "properties": {}}}}
    model = Model(db, name, doc)
    kinds = data.draw(st.lists(st.sampled_from(sorted(_VALUES)), min_size=1, max_size=4), label="first kinds")
    for kind in kinds:
        key = model.new_key()
        model.props[key] = _field_schema(kind, f"Field {key}")
        model.kinds[key] = kind
    model.apply()
    records = model.records()
    for _ in range(data.draw(st.integers(3, 6), label="records")):
        written, expected = {}, {}
        for key, kind in model.kinds.items():
            if data.draw(st.integers(0, 4), label=f"{key} empty?"):
                written[key], expected[key] = data.draw(_VALUES[kind], label=f"{key} value")
        created = records.create("item", written)
        model.values[created["id"]] = expected
    model.check("after creating the records")
    originals = {rid: dict(values) for rid, values in model.values.items()}
    return model, originals


def _changes_keep_every_value(db: Database, data: st.DataObject) -> None:
    model, originals = _start(data, db)
    done = []
    for _ in range(data.draw(st.integers(3, 6), label="steps")):
        step = data.draw(st.sampled_from(_possible_steps(model)), label="step")
        done.append(step(data, model))
        model.check(" / ".join(done))

    AppService(db).rollback(model.name, 1)

    stored = {r["id"]: r for r in model.records().query("item", Query(limit=1000)).records}
    for rid, original in originals.items():
        got = {k: _same(v) for k, v in stored[rid].items() if k not in _SYSTEM}
        assert got == {k: _same(v) for k, v in original.items()}, f"rollback after {' / '.join(done)}: {rid}"


def test_definition_changes_never_lose_a_value(db: Database) -> None:
    """Random change sequences over random records keep (or can restore) every value; rollback restores all."""

    # No shrinking: it replays whole migrations for minutes; the labelled draws and the step list in the
    # assertion message already describe a failing example.
    @settings(max_examples=15 if db.is_sqlite else 8, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], print_blob=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        _changes_keep_every_value(db, data)

    run()
