"""Edits to an app definition document, as the designer makes them: pure functions that change the document (a
dict, changed in place) and keep it loadable. Bad input raises `EditError(path, message)` and changes nothing.

Every function leaves a document `engine.schema.load_definition` accepts whenever its input was valid: each edit
is made on a copy, which replaces the document only when it loads (see `document.commit`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.designer.conditions import OPERATORS, condition_from_rules, operators_for, rules_from_condition
from engine.designer.document import EditError, commit, entity_doc, field_prop
from engine.designer.fields import FIELD_KINDS, PATTERN_PRESETS, field_settings, kind_settings, new_field, update_field
from engine.designer.keys import entity_key_from_label, is_key, key_from_label
from engine.schema.canonical import SCHEMA_URI

__all__ = [
    "FIELD_KINDS", "OPERATORS", "PATTERN_PRESETS", "EditError", "add_entity", "add_field", "blank_app",
    "condition_from_rules", "field_settings", "field_uses", "kind_settings", "move_field", "operators_for",
    "published_origin", "remove_entity", "remove_field", "rename_key", "rules_from_condition", "set_form_sections",
    "set_list_view", "update_entity", "update_field",
]

_LISTABLE_SYSTEM = ("created_at", "updated_at")


def _title(path: str, title: Any, what: str = "Title") -> str:
    if not isinstance(title, str) or not title.strip() or len(title.strip()) > 200:
        raise EditError(path, f"{what} must be 1 to 200 characters")
    return title.strip()


def _entity_schema(title: str, plural: str | None) -> dict[str, Any]:
    """A new entity: one required text field "Name" that names its records (an entity needs at least one field)."""
    meta: dict[str, Any] = {"plural": plural} if plural else {}
    meta["titleField"] = "name"
    return {
        "type": "object", "title": title, "x-crm-entity": meta,
        "properties": {"name": {"title": "Name", "type": "string", "minLength": 1, "maxLength": 200,
                                "x-crm-field": {"kind": "text"}}},
        "required": ["name"],
    }


def blank_app(name: str, title: str) -> dict[str, Any]:
    """A new app document with no entities yet. It does not load until the first entity is added (the dialect needs
    one): edits on it are still made (`commit` allows the problems a document already had), and publishing is
    refused until then, in plain words (see `drafts.DraftService.problems`)."""
    if not isinstance(name, str) or not is_key(name):
        raise EditError("x-crm-app/name", f"'{name}' cannot be an app key: use a-z, 0-9 and _, starting with a letter"
                                          " (63 at most), and not an SQL reserved word")
    return {
        "$schema": SCHEMA_URI, "$id": f"urn:crm:app:{name}", "title": _title("title", title),
        "x-crm-app": {"name": name},
        "$defs": {},
    }


def add_entity(doc: dict[str, Any], title: str, plural: str | None = None) -> str:
    """Add an entity (key made from the title, never a designer page's name such as `publish`) with a required text
    field "Name" as its title field; its key."""
    title = _title("$defs", title)
    if plural is not None:
        plural = _title("$defs", plural, "Plural") if plural.strip() else None

    def change(work: dict[str, Any]) -> str:
        key = entity_key_from_label(title, work["$defs"])
        work["$defs"][key] = _entity_schema(title, plural)
        return key

    return commit(doc, change)


def update_entity(doc: dict[str, Any], entity: str, *, title: str | None = None, plural: str | None = None,
                  title_field: str | None = None, icon: str | None = None, color: str | None = None) -> None:
    """Change an entity's title, plural, title field, icon or colour (None leaves a setting as it is; "" clears
    plural, icon and colour)."""
    path = f"$defs/{entity}"

    def change(work: dict[str, Any]) -> None:
        ent = entity_doc(work, entity)
        meta = ent.setdefault("x-crm-entity", {})
        if title is not None:
            ent["title"] = _title(f"{path}/title", title)
        if title_field is not None:
            if title_field not in ent["properties"]:
                raise EditError(f"{path}/title_field", f"Title field: there is no field '{title_field}'")
            meta["titleField"] = title_field
        for name, word, value in (("plural", "plural", plural), ("icon", "icon", icon), ("color", "color", color)):
            if value is None:
                continue
            if not isinstance(value, str):
                raise EditError(f"{path}/{name}", f"{name.capitalize()} must be text")
            if value.strip():
                meta[word] = value.strip()
            else:
                meta.pop(word, None)
        if not meta:
            del ent["x-crm-entity"]

    commit(doc, change)


def remove_entity(doc: dict[str, Any], entity: str) -> None:
    """Remove an entity (publishing archives its records, restorable). Refused while other entities link to it."""
    entity_doc(doc, entity)
    linked = [f"{e['title']} ({other}.{key})" for other, e in doc["$defs"].items() if other != entity
              for key, prop in e["properties"].items() if prop["x-crm-field"].get("entity") == entity]
    if linked:
        raise EditError(f"$defs/{entity}", f"other entities link to '{entity}': {', '.join(linked)};"
                                           " remove those fields first")
    creators = [e["title"] for other, e in doc["$defs"].items() if other != entity
                and _creates(e.get("x-crm-workflow", {}), entity)]
    if creators:
        raise EditError(f"$defs/{entity}", f"the workflow of {', '.join(creators)} creates '{entity}' records")
    if len(doc["$defs"]) == 1:
        raise EditError(f"$defs/{entity}", "an app needs at least one entity")
    commit(doc, lambda work: work["$defs"].pop(entity))


def _creates(node: Any, entity: str) -> bool:
    """Whether a workflow has a "create" action for `entity`."""
    if isinstance(node, dict):
        return node.get("create") == entity or any(_creates(v, entity) for v in node.values())
    return isinstance(node, list) and any(_creates(v, entity) for v in node)


def add_field(doc: dict[str, Any], entity: str, kind: str, title: str, reserved: Iterable[str] = ()) -> str:
    """Add a field of `kind` at the end (key made from the title, unique in the entity and not one of `reserved`,
    the entity's published keys: a new field never takes over the stored values of a removed or renamed one),
    with the kind's defaults: a select gets "Option 1"/"Option 2", a relation links to the first other entity
    (set-null on delete), currency is EUR with 2 decimals. Also placed in the last form section, if the form has
    sections."""
    title = _title(f"$defs/{entity}/properties", title)

    def change(work: dict[str, Any]) -> str:
        ent = entity_doc(work, entity)
        key = key_from_label(title, {*ent["properties"], *reserved})
        new_field(work, entity, key, kind, title)
        sections = ent.get("x-crm-form", {}).get("sections")
        if sections:
            sections[-1]["fields"].append(key)
        return key

    return commit(doc, change)


def _walk_conditions(ent: dict[str, Any]) -> list[tuple[str, Any]]:
    """(where, condition) for every condition in an entity: fields' visibleIf and the allOf rules."""
    out = [(f"the visibility of {p['title']}", p["x-crm-field"]["visibleIf"])
           for p in ent["properties"].values() if "visibleIf" in p["x-crm-field"]]
    for i, rule in enumerate(ent.get("allOf", [])):
        out += [(f"rule {i + 1}", rule[part]) for part in ("if", "then", "else") if part in rule]
    return out


_NOBODY = "\x00"  # a key no field has: renaming a field to it shows whether something names the field


def field_uses(doc: dict[str, Any], entity: str, key: str) -> list[str]:
    """Where a field is used in conditions and the workflow, in words ("the visibility of Why won")."""
    ent = entity_doc(doc, entity)
    uses = [where for where, cond in _walk_conditions(ent) if _rename_in(cond, key, _NOBODY) != cond]
    flow = ent.get("x-crm-workflow", {})
    if flow and _rename_in(flow, key, _NOBODY, workflow=True) != flow:
        uses.append("the workflow")
    return uses


def remove_field(doc: dict[str, Any], entity: str, key: str) -> None:
    """Remove a field (publishing archives its values, restorable) and take it out of required, the list view,
    the form and indexes. Refused while a condition or the workflow uses it, and for the entity's last field."""
    path = f"$defs/{entity}/properties/{key}"
    field_prop(doc, entity, key)
    uses = field_uses(doc, entity, key)
    if uses:
        raise EditError(path, f"'{key}' is used by {', '.join(uses)}; change that first")
    if len(entity_doc(doc, entity)["properties"]) == 1:
        raise EditError(path, "an entity needs at least one field")

    def change(work: dict[str, Any]) -> None:
        ent = entity_doc(work, entity)
        del ent["properties"][key]
        _replace_key(ent, key, None)

    commit(doc, change)


def _replace_key(ent: dict[str, Any], old: str, new: str | None) -> None:
    """Rename (or, with new=None, drop) a field key everywhere an entity names it outside its own property."""

    def swap(names: list[str]) -> list[str]:
        return [new if n == old and new is not None else n for n in names if n != old or new is not None]

    if "required" in ent:
        ent["required"] = swap(ent["required"])
        if not ent["required"]:
            del ent["required"]
    meta = ent.get("x-crm-entity", {})
    if meta.get("titleField") == old:
        if new is None:
            del meta["titleField"]
        else:
            meta["titleField"] = new
    view = ent.get("x-crm-views", {}).get("list")
    if view:
        if "columns" in view:
            view["columns"] = swap(view["columns"])
        if "sort" in view:
            view["sort"] = [{**s, "field": new} if s["field"] == old else s for s in view["sort"]
                            if s["field"] != old or new is not None]
            if not view["sort"]:
                del view["sort"]
    for section in ent.get("x-crm-form", {}).get("sections", []):
        section["fields"] = swap(section["fields"])
    if "x-crm-indexes" in ent:
        ent["x-crm-indexes"] = [{**i, "fields": swap(i["fields"])} for i in ent["x-crm-indexes"]
                                if new is not None or old not in i["fields"]]
        if not ent["x-crm-indexes"]:
            del ent["x-crm-indexes"]
    if new is not None:
        for prop in ent["properties"].values():
            if "visibleIf" in prop["x-crm-field"]:
                prop["x-crm-field"]["visibleIf"] = _rename_in(prop["x-crm-field"]["visibleIf"], old, new)
        if "allOf" in ent:
            ent["allOf"] = _rename_in(ent["allOf"], old, new)
        if "x-crm-workflow" in ent:
            ent["x-crm-workflow"] = _rename_in(ent["x-crm-workflow"], old, new, workflow=True)


def _rename_in(node: Any, old: str, new: str, workflow: bool = False) -> Any:
    """A condition (or workflow) with field key `old` renamed: property names, required lists, and in a workflow
    the field names it lists (state field, card fields, set actions, changed-field triggers)."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in ("properties", "set") and isinstance(v, dict):  # not "values": those are another entity's
                v = {new if name == old else name: _rename_in(sub, old, new, workflow) for name, sub in v.items()}
            elif k in ("required", "fields", "cardFields") and isinstance(v, list):
                v = [new if n == old else n for n in v]
            elif workflow and k in ("field", "sum", "since", "$field") and v == old:
                v = new
            else:
                v = _rename_in(v, old, new, workflow)
            out[k] = v
        return out
    if isinstance(node, list):
        return [_rename_in(v, old, new, workflow) for v in node]
    return node


def _rename_in_creates(node: Any, entity: str, old: str, new: str) -> Any:
    """A workflow with the field `old` of `entity` renamed where "create" actions fill that entity's fields."""
    if isinstance(node, dict):
        out = {k: _rename_in_creates(v, entity, old, new) for k, v in node.items()}
        if out.get("create") == entity and isinstance(out.get("values"), dict):
            out["values"] = {new if k == old else k: v for k, v in out["values"].items()}
        return out
    if isinstance(node, list):
        return [_rename_in_creates(v, entity, old, new) for v in node]
    return node


def published_origin(doc: dict[str, Any], entity: str, key: str, published_keys: set[str]) -> str | None:
    """The key a field had when it was last published (itself, or the key a rename in this draft came from);
    None for a field that was never published."""
    if key in published_keys:
        return key
    source = field_prop(doc, entity, key)["x-crm-field"].get("renamedFrom")
    return source if source in published_keys else None


def rename_key(doc: dict[str, Any], entity: str, key: str, new_key: str, published_keys: set[str]) -> None:
    """Change a field's key everywhere the app names it: the entity's required list, title field, list view, form,
    indexes, conditions and workflow, and the "create" actions of any workflow that fill this entity's fields.

    A published field (its key in `published_keys`) is renamed with `renamedFrom: <published key>`, so publishing
    moves its stored values to the new key; renaming it again in the same draft still points at the published key,
    and renaming it back to that key drops `renamedFrom`."""
    path = f"$defs/{entity}/properties/{key}"
    field_prop(doc, entity, key)
    if new_key == key:
        return
    if not isinstance(new_key, str) or not is_key(new_key):
        raise EditError(f"{path}/key", f"'{new_key}' cannot be a key: use a-z, 0-9 and _, starting with a letter"
                                       " (63 at most), not an SQL reserved word or a system field")
    origin = published_origin(doc, entity, key, published_keys)
    if new_key in entity_doc(doc, entity)["properties"] or (new_key in published_keys and new_key != origin):
        raise EditError(f"{path}/key", f"'{new_key}' is already used by another field of '{entity}'"
                                       " (or was, in the published version)")

    def change(work: dict[str, Any]) -> None:
        ent = entity_doc(work, entity)
        ent["properties"] = {new_key if k == key else k: v for k, v in ent["properties"].items()}
        xfield = ent["properties"][new_key]["x-crm-field"]
        if origin is not None and new_key != origin:
            xfield["renamedFrom"] = origin
        elif origin is not None:
            xfield.pop("renamedFrom", None)
        _replace_key(ent, key, new_key)
        for other in work["$defs"].values():
            if "x-crm-workflow" in other:
                other["x-crm-workflow"] = _rename_in_creates(other["x-crm-workflow"], entity, key, new_key)

    commit(doc, change)


def move_field(doc: dict[str, Any], entity: str, key: str, index: int) -> None:
    """Move a field to position `index` (0 = first; clamped to the ends): the order of properties is the order
    of fields wherever no other order is given."""
    field_prop(doc, entity, key)

    def change(work: dict[str, Any]) -> None:
        ent = entity_doc(work, entity)
        keys = [k for k in ent["properties"] if k != key]
        keys.insert(max(0, min(index, len(keys))), key)
        ent["properties"] = {k: ent["properties"][k] for k in keys}

    commit(doc, change)


def set_list_view(doc: dict[str, Any], entity: str, columns: list[str], sort: list[tuple[str, str]],
                  page_size: int | None = None) -> None:
    """Set the list page's columns (fields, created_at, updated_at), default sort ((field, "asc"|"desc"), the
    first decides first) and page size (1 to 500; None keeps the default)."""
    path = f"$defs/{entity}/x-crm-views/list"
    props = entity_doc(doc, entity)["properties"]
    for name in columns:
        if name not in props and name not in _LISTABLE_SYSTEM:
            raise EditError(f"{path}/columns", f"Columns: there is no field '{name}'")
    if len(set(columns)) != len(columns):
        raise EditError(f"{path}/columns", "Columns: a field is listed twice")
    order = []
    for name, direction in sort:
        if name not in props and name not in _LISTABLE_SYSTEM:
            raise EditError(f"{path}/sort", f"Sort: there is no field '{name}'")
        if direction not in ("asc", "desc"):
            raise EditError(f"{path}/sort", f"Sort: direction must be asc or desc, not '{direction}'")
        order.append({"field": name, "dir": direction})
    if len(order) > 5:
        raise EditError(f"{path}/sort", "Sort: at most 5 fields")
    if page_size is not None and (not isinstance(page_size, int) or not 1 <= page_size <= 500):
        raise EditError(f"{path}/pageSize", "Page size must be a whole number from 1 to 500")

    def change(work: dict[str, Any]) -> None:
        ent = entity_doc(work, entity)
        view: dict[str, Any] = {"columns": list(columns)}
        if order:
            view["sort"] = order
        if page_size is not None:
            view["pageSize"] = page_size
        ent.setdefault("x-crm-views", {})["list"] = view

    commit(doc, change)


def set_form_sections(doc: dict[str, Any], entity: str, sections: list[dict[str, Any]]) -> None:
    """Lay out the edit form: sections of {"title", "columns": 1 to 4, "fields": [...]}; each field placed at most
    once (fields placed nowhere show after the sections). An empty list removes the layout."""
    path = f"$defs/{entity}/x-crm-form/sections"
    props = entity_doc(doc, entity)["properties"]
    placed: set[str] = set()
    layout = []
    for i, section in enumerate(sections):
        if not isinstance(section, dict):
            raise EditError(f"{path}/{i}", "a section needs a title, columns and fields")
        out: dict[str, Any] = {}
        if section.get("title"):
            out["title"] = _title(f"{path}/{i}/title", section["title"], "Section title")
        columns = section.get("columns", 1)
        if not isinstance(columns, int) or isinstance(columns, bool) or not 1 <= columns <= 4:
            raise EditError(f"{path}/{i}/columns", "Columns must be 1, 2, 3 or 4")
        out["columns"] = columns
        fields = list(section.get("fields", []))
        for name in fields:
            if name not in props:
                raise EditError(f"{path}/{i}/fields", f"there is no field '{name}'")
            if name in placed:
                raise EditError(f"{path}/{i}/fields", f"'{props[name]['title']}' is placed twice")
            placed.add(name)
        out["fields"] = fields
        layout.append(out)

    def change(work: dict[str, Any]) -> None:
        ent = entity_doc(work, entity)
        if layout:
            ent["x-crm-form"] = {"sections": layout}
        else:
            ent.pop("x-crm-form", None)

    commit(doc, change)
