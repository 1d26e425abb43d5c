"""The `crm` command: exit codes, what it prints, and what it changes, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from engine.schema import load_definition
from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.records import RecordService
from tests.conftest import make_database

FIXTURES = Path(__file__).parent / "fixtures"


def cli_url(db: Database) -> str:
    """A URL the CLI can open for a test database (PostgreSQL tests live in their own schema)."""
    if db.is_sqlite:
        return db.url
    with db.read() as conn:
        schema = conn.exec_driver_sql("select current_schema()").scalar()
    return f"{db.url}{'&' if '?' in db.url else '?'}options=-csearch_path%3D{schema}"


def crm(capsys: pytest.CaptureFixture[str], db: Database | str, *argv: str) -> tuple[int, str, str]:
    """Run `crm --db URL --as tester ARGV...`; returns (exit code, stdout, stderr)."""
    url = db if isinstance(db, str) else cli_url(db)
    capsys.readouterr()
    code = main(["--db", url, "--as", "tester", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def renamed(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """The definition as an app of another name (tests that change a definition use their own app name)."""
    doc["x-crm-app"]["name"] = name
    doc["$id"] = f"urn:crm:app:{name}"
    return doc


def write_json(path: Path, doc: dict[str, Any]) -> str:
    path.write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    return str(path)


@pytest.fixture
def other_db(db: Database, tmp_path: Path) -> Iterator[Database]:
    """A second fresh database on the same backend as `db`."""
    (tmp_path / "other").mkdir()
    database, drop = make_database("sqlite" if db.is_sqlite else "postgresql", tmp_path / "other")
    yield database
    drop()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# --- init and usage ----------------------------------------------------------------------------------------
def test_init_sets_up_a_fresh_database_and_other_commands_ask_for_it(capsys: pytest.CaptureFixture[str],
                                                                     tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new.db"
    code, out, err = crm(capsys, url, "app", "list")
    assert code == 1 and "run `crm init` first" in err and "Traceback" not in err
    assert crm(capsys, url, "init")[0] == 0
    code, out, _ = crm(capsys, url, "init")
    assert code == 0 and "already set up" in out
    code, out, _ = crm(capsys, url, "app", "list")
    assert code == 0 and "no apps yet" in out


def test_usage_errors_exit_2_and_help_exits_0(capsys: pytest.CaptureFixture[str], sqlite_db: Database) -> None:
    assert crm(capsys, sqlite_db, "bogus")[0] == 2
    assert crm(capsys, sqlite_db, "app")[0] == 2
    assert crm(capsys, sqlite_db, "app", "rollback", "mini", "not-a-number")[0] == 2
    assert crm(capsys, sqlite_db, "records", "export", "mini", "customer", "--format", "xml")[0] == 2
    code, out, _ = crm(capsys, sqlite_db, "records", "import", "--help")
    assert code == 0 and "field keys or titles" in " ".join(out.split())


def test_global_options_work_after_the_command_too(capsys: pytest.CaptureFixture[str], sqlite_db: Database) -> None:
    capsys.readouterr()
    assert main(["app", "list", "--db", sqlite_db.url]) == 0
    assert "no apps yet" in capsys.readouterr().out


def test_serve_answers_http_on_localhost(sqlite_db: Database) -> None:
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from engine.cli import main; raise SystemExit(main())",
         "serve", "--db", sqlite_db.url, "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    assert response.status == 200 and b"crm-builder" in response.read()
                    break
            except OSError:
                assert proc.poll() is None, "crm serve exited before answering"
                assert time.monotonic() < deadline, "crm serve did not answer within 30 s"
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_refuses_zero_workers(capsys: pytest.CaptureFixture[str], sqlite_db: Database) -> None:
    code, _, err = crm(capsys, sqlite_db, "serve", "--workers", "0")
    assert code == 1 and "--workers must be at least 1" in err


# --- apps --------------------------------------------------------------------------------------------------
def test_plan_apply_export_list_history(capsys: pytest.CaptureFixture[str], db: Database, tmp_path: Path) -> None:
    source = str(FIXTURES / "mini_app.json")
    code, out, _ = crm(capsys, db, "app", "plan", source)
    assert code == 0 and "app mini: new app" in out and "create entity customer" in out
    code, _, err = crm(capsys, db, "app", "apply", source)  # stdin is not a terminal under pytest
    assert code == 1 and "--yes" in err
    assert AppService(db).list() == []
    code, out, _ = crm(capsys, db, "app", "apply", source, "--yes")
    assert code == 0 and "now at version 1" in out
    code, out, _ = crm(capsys, db, "app", "apply", source, "--yes")
    assert code == 0 and "no changes" in out
    code, out, _ = crm(capsys, db, "app", "export", "mini")
    assert code == 0 and out.encode() == AppService(db).export("mini")
    assert crm(capsys, db, "app", "export", "mini", "-o", str(tmp_path / "mini.json"))[0] == 0
    assert (tmp_path / "mini.json").read_bytes() == AppService(db).export("mini")
    code, out, _ = crm(capsys, db, "app", "list")
    assert code == 0 and "mini" in out and "version 1" in out and "Mini CRM" in out
    code, out, _ = crm(capsys, db, "app", "history", "mini")
    assert code == 0 and "version 1" in out and "by tester" in out and "create entity company" in out
    code, _, err = crm(capsys, db, "app", "history", "nope")
    assert code == 1 and "no app 'nope'" in err


def test_apply_on_a_terminal_asks_first(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                        sqlite_db: Database) -> None:
    source = str(FIXTURES / "mini_app.json")
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    code, _, err = crm(capsys, sqlite_db, "app", "apply", source)
    assert code == 1 and "not confirmed" in err and AppService(sqlite_db).list() == []
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    code, out, _ = crm(capsys, sqlite_db, "app", "apply", source)
    assert code == 0 and "Apply these changes?" in out and [a.name for a in AppService(sqlite_db).list()] == ["mini"]


def test_refused_apply_names_the_records_and_changes_nothing(capsys: pytest.CaptureFixture[str], db: Database,
                                                            mini_doc: dict[str, Any], tmp_path: Path) -> None:
    renamed(mini_doc, "cli_refused")
    assert crm(capsys, db, "app", "apply", write_json(tmp_path / "v1.json", mini_doc), "--yes")[0] == 0
    old = RecordService(db, "cli_refused").create("customer", {"name": "Old Timer", "age": 90})
    before = AppService(db).export("cli_refused")
    mini_doc["$defs"]["customer"]["properties"]["age"]["maximum"] = 60
    narrow = write_json(tmp_path / "v2.json", mini_doc)
    code, out, err = crm(capsys, db, "app", "apply", narrow, "--yes")
    assert code == 1 and "REFUSED customer.age" in err and old["id"] in err and "Old Timer" in err
    assert "nothing was changed" in err and out == ""
    assert crm(capsys, db, "app", "plan", narrow)[0] == 1
    assert AppService(db).export("cli_refused") == before
    assert RecordService(db, "cli_refused").get("customer", old["id"])["age"] == 90


def test_invalid_definition_lists_every_problem_with_its_path(capsys: pytest.CaptureFixture[str],
                                                              sqlite_db: Database, mini_doc: dict[str, Any],
                                                              tmp_path: Path) -> None:
    mini_doc["$defs"]["customer"]["properties"]["age"]["x-crm-field"]["kind"] = "nope"
    mini_doc["$defs"]["company"]["properties"]["Bad Key"] = {"title": "Bad", "x-crm-field": {"kind": "text"}}
    bad = write_json(tmp_path / "bad.json", mini_doc)
    for command in ("plan", "apply"):
        code, out, err = crm(capsys, sqlite_db, "app", command, bad, "--yes") if command == "apply" else \
            crm(capsys, sqlite_db, "app", command, bad)
        lines = err.splitlines()
        assert code == 1 and out == ""
        assert any(line.startswith("$defs/customer/properties/age/x-crm-field/kind:") for line in lines)
        assert any(line.startswith("$defs/company/properties:") and "Bad Key" in line for line in lines)
        assert "Traceback" not in err
    (tmp_path / "broken.json").write_text("{not json", "utf-8")
    code, _, err = crm(capsys, sqlite_db, "app", "plan", str(tmp_path / "broken.json"))
    assert code == 1 and "not valid JSON" in err
    code, _, err = crm(capsys, sqlite_db, "app", "plan", str(tmp_path / "missing.json"))
    assert code == 1 and "cannot read" in err
    assert AppService(sqlite_db).list() == []


def test_rollback_returns_to_an_earlier_version(capsys: pytest.CaptureFixture[str], db: Database,
                                                mini_doc: dict[str, Any], tmp_path: Path) -> None:
    renamed(mini_doc, "cli_rollback")
    v1 = write_json(tmp_path / "v1.json", mini_doc)
    mini_doc["$defs"]["company"]["properties"]["city"] = {"title": "City", "x-crm-field": {"kind": "text"}}
    v2 = write_json(tmp_path / "v2.json", mini_doc)
    assert crm(capsys, db, "app", "apply", v1, "--yes")[0] == 0
    assert crm(capsys, db, "app", "apply", v2, "--yes")[0] == 0
    assert crm(capsys, db, "app", "rollback", "cli_rollback", "1")[0] == 1  # not confirmed
    code, out, _ = crm(capsys, db, "app", "rollback", "cli_rollback", "1", "--yes")
    assert code == 0 and "archive field company.city" in out and "now at version 3" in out
    current = load_definition(AppService(db).export("cli_rollback"))
    assert current.entities == load_definition(Path(v1).read_bytes()).entities
    code, out, _ = crm(capsys, db, "app", "history", "cli_rollback")
    assert "version 3" in out and "rollback to version 1" in out
    code, _, err = crm(capsys, db, "app", "rollback", "cli_rollback", "9", "--yes")
    assert code == 1 and "no version 9" in err


# --- records -----------------------------------------------------------------------------------------------
def test_records_commands_report_unknown_apps_and_entities(capsys: pytest.CaptureFixture[str],
                                                           sqlite_db: Database, tmp_path: Path) -> None:
    code, _, err = crm(capsys, sqlite_db, "records", "export", "nope", "customer")
    assert code == 1 and "no app 'nope'" in err
    assert crm(capsys, sqlite_db, "app", "apply", str(FIXTURES / "mini_app.json"), "--yes")[0] == 0
    code, _, err = crm(capsys, sqlite_db, "records", "export", "mini", "dragon", "-o", str(tmp_path / "d.csv"))
    assert code == 1 and "no entity 'dragon'" in err and not (tmp_path / "d.csv").exists()
    (tmp_path / "rows.txt").write_text("name\nAda\n", "utf-8")
    code, _, err = crm(capsys, sqlite_db, "records", "import", "mini", "customer", str(tmp_path / "rows.txt"))
    assert code == 1 and ".csv or .jsonl" in err
    code, out, _ = crm(capsys, sqlite_db, "records", "import", "mini", "customer", str(tmp_path / "rows.txt"),
                       "--format", "csv")
    assert code == 0 and "imported 1 record into mini.customer" in out


def test_import_bad_rows_prints_every_line_and_stores_nothing(capsys: pytest.CaptureFixture[str], db: Database,
                                                              tmp_path: Path) -> None:
    assert crm(capsys, db, "app", "apply", str(FIXTURES / "mini_app.json"), "--yes")[0] == 0
    path = tmp_path / "customers.csv"
    path.write_text("Name,Email,Age\nAda,ada@example.com,36\n,nobody@example.com,20\nBob,bob.example.com,abc\n",
                    "utf-8")
    code, out, err = crm(capsys, db, "records", "import", "mini", "customer", str(path))
    assert code == 1 and out == ""
    assert err.splitlines() == ["line 3: name: is required", "line 4: email: is not a valid email address",
                                "line 4: age: 'abc' is not a number"]
    assert RecordService(db, "mini").count("customer") == 0


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_then_import_into_another_database_gives_the_same_export(
        capsys: pytest.CaptureFixture[str], db: Database, other_db: Database, tmp_path: Path, fmt: str) -> None:
    source = str(FIXTURES / "mini_app.json")
    for database in (db, other_db):
        assert crm(capsys, database, "app", "apply", source, "--yes")[0] == 0
    records = RecordService(db, "mini")
    acme = records.create("company", {"name": "Acme, Inc.", "website": "acme.example"})
    globex = records.create("company", {"name": "环球 Globex"})
    records.create_many("customer", [
        {"name": "Zoë \"Z\" Müller", "email": "zoe@example.com", "phone": "+49 30 1234567", "age": 41,
         "score": "12.5", "spend": "1234.50", "discount": "7.25", "vip": True, "birthday": "1983-02-01",
         "last_seen": "2026-01-31T09:30:00.123456Z", "segment": "b2b", "tags": ["new", "vip"],
         "company": acme["id"], "partners": [acme["id"], globex["id"]], "rating": 4,
         "notes": "line one\r\nline two, with \"quotes\"; and more", "stage": "won", "won_reason": "price"},
        {"name": "李雷", "score": "0.01", "spend": "0"},
        {"name": "Emptyish", "vip": False, "segment": "gov"},
    ])
    records.update("customer", records.query("customer").records[-1]["id"], {"segment": None})  # emptied default
    for entity in ("company", "customer"):
        first, second = tmp_path / f"first_{entity}.{fmt}", tmp_path / f"second_{entity}.{fmt}"
        code, out, _ = crm(capsys, db, "records", "export", "mini", entity, "--format", fmt, "-o", str(first))
        assert code == 0 and "exported" in out
        code, out, err = crm(capsys, other_db, "records", "import", "mini", entity, str(first))
        assert code == 0, err
        assert crm(capsys, other_db, "records", "export", "mini", entity, "--format", fmt, "-o", str(second))[0] == 0
        assert second.read_bytes() == first.read_bytes()
        code, stdout_copy, _ = crm(capsys, other_db, "records", "export", "mini", entity, "--format", fmt)
        assert stdout_copy.encode() == first.read_bytes()
    originals = {r["id"]: r for r in RecordService(db, "mini").query("customer").records}
    for copy in RecordService(other_db, "mini").query("customer").records:
        strip = ("created_at", "updated_at", "created_by", "updated_by", "version")
        assert {k: v for k, v in copy.items() if k not in strip} == \
            {k: v for k, v in originals[copy["id"]].items() if k not in strip}
    created = RecordService(other_db, "mini").create("customer", {"name": "Next"})
    assert created["number"] == "CUS-00004"  # numbering goes on after the imported numbers
