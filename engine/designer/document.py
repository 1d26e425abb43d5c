"""Reading a definition document the designer edits, and committing an edit only when the result still loads."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar

from engine.errors import CrmError, DefinitionError, Problem
from engine.schema import Field, load_definition
from engine.schema.kinds import kind_of

__all__ = ["EditError", "commit", "entity_doc", "field_model", "field_prop"]

T = TypeVar("T")

#: Designer words for the JSON keywords the loader reports problems on (the last part of a problem's path).
_LABELS = {
    "title": "Title", "description": "Description", "default": "Default value", "minimum": "Min", "maximum": "Max",
    "min": "Min", "max": "Max", "minLength": "Min length", "maxLength": "Max length", "pattern": "Pattern",
    "anyOf": "Options", "items": "Options", "minItems": "Min items", "maxItems": "Max items", "entity": "Target",
    "onDelete": "On delete", "currency": "Currency", "scale": "Decimal places", "precision": "Digits",
    "prefix": "Prefix", "digits": "Digits", "region": "Region", "unique": "Unique", "indexed": "Indexed",
    "searchable": "Searchable", "sensitive": "Sensitive", "visibleIf": "Visible if", "titleField": "Title field",
    "columns": "Columns", "sort": "Sort", "fields": "Fields", "pageSize": "Page size", "required": "Required",
}


class EditError(CrmError):
    """A designer edit that cannot be made; nothing was changed. `path` says where (a JSON path into the document,
    ending in the designer setting's name when one setting is at fault), `message` says why in plain words."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(message)

    @property
    def setting(self) -> str:
        """The last part of the path: the setting (or field, entity) the problem is about."""
        return self.path.rsplit("/", 1)[-1]

    def lines(self) -> list[str]:
        return [f"{self.path}: {self.message}" if self.path else self.message]


def entity_doc(doc: dict[str, Any], entity: str) -> dict[str, Any]:
    """The entity's schema in the document; EditError when there is none."""
    entities = doc.get("$defs")
    if not isinstance(entities, dict) or not isinstance(entities.get(entity), dict):
        raise EditError(f"$defs/{entity}", f"there is no entity '{entity}' in this app")
    return entities[entity]


def field_prop(doc: dict[str, Any], entity: str, key: str) -> dict[str, Any]:
    """The field's property schema in the document; EditError when there is none."""
    props = entity_doc(doc, entity).get("properties", {})
    if not isinstance(props.get(key), dict):
        raise EditError(f"$defs/{entity}/properties/{key}", f"there is no field '{key}' in '{entity}'")
    return props[key]


def field_model(key: str, prop: dict[str, Any], required: bool = False) -> Field:
    """The engine's Field for a property schema (settings read as the loader reads them; nothing checked)."""
    xfield = prop["x-crm-field"]
    kind = kind_of(xfield["kind"])
    settings = kind.read_settings(xfield, prop)
    forced_read_only = settings.pop("read_only", False)
    return Field(key=key, kind=kind.name, title=prop.get("title", key), required=required,
                 unique=xfield.get("unique", False), read_only=prop.get("readOnly", False) or forced_read_only,
                 **settings)


def _worded(problem: Problem) -> EditError:
    last = problem.path.rsplit("/", 1)[-1]
    label = _LABELS.get(last)
    return EditError(problem.path, f"{label}: {problem.message}" if label else problem.message)


def _problems(doc: dict[str, Any]) -> list[Problem]:
    try:
        load_definition(doc)
    except DefinitionError as exc:
        return exc.problems
    return []


def commit(doc: dict[str, Any], change: Callable[[dict[str, Any]], T],
           tolerate: Callable[[Problem], bool] | None = None) -> T:
    """Apply `change` to a copy of the document and copy the result back only when it loads (or, for a document
    that did not load before, when it has no new problems); otherwise EditError and `doc` is unchanged.

    `tolerate` lets through new problems that are a step on the way rather than a mistake (a workflow being built
    has states no transition reaches yet); they stay in the draft's problem list and still block publishing."""
    work = copy.deepcopy(doc)
    result = change(work)
    after = [p for p in _problems(work) if tolerate is None or not tolerate(p)]
    if after:
        before = {(p.path, p.message) for p in _problems(doc)}
        fresh = [p for p in after if (p.path, p.message) not in before]
        if fresh:
            raise _worded(fresh[0])
    doc.clear()
    doc.update(work)
    return result
