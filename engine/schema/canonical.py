"""Canonical export: one app always gives the same bytes, and export -> apply -> export is a fixed point."""

from __future__ import annotations

from typing import Any

import msgspec

from engine.schema.kinds import kind_of
from engine.schema.model import App, Entity, Field

__all__ = ["SCHEMA_URI", "to_bytes", "to_document", "to_entity_schema", "to_field_schema"]

SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"
_encoder = msgspec.json.Encoder(decimal_format="number")


def to_field_schema(field: Field) -> dict[str, Any]:
    """A field as its canonical property schema."""
    kind = kind_of(field.kind)
    out: dict[str, Any] = {"title": field.title}
    if field.description:
        out["description"] = field.description
    out.update(kind.keywords(field))
    if field.default is not None:
        out["default"] = field.default
    if field.read_only:
        out["readOnly"] = True
    xfield: dict[str, Any] = {"kind": field.kind, **kind.xsettings(field)}
    for flag, value in (("unique", field.unique), ("indexed", field.indexed), ("hidden", field.hidden)):
        if value:
            xfield[flag] = True
    if field.sensitive:
        xfield["sensitive"] = True
    if field.searchable != (kind.searchable_default and not field.sensitive):
        xfield["searchable"] = field.searchable
    if field.renamed_from:
        xfield["renamedFrom"] = field.renamed_from
    if field.visible_if is not None:
        xfield["visibleIf"] = field.visible_if
    out["x-crm-field"] = xfield
    if field.ui:
        out["x-crm-ui"] = field.ui
    if field.i18n:
        out["x-crm-i18n"] = field.i18n
    return out


def to_entity_schema(entity: Entity) -> dict[str, Any]:
    """An entity as its canonical JSON Schema."""
    out: dict[str, Any] = {"type": "object", "title": entity.title}
    if entity.description:
        out["description"] = entity.description
    meta = {k: v for k, v in (("plural", entity.plural), ("titleField", entity.title_field), ("icon", entity.icon),
                              ("color", entity.color), ("renamedFrom", entity.renamed_from)) if v}
    if meta:
        out["x-crm-entity"] = meta
    if entity.i18n:
        out["x-crm-i18n"] = entity.i18n
    out["properties"] = {f.key: to_field_schema(f) for f in entity.fields}
    required = [f.key for f in entity.fields if f.required]
    if required:
        out["required"] = required
    if entity.rules:
        out["allOf"] = list(entity.rules)
    if entity.indexes:
        out["x-crm-indexes"] = [{"fields": list(i.fields), **({"unique": True} if i.unique else {})}
                                for i in entity.indexes]
    for key, value in (("x-crm-views", entity.views), ("x-crm-form", entity.form), ("x-crm-workflow", entity.workflow)):
        if value:
            out[key] = value
    return out


def to_document(app: App) -> dict[str, Any]:
    """The whole app as its canonical JSON document (a dict)."""
    out: dict[str, Any] = {"$schema": SCHEMA_URI, "$id": f"urn:crm:app:{app.name}", "title": app.title}
    if app.description:
        out["description"] = app.description
    out["x-crm-app"] = {"name": app.name, **({"version": app.version} if app.version else {})}
    out["$defs"] = {e.key: to_entity_schema(e) for e in app.entities}
    return out


def to_bytes(app: App) -> bytes:
    """The canonical JSON text: UTF-8, two-space indent, keys in the engine's fixed order, newline at the end."""
    return msgspec.json.format(_encoder.encode(to_document(app)), indent=2) + b"\n"
