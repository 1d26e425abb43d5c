"""Transitions: who may fire them, guards, actions in one transaction, history, and the state field's protection."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest

from engine.errors import NotFoundError, PermissionDenied, RecordValidationError
from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.query import Filter, Query
from engine.storage.records import RecordService
from engine.transfer import import_records
from engine.workflows.runtime import TransitionRefused
from tests.workflows.conftest import as_role, new_deal


def _orders(service: RecordService) -> list[dict[str, Any]]:
    return service.query("sales_order", Query(limit=100)).records


def test_new_records_start_in_the_initial_state(system: RecordService) -> None:
    assert system.create("deal", {"title": "A"})["stage"] == "lead"
    assert system.create("deal", {"title": "B", "stage": "lead"})["stage"] == "lead"
    with pytest.raises(RecordValidationError) as caught:
        system.create("deal", {"title": "C", "stage": "won", "amount": "5", "expected_close": "2026-12-01"})
    assert str(caught.value) == "stage: new deals start as Lead; move them on with a transition"


def test_the_state_field_changes_only_through_transitions(crm: Database, system: RecordService) -> None:
    deal = new_deal(system, "proposal", amount="100")
    with pytest.raises(RecordValidationError) as caught:  # a form, a bulk edit, the API: all are updates
        system.update("deal", deal["id"], {"stage": "won", "expected_close": "2026-12-01"})
    assert str(caught.value) == "stage: changes only through a transition (Start negotiation, Mark won, Mark lost)"
    assert system.get("deal", deal["id"]) == deal
    # Posting the unchanged state back with other changes is fine.
    assert system.update("deal", deal["id"], {"stage": "proposal", "title": "Bigger"})["title"] == "Bigger"
    manager = RecordService(crm, "sales_crm", as_role("mia", "sales_manager"))
    with pytest.raises(RecordValidationError):
        manager.update("deal", deal["id"], {"stage": "lost"})


def test_csv_import_cannot_skip_the_workflow(crm: Database, system: RecordService) -> None:
    manager = as_role("mia", "sales_manager")
    rows = "title,stage,amount,expected_close\nFine,lead,1,\nSneaky,won,5,2026-12-01\n"
    with pytest.raises(RecordValidationError) as caught:
        import_records(crm, "sales_crm", "deal", io.StringIO(rows), "csv", actor=manager)
    assert [(e.line, e.field) for e in caught.value.errors] == [(3, "stage")]
    assert system.count("deal") == 0
    deal_id = "01a20000-0000-7000-8000-000000000001"  # a user's rows with ids are new records too
    with pytest.raises(RecordValidationError):
        import_records(crm, "sales_crm", "deal", io.StringIO(f"id,title,stage\n{deal_id},X,won\n"), "csv",
                       actor=manager)
    # The trusted command line restores an export as it was, states included.
    assert import_records(crm, "sales_crm", "deal", io.StringIO(
        f"id,title,stage,amount,expected_close\n{deal_id},Old win,won,5,2026-01-01\n"), "csv", actor="ops") == 1
    assert system.get("deal", deal_id)["stage"] == "won"


def test_roles_decide_who_may_fire_a_transition(crm: Database, system: RecordService) -> None:
    deal = new_deal(system, "negotiation", amount="900", expected_close="2026-12-31", owner="sam")
    rep = RecordService(crm, "sales_crm", as_role("sam", "sales_rep"))
    assert [o.name for o in rep.transitions("deal", deal)] == ["lose"]  # only a sales manager may mark it won
    with pytest.raises(TransitionRefused) as caught:
        rep.transition("deal", deal["id"], "win")
    assert "sales_manager" in str(caught.value)
    assert system.get("deal", deal["id"])["stage"] == "negotiation"
    viewer = RecordService(crm, "sales_crm", as_role("vic", "viewer"))
    assert viewer.transitions("deal", deal) == []
    with pytest.raises(PermissionDenied):
        viewer.transition("deal", deal["id"], "lose")
    manager = RecordService(crm, "sales_crm", as_role("mia", "sales_manager"))
    assert [o.name for o in manager.transitions("deal", deal)] == ["win", "lose"]
    assert manager.transition("deal", deal["id"], "win")["stage"] == "won"


def test_an_own_records_user_cannot_move_others_records(crm: Database, system: RecordService) -> None:
    deal = new_deal(system, "lead", owner="bob")
    with pytest.raises(NotFoundError):
        RecordService(crm, "sales_crm", as_role("sam", "sales_rep")).transition("deal", deal["id"], "qualify")


def test_a_failing_guard_says_what_is_missing_before_and_when_firing(system: RecordService) -> None:
    deal = new_deal(system, "qualified")
    options = {o.name: o for o in system.transitions("deal", deal)}
    assert options["propose"].reason == "Enter the amount before sending a proposal."  # its guardMessage
    with pytest.raises(TransitionRefused) as caught:
        system.transition("deal", deal["id"], "propose")
    assert str(caught.value) == "Enter the amount before sending a proposal."
    deal = system.update("deal", deal["id"], {"amount": "100"})
    deal = system.transition("deal", deal["id"], "propose")
    win = {o.name: o for o in system.transitions("deal", deal)}["win"]
    assert win.reason == "Mark won needs Expected close"  # generated from the guard: required fields by title
    with pytest.raises(TransitionRefused) as caught:
        system.transition("deal", deal["id"], "win")
    assert str(caught.value) == "Mark won needs Expected close"
    assert system.get("deal", deal["id"])["stage"] == "proposal"


def test_entity_rules_of_the_new_state_are_checked_too(crm: Database, sales_doc: dict[str, Any]) -> None:
    # Without the guard, the entity's own if/then rule (won needs amount and expected close) still holds.
    win = next(t for t in sales_doc["$defs"]["deal"]["x-crm-workflow"]["transitions"] if t["name"] == "win")
    win.pop("guard")
    win["actions"] = []
    AppService(crm).apply(sales_doc)
    system = RecordService(crm, "sales_crm", "ops")
    deal = new_deal(system, "proposal", amount="10")
    option = {o.name: o for o in system.transitions("deal", deal)}["win"]
    assert option.reason == "Mark won needs: Expected close is required when Stage is Won"
    with pytest.raises(TransitionRefused) as caught:
        system.transition("deal", deal["id"], "win")
    assert str(caught.value) == option.reason


def test_winning_stamps_creates_an_order_and_notes_it_in_one_change(system: RecordService) -> None:
    deal = new_deal(system, "negotiation", amount="2500", expected_close="2026-12-31")
    won = system.transition("deal", deal["id"], "win")
    assert won["stage"] == "won" and won["closed_at"].endswith("Z") and str(won["probability"]) == "100"
    (order,) = _orders(system)
    assert (order["deal"], order["customer"], order["total"], order["product"], order["status"]) == (
        deal["id"], deal["customer"], "2500.00", "Big one", "pending")
    history = system.history("deal", deal["id"])
    transition, note = history[-2:]
    assert transition["action"] == "transition" and transition["actor"] == "ops"
    assert transition["changes"]["_transition"] == "win"
    assert transition["changes"]["stage"] == ["negotiation", "won"] and "closed_at" in transition["changes"]
    assert note["action"] == "note" and note["changes"]["_note"] == "Won by ops: order created for EUR 2,500.00."
    assert [h["action"] for h in history].count("transition") == 4  # qualify, propose, negotiate, win


def test_a_failing_action_undoes_the_whole_transition(crm: Database, sales_doc: dict[str, Any]) -> None:
    sales_doc["$defs"]["sales_order"]["properties"]["total"]["x-crm-field"]["max"] = "1000"  # the new order is refused
    AppService(crm).apply(sales_doc)
    system = RecordService(crm, "sales_crm", "ops")
    deal = new_deal(system, "negotiation", amount="2500", expected_close="2026-12-31")
    before = system.history("deal", deal["id"])
    with pytest.raises(RecordValidationError) as caught:
        system.transition("deal", deal["id"], "win")
    assert "could not create the Order" in str(caught.value) and "total" in str(caught.value)
    assert system.get("deal", deal["id"]) == deal
    assert system.history("deal", deal["id"]) == before and _orders(system) == []


def test_a_transition_from_a_stale_page_is_refused(system: RecordService) -> None:
    deal = new_deal(system, "lead")
    system.transition("deal", deal["id"], "qualify")
    with pytest.raises(TransitionRefused) as caught:
        system.transition("deal", deal["id"], "lose", seen_state="lead")
    assert str(caught.value) == "This deal was moved to Qualified by ops since you loaded it; Mark lost was not done."
    with pytest.raises(TransitionRefused) as caught:
        system.transition("deal", deal["id"], "qualify")
    assert str(caught.value) == "Qualify is not possible from Qualified; it starts from Lead."
    with pytest.raises(TransitionRefused) as caught:
        system.transition("deal", deal["id"], "celebrate")
    assert str(caught.value).startswith("Deal has no transition 'celebrate' (it has: qualify, propose")


def test_two_users_firing_at_once_exactly_one_wins(crm: Database, system: RecordService) -> None:
    deal = new_deal(system, "negotiation", amount="700", expected_close="2026-12-31")
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def fire(name: str) -> None:
        # Each user in their own "process": a database object with its own connection pool.
        other = Database(crm.url, **crm.engine_kwargs)
        try:
            start.wait()
            RecordService(other, "sales_crm", as_role(name, "sales_manager")).transition("deal", deal["id"], "win")
            outcomes.append("won")
        except TransitionRefused as exc:
            outcomes.append(str(exc))
        finally:
            other.dispose()

    threads = [threading.Thread(target=fire, args=(n,)) for n in ("mia", "max")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["Mark won is not possible from Won; it starts from Proposal, Negotiation.", "won"]
    assert len(system.query("sales_order", Query(filters=[Filter("deal", "eq", deal["id"])])).records) == 1
    assert [h["action"] for h in system.history("deal", deal["id"])].count("transition") == 4


def test_reasons_and_refusals_never_name_hidden_fields(crm: Database, system: RecordService) -> None:
    from engine.auth.accounts import DEFAULT_ROLES
    from engine.auth.principal import Principal, merge_grants

    permissions = DEFAULT_ROLES["sales_manager"][3]
    permissions = {"sales_crm": {**permissions["sales_crm"],
                                 "deal": {**permissions["sales_crm"]["deal"], "fields": {"amount": "hidden"}}}}
    manager = RecordService(crm, "sales_crm", Principal(name="mia", roles=("sales_manager",),
                                                        grants=merge_grants([permissions])))
    deal = new_deal(system, "proposal", amount="100")
    system.update("deal", deal["id"], {"amount": None})
    seen = manager.get("deal", deal["id"])
    assert "amount" not in seen
    win = {o.name: o for o in manager.transitions("deal", seen)}["win"]
    assert win.reason == "Mark won needs a field you cannot see, Expected close"
    with pytest.raises(TransitionRefused) as caught:
        manager.transition("deal", deal["id"], "win")
    assert str(caught.value) == win.reason and "amount" not in (caught.value.current or {})
    system.update("deal", deal["id"], {"amount": "100", "expected_close": "2026-12-31"})
    assert manager.transitions("deal", seen)[0].reason is None  # judged on the stored record, amount included
    assert "amount" not in manager.transition("deal", deal["id"], "win")
