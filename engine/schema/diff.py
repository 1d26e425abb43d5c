"""What changed between two versions of an app definition, in plain words.

The comparison runs on the canonical documents, so it sees every change: storage-relevant ones (which the migration
plan also lists) and presentation ones (titles, options, views, form layout, workflow). Entities and fields are
matched by key and by `renamedFrom`, so a rename is one change, not a removal and an addition."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from engine.schema.canonical import to_document
from engine.schema.model import App

__all__ = ["Change", "diff_apps", "short"]


@dataclass(frozen=True)
class Change:
    """One difference: where (a JSON path in the newer document, or the older one for removals), and what."""

    path: str
    what: str  # added | removed | renamed | changed
    before: Any = None
    after: Any = None

    def describe(self) -> str:
        """The change in one line."""
        if self.what == "added":
            return f"{self.path}: added {short(self.after)}"
        if self.what == "removed":
            return f"{self.path}: removed (was {short(self.before)})"
        if self.what == "renamed":
            return f"{self.path}: renamed from '{self.before}'"
        return f"{self.path}: {short(self.before)} -> {short(self.after)}"


def short(value: Any, limit: int = 80) -> str:
    """A value as compact JSON, cut at `limit` characters."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def diff_apps(old: App, new: App) -> list[Change]:
    """Every difference between two definitions of the same app, entity by entity and field by field."""
    before, after = to_document(old), to_document(new)
    changes: list[Change] = []
    for key in ("title", "description"):
        _compare(key, before.get(key), after.get(key), changes)
    _compare("x-crm-app/description", before["x-crm-app"].get("description"), after["x-crm-app"].get("description"),
             changes)
    old_entities, new_entities = before["$defs"], after["$defs"]
    for key, prior_key in _pair("$defs", old_entities, new_entities,
                                lambda e: e.get("x-crm-entity", {}).get("renamedFrom"), changes):
        _entity(f"$defs/{key}", old_entities[prior_key], new_entities[key], changes)
    return changes


def _entity(path: str, old: dict[str, Any], new: dict[str, Any], changes: list[Change]) -> None:
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for key, prior_key in _pair(f"{path}/properties", old_props, new_props,
                                lambda p: p.get("x-crm-field", {}).get("renamedFrom"), changes):
        here = f"{path}/properties/{key}"
        _compare(here, _without_rename(old_props[prior_key]), _without_rename(new_props[key]), changes)
        if (prior_key in old_required) != (key in new_required):
            changes.append(Change(f"{here}/required", "changed", before=prior_key in old_required,
                                  after=key in new_required))
    for key in sorted(set(old) | set(new)):
        if key in ("properties", "required"):
            continue
        a, b = old.get(key), new.get(key)
        if key == "x-crm-entity":
            a, b = _without_rename(a), _without_rename(b)
        if key == "x-crm-workflow":
            _workflow(f"{path}/{key}", a, b, _state_titles(old) | _state_titles(new), changes)
            continue
        _compare(f"{path}/{key}", a, b, changes)


#: The lists of a workflow whose items are matched by a key rather than by position.
_WORKFLOW_LISTS = (("states", "value"), ("transitions", "name"), ("automations", "name"))


def _state_titles(entity: dict[str, Any]) -> dict[str, str]:
    """The titles of a workflow's states: its state field's option titles."""
    field = (entity.get("x-crm-workflow") or {}).get("field")
    prop = entity.get("properties", {}).get(field, {}) if field else {}
    return {o["const"]: o.get("title", o["const"]) for o in prop.get("anyOf", []) if "const" in o}


def _workflow_summary(flow: dict[str, Any], titles: dict[str, str]) -> str:
    states = ", ".join(titles.get(s.get("value"), s.get("value")) for s in flow.get("states", []))
    moves = ", ".join(t.get("title") or t.get("name") for t in flow.get("transitions", []))
    return f"states {states or '(none)'}; transitions {moves or '(none)'}"


def _workflow(path: str, a: Any, b: Any, titles: dict[str, str], changes: list[Change]) -> None:
    """A workflow's differences: added or removed whole (summarised), else states, transitions and automations
    matched by their value or name (so inserting one is one change, not a shift of every later one)."""
    if a == b:
        return
    if not isinstance(a, dict) or not isinstance(b, dict):
        if isinstance(b, dict):
            changes.append(Change(path, "added", after=_workflow_summary(b, titles)))
        elif isinstance(a, dict):
            changes.append(Change(path, "removed", before=_workflow_summary(a, titles)))
        return
    for part, key in _WORKFLOW_LISTS:
        olds = {x.get(key): x for x in a.get(part, []) if isinstance(x, dict)}
        news = {x.get(key): x for x in b.get(part, []) if isinstance(x, dict)}
        for name, item in news.items():
            label = titles.get(name, name) if part == "states" else item.get("title") or name
            if name not in olds:
                changes.append(Change(f"{path}/{part}/{name}", "added", after=label))
            else:
                _compare(f"{path}/{part}/{name}", olds[name], item, changes)
        for name, item in olds.items():
            if name not in news:
                label = titles.get(name, name) if part == "states" else item.get("title") or name
                changes.append(Change(f"{path}/{part}/{name}", "removed", before=label))
        if list(olds) != list(news) and set(olds) == set(news):
            changes.append(Change(f"{path}/{part}", "changed", before=list(olds), after=list(news)))
    for key in list(a) + [k for k in b if k not in a]:
        if key not in dict(_WORKFLOW_LISTS):
            _compare(f"{path}/{key}", a.get(key), b.get(key), changes)


def _pair(path: str, old: dict[str, Any], new: dict[str, Any], renamed_from: Callable[[dict[str, Any]], Any],
          changes: list[Change]) -> Iterator[tuple[str, str]]:
    """Match the items of two versions by key or by their `renamedFrom`: additions, renames and removals become
    changes; each matched pair is yielded as (newer key, older key)."""
    matched: set[str] = set()
    for key, item in new.items():
        here = f"{path}/{key}"
        prior = key if key in old else renamed_from(item)
        if prior not in old:
            changes.append(Change(here, "added", after=item.get("title")))
            continue
        matched.add(prior)
        if prior != key:
            changes.append(Change(here, "renamed", before=prior))
        yield key, prior
    for key, item in old.items():
        if key not in matched:
            changes.append(Change(f"{path}/{key}", "removed", before=item.get("title")))


def _without_rename(node: Any) -> Any:
    """A field or entity document without its `renamedFrom` (reported as a rename, not as a setting)."""
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if k != "renamedFrom"}
    if isinstance(out.get("x-crm-field"), dict):
        out["x-crm-field"] = {k: v for k, v in out["x-crm-field"].items() if k != "renamedFrom"}
    return out


def _compare(path: str, a: Any, b: Any, changes: list[Change]) -> None:
    """Recurse into objects; lists and scalars are compared whole."""
    if a == b:
        return
    if a is None:
        changes.append(Change(path, "added", after=b))
    elif b is None:
        changes.append(Change(path, "removed", before=a))
    elif isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            _compare(f"{path}/{key}", a.get(key), b.get(key), changes)
    else:
        changes.append(Change(path, "changed", before=a, after=b))
