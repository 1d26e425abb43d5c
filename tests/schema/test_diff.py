"""The plain-words difference between two versions of a definition."""

from __future__ import annotations

import copy
from typing import Any

from engine.schema import load_definition
from engine.schema.diff import diff_apps


def test_renames_additions_removals_and_settings(mini_doc: dict[str, Any]) -> None:
    old = load_definition(mini_doc)
    new_doc = copy.deepcopy(mini_doc)
    company = new_doc["$defs"]["company"]["properties"]
    company["homepage"] = company.pop("website")
    company["homepage"]["x-crm-field"]["renamedFrom"] = "website"
    company["homepage"]["title"] = "Homepage"
    company["city"] = {"title": "City", "type": "string", "x-crm-field": {"kind": "text"}}
    customer = new_doc["$defs"]["customer"]
    customer["properties"].pop("notes")
    customer["required"] = [*customer.get("required", []), "email"]
    customer["title"] = "Client"
    changes = [c.describe() for c in diff_apps(old, load_definition(new_doc))]
    assert changes == [
        "$defs/company/properties/homepage: renamed from 'website'",
        "$defs/company/properties/homepage/title: \"Website\" -> \"Homepage\"",
        "$defs/company/properties/city: added \"City\"",
        "$defs/customer/properties/email/required: false -> true",
        "$defs/customer/properties/notes: removed (was \"Notes\")",
        "$defs/customer/title: \"Customer\" -> \"Client\"",
    ]


def test_same_definition_has_no_changes(sales_doc: dict[str, Any]) -> None:
    app = load_definition(sales_doc)
    assert diff_apps(app, load_definition(copy.deepcopy(sales_doc))) == []


def test_workflow_changes_are_listed(sales_doc: dict[str, Any]) -> None:
    old = load_definition(sales_doc)
    sales_doc["$defs"]["deal"]["x-crm-workflow"]["transitions"][0]["title"] = "Qualify lead"
    (change,) = diff_apps(old, load_definition(sales_doc))
    assert change.describe() == '$defs/deal/x-crm-workflow/transitions/qualify/title: "Qualify" -> "Qualify lead"'


def test_workflow_states_and_transitions_are_matched_by_name(sales_doc: dict[str, Any]) -> None:
    """Removing a transition is one change, not a shift of every later one; a workflow added or removed whole is
    summarised by its states' and transitions' titles."""
    old = load_definition(sales_doc)
    flow = sales_doc["$defs"]["ticket"]["x-crm-workflow"]
    gone = flow["transitions"].pop(2)  # resume: waiting on customer -> in progress
    changes = [c.describe() for c in diff_apps(old, load_definition(sales_doc))]
    assert changes == [f'$defs/ticket/x-crm-workflow/transitions/{gone["name"]}: removed (was "{gone["title"]}")']

    without = copy.deepcopy(sales_doc)
    del without["$defs"]["sales_order"]["x-crm-workflow"]
    (change,) = diff_apps(load_definition(without), load_definition(sales_doc))
    assert change.path == "$defs/sales_order/x-crm-workflow" and change.what == "added"
    assert str(change.after).startswith("states Pending, Paid") and "transitions " in str(change.after)


def test_cli_diff_between_versions(tmp_path: Any, mini_doc: dict[str, Any], capsys: Any) -> None:
    from engine.cli import main
    from engine.storage.apps import AppService
    from engine.storage.database import Database

    db = Database(f"sqlite:///{tmp_path}/crm.db")
    db.init()
    AppService(db).apply(mini_doc)
    mini_doc["$defs"]["company"]["title"] = "Firm"
    AppService(db).apply(mini_doc)
    assert main(["--db", db.url, "app", "diff", "mini", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["app mini: version 1 -> 2",
                                                     '  $defs/company/title: "Company" -> "Firm"']
    db.dispose()
