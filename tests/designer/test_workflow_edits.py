"""The workflow editor's edits: a workflow built by clicking loads and checks clean, publishes, and its transition
fires through the records service; bad input is refused with a path and plain words, changing nothing; an
unfinished workflow is let through and blocks publishing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from engine.auth.principal import Principal
from engine.designer import edits
from engine.designer import workflows as wf
from engine.designer.drafts import DraftService
from engine.designer.edits import EditError
from engine.errors import DefinitionError, Problem
from engine.schema import load_definition
from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.records import RecordService
from engine.workflows.definition import check_workflow, parse_workflow

ADA = Principal(name="ada@example.com", designer=True)
FLOW = "$defs/ticket/x-crm-workflow"


@pytest.fixture
def doc() -> dict[str, Any]:
    """A blank app with a Ticket entity (Name, Closed at, Closed by, Priority, Hours)."""
    document = edits.blank_app("desk", "Desk")
    edits.add_entity(document, "Ticket")
    edits.add_field(document, "ticket", "datetime", "Closed at")
    edits.add_field(document, "ticket", "text", "Closed by")
    priority = edits.add_field(document, "ticket", "select", "Priority")
    edits.update_field(document, "ticket", priority, {"options": [{"title": "Low"}, {"title": "High"}]})
    edits.add_field(document, "ticket", "integer", "Hours")
    return document


def _problems(document: dict[str, Any]) -> list[Problem]:
    try:
        load_definition(document)
    except DefinitionError as exc:
        return exc.problems
    return []


def _refused(document: dict[str, Any], path: str, words: str, edit: Any, *args: Any, **kwargs: Any) -> None:
    before = copy.deepcopy(document)
    with pytest.raises(EditError) as caught:
        edit(document, *args, **kwargs)
    assert caught.value.path == path, caught.value.lines()
    assert words in caught.value.message
    assert document == before


def _build(document: dict[str, Any]) -> None:
    """Open -> (Start work) -> In progress -> (Close) -> Done; In progress -> (Put back) -> Open."""
    wf.start_workflow(document, "ticket")
    wf.add_state(document, "ticket", "In progress", color="#f59e0b")
    wf.move_state(document, "ticket", "in_progress", 1)
    wf.add_transition(document, "ticket", "Start work", ["open"], "in_progress", roles=["agent"])
    wf.add_transition(document, "ticket", "Close", ["open", "in_progress"], "done", confirm="Close this ticket?")
    wf.add_transition(document, "ticket", "Put back", ["in_progress"], "open")
    wf.update_transition(document, "ticket", "close", guard=[{"field": "hours", "op": "gte", "value": "1"}],
                         guard_message="Enter the hours first.")
    wf.add_action(document, "ticket", "close", {"kind": "set_now", "field": "closed_at"})
    wf.add_action(document, "ticket", "close", {"kind": "set_user", "field": "closed_by"})
    wf.add_action(document, "ticket", "close", {"kind": "set_value", "field": "priority", "value": "low"})
    wf.add_action(document, "ticket", "close", {"kind": "note", "text": "Closed by {$user}."})


def test_start_adds_a_status_field_with_two_states(doc: dict[str, Any]) -> None:
    assert wf.start_workflow(doc, "ticket") == "status"
    status = doc["$defs"]["ticket"]["properties"]["status"]
    assert [o["const"] for o in status["anyOf"]] == ["open", "done"] and status["default"] == "open"
    assert "status" in doc["$defs"]["ticket"]["required"]  # every record is in a state
    flow = doc["$defs"]["ticket"]["x-crm-workflow"]
    assert flow["initial"] == "open" and flow["states"] == [{"value": "open"}, {"value": "done", "terminal": True}]
    # unfinished: nothing leaves Open and nothing reaches Done yet; the draft says so (and cannot be published)
    assert [(p.path, p.message) for p in _problems(doc)] == [
        (f"{FLOW}/states/0", "no transition leaves 'open'; mark it terminal or add a transition out of it"),
        (f"{FLOW}/states/1", "the state 'done' cannot be reached from 'open': no transition leads there")]


def test_start_on_an_existing_choice_field_uses_its_options(doc: dict[str, Any]) -> None:
    edits.update_field(doc, "ticket", "priority", {"default": "high"})
    assert wf.start_workflow(doc, "ticket", field="priority") == "priority"
    flow = doc["$defs"]["ticket"]["x-crm-workflow"]
    assert [s["value"] for s in flow["states"]] == ["low", "high"] and flow["initial"] == "high"
    assert "priority" in doc["$defs"]["ticket"]["required"]


def test_start_refusals(doc: dict[str, Any]) -> None:
    _refused(doc, f"{FLOW}/field", "must be a choice field", wf.start_workflow, "ticket", field="hours")
    _refused(doc, f"{FLOW}/field", "there is no field 'nope'", wf.start_workflow, "ticket", field="nope")
    _refused(doc, f"{FLOW}/states", "A state's title must be 1 to 200", wf.start_workflow, "ticket", states=["", "x"])
    _refused(doc, "$defs/nope", "there is no entity", wf.start_workflow, "nope")
    wf.start_workflow(doc, "ticket")
    _refused(doc, f"{FLOW}/field", "already has a workflow", wf.start_workflow, "ticket")


def test_a_built_workflow_loads_and_checks_clean(doc: dict[str, Any]) -> None:
    _build(doc)
    app = load_definition(doc)
    entity = app.entity("ticket")
    problems: list[Problem] = []
    check_workflow(FLOW, entity, app, problems)
    assert problems == []
    flow = parse_workflow(entity.workflow)
    assert flow is not None
    assert [s.value for s in flow.states] == ["open", "in_progress", "done"]
    assert [o.value for o in entity.field("status").options] == ["open", "in_progress", "done"]
    close = flow.transition("close")
    assert close is not None and close.from_ == ("open", "in_progress") and close.confirm == "Close this ticket?"
    assert close.guard == {"properties": {"hours": {"minimum": 1}}, "required": ["hours"]}
    assert [a.verb for a in close.actions] == ["set", "set", "set", "note"]
    assert close.actions[0].set == {"closed_at": {"$now": True}} and close.actions[2].set == {"priority": "low"}
    settings = wf.workflow_settings(doc, "ticket")
    assert settings is not None
    shown = next(t for t in settings["transitions"] if t["name"] == "close")
    assert shown["guard"] == [{"field": "hours", "op": "gte", "value": 1}]
    assert shown["actions"] == ["Set Closed at to now", "Set Closed by to the current user", "Set Priority to 'low'",
                                "Add a note: Closed by {$user}."]
    assert settings["states"][1] == {"value": "in_progress", "title": "In progress", "terminal": False,
                                     "color": "#f59e0b"}


def test_states_rename_recolour_terminal_and_initial(doc: dict[str, Any]) -> None:
    _build(doc)
    wf.update_state(doc, "ticket", "done", title="Closed", color="#16a34a")
    option = doc["$defs"]["ticket"]["properties"]["status"]["anyOf"][2]
    assert option == {"const": "done", "title": "Closed", "x-crm-color": "#16a34a"}  # the key stays
    wf.update_state(doc, "ticket", "done", color="")
    assert "x-crm-color" not in doc["$defs"]["ticket"]["properties"]["status"]["anyOf"][2]
    _refused(doc, f"{FLOW}/states/1/terminal", "Close, Put back leave it", wf.update_state, "ticket",
             "in_progress", terminal=True)
    _refused(doc, f"{FLOW}/states/1/color", "Colour must look like #2563eb", wf.update_state, "ticket",
             "in_progress", color="orange")
    _refused(doc, f"{FLOW}/states", "there is no state 'gone'", wf.update_state, "ticket", "gone", title="x")
    wf.set_initial(doc, "ticket", "in_progress")
    assert doc["$defs"]["ticket"]["properties"]["status"]["default"] == "in_progress"
    assert _problems(doc) == []


def test_removing_a_state_used_by_transitions_names_them(doc: dict[str, Any]) -> None:
    _build(doc)
    _refused(doc, f"{FLOW}/states/1", "used by the transitions Start work, Close, Put back", wf.remove_state,
             "ticket", "in_progress")
    _refused(doc, f"{FLOW}/states/0", "new records start in Open", wf.remove_state, "ticket", "open")
    wf.add_state(doc, "ticket", "Waiting")
    wf.remove_state(doc, "ticket", "waiting")
    assert "waiting" not in [o["const"] for o in doc["$defs"]["ticket"]["properties"]["status"]["anyOf"]]
    for name in ("start_work", "put_back"):
        wf.remove_transition(doc, "ticket", name)
    wf.update_transition(doc, "ticket", "close", sources=["open"])
    wf.remove_state(doc, "ticket", "in_progress")
    assert [s["value"] for s in doc["$defs"]["ticket"]["x-crm-workflow"]["states"]] == ["open", "done"]
    assert _problems(doc) == []


def test_transition_refusals_have_paths(doc: dict[str, Any]) -> None:
    _build(doc)
    at = f"{FLOW}/transitions/3"
    _refused(doc, f"{at}/from", "choose at least one state", wf.add_transition, "ticket", "Reopen", [], "open")
    _refused(doc, f"{at}/from", "Done is a terminal state", wf.add_transition, "ticket", "Reopen", ["done"], "open")
    _refused(doc, f"{at}/to", "there is no state 'nowhere'", wf.add_transition, "ticket", "Go", ["open"], "nowhere")
    _refused(doc, f"{at}/title", "title must be 1 to 200", wf.add_transition, "ticket", " ", ["open"], "done")
    _refused(doc, f"{at}/roles", "'Sales Rep' is not a role name", wf.add_transition, "ticket", "Go", ["open"],
             "done", roles=["Sales Rep"])
    _refused(doc, f"{FLOW}/transitions/1/guard/0/value", "Hours", wf.update_transition, "ticket", "close",
             guard=[{"field": "hours", "op": "gte", "value": "lots"}])
    _refused(doc, f"{FLOW}/transitions/1/guard/0/op", "cannot be used with Hours", wf.update_transition, "ticket",
             "close", guard=[{"field": "hours", "op": "contains", "value": "1"}])
    _refused(doc, f"{FLOW}/transitions/0/guardMessage", "add a rule first", wf.update_transition, "ticket",
             "start_work", guard_message="Why not")
    _refused(doc, f"{FLOW}/transitions", "there is no transition 'fly'", wf.remove_transition, "ticket", "fly")
    # the same title twice gets its own name; removing the rules drops their message
    assert wf.add_transition(doc, "ticket", "Close", ["in_progress"], "done") == "close_2"
    wf.update_transition(doc, "ticket", "close", guard=[])
    close = doc["$defs"]["ticket"]["x-crm-workflow"]["transitions"][1]
    assert "guard" not in close and "guardMessage" not in close


def test_action_refusals_have_paths(doc: dict[str, Any]) -> None:
    _build(doc)
    at = f"{FLOW}/transitions/0/actions/0"
    _refused(doc, f"{at}/set/status", "the state field", wf.add_action, "ticket", "start_work",
             {"kind": "set_value", "field": "status", "value": "done"})
    _refused(doc, f"{at}/set/hours", "only date and date-time fields", wf.add_action, "ticket", "start_work",
             {"kind": "set_now", "field": "hours"})
    _refused(doc, f"{at}/set/hours", "only text fields", wf.add_action, "ticket", "start_work",
             {"kind": "set_user", "field": "hours"})
    _refused(doc, f"{at}/set/hours", "Hours", wf.add_action, "ticket", "start_work",
             {"kind": "set_value", "field": "hours", "value": "two"})
    _refused(doc, f"{at}/set/priority", "Priority", wf.add_action, "ticket", "start_work",
             {"kind": "set_value", "field": "priority", "value": "urgent"})
    _refused(doc, f"{at}/set", "choose the field", wf.add_action, "ticket", "start_work", {"kind": "set_value"})
    _refused(doc, f"{at}/note", "The note must be 1 to 2000", wf.add_action, "ticket", "start_work",
             {"kind": "note", "text": ""})
    _refused(doc, f"{at}/webhook", "must start with https://", wf.add_action, "ticket", "start_work",
             {"kind": "webhook", "url": "ftp://example.com"})
    _refused(doc, f"{at}/kind", "choose what the action does", wf.add_action, "ticket", "start_work", {"kind": "x"})
    assert wf.add_action(doc, "ticket", "start_work", {"kind": "webhook", "url": "https://example.com/hook"}) == 0
    assert wf.add_action(doc, "ticket", "start_work", {"kind": "set_value", "field": "hours", "value": "2"}) == 1
    assert doc["$defs"]["ticket"]["x-crm-workflow"]["transitions"][0]["actions"][1] == {"set": {"hours": 2}}
    wf.remove_action(doc, "ticket", "start_work", 0)
    wf.remove_action(doc, "ticket", "start_work", 0)
    assert "actions" not in doc["$defs"]["ticket"]["x-crm-workflow"]["transitions"][0]
    _refused(doc, f"{FLOW}/transitions/0/actions", "there is no action 1", wf.remove_action, "ticket",
             "start_work", 0)


def test_unfinished_is_let_through_but_real_errors_are_not(doc: dict[str, Any]) -> None:
    wf.start_workflow(doc, "ticket")
    wf.add_state(doc, "ticket", "Waiting")  # unreachable and a dead end: both let through
    paths = {p.path for p in _problems(doc)}
    assert paths == {f"{FLOW}/states/0", f"{FLOW}/states/1", f"{FLOW}/states/2"}
    # the entity editor's edits (no tolerance) still work while those problems stand, and still refuse new ones
    edits.add_field(doc, "ticket", "text", "Notes")
    with pytest.raises(EditError, match="not a state"):
        edits.update_field(doc, "ticket", "status", {"options": [{"title": "Open"}, {"title": "Done"},
                                                                 {"title": "Waiting"}, {"title": "Extra"}]})


def test_removing_the_workflow_keeps_the_field(doc: dict[str, Any]) -> None:
    _build(doc)
    with pytest.raises(EditError, match="used by the workflow"):
        edits.remove_field(doc, "ticket", "hours")
    wf.remove_workflow(doc, "ticket")
    assert "x-crm-workflow" not in doc["$defs"]["ticket"] and wf.workflow_settings(doc, "ticket") is None
    assert doc["$defs"]["ticket"]["properties"]["status"]["x-crm-field"]["kind"] == "select"
    assert _problems(doc) == []
    _refused(doc, FLOW, "has no workflow yet", wf.add_state, "ticket", "Open")


def test_publish_then_the_transition_fires(db: Database) -> None:
    drafts = DraftService(db, ADA)
    draft = drafts.create("desk", "Desk")

    def unfinished(document: dict[str, Any]) -> None:
        edits.add_entity(document, "Ticket")
        wf.start_workflow(document, "ticket")

    draft, _ = drafts.edit("desk", draft.revision, unfinished)
    assert [p.path for p in drafts.problems("desk")] == [f"{FLOW}/states/0", f"{FLOW}/states/1"]
    with pytest.raises(DefinitionError):
        drafts.publish("desk", draft.revision)
    draft, name = drafts.edit("desk", draft.revision,
                              lambda document: wf.add_transition(document, "ticket", "Close", ["open"], "done"))
    draft, _ = drafts.edit("desk", draft.revision, lambda document: edits.add_field(document, "ticket", "datetime",
                                                                                      "Closed at"))
    draft, _ = drafts.edit("desk", draft.revision, lambda document: wf.add_action(
        document, "ticket", name, {"kind": "set_now", "field": "closed_at"}))
    assert drafts.problems("desk") == []
    drafts.publish("desk", draft.revision)
    assert AppService(db).current("desk").entity("ticket").workflow["initial"] == "open"
    records = RecordService(db, "desk", "ops")
    ticket = records.create("ticket", {"name": "Printer"})
    assert ticket["status"] == "open"
    closed = records.transition("ticket", ticket["id"], "close")
    assert closed["status"] == "done" and closed["closed_at"]


def test_records_that_exist_start_in_the_initial_state(db: Database) -> None:
    """A workflow added to a published entity with records: publishing fills the starting state into them."""
    drafts = DraftService(db, ADA)
    draft = drafts.create("desk", "Desk")
    draft, _ = drafts.edit("desk", draft.revision, lambda document: edits.add_entity(document, "Ticket"))
    drafts.publish("desk", draft.revision)
    records = RecordService(db, "desk", "ops")
    old = records.create("ticket", {"name": "Printer"})

    draft = drafts.get("desk")
    draft, _ = drafts.edit("desk", draft.revision, lambda document: wf.start_workflow(document, "ticket"))
    draft, _ = drafts.edit("desk", draft.revision,
                           lambda document: wf.add_transition(document, "ticket", "Close", ["open"], "done"))
    assert any(s.action == "fill_default" and s.field == "status" for s in drafts.plan("desk").steps)
    drafts.publish("desk", draft.revision)
    assert records.get("ticket", old["id"])["status"] == "open"
    assert records.transition("ticket", old["id"], "close")["status"] == "done"
