"""What a record page shows: fields by form section, lists of related records, the history; titles of linked
records; and what changed meanwhile when an edit conflicts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.errors import NotFoundError
from engine.forms.form import FormState, layout, visible
from engine.schema import Entity, Field
from engine.storage.query import Filter, Query, Sort
from engine.web import lists as list_pages  # record titles are shared with the list pages
from engine.web.access import RESTRICTED, allowed, linked_titles
from engine.web.context import Scope
from engine.web.formatting import display
from engine.workflows.definition import Workflow, parse_workflow, state_color, state_title

__all__ = ["RelatedList", "Titles", "changed_meanwhile", "record_context", "record_title", "shown", "state_bar"]

_RELATED_ROWS = 10
_RELATED_COLUMNS = 4


def record_title(entity: Entity, record: dict[str, Any]) -> str:
    """How a record is named in links and headings: its title as list pages show it, else the entity title and a
    short id."""
    return list_pages.record_title(entity, record) or f"{entity.title} {str(record.get('id', ''))[:8]}"


def shown(value: Any, f: Field) -> str:
    """`display`, tolerating values stored under an older definition (history keeps them as they were)."""
    try:
        return display(value, f)
    except (TypeError, ValueError, ArithmeticError):
        return str(value)


class Titles:
    """Titles of linked records, looked up once per request (in one query per entity when prefetched)."""

    def __init__(self, sc: Scope) -> None:
        self.sc = sc
        self._cache: dict[tuple[str, str], str] = {}

    def prefetch(self, target: str, ids: Iterable[Any]) -> None:
        """Look up the titles of these records of entity `target` together."""
        wanted = {str(i) for i in ids if i} - {rid for t, rid in self._cache if t == target}
        if not wanted:
            return
        try:
            entity = self.sc.app.entity(target)
            found = linked_titles(self.sc, target, wanted)
        except (KeyError, NotFoundError):
            entity, found = None, {}
        for rid in wanted:
            if rid in found:
                self._cache[(target, rid)] = found[rid] or f"{entity.title if entity else target} {rid[:8]}"
            else:
                self._cache[(target, rid)] = f"(no record {rid[:8]})"

    def seed(self, target: str, record: dict[str, Any]) -> None:
        """Remember the title of a record already read."""
        title = record_title(self.sc.app.entity(target), record) if self.sc.records.may(target, "read") \
            else RESTRICTED
        self._cache[(target, str(record["id"]))] = title

    def title(self, target: str, record_id: str) -> str:
        """The title of one record of entity `target`."""
        self.prefetch(target, [record_id])
        return self._cache[(target, str(record_id))]

    def for_field(self, f: Field, ids: list[str]) -> dict[str, str]:
        """{id: title} for the records a relation field links to."""
        self.prefetch(f.target or "", ids)
        return {i: self.title(f.target or "", i) for i in ids}

    def prefetch_values(self, fields: Iterable[Field], values: Iterable[Any]) -> None:
        """Prefetch what relation fields among `fields` point to in `values` (records or history changes)."""
        for f in fields:
            if f.kind in ("relation", "relation_many") and f.target:
                ids: list[Any] = []
                for v in values:
                    item = v.get(f.key) if isinstance(v, dict) else None
                    ids.extend(item if isinstance(item, list) else [item])
                self.prefetch(f.target, ids)


@dataclass
class RelatedList:
    """The first records of another entity that link to this record through one relation field."""

    entity: Entity
    field: Field
    records: list[dict[str, Any]]
    total: int
    columns: list[Field]
    list_url: str
    add_url: str
    heading: str


def _columns(other: Entity, via: Field) -> list[Field]:
    fields = other.field_map()
    wanted = list(((other.views or {}).get("list") or {}).get("columns") or []) or [f.key for f in other.fields]
    out = []
    for key in wanted:
        f = fields.get(key)
        if f is None or f.hidden or key in (via.key, other.title_field) or f.kind == "long_text":
            continue
        out.append(f)
        if len(out) == _RELATED_COLUMNS:
            break
    return out


def related_lists(sc: Scope, record_id: str) -> list[RelatedList]:
    """For every relation field (of any entity) that targets this entity, the first records linking here."""
    out = []
    for other in sc.app.entities:
        if not sc.records.may(other.key, "read"):
            continue  # entities the principal may not read are not listed
        links = [f for f in other.fields if f.kind in ("relation", "relation_many") and f.target == sc.entity.key
                 and not f.hidden]
        for f in links:
            op = "eq" if f.kind == "relation" else "has"
            query = Query(filters=[Filter(f.key, op, record_id)], sort=[Sort("created_at", desc=True)],
                          limit=_RELATED_ROWS)
            records = sc.records.query(other.key, query).records
            total = len(records) if len(records) < _RELATED_ROWS else sc.records.count(other.key, query)
            heading = entity_plural(other) + (f" · {f.title}" if len(links) > 1 else "")
            base = f"/apps/{sc.app.name}/{other.key}"
            add_url = f"{base}/new?{f.key}={record_id}" if sc.records.may(other.key, "create") else ""
            out.append(RelatedList(other, f, records, total, _columns(other, f), f"{base}?f.{f.key}.{op}={record_id}",
                                   add_url, heading))
    return out


def entity_plural(entity: Entity) -> str:
    """An entity's plural label."""
    return entity.plural or entity.title


def history(sc: Scope, record_id: str) -> list[dict[str, Any]]:
    """The record's history, newest first, each change as {field, old, new} in field order. A transition's entry
    also has `transition` ({label, old, new}: its button text and the states' titles, the state field's change
    taken out of the list); a note's entry has `note`, its text."""
    fields = sc.entity.field_map()
    order = {key: i for i, key in enumerate(fields)}
    workflow = parse_workflow(sc.entity.workflow) if sc.entity.workflow else None
    out = []
    for entry in reversed(sc.records.history(sc.entity.key, record_id)):
        raw = dict(entry["changes"])
        name, note = raw.pop("_transition", None), raw.pop("_note", None)
        transition = None
        if name is not None and workflow is not None:
            transition = _transition_step(sc.entity, workflow, str(name), raw.pop(workflow.field or "", None))
        changes = []
        for key, pair in sorted(raw.items(), key=lambda kv: order.get(kv[0], len(order))):
            if key.startswith("_") or not isinstance(pair, list | tuple) or len(pair) != 2:
                continue  # engine bookkeeping, not a field's change
            f = fields.get(key) or Field(key=key, kind="text", title=key)  # a field removed from the definition
            if not f.hidden:
                changes.append({"field": f, "old": pair[0], "new": pair[1]})
        out.append({**entry, "changes": changes, "transition": transition, "note": note})
    return out


def _transition_step(entity: Entity, workflow: Workflow, name: str, pair: Any) -> dict[str, str]:
    """A transition on the timeline: its label and the titles of the states it moved between."""
    t = workflow.transition(name)
    old, new = pair if isinstance(pair, list | tuple) and len(pair) == 2 else (None, t.to if t else None)

    def title(value: Any) -> str:
        return "(none)" if value is None else state_title(entity, workflow, value)

    return {"label": t.label if t else name, "old": title(old), "new": title(new)}


def state_bar(sc: Scope, record: dict[str, Any]) -> dict[str, Any] | None:
    """The record's workflow state (value, title, colour) and the transitions the user may fire from it, each
    with the reason it cannot run now; None when the entity has no states or the user may not see the state."""
    workflow = parse_workflow(sc.entity.workflow) if sc.entity.workflow else None
    if workflow is None or not workflow.has_states or sc.entity.field(workflow.field or "").hidden:
        return None
    value = record.get(workflow.field or "")
    return {"field": sc.entity.field(workflow.field or ""), "value": value,
            "title": "(none)" if value is None else state_title(sc.entity, workflow, value),
            "color": None if value is None else state_color(sc.entity, workflow, value),
            "options": sc.records.transitions(sc.entity.key, record)}


def changed_meanwhile(sc: Scope, record_id: str, since: int, state: FormState) -> dict[str, Any]:
    """What others changed after version `since`: per field the value then, now, and the user's value."""
    then: dict[str, Any] = {}
    now: dict[str, Any] = {}
    actors: list[str] = []
    for entry in sc.records.history(sc.entity.key, record_id):
        if entry["version"] <= since:
            continue
        if entry["actor"] not in actors:
            actors.append(entry["actor"])
        for key, pair in entry["changes"].items():
            if key.startswith("_") or not isinstance(pair, list | tuple) or len(pair) != 2:
                continue  # a transition's name, a note
            then.setdefault(key, pair[0])
            now[key] = pair[1]
    rows = [{"field": f, "was": then[f.key], "now": now[f.key], "yours": state.values.get(f.key),
             "mine": f.key in state.submitted}
            for f in sc.entity.fields if f.key in now and not f.hidden and then[f.key] != now[f.key]]
    return {"rows": rows, "actors": actors}


def record_context(sc: Scope, record: dict[str, Any]) -> dict[str, Any]:
    """Everything record.html shows."""
    titles = Titles(sc)
    heading = record_title(sc.entity, record)
    sections = [(title, columns, [f for f in fields if f.key in record or visible(f, record)])
                for title, columns, fields in layout(sc.entity)]
    related = related_lists(sc, record["id"])
    entries = history(sc, record["id"])
    titles.prefetch_values(sc.entity.fields, [record])
    for rel in related:
        for r in rel.records:
            titles.seed(rel.entity.key, r)
        titles.prefetch_values(rel.columns, rel.records)
    for entry in entries:
        titles.prefetch_values([c["field"] for c in entry["changes"]],
                               [{c["field"].key: c[side]} for c in entry["changes"] for side in ("old", "new")])
    return {
        "app": sc.app, "entity": sc.entity, "record": record, "title": heading, "heading": heading, "base": sc.base,
        "url": f"{sc.base}/{record['id']}", "sections": sections, "related": related, "history": entries,
        "title_of": titles.title, "shown": shown, "problems": [], "notice": None, "confirm_delete": False,
        "can": allowed(sc), "workflow": state_bar(sc, record),
    }
