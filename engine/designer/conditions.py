"""Conditions as rules people click together ("Stage is Won", "Amount is at least 1000"), and back.

A rule is {"field": key, "op": operator, "value": ...}; rules are ANDed. Rules on different fields become the
documented flat shape {"properties": {...}, "required": [...]}; anything else (two rules on one field, an "is
empty" rule among others) becomes {"allOf": [one schema per rule]}. Every rule but "is empty" also requires the
field, because in JSON Schema a `properties` condition alone matches an empty field too."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.designer.document import EditError, entity_doc, field_model
from engine.schema.kinds import ConversionError, kind_of
from engine.schema.validation import field_errors

__all__ = ["OPERATORS", "condition_from_rules", "operators_for", "rules_from_condition"]

#: Every operator a rule may use, with the words the designer shows.
OPERATORS: dict[str, str] = {
    "eq": "is", "ne": "is not", "in": "is one of", "not_in": "is none of", "empty": "is empty",
    "not_empty": "is not empty", "gt": "is more than", "gte": "is at least", "lt": "is less than",
    "lte": "is at most", "contains": "contains",
}
_NUMBERS = ("integer", "decimal", "percent", "rating")
_LISTS = ("multi_select", "relation_many")
_COMPARE = {"gt": "exclusiveMinimum", "gte": "minimum", "lt": "exclusiveMaximum", "lte": "maximum"}
_TEXT = ("text", "long_text", "email", "phone", "url", "autonumber")
_REGEX_SPECIAL = set("\\.^$|?*+()[]{}/-")


def operators_for(kind: str) -> tuple[str, ...]:
    """The operators a condition may use on a field of this kind (JSON Schema compares numbers, not dates)."""
    if kind in _LISTS:
        return ("contains", "empty", "not_empty")
    if kind == "boolean":
        return ("eq", "ne", "empty", "not_empty")
    ops = ["eq", "ne", "in", "not_in"]
    if kind in _NUMBERS:
        ops += ["gt", "gte", "lt", "lte"]
    if kind in _TEXT:
        ops.append("contains")
    return (*ops, "empty", "not_empty")


def _escape(text: str) -> str:
    return "".join(f"\\{c}" if c in _REGEX_SPECIAL else c for c in text)


def _unescape(pattern: str) -> str | None:
    """The literal text an escaped pattern matches; None when it is a real regular expression."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in _REGEX_SPECIAL:
            out.append(pattern[i + 1])
            i += 2
            continue
        if c in _REGEX_SPECIAL:
            return None
        out.append(c)
        i += 1
    return "".join(out)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _value(prop: dict[str, Any], key: str, value: Any, where: str, exact: bool) -> Any:
    """A rule's value as the field stores it; EditError naming the field when it is not one. `exact` values
    (is, is one of) must also be values the field accepts; compared and contained ones need only the right type."""
    field = field_model(key, prop)
    if value is None or value == "" or value == []:
        raise EditError(where, f"a value for '{field.title}' is missing")
    if field.kind == "multi_select":
        if value not in field.option_values():
            raise EditError(where, f"{field.title}: '{value}' is not one of the options")
        return value
    kind = kind_of("relation" if field.kind == "relation_many" else field.kind)
    try:
        coerced = kind.coerce(field, value)
    except ConversionError as exc:
        raise EditError(where, f"{field.title}: {exc}") from None
    problems = field_errors(field, coerced) if exact and field.kind != "relation_many" else []
    if problems:
        raise EditError(where, f"{field.title}: {problems[0]}")
    return _json_value(coerced)


def _rule_schema(doc: dict[str, Any], entity: str, i: int, rule: Any, at: str) -> tuple[str, str, Any]:
    """(field, op, the field's sub-schema or None) for one rule."""
    if not isinstance(rule, dict) or not isinstance(rule.get("field"), str) or not isinstance(rule.get("op"), str):
        raise EditError(f"{at}/{i}", "a rule needs a field and an operator")
    key, op = rule["field"], rule["op"]
    prop = entity_doc(doc, entity).get("properties", {}).get(key)
    if not isinstance(prop, dict):
        raise EditError(f"{at}/{i}/field", f"there is no field '{key}' in '{entity}'")
    kind = prop["x-crm-field"]["kind"]
    allowed = operators_for(kind)
    if op not in allowed:
        words = ", ".join(f"'{OPERATORS[o]}'" for o in allowed)
        raise EditError(f"{at}/{i}/op", f"'{OPERATORS.get(op, op)}' cannot be used with {prop['title']}"
                                        f" (a {kind} field); use {words}")
    where = f"{at}/{i}/value"
    if op in ("empty", "not_empty"):
        return key, op, None
    if op in ("in", "not_in"):
        values = rule.get("value")
        if not isinstance(values, list) or not values:
            raise EditError(where, f"choose at least one value for '{prop['title']}'")
        enum = list(dict.fromkeys(_value(prop, key, v, where, True) for v in values))
        return key, op, {"enum": enum} if op == "in" else {"not": {"enum": enum}}
    value = _value(prop, key, rule.get("value"), where, op in ("eq", "ne"))
    if op == "eq":
        return key, op, {"const": value}
    if op == "ne":
        return key, op, {"not": {"const": value}}
    if op in _COMPARE:
        return key, op, {_COMPARE[op]: value}
    if kind in _LISTS:
        return key, op, {"contains": {"const": value}}
    return key, op, {"pattern": _escape(str(value))}


def _single(key: str, op: str, sub: Any) -> dict[str, Any]:
    if op == "empty":
        return {"not": {"required": [key]}}
    if sub is None:
        return {"required": [key]}
    return {"properties": {key: sub}, "required": [key]}


def condition_from_rules(doc: dict[str, Any], entity: str, rules: list[dict[str, Any]],
                         at: str = "rules") -> dict[str, Any]:
    """A JSON Schema condition for rules ANDed together; {} (always true) for no rules. `at` prefixes error paths."""
    if not isinstance(rules, list):
        raise EditError(at, "rules must be a list")
    parts = [_rule_schema(doc, entity, i, r, at) for i, r in enumerate(rules)]
    if not parts:
        return {}
    keys = [k for k, _, _ in parts]
    if len(parts) == 1 or (len(set(keys)) == len(keys) and all(op != "empty" for _, op, _ in parts)):
        if len(parts) == 1:
            return _single(*parts[0])
        props = {k: sub for k, _, sub in parts if sub is not None}
        return {**({"properties": props} if props else {}), "required": keys}
    return {"allOf": [_single(*p) for p in parts]}


def _sub_rules(key: str, sub: Any) -> list[dict[str, Any]] | None:
    if not isinstance(sub, dict) or not sub:
        return None
    if "not" in sub:
        inner = sub["not"]
        if len(sub) != 1 or not isinstance(inner, dict) or len(inner) != 1:
            return None
        if "const" in inner:
            return [{"field": key, "op": "ne", "value": inner["const"]}]
        if isinstance(inner.get("enum"), list):
            return [{"field": key, "op": "not_in", "value": inner["enum"]}]
        return None
    out = []
    reverse = {v: k for k, v in _COMPARE.items()}
    for word, value in sub.items():
        if word == "const":
            out.append({"field": key, "op": "eq", "value": value})
        elif word == "enum" and isinstance(value, list):
            out.append({"field": key, "op": "in", "value": value})
        elif word in reverse:
            out.append({"field": key, "op": reverse[word], "value": value})
        elif word == "pattern" and isinstance(value, str) and _unescape(value) is not None:
            out.append({"field": key, "op": "contains", "value": _unescape(value)})
        elif word == "contains" and isinstance(value, dict) and set(value) == {"const"}:
            out.append({"field": key, "op": "contains", "value": value["const"]})
        else:
            return None
    return out


def rules_from_condition(condition: Any) -> list[dict[str, Any]] | None:
    """The rules a condition says, for the designer to show; None when it was hand-written in a shape the rule
    builder cannot show (the designer then leaves it as it is)."""
    if condition is True or condition == {}:
        return []
    if not isinstance(condition, dict):
        return None
    if set(condition) == {"allOf"} and isinstance(condition["allOf"], list):
        out: list[dict[str, Any]] = []
        for part in condition["allOf"]:
            rules = rules_from_condition(part)
            if rules is None:
                return None
            out += rules
        return out
    if set(condition) == {"not"}:
        inner = condition["not"]
        if isinstance(inner, dict) and set(inner) == {"required"} and isinstance(inner["required"], list) \
                and len(inner["required"]) == 1:
            return [{"field": inner["required"][0], "op": "empty"}]
        return None
    if not set(condition) <= {"properties", "required"}:
        return None
    props, required = condition.get("properties", {}), condition.get("required", [])
    if not isinstance(props, dict) or not isinstance(required, list) or not set(props) <= set(required):
        return None  # a property rule without "required" also matches an empty field: not what a rule means
    out = []
    for key in required:
        if key in props:
            rules = _sub_rules(key, props[key])
            if rules is None:
                return None
            out += rules
        else:
            out.append({"field": key, "op": "not_empty"})
    return out
