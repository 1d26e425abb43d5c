"""Links between records: relation (to one) and relation_many (through a link table)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from engine.schema.kinds.base import ConversionError, FieldKind, register
from engine.schema.model import Field

__all__ = ["ON_DELETE", "RelationKind", "RelationManyKind"]

ON_DELETE = ("restrict", "set-null", "cascade")


def _record_id(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value).strip()))
    except ValueError:
        raise ConversionError(f"'{value}' is not a record id") from None


@register
class RelationKind(FieldKind):
    name = "relation"
    fixed = {"type": "string", "format": "uuid"}
    settings = ("entity", "onDelete")
    operators = ("eq", "ne", "in", "empty", "not_empty")

    def read_settings(self, xfield: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
        return {"target": xfield.get("entity"), "on_delete": xfield.get("onDelete", "restrict")}

    def xsettings(self, field: Field) -> dict[str, Any]:
        return {"entity": field.target, "onDelete": field.on_delete}

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.String(36)

    def coerce(self, field: Field, value: Any) -> Any:
        return _record_id(value)

    def convert(self, old: Field, new: Field, value: Any) -> Any:
        if old.kind != "relation" or old.target != new.target:
            raise ConversionError("a relation's target cannot change; add a new relation field instead")
        return value


@register
class RelationManyKind(FieldKind):
    name = "relation_many"
    many = True
    fixed = {"type": "array", "uniqueItems": True, "items": {"type": "string", "format": "uuid"}}
    settings = ("entity",)
    operators = ("has", "empty", "not_empty")
    allowed_keywords = frozenset({"maxItems"})

    def read_settings(self, xfield: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
        return {"target": xfield.get("entity"), "max_items": prop.get("maxItems")}

    def keywords(self, field: Field) -> dict[str, Any]:
        out = {"type": "array", "uniqueItems": True, "items": {"type": "string", "format": "uuid"}}
        if field.max_items is not None:
            out["maxItems"] = field.max_items
        return out

    def xsettings(self, field: Field) -> dict[str, Any]:
        return {"entity": field.target}

    def sql_type(self, field: Field) -> None:
        return None

    def coerce(self, field: Field, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in value.split(";") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConversionError("must be a list of record ids")
        return sorted({_record_id(v) for v in value})

    def to_text(self, field: Field, value: Any) -> str:
        return "" if not value else ";".join(value)

    def convert(self, old: Field, new: Field, value: Any) -> Any:
        if old.kind != "relation_many" or old.target != new.target:
            raise ConversionError("a many-to-many relation cannot change kind or target; add a new field instead")
        return value
