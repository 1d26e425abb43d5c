"""Compiled validators: one per entity version, built once and reused.

The entity schema is stripped of x- keywords with option lists rewritten to `enum`; the validator has a
format checker, an empty registry (no `$ref` is ever fetched) and evaluates `pattern` with RE2."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import re2
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry

from engine.errors import FieldError
from engine.schema.kinds import ConversionError, kind_of
from engine.schema.model import Entity, Field

__all__ = ["EntityValidator", "compiled_condition", "condition_holds", "describe_error", "field_errors",
           "field_validator", "validator_schema"]


@lru_cache(maxsize=4096)
def _re2(pattern: str) -> Any:
    return re2.compile(pattern, QUIET)


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    if validator.is_type(instance, "string") and not _re2(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


#: RE2 options that keep the library from printing to stderr about patterns it refuses (we report them ourselves).
QUIET = re2.Options()
QUIET.log_errors = False

_Validator = validators.extend(Draft202012Validator, {"pattern": _pattern})
_FORMATS = Draft202012Validator.FORMAT_CHECKER


def _strip_x(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_x(v) for k, v in node.items() if not k.startswith("x-")}
    if isinstance(node, list):
        return [_strip_x(v) for v in node]
    return node


def _field_schema(field: Field) -> dict[str, Any]:
    kw = kind_of(field.kind).keywords(field)
    if field.kind == "select":
        return {"enum": field.option_values()}
    if field.kind == "multi_select":
        kw["items"] = {"enum": field.option_values()}
    return kw


def validator_schema(entity: Entity) -> dict[str, Any]:
    """The plain JSON Schema the engine validates records of this entity with."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {f.key: _field_schema(f) for f in entity.fields},
        "required": [f.key for f in entity.fields if f.required],
    }
    if entity.rules:
        schema["allOf"] = [_strip_x(r) for r in entity.rules]
    return schema


_TYPE_WORDS = {"string": "text", "integer": "a whole number", "number": "a number", "boolean": "yes or no",
               "array": "a list", "object": "an object"}
_FORMAT_WORDS = {"email": "is not a valid email address", "uri": "is not a valid web address (https://...)",
                 "date": "is not a valid date (YYYY-MM-DD)", "date-time": "is not a valid date and time",
                 "uuid": "is not a valid record id"}


def _describe_if(condition: Any, entity: Entity | None) -> str:
    """'when stage is Won' for the simple conditions people write; '' otherwise."""
    props = condition.get("properties", {}) if isinstance(condition, dict) else {}
    parts = []
    for key, sub in props.items():
        if not isinstance(sub, dict):
            return ""
        fmap = entity.field_map() if entity else {}
        label = fmap[key].title if key in fmap else key
        titles = {o.value: o.title for o in fmap[key].options} if key in fmap else {}
        if "const" in sub:
            parts.append(f"{label} is {titles.get(sub['const'], sub['const'])}")
        elif "enum" in sub:
            parts.append(f"{label} is " + " or ".join(str(titles.get(v, v)) for v in sub["enum"]))
        else:
            return ""
    return " when " + " and ".join(parts) if parts else ""


def _message(error: ValidationError, field: Field | None, entity: Entity | None) -> str:
    v, value, inst = error.validator, error.validator_value, error.instance
    if v == "type":
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in (value if isinstance(value, list) else [value]))
        return f"must be {words}"
    if v == "format":
        return _FORMAT_WORDS.get(value, f"is not a valid {value}")
    if v == "pattern":
        if field is not None and field.kind == "phone":
            return "is not a phone number in international format (+4930123456)"
        if field is not None and field.kind == "currency":
            return f"is not an amount with at most {field.scale} decimal places"
        return "does not have the required format"
    if v == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters"
    if v == "maxLength":
        return f"must be at most {value} characters (it has {len(inst)})"
    if v in ("minimum", "exclusiveMinimum"):
        return f"must be at least {value}" if v == "minimum" else f"must be more than {value}"
    if v in ("maximum", "exclusiveMaximum"):
        return f"must be at most {value}" if v == "maximum" else f"must be less than {value}"
    if v == "enum":
        titles = {o.value: o.title for o in field.options} if field else {}
        allowed = ", ".join(titles.get(x, str(x)) for x in value)
        return f"{json.dumps(inst, ensure_ascii=False)} is not one of the options ({allowed})"
    if v == "uniqueItems":
        return "lists the same value twice"
    if v == "maxItems":
        return f"at most {value} values"
    if v == "minItems":
        return f"at least {value} value{'s' if value != 1 else ''}"
    if v == "const":
        return f"must be {json.dumps(value, ensure_ascii=False)}"
    return error.message


class EntityValidator:
    """The compiled validator of one entity version."""

    def __init__(self, entity: Entity) -> None:
        self.entity = entity
        self.fields = entity.field_map()
        self._validator = _Validator(validator_schema(entity), format_checker=_FORMATS, registry=Registry())

    def errors(self, record: dict[str, Any]) -> list[FieldError]:
        """Every problem with a record (JSON shape, empty fields absent), as field errors with human messages."""
        out: list[FieldError] = []
        seen: set[tuple[str, str]] = set()
        for error in self._validator.iter_errors(record):
            for fkey, message in self._field_messages(error):
                if (fkey, message) not in seen:
                    seen.add((fkey, message))
                    out.append(FieldError(fkey, message))
        for fkey, value in record.items():
            field = self.fields.get(fkey)
            if field is not None and value is not None:
                for message in kind_of(field.kind).extra_errors(field, value):
                    if (fkey, message) not in seen:
                        seen.add((fkey, message))
                        out.append(FieldError(fkey, message))
        return out

    def _field_messages(self, error: ValidationError) -> list[tuple[str, str]]:
        path = list(error.absolute_path)
        if error.validator == "required":
            when = ""
            rel = list(error.relative_schema_path)
            if "then" in rel and rel[0] == "allOf":
                when = _describe_if(self.entity.rules[rel[1]].get("if"), self.entity)
            missing = [k for k in error.validator_value if isinstance(error.instance, dict) and k not in error.instance]
            return [(k, f"is required{when}") for k in missing]
        if error.validator in ("anyOf", "allOf", "oneOf", "not", "if") and error.context:
            return [m for sub in error.context for m in self._field_messages(sub)]
        fkey = str(path[0]) if path else ""
        return [(fkey, _message(error, self.fields.get(fkey), self.entity))]


@lru_cache(maxsize=4096)
def _compiled(schema_json: str) -> Any:
    return _Validator(json.loads(schema_json), format_checker=_FORMATS, registry=Registry())


def compiled_condition(condition: dict[str, Any] | bool) -> Any:
    """The compiled validator of a condition or guard (x- keywords stripped), shared by every use of the same one."""
    return _compiled(json.dumps(_strip_x(condition), sort_keys=True))


def describe_error(error: ValidationError, field: Field | None, entity: Entity | None) -> str:
    """A validation error about one value in plain words ("must be at least 1")."""
    return _message(error, field, entity)


def condition_holds(condition: dict[str, Any], record: dict[str, Any]) -> bool:
    """Whether a record (JSON shape, empty fields absent) matches a condition such as a field's visibleIf.
    Each distinct condition is compiled once."""
    return bool(_compiled(json.dumps(condition, sort_keys=True)).is_valid(record))


def field_validator(field: Field) -> Any:
    """A validator for one field's value alone (defaults, and checking stored values against new limits)."""
    return _compiled(json.dumps(_field_schema(field), sort_keys=True, default=str))


def field_errors(field: Field, value: Any) -> list[str]:
    """Messages for one field value (already coerced); [] when it is valid."""
    if value is None:
        return []
    msgs = [_message(e, field, None) for e in field_validator(field).iter_errors(value)]
    try:
        msgs += kind_of(field.kind).extra_errors(field, value)
    except ConversionError as exc:
        msgs.append(str(exc))
    return list(dict.fromkeys(msgs))  # the format check and the kind's own check may say the same thing
