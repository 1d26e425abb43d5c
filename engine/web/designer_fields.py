"""The designer's field panel: which settings a field kind offers, and the posted panel turned into the flat
settings `engine.designer.edits.update_field` takes (options and visibility rules edited row by row)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from engine.designer import edits
from engine.designer.conditions import OPERATORS, operators_for
from engine.designer.keys import option_value_from_label
from engine.web.posts import FormData, last

__all__ = ["BOOLEAN_SETTINGS", "ON_DELETE", "SETTING_TITLES", "FieldPanel", "rules_from_post", "setting_of_error",
           "settings_from_post"]


#: Settings shown as checkboxes.
BOOLEAN_SETTINGS = ("required", "unique", "indexed", "searchable", "sensitive", "hidden", "read_only")
_WHOLE_NUMBERS = ("min_length", "max_length", "scale", "digits", "precision", "min_items", "max_items")
_NUMBERS = ("min", "max")
_TEXTS = ("title", "description", "pattern", "currency", "prefix", "target", "on_delete", "region")
#: What the panel calls each setting.
SETTING_TITLES = {
    "title": "Label", "description": "Help text", "kind": "Kind", "required": "Required", "unique": "Unique",
    "indexed": "Fast filtering (index)", "searchable": "Found by quick search", "sensitive": "Sensitive (encrypted)",
    "default": "Default value", "min": "Minimum", "max": "Maximum", "min_length": "Minimum length",
    "max_length": "Maximum length", "options": "Options", "target": "Links to",
    "on_delete": "When the linked record is deleted",
    "pattern": "Pattern", "pattern_preset": "Format", "currency": "Currency", "scale": "Decimal places",
    "prefix": "Prefix", "digits": "Digits", "visible_if": "Show only when", "hidden": "Hidden from everyone",
    "read_only": "Read-only in forms", "precision": "Total digits", "region": "Phone region (e.g. DE)",
    "min_items": "At least (choices)", "max_items": "At most (choices)",
}
ON_DELETE = (("restrict", "Refuse the delete"), ("set-null", "Empty this field"), ("cascade", "Delete this record too"))
# JSON keywords in EditError paths -> the panel's setting names.
_KEYWORD_SETTINGS = {"minimum": "min", "maximum": "max", "minLength": "min_length", "maxLength": "max_length",
                     "anyOf": "options", "items": "options", "entity": "target", "onDelete": "on_delete",
                     "visibleIf": "visible_if", "rules": "visible_if", "const": "options",
                     "minItems": "min_items", "maxItems": "max_items"}


def setting_of_error(exc: edits.EditError) -> str:
    """The panel setting an EditError is about ("" when it is about the field as a whole)."""
    parts = exc.path.split("/")
    for part in reversed(parts):
        name = _KEYWORD_SETTINGS.get(part, part)
        if name in SETTING_TITLES:
            return name
    return ""


@dataclass
class FieldPanel:
    """One field as its settings panel shows it."""

    key: str
    settings: dict[str, Any]
    published_as: str | None = None  # the key the field has in the published version (None: never published)
    fixed_options: frozenset[str] = frozenset()  # option values published: fixed; the others follow their titles
    errors: dict[str, str] = field(default_factory=dict)  # setting -> message ("" for the field as a whole)
    condition: str = ""  # the visibility rules compiled to JSON Schema, for people who read it

    @property
    def published(self) -> bool:
        """Whether the field is in the published version (renaming it moves its stored values)."""
        return self.published_as is not None

    @property
    def kind(self) -> str:
        return str(self.settings.get("kind") or "text")

    def has(self, name: str) -> bool:
        """Whether the field's kind has this setting."""
        return name in self.settings

    def text(self, name: str) -> str:
        """A setting as the input shows it."""
        value = self.settings.get(name)
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict)) else str(value)

    def operators(self, kind: str) -> list[tuple[str, str]]:
        """(op, words) a visibility rule on a field of `kind` may use."""
        return [(op, OPERATORS[op]) for op in operators_for(kind)]


# --- the posted panel -> settings ----------------------------------------------------------------------------------
def _number(name: str, text: str, whole: bool) -> int | float | None:
    text = text.strip().replace(",", ".")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise edits.EditError(name, f"{SETTING_TITLES[name]} must be a number") from None
    if whole or value.is_integer():
        if not value.is_integer():
            raise edits.EditError(name, f"{SETTING_TITLES[name]} must be a whole number")
        return int(value)
    return value


def _rows(data: FormData, *names: str) -> list[dict[str, str]]:
    columns = [data.get(n, []) for n in names]
    return [dict(zip(names, values, strict=False)) for values in zip(*columns, strict=False)]


def _options(data: FormData, action: str) -> list[dict[str, Any]]:
    """The options as posted, with the row action applied (add, remove:i, up:i, down:i)."""
    rows = [{"value": r["opt_value"], "title": r["opt_title"].strip() or r["opt_value"],
             "color": r["opt_color"] or None} for r in _rows(data, "opt_value", "opt_title", "opt_color")]
    new = last(data, "new_option").strip()
    if new and new not in {r["title"] for r in rows}:
        rows.append({"value": option_value_from_label(new, {r["value"] for r in rows}), "title": new, "color": None})
    _move_rows(rows, action, "option")
    return rows


def rules_from_post(data: FormData, action: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for r in _rows(data, "rule_field", "rule_op", "rule_value"):
        if not r["rule_field"]:
            continue
        value: Any = r["rule_value"]
        if r["rule_op"] in ("in", "not_in"):
            value = [v.strip() for v in value.replace(",", ";").split(";") if v.strip()]
        elif r["rule_op"] in ("empty", "not_empty"):
            value = None
        rules.append({"field": r["rule_field"], "op": r["rule_op"], "value": value})
    if action == "add_rule":
        rules.append({"field": last(data, "new_rule_field"), "op": "not_empty", "value": None})
    _move_rows(rules, action, "rule")
    return rules


def _move_rows(rows: list[dict[str, Any]], action: str, what: str) -> None:
    verb, _, index = action.partition(":")
    if not index.isdigit() or not verb.startswith(what + "_"):
        return
    i, verb = int(index), verb[len(what) + 1:]
    if i >= len(rows):
        return
    if verb == "remove":
        del rows[i]
    elif verb == "up" and i > 0:
        rows[i - 1], rows[i] = rows[i], rows[i - 1]
    elif verb == "down" and i + 1 < len(rows):
        rows[i + 1], rows[i] = rows[i], rows[i + 1]


def settings_from_post(data: FormData, current: dict[str, Any]) -> dict[str, Any]:
    """The settings a posted panel asks for (`current`: the field's settings, which name those its kind has).
    A new kind is asked for alone: the engine carries over what still applies. `_action` edits the option and rule
    rows. EditError for a number that is not one."""
    kind = last(data, "kind")
    if kind and kind != current.get("kind"):
        return {"kind": kind}
    action = last(data, "_action")
    out: dict[str, Any] = {}
    for name in current:
        if name in BOOLEAN_SETTINGS and name in data:
            out[name] = last(data, name) == "on"
        elif name in _WHOLE_NUMBERS + _NUMBERS and name in data:
            text = last(data, name).strip()
            out[name] = (text or None) if current.get("kind") == "currency" else \
                _number(name, text, whole=name in _WHOLE_NUMBERS)
        elif name in _TEXTS and name in data:
            out[name] = last(data, name).strip() or None
        elif name == "default" and name in data:
            out[name] = _default(current, last(data, name))
        elif name == "options" and ("opt_value" in data or "new_option" in data):
            out[name] = _options(data, action)
        elif name == "visible_if" and current[name] is not None and ("rule_field" in data or action == "add_rule"):
            out[name] = rules_from_post(data, action)
    if "pattern_preset" in current and "pattern_preset" in data:
        preset = last(data, "pattern_preset") or None
        if preset or current.get("pattern_preset"):  # choosing "custom" keeps the preset's pattern to edit
            out["pattern_preset"] = preset
        if preset:
            out.pop("pattern", None)
    if not out.get("title"):
        out.pop("title", None)
    return out


def _default(current: dict[str, Any], text: str) -> Any:
    """A typed default: yes/no for checkboxes, numbers for number kinds, else the text (the engine checks it)."""
    if not text.strip():
        return None
    kind = current.get("kind")
    if kind == "boolean":
        return text == "true"
    if kind in ("integer", "decimal", "percent", "rating"):
        return _number("default", text, whole=kind in ("integer", "rating"))
    if kind == "multi_select":
        return [v.strip() for v in text.split(";") if v.strip()]
    return text.strip()
