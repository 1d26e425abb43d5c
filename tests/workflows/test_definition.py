"""The workflow part of an app definition: the meta-schema and the checks against the entity, with JSON paths."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from engine.errors import DefinitionError
from engine.schema import load_definition, to_bytes
from engine.workflows.definition import parse_workflow

DEAL = "$defs/deal/x-crm-workflow"


def _problems(doc: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionError) as caught:
        load_definition(doc)
    return [(p.path, p.message) for p in caught.value.problems]


def _wf(doc: dict[str, Any], entity: str = "deal") -> dict[str, Any]:
    return doc["$defs"][entity]["x-crm-workflow"]


def _transition(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in _wf(doc)["transitions"] if t["name"] == name)


def test_the_sample_workflows_load_and_export_unchanged(sales_doc: dict[str, Any]) -> None:
    app = load_definition(sales_doc)
    deal = parse_workflow(app.entity("deal").workflow)
    assert deal is not None and deal.field == "stage" and deal.initial == "lead"
    assert [s.value for s in deal.states if s.terminal] == ["won", "lost"]
    assert deal.transition("win").roles == ("sales_manager",)
    again = load_definition(to_bytes(app))
    assert to_bytes(again) == to_bytes(app)
    assert again.entity("ticket").workflow == sales_doc["$defs"]["ticket"]["x-crm-workflow"]


def test_unknown_states_are_refused_with_their_path(sales_doc: dict[str, Any]) -> None:
    _transition(sales_doc, "qualify")["from"] = ["lede"]
    _transition(sales_doc, "negotiate")["to"] = "haggling"
    problems = _problems(sales_doc)
    assert (f"{DEAL}/transitions/0/from/0", "'lede' is not one of the states") in problems
    assert (f"{DEAL}/transitions/2/to", "'haggling' is not one of the states") in problems


def test_unreachable_states_are_refused(sales_doc: dict[str, Any]) -> None:
    _wf(sales_doc)["transitions"] = [t for t in _wf(sales_doc)["transitions"] if t["name"] != "negotiate"]
    assert (f"{DEAL}/states/3", "the state 'negotiation' cannot be reached from 'lead': no transition leads there") \
        in _problems(sales_doc)


def test_transitions_out_of_terminal_states_are_refused(sales_doc: dict[str, Any]) -> None:
    _transition(sales_doc, "lose")["from"].append("won")
    assert (f"{DEAL}/transitions/4/from/4", "'won' is a terminal state: nothing leaves it") in _problems(sales_doc)


def test_duplicate_names_are_refused(sales_doc: dict[str, Any]) -> None:
    wf = _wf(sales_doc)
    wf["transitions"].append(copy.deepcopy(wf["transitions"][0]))
    wf["states"].append({"value": "lead"})
    problems = _problems(sales_doc)
    assert (f"{DEAL}/transitions/5/name", "another transition is already named 'qualify'") in problems
    assert (f"{DEAL}/states/6/value", "the state 'lead' is listed twice") in problems


def test_states_must_be_the_options_of_a_select_field(sales_doc: dict[str, Any]) -> None:
    _wf(sales_doc)["states"][0]["value"] = "new"
    problems = _problems(sales_doc)
    assert any(p == f"{DEAL}/states/0/value" and m.startswith("'new' is not an option of Stage") for p, m in problems)
    assert (f"{DEAL}/states", "the option 'lead' of Stage is not a state; list every option as a state") in problems
    _wf(sales_doc)["states"][0]["value"] = "lead"
    _wf(sales_doc)["field"] = "title"
    assert (f"{DEAL}/field", "the state field 'title' must be a select, not text") in _problems(sales_doc)


def test_dead_ends_must_be_marked_terminal_and_defaults_agree(sales_doc: dict[str, Any]) -> None:
    _wf(sales_doc)["states"][4]["terminal"] = False  # won: nothing leaves it
    sales_doc["$defs"]["deal"]["properties"]["stage"]["default"] = "qualified"
    problems = _problems(sales_doc)
    assert (f"{DEAL}/states/4", "no transition leaves 'won'; mark it terminal or add a transition out of it") \
        in problems
    assert any(p == f"{DEAL}/initial" and "defaults to 'qualified'" in m for p, m in problems)


def test_actions_are_checked_against_the_fields(sales_doc: dict[str, Any]) -> None:
    win = _transition(sales_doc, "win")
    win["actions"][0]["set"] = {"stage": "won", "title": {"$now": True}, "probability": "lots", "nothing": 1}
    win["actions"][1]["values"].pop("product")
    win["actions"][1]["values"]["status"] = "paid"
    win["actions"][1]["values"]["total"] = {"$field": "title"}
    problems = _problems(sales_doc)
    base = f"{DEAL}/transitions/3/actions"
    assert (f"{base}/0/set/stage", "'stage' is the state field: it changes only through transitions") in problems
    assert (f"{base}/0/set/title", "$now fills only date and date-time fields; 'title' is text") in problems
    assert (f"{base}/0/set/nothing", "Deal has no field 'nothing'") in problems
    assert any(p == f"{base}/0/set/probability" for p, _ in problems)
    assert (f"{base}/1/values", "Order requires 'product'; give it a value here") in problems
    assert any(p == f"{base}/1/values/status" and "initial state" in m for p, m in problems)
    assert (f"{base}/1/values/total/$field", "'title' is text but 'total' is currency; copy between fields of the"
                                             " same kind") in problems


def test_action_shapes_and_automations_are_checked_by_the_meta_schema(sales_doc: dict[str, Any]) -> None:
    win = _transition(sales_doc, "win")
    win["actions"].append({"webhook": "ftp://example.com/x"})
    problems = _problems(sales_doc)
    assert problems and problems[0][0] == f"{DEAL}/transitions/3/actions/3/webhook"
    win["actions"][-1] = {"shout": "hello"}
    problems = _problems(sales_doc)
    assert problems[0][0] == f"{DEAL}/transitions/3/actions/3" and "set, create, note, webhook" in problems[0][1]
    win["actions"].pop()
    _wf(sales_doc)["automations"][0]["on"] = "time"  # a time rule without "after"
    assert (f"{DEAL}/automations/0", "an automation on \"time\" needs 'after' (a delay)") in _problems(sales_doc)


def test_guards_and_conditions_name_real_fields(sales_doc: dict[str, Any]) -> None:
    _transition(sales_doc, "win")["guard"] = {"required": ["amunt"]}
    _wf(sales_doc, "ticket")["automations"][1]["condition"]["properties"]["statsu"] = {"const": "open"}
    problems = _problems(sales_doc)
    assert (f"{DEAL}/transitions/3/guard/required", "there is no field 'amunt'") in problems
    assert ("$defs/ticket/x-crm-workflow/automations/1/condition/properties/statsu", "there is no field 'statsu'") \
        in problems


def test_time_rules_count_from_a_date_field_or_the_state(sales_doc: dict[str, Any]) -> None:
    rule = _wf(sales_doc, "ticket")["automations"][1]
    rule["after"] = {"hours": 0, "since": "subject"}
    problems = _problems(sales_doc)
    path = "$defs/ticket/x-crm-workflow/automations/1/after"
    assert (path, "give a delay of at least one minute (days, hours or minutes)") in problems
    assert any(p == f"{path}/since" and "'subject' is not a date" in m for p, m in problems)


def test_an_entity_may_have_automations_without_states(sales_doc: dict[str, Any]) -> None:
    sales_doc["$defs"]["customer"]["x-crm-workflow"] = {"automations": [
        {"name": "welcome", "on": "created", "actions": [{"note": "Welcome, {name}!"}]}]}
    load_definition(sales_doc)
    sales_doc["$defs"]["customer"]["x-crm-workflow"]["initial"] = "new"  # states need field, states, transitions
    assert _problems(sales_doc)[0][0] == "$defs/customer/x-crm-workflow"
