"""CSV and JSONL import and export of records (engine/transfer.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from engine.auth.principal import Principal, merge_grants
from engine.errors import CrmError, PermissionDenied, RecordValidationError
from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.query import Filter, Query
from engine.storage.records import RecordService
from engine.transfer import export_records, format_of, import_records


@pytest.fixture
def mini(db: Database, mini_doc: dict[str, Any]) -> RecordService:
    """The mini app installed in `db`, and its records."""
    AppService(db).apply(mini_doc)
    return RecordService(db, "mini")


def import_text(db: Database, text: str, fmt: str = "csv", entity: str = "customer", app: str = "mini",
                **kwargs: Any) -> int:
    return import_records(db, app, entity, io.StringIO(text, newline=""), fmt, actor="importer", **kwargs)


def problems(exc: pytest.ExceptionInfo[RecordValidationError]) -> list[tuple[int | None, str]]:
    return [(e.line, e.field) for e in exc.value.errors]


def by_name(service: RecordService, entity: str = "customer") -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in service.query(entity, Query(limit=1000)).records}


def test_format_comes_from_the_extension_or_the_option() -> None:
    assert format_of("people.CSV") == "csv"
    assert format_of("people.jsonl") == "jsonl"
    assert format_of("people.txt", "jsonl") == "jsonl"
    with pytest.raises(CrmError, match="--format"):
        format_of("people.xlsx")


def test_csv_headers_may_be_keys_or_titles_and_cells_are_parsed_by_kind(mini: RecordService, db: Database) -> None:
    company = mini.create("company", {"name": "Acme"})
    text = ("姓名 name,EMAIL,age,Spend,discount,VIP,Segment,tags,company,Last seen,birthday,created_at\n"
            f"Ada,Ada@Example.COM,36,\"1,234.50 EUR\",12.5%,yes,Business,VIP;New,{company['id']},"
            "2026-01-31 09:30,1990-05-01,2020-01-01T00:00:00Z\n"
            "Bob,,,,,,,,,,,\n")
    assert import_text(db, text) == 2
    people = by_name(mini)
    ada = people["Ada"]
    assert ada["email"] == "Ada@example.com" and ada["age"] == 36 and ada["spend"] == "1234.50"
    assert str(ada["discount"]) == "12.5" and ada["vip"] is True and ada["segment"] == "b2b"
    assert ada["tags"] == ["vip", "new"] and ada["company"] == company["id"]
    assert ada["last_seen"] == "2026-01-31T09:30:00Z" and ada["birthday"] == "1990-05-01"
    assert ada["created_by"] == "importer" and not ada["created_at"].startswith("2020")  # system columns ignored
    assert ada["number"] == "CUS-00001"
    bob = people["Bob"]  # empty cells are empty, even where the field has a default
    assert "vip" not in bob and "segment" not in bob and "email" not in bob
    assert import_text(db, "name\nCyd\n") == 1  # columns left out get their defaults
    assert by_name(mini)["Cyd"]["segment"] == "b2c" and by_name(mini)["Cyd"]["vip"] is False


def test_csv_headers_may_be_translated_titles(db: Database, sales_doc: dict[str, Any]) -> None:
    AppService(db).apply(sales_doc)
    text = "姓名,E-Mail,Kundensegment,Stadt\n李雷,li.lei@example.cn,vip,上海\n"
    with pytest.raises(RecordValidationError) as exc:
        import_text(db, text, app="sales_crm")  # "Kundensegment" is nobody's title
    assert problems(exc) == [(1, "Kundensegment")] and "unknown column" in exc.value.errors[0].message
    assert import_text(db, text.replace("Kundensegment", "客户分层"), app="sales_crm") == 1
    li = RecordService(db, "sales_crm").query("customer").records[0]
    assert (li["name"], li["email"], li["segment"], li["city"]) == ("李雷", "li.lei@example.cn", "vip", "上海")


def test_unknown_or_repeated_columns_are_refused_before_any_row(mini: RecordService, db: Database) -> None:
    with pytest.raises(RecordValidationError) as exc:
        import_text(db, "name,shoe size,Email,email\nAda,42,a@example.com,a@example.com\n")
    assert problems(exc) == [(1, "shoe size"), (1, "email")]
    assert "shoe size" in str(exc.value) and "column 'Email' already holds email" in str(exc.value)
    with pytest.raises(RecordValidationError, match="empty"):
        import_text(db, "")
    assert mini.count("customer") == 0


def importer(*actions: str, hidden: tuple[str, ...] = ()) -> Principal:
    """A user whose one role allows `actions` on customers and hides the `hidden` fields."""
    grant: dict[str, Any] = {a: True for a in actions} | {"fields": dict.fromkeys(hidden, "hidden")}
    return Principal(name="imp@example.com", roles=("importer",), grants=merge_grants([{"mini": {"customer": grant}}]))


def listed_fields(error: RecordValidationError) -> set[str]:
    """The field keys an unknown-column message offers."""
    return {key for e in error.errors if "(fields: " in e.message
            for key in e.message.split("(fields: ", 1)[1].rstrip(")").split(", ")}


def test_unknown_column_message_lists_only_fields_the_importer_may_see(mini: RecordService, db: Database) -> None:
    who = importer("read", "create", "import", hidden=("spend", "notes"))
    with pytest.raises(RecordValidationError) as exc:
        import_records(db, "mini", "customer", io.StringIO("name,shoe size\nAda,42\n"), "csv", actor=who)
    assert {"name", "email", "age"} <= listed_fields(exc.value)
    assert "spend" not in listed_fields(exc.value) and "notes" not in listed_fields(exc.value)
    assert "spend" not in str(exc.value).lower() and "notes" not in str(exc.value).lower()

    for header in ("spend", "Spend", "NOTES"):  # a hidden field, by key or title, is as unknown as any other column
        with pytest.raises(RecordValidationError) as exc:
            import_records(db, "mini", "customer", io.StringIO(f"name,{header}\nAda,1\n"), "csv", actor=who)
        assert problems(exc) == [(1, header)] and "spend" not in listed_fields(exc.value)
    assert mini.count("customer") == 0

    with pytest.raises(RecordValidationError) as exc:  # the trusted command line sees every field
        import_text(db, "name,shoe size\nAda,42\n")
    assert {"spend", "notes"} <= listed_fields(exc.value)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_import_needs_the_create_right_too(mini: RecordService, db: Database, fmt: str) -> None:
    text = "name\nAda\n" if fmt == "csv" else '{"name": "Ada"}\n'
    with pytest.raises(PermissionDenied, match="may not create"):
        import_records(db, "mini", "customer", io.StringIO(text), fmt, actor=importer("read", "import"))
    assert mini.count("customer") == 0
    assert import_records(db, "mini", "customer", io.StringIO(text), fmt,
                          actor=importer("read", "import", "create")) == 1


def test_every_bad_row_is_reported_across_batches_and_nothing_is_stored(mini: RecordService, db: Database) -> None:
    mini.create("customer", {"name": "Taken", "email": "taken@example.com"})
    text = ("name,email,age,notes,company\n"                          # line 1
            "Ann,ann@example.com,30,,\n"                              # 2: fine
            "Ben,ben@example.com,thirty,,\n"                          # 3: age
            "Cat,taken@example.com,40,,\n"                            # 4: email in use
            "Dan,dan@example.com,50,\"two\nlines\",\n"                # 5-6: fine, a cell over two lines
            ",eve@example.com,200,,\n"                                # 7: name, age
            "Fay,ann@example.com,20,,\n"                              # 8: email also on line 2
            "Gus,gus@example.com,20,,0190a1b2-0000-7000-8000-000000000000\n"  # 9: no such company
            "Hal,hal@example.com\n"                                   # 10: too few cells
            "\n"                                                      # 11: blank, skipped
            "Ivy,ivy@example.com,20,,\n")                             # 12: fine
    with pytest.raises(RecordValidationError) as exc:
        import_text(db, text, batch_size=2)
    assert problems(exc) == [(3, "age"), (4, "email"), (7, "name"), (7, "age"), (8, "email"), (9, "company"),
                             (10, "")]
    assert "line 3: age: 'thirty' is not a number" in exc.value.lines()
    assert mini.count("customer") == 1  # only the record that was there before


def test_rows_with_ids_keep_them_and_their_numbers(mini: RecordService, db: Database) -> None:
    rid = "0190a1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b"
    assert import_text(db, f"\ufeffID,number,name\n{rid},CUS-00041,Kept\n,,New\n") == 2  # BOM as Excel writes it
    people = by_name(mini)
    assert people["Kept"]["id"] == rid and people["Kept"]["number"] == "CUS-00041"
    assert people["New"]["number"] == "CUS-00042"
    with pytest.raises(RecordValidationError) as exc:
        import_text(db, f"id,number,name\n{rid},CUS-00041,Again\n,CUS-00099,Forged\nnot-an-id,,Odd\n"
                        "0190a1b2-0000-7000-8000-0000000000aa,,Twin\n0190a1b2-0000-7000-8000-0000000000aa,,Twin\n")
    assert problems(exc) == [(2, "id"), (3, "number"), (4, "id"), (6, "id")]
    assert "already exists" in str(exc.value) and "is generated" in str(exc.value)
    assert "also on line 5" in exc.value.lines()[-1]


def test_jsonl_import_takes_records_in_json_shape(mini: RecordService, db: Database) -> None:
    company = mini.create("company", {"name": "Acme"})
    lines = [
        {"name": "Ada", "age": 36, "score": 12.25, "vip": True, "tags": ["vip"], "partners": [company["id"]],
         "spend": "10.00", "version": 7, "updated_by": "someone"},
        {"id": "0190a1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b", "name": "Kept", "number": "CUS-00007"},
    ]
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n\n"
    assert import_text(db, text, "jsonl") == 2
    people = by_name(mini)
    assert people["Ada"]["partners"] == [company["id"]] and str(people["Ada"]["score"]) == "12.25"
    assert people["Ada"]["version"] == 1 and people["Ada"]["segment"] == "b2c"
    assert people["Kept"]["number"] == "CUS-00007" and "segment" not in people["Kept"]  # a record coming back
    bad = '{"name": "Ok"}\n{"name": \n[1, 2]\n{"name": "Zed", "hat": "big"}\n{"age": -1}\n'
    with pytest.raises(RecordValidationError) as exc:
        import_text(db, bad, "jsonl")
    assert problems(exc) == [(2, ""), (3, ""), (4, "hat"), (5, "name"), (5, "age")]
    assert mini.count("customer") == 2


def test_large_import_is_one_transaction_and_exports_page_by_page(mini: RecordService, db: Database) -> None:
    rows = ["name,email,age"] + [f"Person {i},p{i}@example.com,{i % 90}" for i in range(2500)]
    with pytest.raises(RecordValidationError) as exc:
        import_text(db, "\n".join([*rows, "Last,p7@example.com,1"]) + "\n")
    assert problems(exc) == [(2502, "email")]  # the earlier batches were rolled back with it
    assert mini.count("customer") == 0
    assert import_text(db, "\n".join(rows) + "\n") == 2500
    out = io.StringIO(newline="")
    assert export_records(db, "mini", "customer", out, "csv") == 2500
    exported = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert exported[0] == ["id", *(f.key for f in AppService(db).current("mini").entity("customer").fields)]
    assert len({row[0] for row in exported[1:]}) == 2500
    assert mini.count("customer", Query(filters=[Filter("age", "eq", 7)])) == 28


def test_export_cells_read_back_by_import(mini: RecordService, db: Database) -> None:
    mini.create("customer", {"name": "Nia", "notes": "first\nsecond, \"quoted\"", "tags": ["new", "vip"],
                             "vip": False, "discount": "5"})
    out = io.StringIO(newline="")
    export_records(db, "mini", "customer", out, "csv")
    header, row = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    cells = dict(zip(header, row, strict=True))
    assert cells["notes"] == "first\nsecond, \"quoted\"" and cells["tags"] == "vip;new" and cells["vip"] == "false"
    jsonl = io.StringIO()
    export_records(db, "mini", "customer", jsonl, "jsonl")
    record = json.loads(jsonl.getvalue())
    assert record["tags"] == ["vip", "new"] and record["discount"] == 5 and "created_at" not in record
    assert "version" not in record and "updated_by" not in record
