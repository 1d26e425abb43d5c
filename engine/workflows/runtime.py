"""Workflows at run time: which transitions a user may fire on a record and why not, firing them, and running the
actions of transitions and automations.

Everything here runs inside the records service's write transaction (through engine/storage/writer.py), so a
transition, its actions and the automations it sets off are all stored or none is. One `Flow` is compiled per entity
version (guards and conditions compiled once, like the entity validators) and cached on the compiled app."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from jsonschema.exceptions import ValidationError

from engine.auth.principal import Principal
from engine.errors import CrmError, FieldError, RecordValidationError
from engine.schema.kinds import kind_of
from engine.schema.kinds.temporal import format_datetime
from engine.schema.model import Entity
from engine.schema.validation import EntityValidator, compiled_condition, describe_error
from engine.storage.database import crm_outbox, crm_state_entered
from engine.storage.migrate import utcnow
from engine.storage.writer import jsonable
from engine.workflows.definition import (
    Action,
    Automation,
    Transition,
    Workflow,
    parse_workflow,
    state_color,
    state_title,
)

if TYPE_CHECKING:
    from engine.storage.writer import Writer

__all__ = ["MAX_DEPTH", "Flow", "TransitionOption", "TransitionRefused", "enqueue_webhook", "evaluate", "fill_text",
           "note_row"]

#: How deeply actions may set off further automations before the change is refused as a loop.
MAX_DEPTH = 8


#: How a field the user may not see is named in reasons and refusals.
_UNSEEN = "a field you cannot see"


class TransitionRefused(CrmError):
    """A transition that may not or cannot be fired now; the message says why, and nothing was changed."""

    def __init__(self, message: str, transition: str = "", current: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.transition = transition
        self.current = current


@dataclass(frozen=True)
class TransitionOption:
    """A transition the user may fire from the record's state: `reason` says why it cannot run now (None: it can)."""

    transition: Transition
    to_title: str
    to_color: str | None
    reason: str | None

    @property
    def allowed(self) -> bool:
        """Whether firing it now would succeed (as far as can be told before trying)."""
        return self.reason is None

    @property
    def name(self) -> str:
        """The transition's name."""
        return self.transition.name

    @property
    def label(self) -> str:
        """The button text."""
        return self.transition.label


class Flow:
    """The compiled workflow of one entity version."""

    def __init__(self, entity: Entity, workflow: Workflow, validator: EntityValidator) -> None:
        self.entity = entity
        self.workflow = workflow
        self.validator = validator
        self.fields = entity.field_map()
        self.state_field = workflow.field
        self._guards = {t.name: compiled_condition(t.guard) for t in workflow.transitions if t.guard is not None}
        self._conditions = {a.name: compiled_condition(a.condition) for a in workflow.automations
                            if a.condition is not None}

    @classmethod
    def of(cls, entity: Entity, validator: EntityValidator) -> Flow | None:
        """The entity's flow (None when it has no workflow)."""
        workflow = parse_workflow(entity.workflow)
        return None if workflow is None else cls(entity, workflow, validator)

    # --- describing -----------------------------------------------------------------------------------
    @property
    def has_states(self) -> bool:
        """Whether the entity is a state machine."""
        return self.workflow.has_states

    def state_of(self, record: dict[str, Any]) -> str | None:
        """The record's state."""
        return record.get(self.state_field or "")

    def state_title(self, value: str | None) -> str:
        """A state's label."""
        return "(none)" if value is None else state_title(self.entity, self.workflow, value)

    def state_color(self, value: str) -> str | None:
        """A state's colour, if it has one."""
        return state_color(self.entity, self.workflow, value)

    def states(self) -> list[tuple[str, str, str | None, bool]]:
        """Every state in order: (value, title, colour, terminal)."""
        return [(s.value, self.state_title(s.value), self.state_color(s.value), s.terminal)
                for s in self.workflow.states]

    def role_allows(self, principal: Principal | None, transition: Transition) -> bool:
        """Whether the acting user's roles may fire the transition (a trusted actor and admins may fire any)."""
        if principal is None or principal.is_admin or not transition.roles:
            return True
        return bool(set(principal.roles) & set(transition.roles))

    def options(self, principal: Principal | None, record: dict[str, Any], actor: str,
                hidden: frozenset[str] = frozenset()) -> list[TransitionOption]:
        """The transitions out of the record's state that the user's roles allow, each with the reason it cannot
        run now (a failing guard, or a rule the record would break in the new state)."""
        out = []
        for t in self.workflow.leaving(self.state_of(record)):
            if not self.role_allows(principal, t):
                continue
            reason = self.blocked(t, record, actor, hidden)
            out.append(TransitionOption(t, self.state_title(t.to), self.state_color(t.to), reason))
        return out

    def blocked(self, transition: Transition, record: dict[str, Any], actor: str,
                hidden: frozenset[str] = frozenset()) -> str | None:
        """Why the transition cannot run on this record now (None when it can): its guard, then the entity's rules
        as they apply to the record in the new state with the transition's set actions applied."""
        problem = self.guard_problem(transition, record, hidden)
        if problem:
            return problem
        after = dict(record)
        after[self.state_field or ""] = transition.to
        for action in transition.actions:
            if action.set is not None:
                for key, value in evaluate(action.set, record, actor, self.entity).items():
                    if value is None:
                        after.pop(key, None)
                    else:
                        after[key] = kind_of(self.fields[key].kind).coerce(self.fields[key], value)
        plain = {k: v for k, v in after.items() if k in self.fields}
        errors = self.validator.errors(plain)
        if errors:
            return f"{transition.label} needs: " + "; ".join(self._say(e, hidden) for e in errors[:5])
        return None

    def guard_problem(self, transition: Transition, record: dict[str, Any],
                      hidden: frozenset[str] = frozenset()) -> str | None:
        """What the guard finds missing or wrong ('needs Amount, Expected close'); None when it passes."""
        validator = self._guards.get(transition.name)
        if validator is None:
            return None
        errors = list(validator.iter_errors(self._instance(record)))
        if not errors:
            return None
        if transition.guard_message:
            return transition.guard_message
        missing: list[str] = []
        other: list[str] = []
        for error in errors:
            self._collect(error, missing, other, hidden)
        parts = []
        if missing:
            parts.append("needs " + ", ".join(dict.fromkeys(missing)))
        parts += list(dict.fromkeys(other))
        return f"{transition.label} " + "; ".join(parts) if parts else f"{transition.label} is not possible now"

    def _collect(self, error: ValidationError, missing: list[str], other: list[str], hidden: frozenset[str]) -> None:
        if error.validator == "required" and isinstance(error.instance, dict):
            missing += [self._title(k, hidden) for k in error.validator_value if k not in error.instance]
        elif error.validator in ("anyOf", "allOf", "oneOf", "not", "if") and error.context:
            for sub in error.context:
                self._collect(sub, missing, other, hidden)
        else:
            path = list(error.absolute_path)
            key = str(path[0]) if path else ""
            if key in hidden:  # neither the field nor what is wrong with its value leaves the server
                other.append(_UNSEEN)
            else:
                other.append(f"{self._title(key)} {describe_error(error, self.fields.get(key), self.entity)}".strip())

    def _title(self, key: str, hidden: frozenset[str] = frozenset()) -> str:
        if key in hidden:
            return _UNSEEN
        f = self.fields.get(key)
        return f.title if f else key

    def _say(self, error: FieldError, hidden: frozenset[str] = frozenset()) -> str:
        if error.field in hidden:
            return _UNSEEN
        return f"{self._title(error.field)} {error.message}".strip()

    def condition_holds(self, automation: Automation, record: dict[str, Any]) -> bool:
        """Whether an automation's condition holds for the record."""
        validator = self._conditions.get(automation.name)
        if validator is None:
            return True
        return bool(validator.is_valid(self._instance(record)))

    def _instance(self, record: dict[str, Any]) -> dict[str, Any]:
        """What guards and conditions are evaluated on: the record's fields and id, as JSON values."""
        return jsonable({k: v for k, v in record.items() if k in self.fields or k == "id"})

    # --- firing ---------------------------------------------------------------------------------------
    def fire(self, writer: Writer, principal: Principal | None, current: dict[str, Any], name: str,
             seen_state: str | None = None, hidden: frozenset[str] = frozenset()) -> dict[str, Any]:
        """Fire a transition on a locked record (through `writer`, a trusted writer of this entity): the state
        change and its set actions as one change on the history timeline, then its other actions, then the
        automations it sets off. TransitionRefused says why it cannot, and nothing is changed."""
        t = self.workflow.transition(name)
        title = self.entity.title
        if t is None:
            known = ", ".join(x.name for x in self.workflow.transitions) or "none"
            raise TransitionRefused(f"{title} has no transition '{name}' (it has: {known})", name)
        state = self.state_of(current)
        if seen_state is not None and state != seen_state:
            by = current.get("updated_by")
            raise TransitionRefused(
                f"This {title.lower()} was moved to {self.state_title(state)}"
                + (f" by {by}" if by else "") + f" since you loaded it; {t.label} was not done.", name, current)
        if not self.role_allows(principal, t):
            raise TransitionRefused(f"Your roles may not {t.label.lower()} ({title}); ask someone with the role"
                                    f" {' or '.join(t.roles)}.", name, current)
        if state not in t.from_:
            raise TransitionRefused(f"{t.label} is not possible from {self.state_title(state)}; it starts from "
                                    + ", ".join(self.state_title(s) for s in t.from_) + ".", name, current)
        problem = self.guard_problem(t, current, hidden)
        if problem:
            raise TransitionRefused(problem, name, current)
        values: dict[str, Any] = {self.state_field or "": t.to}
        for action in t.actions:
            if action.set is not None:
                values.update(evaluate(action.set, current, writer.actor, self.entity))
        try:
            record = writer.update(current, values, transition=t.name, trusted=True)
        except RecordValidationError as exc:
            raise TransitionRefused(f"{t.label} needs: " + "; ".join(self._say(e, hidden) for e in exc.errors[:5]),
                                    name, current) from None
        self.entered(writer, record["id"], t.to)
        record = self.run_actions(writer, record, [a for a in t.actions if a.set is None],
                                  {"event": "transition", "transition": t.name, "from": state, "to": t.to})
        for auto in self.workflow.automations_on("transition"):
            if (not auto.transitions or t.name in auto.transitions) and self.condition_holds(auto, record):
                record = self.run_actions(writer, record, auto.actions,
                                          {"event": "transition", "transition": t.name, "automation": auto.name})
        return record

    def entered(self, writer: Writer, record_id: str, state: str) -> None:
        """Remember when the record entered `state` (time rules count from it)."""
        conn, key = writer.conn, (crm_state_entered.c.app == writer.app, crm_state_entered.c.entity == self.entity.key,
                                  crm_state_entered.c.record_id == record_id)
        now = utcnow()
        if conn.execute(crm_state_entered.update().where(*key).values(state=state, entered_at=now)).rowcount == 0:
            conn.execute(crm_state_entered.insert().values(app=writer.app, entity=self.entity.key,
                                                           record_id=record_id, state=state, entered_at=now))

    # --- automations and actions ----------------------------------------------------------------------
    def after_create(self, writer: Writer, records: list[dict[str, Any]], automations: bool = True
                     ) -> list[dict[str, Any]]:
        """Record the initial states and run the `created` automations of new records."""
        if self.has_states and records:
            now = utcnow()
            writer.conn.execute(crm_state_entered.insert(), [
                {"app": writer.app, "entity": self.entity.key, "record_id": r["id"],
                 "state": self.state_of(r) or "", "entered_at": now} for r in records])
        autos = self.workflow.automations_on("created")
        if not autos or not automations:
            return records
        out = []
        for record in records:
            for auto in autos:
                if self.condition_holds(auto, record):
                    record = self.run_actions(writer, record, auto.actions, {"event": "created",
                                                                             "automation": auto.name})
            out.append(record)
        return out

    def after_update(self, writer: Writer, record: dict[str, Any], changed: set[str]) -> dict[str, Any]:
        """Run the `changed` automations whose fields changed."""
        for auto in self.workflow.automations_on("changed"):
            if changed & set(auto.fields) and self.condition_holds(auto, record):
                record = self.run_actions(writer, record, auto.actions, {"event": "changed", "automation": auto.name,
                                                                         "fields": sorted(changed & set(auto.fields))})
        return record

    def run_actions(self, writer: Writer, record: dict[str, Any], actions: list[Action] | tuple[Action, ...],
                    event: dict[str, Any]) -> dict[str, Any]:
        """Run actions in order on the record (set actions change it: the changed record is returned)."""
        from engine.storage.writer import Writer as _Writer

        if not actions:
            return record
        if writer.depth >= MAX_DEPTH:
            raise RecordValidationError([FieldError("", f"automations of {self.entity.title} set each other off more"
                                                        f" than {MAX_DEPTH} times in a row; check their conditions"
                                                        f" ({event.get('automation') or event.get('transition')})")])
        own = _Writer(writer.conn, writer.compiled, self.entity, writer.app, writer.actor, depth=writer.depth + 1)
        for action in actions:
            if action.set is not None:
                values = evaluate(action.set, record, writer.actor, self.entity)
                record = own.update(record, values, trusted=True)
            elif action.create is not None:
                target = writer.compiled.entity(action.create)
                other = _Writer(writer.conn, writer.compiled, target, writer.app, writer.actor, depth=writer.depth + 1)
                values = evaluate(action.values or {}, record, writer.actor, target, source=self.entity)
                try:
                    other.insert([values], None, keep_ids=False)
                except RecordValidationError as exc:
                    raise RecordValidationError([FieldError(
                        "", f"could not create the {target.title}: " + "; ".join(str(e) for e in exc.errors[:5]))]) \
                        from None
            elif action.note is not None:
                own.note(record, fill_text(action.note, record, writer.actor, self.entity))
            elif action.webhook is not None:
                enqueue_webhook(writer.conn, writer.app, action.webhook,
                                self.payload(record, writer.actor, event))
        return record

    def payload(self, record: dict[str, Any], actor: str, event: dict[str, Any]) -> dict[str, Any]:
        """What a webhook receives: the event, and the record without its sensitive fields."""
        sensitive = {f.key for f in self.entity.fields if f.sensitive}
        return {**event, "entity": self.entity.key, "record_id": record.get("id"), "actor": actor,
                "at": format_datetime(utcnow()),
                "record": jsonable({k: v for k, v in record.items() if k not in sensitive})}


# --- values --------------------------------------------------------------------------------------------------------
def evaluate(values: dict[str, Any], record: dict[str, Any], actor: str, target: Entity,
             source: Entity | None = None) -> dict[str, Any]:
    """An action's values with {"$now": true}, {"$user": true} and {"$field": key} worked out for this record."""
    fields = target.field_map()
    out: dict[str, Any] = {}
    now = utcnow()
    for key, value in values.items():
        if isinstance(value, dict) and len(value) == 1:
            (expr, arg), = value.items()
            if expr == "$now":
                value = now.date().isoformat() if fields[key].kind == "date" else format_datetime(
                    now.replace(microsecond=0))
            elif expr == "$user":
                value = actor
            elif expr == "$field":
                value = record.get(arg)
        out[key] = value
    return out


_PLACEHOLDER = re.compile(r"\{(\$user|\$now|[a-z][a-z0-9_]{0,62})\}")


def fill_text(text: str, record: dict[str, Any], actor: str, entity: Entity) -> str:
    """A note's text with {$user}, {$now} and {field} replaced (unknown placeholders are left as written)."""
    fields = entity.field_map()

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "$user":
            return actor
        if key == "$now":
            return format_datetime(utcnow().replace(microsecond=0))
        f = fields.get(key)
        if f is None or f.sensitive:
            return match.group(0)
        value = record.get(key)
        return "" if value is None else kind_of(f.kind).display(f, value)

    return _PLACEHOLDER.sub(one, text)


def enqueue_webhook(conn: sa.Connection, app: str, url: str, payload: dict[str, Any]) -> str:
    """Put a webhook call in the outbox, in the caller's transaction; `crm worker` delivers it. Returns its id."""
    event_id = str(uuid.uuid4())
    now = utcnow()
    conn.execute(crm_outbox.insert().values(event_id=event_id, app=app, url=url, payload={**payload, "app": app,
                                                                                            "event_id": event_id},
                                            created_at=now, attempts=0, next_attempt_at=now))
    return event_id


def note_row(app: str, entity: str, record: dict[str, Any], actor: str, text: str) -> dict[str, Any]:
    """A note on a record's history timeline."""
    return {"app": app, "entity": entity, "record_id": record["id"], "record_version": record.get("version", 0),
            "at": utcnow(), "actor": actor, "action": "note", "changes": {"_note": text}}
