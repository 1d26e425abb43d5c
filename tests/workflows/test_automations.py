"""Automations on created / changed / transition, time rules run by the worker, and the webhook outbox."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa

from engine.cli import main
from engine.errors import RecordValidationError
from engine.storage.apps import AppService
from engine.storage.database import Database, crm_outbox
from engine.storage.migrate import utcnow
from engine.storage.records import RecordService
from engine.workflows.outbox import deliver_due, outbox_status
from engine.workflows.timers import run_time_rules
from engine.workflows.worker import run_once
from tests.workflows.conftest import new_deal


def test_created_automation_stamps_new_tickets(system: RecordService) -> None:
    ticket = system.create("ticket", {"subject": "Printer on fire"})
    assert ticket["status"] == "open" and ticket["opened_at"].endswith("Z")
    given = system.create("ticket", {"subject": "Old one", "opened_at": "2026-01-02T03:04:05Z"})
    assert given["opened_at"] == "2026-01-02T03:04:05Z"  # the condition: only when none was given


def test_changed_automation_runs_when_its_fields_change(system: RecordService) -> None:
    deal = system.create("deal", {"title": "Small"})
    system.update("deal", deal["id"], {"title": "Still small", "amount": "500"})
    system.update("deal", deal["id"], {"amount": "150000"})
    system.update("deal", deal["id"], {"title": "Renamed"})  # amount unchanged: no note
    notes = [h["changes"]["_note"] for h in system.history("deal", deal["id"]) if h["action"] == "note"]
    assert notes == ["Large deal: the amount is now EUR 150,000.00."]


def _add_automation(crm: Database, doc: dict[str, Any], entity: str, automation: dict[str, Any]) -> RecordService:
    doc["$defs"][entity]["x-crm-workflow"].setdefault("automations", []).append(automation)
    AppService(crm).apply(doc)
    return RecordService(crm, "sales_crm", "ops")


def test_transition_automation_queues_a_webhook_in_the_same_transaction(crm: Database,
                                                                        sales_doc: dict[str, Any]) -> None:
    system = _add_automation(crm, sales_doc, "deal", {
        "name": "tell_finance", "on": "transition", "transitions": ["win"],
        "actions": [{"webhook": "http://127.0.0.1:9/finance"}]})
    deal = new_deal(system, "negotiation", amount="40", expected_close="2026-12-31")
    with crm.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(crm_outbox)).scalar() == 0
    system.transition("deal", deal["id"], "win")
    with crm.read() as conn:
        (row,) = conn.execute(sa.select(crm_outbox)).mappings().all()
    payload = row["payload"]
    assert row["url"] == "http://127.0.0.1:9/finance" and row["delivered_at"] is None
    assert (payload["event"], payload["transition"], payload["automation"], payload["entity"]) == (
        "transition", "win", "tell_finance", "deal")
    assert payload["record"]["stage"] == "won" and payload["record_id"] == deal["id"] and payload["actor"] == "ops"


def test_automations_that_set_each_other_off_are_stopped(crm: Database, sales_doc: dict[str, Any]) -> None:
    system = _add_automation(crm, sales_doc, "deal", {
        "name": "ping", "on": "changed", "fields": ["probability"],
        "actions": [{"set": {"probability": "2"}}, {"set": {"probability": "1"}}]})
    deal = system.create("deal", {"title": "Loop", "amount": "5"})
    with pytest.raises(RecordValidationError) as caught:
        system.update("deal", deal["id"], {"probability": "50"})
    assert "set each other off more than 8 times" in str(caught.value)
    assert system.get("deal", deal["id"]) == deal


def test_time_rule_fires_once_per_stay_in_the_state(system: RecordService) -> None:
    ticket = system.create("ticket", {"subject": "Slow", "priority": "low"})
    waiting = system.create("ticket", {"subject": "Busy"})
    system.transition("ticket", waiting["id"], "start")
    soon = utcnow() + dt.timedelta(hours=47)
    assert run_time_rules(system.db, soon).fired == 0
    later = utcnow() + dt.timedelta(hours=49)
    assert run_time_rules(system.db, later).fired == 1  # the ticket in progress does not match the condition
    raised = system.get("ticket", ticket["id"])
    assert raised["priority"] == "high" and system.get("ticket", waiting["id"])["priority"] == "normal"
    history = system.history("ticket", ticket["id"])
    assert history[-1]["changes"] == {"_note": "Open for 48 hours: priority raised to High."}
    assert history[-2]["actor"] == "automation: Raise the priority of tickets open for 48 hours"
    assert run_time_rules(system.db, later).fired == 0  # once per stay
    # Reopened and low again: it counts afresh from the moment it entered "open" again.
    system.update("ticket", ticket["id"], {"priority": "low"})
    for name in ("resolve", "reopen"):
        system.transition("ticket", ticket["id"], name)
    assert run_time_rules(system.db, utcnow() + dt.timedelta(hours=47)).fired == 0
    assert run_time_rules(system.db, utcnow() + dt.timedelta(hours=49)).fired == 1
    assert system.get("ticket", ticket["id"])["priority"] == "high"
    assert run_time_rules(system.db, utcnow() + dt.timedelta(hours=99)).fired == 0


class _Receiver:
    """A local webhook receiver that fails (HTTP 503) until told to recover."""

    def __init__(self) -> None:
        self.failing = True
        self.received: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(("fail" if receiver.failing else "ok", json.loads(body),
                                          dict(self.headers)))
                self.send_response(503 if receiver.failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    yield r
    r.close()


def test_outbox_delivery_survives_a_failing_receiver(crm: Database, sales_doc: dict[str, Any], receiver: _Receiver,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", "s3cret")
    system = _add_automation(crm, sales_doc, "ticket", {
        "name": "notify", "on": "created", "actions": [{"webhook": receiver.url}]})
    ticket = system.create("ticket", {"subject": "Hello"})
    first = deliver_due(crm)
    assert (first.delivered, first.failed) == (0, 1) and "HTTP 503" in first.errors[0]
    assert deliver_due(crm).failed == 0  # not due again yet: it waits (backoff)
    with crm.read() as conn:
        row = conn.execute(sa.select(crm_outbox)).mappings().one()
    assert row["attempts"] == 1 and row["delivered_at"] is None and row["next_attempt_at"] > utcnow()
    receiver.failing = False
    later = utcnow() + dt.timedelta(minutes=5)
    assert deliver_due(crm, now=later).delivered == 1
    assert deliver_due(crm, now=later + dt.timedelta(hours=2)).delivered == 0  # delivered once, done
    (_, failed, _), (outcome, body, headers) = receiver.received
    assert outcome == "ok" and body == failed and body["record_id"] == ticket["id"] and body["event"] == "created"
    assert headers["X-Crm-Event-Id"] == row["event_id"] == body["event_id"]
    assert headers["X-Crm-Signature"].startswith("sha256=")
    assert outbox_status(crm)["delivered"] == 1 and outbox_status(crm)["waiting"] == 0


def test_an_unreachable_receiver_loses_no_event(crm: Database, sales_doc: dict[str, Any]) -> None:
    system = _add_automation(crm, sales_doc, "ticket", {
        "name": "notify", "on": "created", "actions": [{"webhook": "http://127.0.0.1:9/nobody"}]})
    system.create("ticket", {"subject": "Hello"})
    now = utcnow()
    for hours in range(0, 30, 3):
        assert run_once(crm, now=now + dt.timedelta(hours=hours)).delivered == 0
    status = outbox_status(crm)
    assert status["waiting"] == 1 and status["oldest"]["attempts"] >= 5
    assert status["oldest"]["last_error"].startswith("could not reach the receiver")


def test_cli_transition_and_worker(sqlite_db: Database, sales_doc: dict[str, Any],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    crm = sqlite_db
    AppService(crm).apply(sales_doc)
    system = RecordService(crm, "sales_crm", "ops")
    deal = system.create("deal", {"title": "From the shell"})
    assert main(["--db", crm.url, "records", "transition", "sales_crm", "deal", deal["id"], "qualify"]) == 0
    assert "is now Qualified (version 2)" in capsys.readouterr().out
    assert main(["--db", crm.url, "records", "transition", "sales_crm", "deal", deal["id"], "qualify"]) == 1
    assert "Qualify is not possible from Qualified" in capsys.readouterr().err
    assert main(["--db", crm.url, "worker", "--once"]) == 0
    assert "time rules fired: 0; webhooks delivered: 0" in capsys.readouterr().out
    assert main(["--db", crm.url, "worker", "--status"]) == 0
    assert "webhooks delivered: 0, waiting: 0" in capsys.readouterr().out
