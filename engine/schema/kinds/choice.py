"""Kinds that choose: boolean, select, multi_select."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.schema.kinds.base import ConversionError, FieldKind, register
from engine.schema.model import Field, Option

__all__ = ["BooleanKind", "MultiSelectKind", "SelectKind", "options_from", "options_to"]

_TRUE = {"true", "yes", "y", "1", "on", "x", "✓", "是", "ja", "oui", "sí"}
_FALSE = {"false", "no", "n", "0", "off", "", "否", "nein", "non"}


@register
class BooleanKind(FieldKind):
    name = "boolean"
    fixed = {"type": "boolean"}
    operators = ("eq", "empty", "not_empty")

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.Boolean()

    def coerce(self, field: Field, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConversionError(f"'{value}' is not yes or no")

    def to_text(self, field: Field, value: Any) -> str:
        return "" if value is None else ("true" if value else "false")

    def display(self, field: Field, value: Any) -> str:
        return "" if value is None else ("Yes" if value else "No")


def options_from(raw: list[dict[str, Any]]) -> tuple[Option, ...]:
    """Options from an `anyOf: [{"const": ..., "title": ...}]` list."""
    return tuple(
        Option(value=o["const"], title=o.get("title", o["const"]), color=o.get("x-crm-color"), i18n=o.get("x-crm-i18n"))
        for o in raw
    )


def options_to(options: tuple[Option, ...]) -> list[dict[str, Any]]:
    """The canonical `anyOf` list for options."""
    out = []
    for o in options:
        item: dict[str, Any] = {"const": o.value, "title": o.title}
        if o.color:
            item["x-crm-color"] = o.color
        if o.i18n:
            item["x-crm-i18n"] = o.i18n
        out.append(item)
    return out


def _match_option(field: Field, text: str) -> str:
    """An option value from its value or its label (any case), as people type them in a CSV."""
    text = text.strip()
    for o in field.options:
        if text == o.value:
            return o.value
    folded = text.casefold()
    for o in field.options:
        labels = [o.title, *(t.get("title", "") for t in (o.i18n or {}).values())]
        if folded == o.value.casefold() or any(folded == str(lbl).casefold() for lbl in labels):
            return o.value
    return text  # left for the validator, which names the allowed values


@register
class SelectKind(FieldKind):
    name = "select"
    allowed_keywords = frozenset({"anyOf"})
    operators = ("eq", "ne", "in", "not_in", "empty", "not_empty")

    def read_settings(self, xfield: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
        return {"options": options_from(prop.get("anyOf", []))}

    def keywords(self, field: Field) -> dict[str, Any]:
        return {"anyOf": options_to(field.options)}

    def check(self, field: Field) -> list[str]:
        values = field.option_values()
        if not values:
            return ["anyOf: a select field needs at least one option"]
        dupes = sorted({v for v in values if values.count(v) > 1})
        return [f"anyOf: option '{d}' is listed twice" for d in dupes]

    def coerce(self, field: Field, value: Any) -> Any:
        if not isinstance(value, str):
            raise ConversionError("must be one of the options")
        return _match_option(field, value)

    def display(self, field: Field, value: Any) -> str:
        return "" if value is None else {o.value: o.title for o in field.options}.get(value, str(value))


@register
class MultiSelectKind(FieldKind):
    name = "multi_select"
    many = True
    operators = ("has", "has_all", "empty", "not_empty")
    allowed_keywords = frozenset({"minItems", "maxItems", "items"})

    def read_settings(self, xfield: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
        return {
            "options": options_from(prop.get("items", {}).get("anyOf", [])),
            "min_items": prop.get("minItems"),
            "max_items": prop.get("maxItems"),
        }

    def keywords(self, field: Field) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "array", "uniqueItems": True, "items": {"anyOf": options_to(field.options)}}
        if field.min_items is not None:
            out["minItems"] = field.min_items
        if field.max_items is not None:
            out["maxItems"] = field.max_items
        return out

    check = SelectKind.check

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.JSON(none_as_null=True)  # an empty field is SQL NULL, not JSON 'null', so `empty` filters find it

    def coerce(self, field: Field, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in value.split(";") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConversionError("must be a list of options")
        chosen = [_match_option(field, str(v)) for v in value]
        order = {v: i for i, v in enumerate(field.option_values())}
        # Option order makes the stored list canonical; unknown values go last for the validator to name.
        return sorted(chosen, key=lambda v: order.get(v, len(order)))

    def to_db(self, field: Field, value: Any) -> Any:
        return value or None

    def from_db(self, field: Field, value: Any) -> Any:
        return list(value) if value else None

    def to_text(self, field: Field, value: Any) -> str:
        return "" if not value else ";".join(value)

    def display(self, field: Field, value: Any) -> str:
        titles = {o.value: o.title for o in field.options}
        return ", ".join(titles.get(v, v) for v in value or [])
