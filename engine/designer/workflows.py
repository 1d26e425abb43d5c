"""Edits to an entity's workflow (`x-crm-workflow`), as the designer's workflow editor makes them: start one on a
choice field, add and arrange states, add transitions with their guard (rules, as for visibility conditions) and
actions. Like `edits`, each function changes the document in place or raises `EditError(path, message)` and changes
nothing.

States are the options of the state field: a state's title and colour live on its option (forms, lists and the board
show the same words), its value key is made from its title, and adding, renaming, reordering or removing a state
does the same to the option.

A workflow is built step by step, so while it is unfinished a new state may not be reachable yet, or have no way
out. Those two problems (at `$defs/{entity}/x-crm-workflow/states/{i}`) are let through by these edits; they stay
in the draft's problem list and block publishing until a transition is added. Every other problem refuses the edit.
Removing a state that transitions still use is refused, naming them: the designer removes or changes those first."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from engine.designer.conditions import condition_from_rules, rules_from_condition
from engine.designer.document import EditError, commit, entity_doc, field_model
from engine.designer.fields import new_field
from engine.designer.keys import KEY_PATTERN, key_from_label
from engine.errors import Problem
from engine.schema.kinds import ConversionError, kind_of
from engine.schema.validation import field_errors
from engine.storage.writer import jsonable
from engine.workflows.definition import NOW_KINDS, USER_KINDS

__all__ = [
    "ACTION_KINDS", "action_words", "add_action", "add_state", "add_transition", "move_state", "remove_action",
    "remove_state", "remove_transition", "remove_workflow", "set_initial", "start_workflow", "unfinished",
    "update_state", "update_transition", "workflow_settings",
]

#: What an action can do, in the designer's words.
ACTION_KINDS: dict[str, str] = {
    "set_value": "Set a field to a value", "set_now": "Set a date field to now",
    "set_user": "Set a text field to the current user", "note": "Add a note to the history",
    "webhook": "Send a webhook",
}
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_UNSETTABLE = ("autonumber", "relation_many")


def _path(entity: str) -> str:
    return f"$defs/{entity}/x-crm-workflow"


def unfinished(entity: str) -> Callable[[Problem], bool]:
    """Whether a problem only says the entity's workflow is not finished yet: a state no transition reaches, or one
    with no way out (the checks report those at the state itself, and nothing else there)."""
    pattern = re.compile(rf"^{re.escape(_path(entity))}/states/\d+$")
    return lambda problem: bool(pattern.match(problem.path))


def _commit(doc: dict[str, Any], entity: str, change: Callable[[dict[str, Any]], Any]) -> Any:
    return commit(doc, change, tolerate=unfinished(entity))


def _text(path: str, value: Any, what: str, most: int = 200) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > most:
        raise EditError(path, f"{what} must be 1 to {most} characters")
    return value.strip()


def _flow(doc: dict[str, Any], entity: str) -> dict[str, Any]:
    flow = entity_doc(doc, entity).get("x-crm-workflow")
    if not isinstance(flow, dict) or "field" not in flow:
        raise EditError(_path(entity), f"'{entity}' has no workflow yet; start one first")
    return flow


def _options(doc: dict[str, Any], entity: str) -> list[dict[str, Any]]:
    """The state field's options (the `anyOf` list, changed in place)."""
    flow = _flow(doc, entity)
    prop = entity_doc(doc, entity)["properties"][flow["field"]]
    return prop.setdefault("anyOf", [])


def _state_index(doc: dict[str, Any], entity: str, value: str) -> int:
    states = _flow(doc, entity)["states"]
    for i, s in enumerate(states):
        if s["value"] == value:
            return i
    raise EditError(f"{_path(entity)}/states", f"there is no state '{value}'")


def _titles(doc: dict[str, Any], entity: str) -> dict[str, str]:
    """State value -> its title (the state's own, else its option's, else the value)."""
    flow = _flow(doc, entity)
    options = {o.get("const"): o.get("title") for o in _options(doc, entity)}
    return {s["value"]: s.get("title") or options.get(s["value"]) or s["value"] for s in flow["states"]}


def _color(path: str, color: Any) -> str | None:
    if color in (None, ""):
        return None
    if not isinstance(color, str) or not _COLOUR.match(color):
        raise EditError(path, "Colour must look like #2563eb")
    return color


# --- the workflow --------------------------------------------------------------------------------------------------
def start_workflow(doc: dict[str, Any], entity: str, field: str | None = None, title: str = "Status",
                   states: Sequence[str] = ("Open", "Done")) -> str:
    """Give an entity a workflow; the state field's key. `field`: an existing choice field whose options become
    the states (starting in its default, else its first option); without it a new choice field `title` is added
    with `states` (titles) as its options, starting in the first and ending in the last (marked terminal). The
    state field becomes required with the starting state as its default, so records that exist when the workflow
    is published start there."""
    path = _path(entity)
    ent = entity_doc(doc, entity)
    if ent.get("x-crm-workflow", {}).get("field"):
        raise EditError(f"{path}/field", f"{ent.get('title') or entity} already has a workflow")
    props = ent.get("properties", {})
    if field:
        prop = props.get(field)
        if not isinstance(prop, dict):
            raise EditError(f"{path}/field", f"there is no field '{field}' in '{entity}'")
        if prop["x-crm-field"]["kind"] != "select":
            raise EditError(f"{path}/field", f"the state field must be a choice field; {prop['title']} is not one")
    else:
        title = _text(f"{path}/field", title, "The state field's title")
        names = [_text(f"{path}/states", s, "A state's title") for s in states]
        if not names:
            raise EditError(f"{path}/states", "give at least one state")

    def change(work: dict[str, Any]) -> str:
        ent = entity_doc(work, entity)
        key = field
        if key is None:
            key = key_from_label(title, ent["properties"])
            new_field(work, entity, key, "select", title)
            values: list[str] = []
            for name in names:
                values.append(key_from_label(name, values))
            prop = ent["properties"][key]
            prop["anyOf"] = [{"const": v, "title": n} for v, n in zip(values, names, strict=True)]
            prop["default"] = values[0]
            prop["x-crm-field"]["indexed"] = True
            sections = ent.get("x-crm-form", {}).get("sections")
            if sections:
                sections[0]["fields"].insert(0, key)
        prop = ent["properties"][key]
        values = [o["const"] for o in prop.get("anyOf", [])]
        initial = prop.get("default") if prop.get("default") in values else values[0]
        # Every record of a workflow entity is in a state: the field is required and defaults to the starting
        # state, so publishing fills that state into the records that exist ("fill empty ... with its default").
        prop["default"] = initial
        if key not in ent.setdefault("required", []):
            ent["required"].append(key)
        states: list[dict[str, Any]] = [{"value": v} for v in values]
        if field is None and len(states) > 1:
            states[-1]["terminal"] = True  # "Done": where the records of a new workflow end
        ent["x-crm-workflow"] = {"field": key, "initial": initial, "states": states, "transitions": [],
                                 **ent.get("x-crm-workflow", {})}
        return key

    return _commit(doc, entity, change)


def remove_workflow(doc: dict[str, Any], entity: str) -> None:
    """Remove the entity's states and transitions (its automations and board stay when it has automations); the
    state field stays, as an ordinary choice field."""
    _flow(doc, entity)

    def change(work: dict[str, Any]) -> None:
        ent = entity_doc(work, entity)
        rest = {k: v for k, v in ent["x-crm-workflow"].items()
                if k not in ("field", "initial", "states", "transitions", "board")}
        if rest.get("automations"):
            ent["x-crm-workflow"] = rest
        else:
            del ent["x-crm-workflow"]

    commit(doc, change)


def set_initial(doc: dict[str, Any], entity: str, value: str) -> None:
    """Where new records start; the state field's default follows."""
    _state_index(doc, entity, value)

    def change(work: dict[str, Any]) -> None:
        flow = _flow(work, entity)
        flow["initial"] = value
        entity_doc(work, entity)["properties"][flow["field"]]["default"] = value

    _commit(doc, entity, change)


# --- states --------------------------------------------------------------------------------------------------------
def add_state(doc: dict[str, Any], entity: str, title: str, color: str | None = None, terminal: bool = False) -> str:
    """Add a state at the end (and its option); its value key, made from the title."""
    path = f"{_path(entity)}/states"
    title = _text(path, title, "A state's title")
    color = _color(f"{path}/color", color)

    def change(work: dict[str, Any]) -> str:
        flow, options = _flow(work, entity), _options(work, entity)
        value = key_from_label(title, [s["value"] for s in flow["states"]] + [o.get("const") for o in options])
        options.append({"const": value, "title": title, **({"x-crm-color": color} if color else {})})
        flow["states"].append({"value": value, **({"terminal": True} if terminal else {})})
        return value

    return _commit(doc, entity, change)


def update_state(doc: dict[str, Any], entity: str, value: str, title: str | None = None, color: str | None = None,
                 terminal: bool | None = None) -> None:
    """Change a state's title, colour ("" clears it) or whether it is terminal (None leaves a setting as it is).
    Its value key stays: records store it."""
    i = _state_index(doc, entity, value)
    path = f"{_path(entity)}/states/{i}"
    if title is not None:
        title = _text(f"{path}/title", title, "A state's title")
    new_color = _color(f"{path}/color", color)
    if terminal:
        leaving = [t.get("title") or t["name"] for t in _flow(doc, entity)["transitions"] if value in t["from"]]
        if leaving:
            raise EditError(f"{path}/terminal", f"nothing may leave a terminal state, but {', '.join(leaving)}"
                                                f" {'leaves' if len(leaving) == 1 else 'leave'} it; remove"
                                                f" {'that transition' if len(leaving) == 1 else 'those'} first")

    def change(work: dict[str, Any]) -> None:
        state = _flow(work, entity)["states"][i]
        option = next((o for o in _options(work, entity) if o.get("const") == value), None)
        if option is None:
            option = {"const": value}
            _options(work, entity).append(option)
        if title is not None:
            option["title"] = title
            state.pop("title", None)  # the option's title is the one every page shows
        if color is not None:
            state.pop("color", None)
            if new_color:
                option["x-crm-color"] = new_color
            else:
                option.pop("x-crm-color", None)
        if terminal is not None:
            if terminal:
                state["terminal"] = True
            else:
                state.pop("terminal", None)

    _commit(doc, entity, change)


def move_state(doc: dict[str, Any], entity: str, value: str, index: int) -> None:
    """Move a state (and its option) to position `index` (0 = first; clamped to the ends)."""
    _state_index(doc, entity, value)

    def change(work: dict[str, Any]) -> None:
        flow, options = _flow(work, entity), _options(work, entity)
        states = [s for s in flow["states"] if s["value"] != value]
        moved = next(s for s in flow["states"] if s["value"] == value)
        states.insert(max(0, min(index, len(states))), moved)
        flow["states"] = states
        order = {s["value"]: n for n, s in enumerate(states)}
        options.sort(key=lambda o: order.get(o.get("const"), len(order)))

    _commit(doc, entity, change)


def remove_state(doc: dict[str, Any], entity: str, value: str) -> None:
    """Remove a state and its option. Refused for the initial state, the last state, and while transitions lead to
    or from it (they are named). Records in that state keep their value until you publish: the plan says what
    happens to them."""
    i = _state_index(doc, entity, value)
    path = f"{_path(entity)}/states/{i}"
    flow = _flow(doc, entity)
    title = _titles(doc, entity)[value]
    if len(flow["states"]) == 1:
        raise EditError(path, "a workflow needs at least one state")
    if flow.get("initial") == value:
        raise EditError(path, f"new records start in {title}; choose another starting state first")
    using = [t.get("title") or t["name"] for t in flow["transitions"] if value in t["from"] or t["to"] == value]
    if using:
        raise EditError(path, f"{title} is used by the transition{'s' if len(using) > 1 else ''} {', '.join(using)};"
                              " remove or change them first")

    def change(work: dict[str, Any]) -> None:
        flow = _flow(work, entity)
        flow["states"] = [s for s in flow["states"] if s["value"] != value]
        prop = entity_doc(work, entity)["properties"][flow["field"]]
        prop["anyOf"] = [o for o in prop["anyOf"] if o.get("const") != value]

    _commit(doc, entity, change)


# --- transitions ---------------------------------------------------------------------------------------------------
def _transition_index(doc: dict[str, Any], entity: str, name: str) -> int:
    for i, t in enumerate(_flow(doc, entity)["transitions"]):
        if t["name"] == name:
            return i
    raise EditError(f"{_path(entity)}/transitions", f"there is no transition '{name}'")


def _ends(doc: dict[str, Any], entity: str, path: str, sources: Sequence[str], to: str) -> list[str]:
    """The checked from-states (known, not terminal, in the workflow's order) of a transition to `to`."""
    flow = _flow(doc, entity)
    titles = _titles(doc, entity)
    if not sources:
        raise EditError(f"{path}/from", "choose at least one state the transition starts from")
    for source in sources:
        if source not in titles:
            raise EditError(f"{path}/from", f"there is no state '{source}'")
        if any(s["value"] == source and s.get("terminal") for s in flow["states"]):
            raise EditError(f"{path}/from", f"{titles[source]} is a terminal state: nothing leaves it")
    if to not in titles:
        raise EditError(f"{path}/to", f"choose the state the transition leads to; there is no state '{to}'")
    return [v for v in titles if v in sources]


def _roles(path: str, roles: Sequence[str]) -> list[str]:
    for role in roles:
        if not isinstance(role, str) or not KEY_PATTERN.match(role):
            raise EditError(f"{path}/roles", f"'{role}' is not a role name")
    return list(dict.fromkeys(roles))


def add_transition(doc: dict[str, Any], entity: str, title: str, sources: Sequence[str], to: str,
                   roles: Sequence[str] = (), confirm: str | None = None) -> str:
    """Add a transition from `sources` to `to` (only `roles` may fire it; nobody listed: anyone who may edit the
    record); its name key, made from the title."""
    flow = _flow(doc, entity)
    path = f"{_path(entity)}/transitions/{len(flow['transitions'])}"
    title = _text(f"{path}/title", title, "A transition's title")
    from_ = _ends(doc, entity, path, sources, to)
    roles = _roles(path, roles)
    confirm = _text(f"{path}/confirm", confirm, "The confirmation question", 500) if confirm else None

    def change(work: dict[str, Any]) -> str:
        flow = _flow(work, entity)
        name = key_from_label(title, [t["name"] for t in flow["transitions"]])
        t: dict[str, Any] = {"name": name, "title": title, "from": from_, "to": to}
        if roles:
            t["roles"] = roles
        if confirm:
            t["confirm"] = confirm
        flow["transitions"].append(t)
        return name

    return _commit(doc, entity, change)


def update_transition(doc: dict[str, Any], entity: str, name: str, *, title: str | None = None,
                      sources: Sequence[str] | None = None, to: str | None = None, roles: Sequence[str] | None = None,
                      confirm: str | None = None, guard: list[dict[str, Any]] | None = None,
                      guard_message: str | None = None) -> None:
    """Change a transition (None leaves a setting as it is; "" clears the confirmation and the guard message).
    `guard`: rules as for visibility conditions ({"field", "op", "value"}, all must hold); [] removes the guard.
    Its name stays: automations and the history name it."""
    i = _transition_index(doc, entity, name)
    path = f"{_path(entity)}/transitions/{i}"
    current = _flow(doc, entity)["transitions"][i]
    new: dict[str, Any] = {}
    if title is not None:
        new["title"] = _text(f"{path}/title", title, "A transition's title")
    if sources is not None or to is not None:
        new["to"] = to if to is not None else current["to"]
        new["from"] = _ends(doc, entity, path, sources if sources is not None else current["from"], new["to"])
    if roles is not None:
        new["roles"] = _roles(path, roles)
    if confirm is not None:
        new["confirm"] = _text(f"{path}/confirm", confirm, "The confirmation question", 500) if confirm else None
    if guard is not None:
        new["guard"] = condition_from_rules(doc, entity, guard, at=f"{path}/guard") or None
    if guard_message is not None:
        new["guardMessage"] = _text(f"{path}/guardMessage", guard_message, "The guard message", 500) \
            if guard_message else None
    has_guard = new["guard"] if "guard" in new else current.get("guard")
    if not has_guard and new.get("guardMessage", current.get("guardMessage")):
        if "guard" in new and current.get("guard"):
            new["guardMessage"] = None  # the rules were removed: their message goes with them
        else:
            raise EditError(f"{path}/guardMessage", "add a rule first: the message says why a rule is not met")

    def change(work: dict[str, Any]) -> None:
        t = _flow(work, entity)["transitions"][i]
        for key, value in new.items():
            if value in (None, []):
                t.pop(key, None)
            else:
                t[key] = value

    _commit(doc, entity, change)


def remove_transition(doc: dict[str, Any], entity: str, name: str) -> None:
    """Remove a transition. Refused while an automation runs on it (named)."""
    i = _transition_index(doc, entity, name)
    autos = [a.get("title") or a["name"] for a in _flow(doc, entity).get("automations", [])
             if name in a.get("transitions", [])]
    if autos:
        raise EditError(f"{_path(entity)}/transitions/{i}", f"the automation{'s' if len(autos) > 1 else ''}"
                                                            f" {', '.join(autos)} run{'' if len(autos) > 1 else 's'}"
                                                            " on this transition; change them first")
    _commit(doc, entity, lambda work: _flow(work, entity)["transitions"].pop(i))


# --- actions -------------------------------------------------------------------------------------------------------
def _literal(doc: dict[str, Any], entity: str, key: str, value: Any, where: str) -> Any:
    """A typed value as the field stores it, in JSON; EditError naming the field when it does not fit."""
    prop = entity_doc(doc, entity)["properties"][key]
    field = field_model(key, prop)
    if value is None or value == "":
        raise EditError(where, f"type the value to put into {field.title}")
    try:
        coerced = kind_of(field.kind).coerce(field, value)
    except ConversionError as exc:
        raise EditError(where, f"{field.title}: {exc}") from None
    problems = field_errors(field, coerced)
    if problems:
        raise EditError(where, f"{field.title}: {problems[0]}")
    out = jsonable(coerced)
    return out if isinstance(out, str | int | float | bool | list) else str(out)


def _action(doc: dict[str, Any], entity: str, spec: dict[str, Any], path: str) -> dict[str, Any]:
    """The dialect's action for the designer's {"kind": one of ACTION_KINDS, "field", "value", "text", "url"}."""
    kind = spec.get("kind")
    if kind == "note":
        return {"note": _text(f"{path}/note", spec.get("text"), "The note", 2000)}
    if kind == "webhook":
        url = _text(f"{path}/webhook", spec.get("url"), "The web address", 2000)
        if not re.match(r"^https?://[^\s/]+", url):
            raise EditError(f"{path}/webhook", "the web address must start with https:// (or http://)")
        return {"webhook": url}
    if kind not in ("set_value", "set_now", "set_user"):
        raise EditError(f"{path}/kind", f"choose what the action does ({', '.join(ACTION_KINDS.values())})")
    key = spec.get("field")
    flow, props = _flow(doc, entity), entity_doc(doc, entity)["properties"]
    where = f"{path}/set/{key}"
    if not isinstance(key, str) or key not in props:
        raise EditError(f"{path}/set", "choose the field the action sets")
    field_kind, title = props[key]["x-crm-field"]["kind"], props[key]["title"]
    if key == flow["field"]:
        raise EditError(where, f"{title} is the state field: it changes only through transitions")
    if field_kind in _UNSETTABLE:
        raise EditError(where, f"{title} cannot be set by an action")
    if kind == "set_now":
        if field_kind not in NOW_KINDS:
            raise EditError(where, f"only date and date-time fields can be set to now; {title} is not one")
        return {"set": {key: {"$now": True}}}
    if kind == "set_user":
        if field_kind not in USER_KINDS:
            raise EditError(where, f"only text fields can hold the current user; {title} is not one")
        return {"set": {key: {"$user": True}}}
    return {"set": {key: _literal(doc, entity, key, spec.get("value"), where)}}


def add_action(doc: dict[str, Any], entity: str, name: str, spec: dict[str, Any]) -> int:
    """Add an action at the end of a transition's actions (they run in order); its position."""
    i = _transition_index(doc, entity, name)
    actions = _flow(doc, entity)["transitions"][i].get("actions", [])
    action = _action(doc, entity, spec, f"{_path(entity)}/transitions/{i}/actions/{len(actions)}")

    def change(work: dict[str, Any]) -> int:
        t = _flow(work, entity)["transitions"][i]
        t.setdefault("actions", []).append(action)
        return len(t["actions"]) - 1

    return int(_commit(doc, entity, change))


def remove_action(doc: dict[str, Any], entity: str, name: str, index: int) -> None:
    """Remove a transition's action at `index`."""
    i = _transition_index(doc, entity, name)
    actions = _flow(doc, entity)["transitions"][i].get("actions", [])
    if not 0 <= index < len(actions):
        raise EditError(f"{_path(entity)}/transitions/{i}/actions", f"there is no action {index + 1}")

    def change(work: dict[str, Any]) -> None:
        t = _flow(work, entity)["transitions"][i]
        del t["actions"][index]
        if not t["actions"]:
            del t["actions"]

    _commit(doc, entity, change)


# --- reading -------------------------------------------------------------------------------------------------------
def action_words(doc: dict[str, Any], entity: str, action: dict[str, Any]) -> str:
    """An action in plain words: "Set Closed at to now", "Add a note: Won by {$user}"."""
    props = entity_doc(doc, entity).get("properties", {})
    if "note" in action:
        return f"Add a note: {action['note']}"
    if "webhook" in action:
        return f"Send a webhook to {action['webhook']}"
    if "create" in action:
        target = doc.get("$defs", {}).get(action["create"], {})
        return f"Create a new {target.get('title') or action['create']}"
    parts = []
    for key, value in (action.get("set") or {}).items():
        title = props.get(key, {}).get("title") or key
        if isinstance(value, dict):
            word = {"$now": "now", "$user": "the current user"}.get(next(iter(value)), "")
            if "$field" in value:
                word = f"the value of {props.get(value['$field'], {}).get('title') or value['$field']}"
        else:
            word = f"'{value}'" if value is not None else "empty"
        parts.append(f"{title} to {word}")
    return "Set " + ", ".join(parts)


def workflow_settings(doc: dict[str, Any], entity: str) -> dict[str, Any] | None:
    """The workflow in the designer's words (None when the entity has none): the state field, the initial state,
    states with title, colour and terminal, transitions with their guard as rules (None: a hand-written guard the
    rule builder cannot show) and their actions in words."""
    flow = entity_doc(doc, entity).get("x-crm-workflow")
    if not isinstance(flow, dict) or "field" not in flow:
        return None
    prop = entity_doc(doc, entity)["properties"].get(flow["field"], {})
    options = {o.get("const"): o for o in prop.get("anyOf", [])}
    titles = _titles(doc, entity)
    states = [{"value": s["value"], "title": titles[s["value"]], "terminal": bool(s.get("terminal")),
               "color": s.get("color") or options.get(s["value"], {}).get("x-crm-color") or ""}
              for s in flow.get("states", [])]
    transitions = [{
        "name": t["name"], "title": t.get("title") or t["name"].replace("_", " ").capitalize(),
        "from": list(t["from"]), "to": t["to"], "from_titles": [titles.get(v, v) for v in t["from"]],
        "to_title": titles.get(t["to"], t["to"]), "roles": list(t.get("roles", [])), "confirm": t.get("confirm", ""),
        "guard": rules_from_condition(t["guard"]) if "guard" in t else [], "guard_schema": t.get("guard"),
        "guard_message": t.get("guardMessage", ""),
        "actions": [action_words(doc, entity, a) for a in t.get("actions", [])],
    } for t in flow.get("transitions", [])]
    return {"field": flow["field"], "field_title": prop.get("title") or flow["field"], "initial": flow.get("initial"),
            "states": states, "transitions": transitions}
