"""The workflow of an entity (`x-crm-workflow`): its typed model, and the checks the meta-schema cannot express.

The meta-schema (engine/schema/dialect.schema.json, `$defs/workflow`) settles the shape; `check` settles what needs
the entity around it: states that are options of the state field, transitions between known states, no way out of a
terminal state, every state reachable from the initial one, unique names, actions that name real fields with values
those fields accept. Every problem carries its JSON path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from engine.errors import Problem
from engine.schema.model import App, Entity, Field, Option

__all__ = ["Action", "Automation", "State", "Transition", "Workflow", "check_workflow", "parse_workflow"]

#: Fields an action may not set: the engine's own, and kinds whose values the engine makes.
_UNSETTABLE_KINDS = ("autonumber", "relation_many")
#: Kinds `{"$now": true}` fills, and kinds `{"$user": true}` fills (the acting user's email).
NOW_KINDS = ("date", "datetime")
USER_KINDS = ("text",)
#: Record fields a time rule can count from besides the entity's date/datetime fields.
SINCE_SYSTEM = ("created_at", "updated_at")
SINCE_STATE = "$state"


class State(msgspec.Struct, frozen=True):
    """One state of the workflow (a value of the state field)."""

    value: str
    title: str | None = None
    color: str | None = None
    terminal: bool = False


class Action(msgspec.Struct, frozen=True, omit_defaults=True):
    """One thing done by a transition or an automation: exactly one of set, create, note, webhook."""

    set: dict[str, Any] | None = None
    create: str | None = None
    values: dict[str, Any] | None = None
    note: str | None = None
    webhook: str | None = None

    @property
    def verb(self) -> str:
        """Which action this is."""
        for verb in ("set", "create", "note", "webhook"):
            if getattr(self, verb) is not None:
                return verb
        raise ValueError("an action without a verb")


class Transition(msgspec.Struct, frozen=True):
    """A named move from some states to one state."""

    name: str
    from_: tuple[str, ...] = msgspec.field(name="from")
    to: str = ""
    title: str | None = None
    roles: tuple[str, ...] = ()
    guard: dict[str, Any] | bool | None = None
    guard_message: str | None = msgspec.field(default=None, name="guardMessage")
    confirm: str | None = None
    actions: tuple[Action, ...] = ()

    @property
    def label(self) -> str:
        """The button text."""
        return self.title or self.name.replace("_", " ").capitalize()


class After(msgspec.Struct, frozen=True):
    """How long after `since` a time rule fires."""

    days: int = 0
    hours: int = 0
    minutes: int = 0
    since: str | None = None

    @property
    def seconds(self) -> int:
        """The delay in seconds."""
        return ((self.days * 24 + self.hours) * 60 + self.minutes) * 60


class Automation(msgspec.Struct, frozen=True):
    """A rule: on an event (created, changed, transition, time), if the condition holds, run the actions."""

    name: str
    on: str
    actions: tuple[Action, ...]
    title: str | None = None
    fields: tuple[str, ...] = ()
    transitions: tuple[str, ...] = ()
    after: After | None = None
    condition: dict[str, Any] | bool | None = None


class Board(msgspec.Struct, frozen=True):
    """How the board (kanban) shows cards: the fields on a card and the field summed per column."""

    card_fields: tuple[str, ...] = msgspec.field(default=(), name="cardFields")
    sum: str | None = None


class Workflow(msgspec.Struct, frozen=True):
    """An entity's workflow: optionally a state machine (field, initial, states, transitions), and automations."""

    field: str | None = None
    initial: str | None = None
    states: tuple[State, ...] = ()
    transitions: tuple[Transition, ...] = ()
    automations: tuple[Automation, ...] = ()
    board: Board | None = None

    @property
    def has_states(self) -> bool:
        """Whether this workflow is a state machine (not only automations)."""
        return self.field is not None

    def state(self, value: str) -> State | None:
        """The state with this value."""
        return next((s for s in self.states if s.value == value), None)

    def transition(self, name: str) -> Transition | None:
        """The transition with this name."""
        return next((t for t in self.transitions if t.name == name), None)

    def leaving(self, state: str | None) -> list[Transition]:
        """The transitions that can start from `state`."""
        return [t for t in self.transitions if state in t.from_]

    def automations_on(self, event: str) -> list[Automation]:
        """The automations of one event kind."""
        return [a for a in self.automations if a.on == event]


def parse_workflow(raw: Mapping[str, Any] | None) -> Workflow | None:
    """The typed workflow of an already checked `x-crm-workflow` (None when there is none)."""
    if not raw:
        return None
    return msgspec.convert(raw, Workflow)


def _option(entity: Entity, workflow: Workflow, value: str) -> Option | None:
    """The state field's option for a state value."""
    if workflow.field:
        return next((o for o in entity.field(workflow.field).options if o.value == value), None)
    return None


def state_title(entity: Entity, workflow: Workflow, value: str) -> str:
    """A state's label: its own title, else the state field option's title, else the value."""
    state, option = workflow.state(value), _option(entity, workflow, value)
    return (state.title if state is not None else None) or (option.title if option else None) or value


def state_color(entity: Entity, workflow: Workflow, value: str) -> str | None:
    """A state's colour: its own, else the option's."""
    state, option = workflow.state(value), _option(entity, workflow, value)
    return (state.color if state is not None else None) or (option.color if option else None)


# --- checks ---------------------------------------------------------------------------------------------------------
def check_workflow(path: str, entity: Entity, app: App, problems: list[Problem]) -> None:
    """Append the problems of an entity's (meta-schema valid) workflow; `path` points at `x-crm-workflow`."""
    try:
        wf = parse_workflow(entity.workflow)
    except msgspec.ValidationError as exc:  # the meta-schema should have caught it; report rather than crash
        problems.append(Problem(path, str(exc)))
        return
    if wf is None:
        return
    fields = entity.field_map()
    if wf.has_states:
        _check_states(path, entity, wf, fields, problems)
    for i, t in enumerate(wf.transitions):
        for j, action in enumerate(t.actions):
            _check_action(f"{path}/transitions/{i}/actions/{j}", action, entity, app, wf, problems)
        if t.guard is not None:
            _check_known_keys(f"{path}/transitions/{i}/guard", t.guard, fields, problems)
    names = [a.name for a in wf.automations]
    transitions = {t.name for t in wf.transitions}
    for i, auto in enumerate(wf.automations):
        here = f"{path}/automations/{i}"
        if names.index(auto.name) != i:
            problems.append(Problem(f"{here}/name", f"another automation is already named '{auto.name}'"))
        for name in auto.fields:
            if name not in fields:
                problems.append(Problem(f"{here}/fields", f"there is no field '{name}'"))
        for name in auto.transitions:
            if name not in transitions:
                problems.append(Problem(f"{here}/transitions", f"there is no transition '{name}'"))
        for keyword, event, words in (("after", "time", "a delay"), ("fields", "changed", "fields"),
                                      ("transitions", "transition", "transitions")):
            given = getattr(auto, keyword) not in (None, ())
            if given and auto.on != event:
                problems.append(Problem(f"{here}/{keyword}", f"'{keyword}' is for automations on \"{event}\"; this"
                                                             f" one is on \"{auto.on}\""))
            elif not given and auto.on == event and keyword != "transitions":
                problems.append(Problem(here, f"an automation on \"{event}\" needs '{keyword}' ({words})"))
        if auto.on == "transition" and not wf.has_states:
            problems.append(Problem(f"{here}/on", "this entity has no states, so no transitions"))
        if auto.after is not None:
            _check_after(f"{here}/after", auto.after, wf, fields, problems)
        if auto.condition is not None:
            _check_known_keys(f"{here}/condition", auto.condition, fields, problems)
        for j, action in enumerate(auto.actions):
            _check_action(f"{here}/actions/{j}", action, entity, app, wf, problems)
    if wf.board is not None:
        _check_board(f"{path}/board", wf, fields, problems)


def _check_states(path: str, entity: Entity, wf: Workflow, fields: dict[str, Field], problems: list[Problem]) -> None:
    state_field = fields.get(wf.field or "")
    if state_field is None:
        problems.append(Problem(f"{path}/field", f"there is no field '{wf.field}'"))
        return
    if state_field.kind != "select":
        problems.append(Problem(f"{path}/field", f"the state field '{wf.field}' must be a select,"
                                                 f" not {state_field.kind}"))
        return
    options = state_field.option_values()
    values = [s.value for s in wf.states]
    for i, s in enumerate(wf.states):
        if values.index(s.value) != i:
            problems.append(Problem(f"{path}/states/{i}/value", f"the state '{s.value}' is listed twice"))
        elif s.value not in options:
            problems.append(Problem(f"{path}/states/{i}/value", f"'{s.value}' is not an option of"
                                                                f" {state_field.title} ({', '.join(options)})"))
    for option in options:
        if option not in values:
            problems.append(Problem(f"{path}/states", f"the option '{option}' of {state_field.title} is not a state;"
                                                      " list every option as a state"))
    known = set(values)
    if wf.initial not in known:
        problems.append(Problem(f"{path}/initial", f"'{wf.initial}' is not one of the states"))
    if state_field.default is not None and state_field.default != wf.initial:
        problems.append(Problem(f"{path}/initial", f"{state_field.title} defaults to '{state_field.default}' but the"
                                                   f" workflow starts in '{wf.initial}'; make them the same"))
    terminal = {s.value for s in wf.states if s.terminal}
    names = [t.name for t in wf.transitions]
    for i, t in enumerate(wf.transitions):
        here = f"{path}/transitions/{i}"
        if names.index(t.name) != i:
            problems.append(Problem(f"{here}/name", f"another transition is already named '{t.name}'"))
        for j, source in enumerate(t.from_):
            if source not in known:
                problems.append(Problem(f"{here}/from/{j}", f"'{source}' is not one of the states"))
            elif source in terminal:
                problems.append(Problem(f"{here}/from/{j}", f"'{source}' is a terminal state: nothing leaves it"))
        if t.to not in known:
            problems.append(Problem(f"{here}/to", f"'{t.to}' is not one of the states"))
        if t.guard_message is not None and t.guard is None:
            problems.append(Problem(f"{here}/guardMessage", "a guard message needs a guard"))
    if wf.initial in known:
        reached, frontier = {wf.initial}, [wf.initial]
        while frontier:
            here_state = frontier.pop()
            for t in wf.transitions:
                if here_state in t.from_ and t.to in known and t.to not in reached:
                    reached.add(t.to)
                    frontier.append(t.to)
        for i, s in enumerate(wf.states):
            if s.value in known and values.index(s.value) == i and s.value not in reached:
                problems.append(Problem(f"{path}/states/{i}", f"the state '{s.value}' cannot be reached from"
                                                              f" '{wf.initial}': no transition leads there"))
            elif not s.terminal and not wf.leaving(s.value) and values.index(s.value) == i:
                problems.append(Problem(f"{path}/states/{i}", f"no transition leaves '{s.value}'; mark it terminal"
                                                              " or add a transition out of it"))


def _check_after(path: str, after: After, wf: Workflow, fields: dict[str, Field], problems: list[Problem]) -> None:
    if after.seconds <= 0:
        problems.append(Problem(path, "give a delay of at least one minute (days, hours or minutes)"))
    since = after.since
    if since is None or since in SINCE_SYSTEM:
        return
    if since == SINCE_STATE:
        if not wf.has_states:
            problems.append(Problem(f"{path}/since", "'$state' counts from entering the current state, but this"
                                                     " entity has no states"))
        return
    f = fields.get(since)
    if f is None or f.kind not in NOW_KINDS:
        problems.append(Problem(f"{path}/since", f"'{since}' is not a date or date-time field (or created_at,"
                                                 " updated_at, $state)"))


def _check_board(path: str, wf: Workflow, fields: dict[str, Field], problems: list[Problem]) -> None:
    if not wf.has_states:
        problems.append(Problem(path, "a board needs states"))
    board = wf.board
    assert board is not None
    for name in board.card_fields:
        if name not in fields:
            problems.append(Problem(f"{path}/cardFields", f"there is no field '{name}'"))
        elif fields[name].sensitive:
            problems.append(Problem(f"{path}/cardFields", f"'{name}' is sensitive and is not shown on cards"))
    if board.sum is not None:
        f = fields.get(board.sum)
        if f is None or f.kind not in ("integer", "decimal", "currency", "percent"):
            problems.append(Problem(f"{path}/sum", f"'{board.sum}' is not a number or currency field"))


def _check_known_keys(path: str, schema: Any, fields: dict[str, Field], problems: list[Problem]) -> None:
    """A guard or condition that names a property the entity does not have is a typo that would never match."""
    if not isinstance(schema, dict):
        return
    for key in schema.get("properties", {}) or {}:
        if key not in fields and key not in ("id", "created_at", "updated_at", "created_by", "updated_by"):
            problems.append(Problem(f"{path}/properties/{key}", f"there is no field '{key}'"))
    for key in schema.get("required", []) or []:
        if isinstance(key, str) and key not in fields:
            problems.append(Problem(f"{path}/required", f"there is no field '{key}'"))


def _check_action(path: str, action: Action, entity: Entity, app: App, wf: Workflow, problems: list[Problem]) -> None:
    verb = action.verb
    if verb == "set":
        _check_values(f"{path}/set", action.set or {}, entity, entity, wf, problems, same_record=True)
    elif verb == "create":
        target = next((e for e in app.entities if e.key == action.create), None)
        if target is None:
            problems.append(Problem(f"{path}/create", f"there is no entity '{action.create}' in this app"))
            return
        target_wf = parse_workflow(target.workflow) if target.workflow else None
        _check_values(f"{path}/values", action.values or {}, target, entity, target_wf, problems, same_record=False)
    elif action.values is not None:
        problems.append(Problem(f"{path}/values", "only a create action takes values"))


def _check_values(path: str, values: dict[str, Any], target: Entity, source: Entity, target_wf: Workflow | None,
                  problems: list[Problem], same_record: bool) -> None:
    """The values of a set (target is the record's own entity) or create action (target is another entity)."""
    from engine.schema.kinds import ConversionError, kind_of
    from engine.schema.validation import field_errors

    tfields = target.field_map()
    sfields = source.field_map()
    for key, value in values.items():
        here = f"{path}/{key}"
        f = tfields.get(key)
        if f is None:
            problems.append(Problem(here, f"{target.title} has no field '{key}'"))
            continue
        if f.kind in _UNSETTABLE_KINDS:
            problems.append(Problem(here, f"{'an' if f.kind[0] in 'aeiou' else 'a'} {f.kind} field cannot be set by"
                                          " an action"))
            continue
        if same_record and target_wf is not None and key == target_wf.field:
            problems.append(Problem(here, f"'{key}' is the state field: it changes only through transitions"))
            continue
        if isinstance(value, dict):
            (expr, arg), = value.items()
            if expr == "$now" and f.kind not in NOW_KINDS:
                problems.append(Problem(here, f"$now fills only date and date-time fields; '{key}' is {f.kind}"))
            elif expr == "$user" and f.kind not in USER_KINDS:
                problems.append(Problem(here, f"$user fills only text fields; '{key}' is {f.kind}"))
            elif expr == "$field":
                if arg == "id":
                    if f.kind != "relation" or f.target != source.key:
                        problems.append(Problem(here, f"the record's id fits only a relation to {source.title}"))
                elif arg not in sfields:
                    problems.append(Problem(f"{here}/$field", f"{source.title} has no field '{arg}'"))
                elif sfields[arg].kind != f.kind and not (
                        {sfields[arg].kind, f.kind} <= {"text", "long_text", "email", "phone", "url"}):
                    problems.append(Problem(f"{here}/$field", f"'{arg}' is {sfields[arg].kind} but '{key}' is"
                                                              f" {f.kind}; copy between fields of the same kind"))
            continue
        if value is None:
            continue
        try:
            coerced = kind_of(f.kind).coerce(f, value)
        except ConversionError as exc:
            problems.append(Problem(here, str(exc)))
            continue
        for message in field_errors(f, coerced):
            problems.append(Problem(here, message))
    if not same_record:
        for f in target.fields:
            if f.required and f.default is None and f.kind != "autonumber" and f.key not in values and (
                    target_wf is None or f.key != target_wf.field):
                problems.append(Problem(path, f"{target.title} requires '{f.key}'; give it a value here"))
    if not same_record and target_wf is not None and target_wf.field in values:
        problems.append(Problem(f"{path}/{target_wf.field}", f"new {target.plural or target.title} start in their"
                                                             " workflow's initial state; leave the state field out"))
