"""Load an app definition: caps, our dialect's meta-schema, then the checks a schema cannot express.

Every problem is reported with its JSON path, in plain words; nothing is half-loaded."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

import msgspec
import re2
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from referencing import Registry

from engine.errors import DefinitionError, Problem
from engine.schema.kinds import KINDS, ConversionError, kind_of
from engine.schema.limits import MAX_CONDITION_DEPTH, MAX_DEFINITION_BYTES, MAX_DEPTH, MAX_PATTERN_LENGTH
from engine.schema.model import SENSITIVE_KINDS, SYSTEM_COLUMNS, App, Entity, Field, IndexSpec
from engine.schema.names import RESERVED_WORDS
from engine.schema.validation import QUIET

__all__ = ["load_definition", "meta_schema", "parse_json"]

_FORBIDDEN_IN_CONDITIONS = {"$ref", "$dynamicRef", "$id", "$anchor", "$dynamicAnchor", "$defs", "definitions",
                            "patternProperties", "$schema", "$recursiveRef"}
_COMMON_KEYWORDS = {"title", "description", "default", "readOnly", "x-crm-field", "x-crm-ui", "x-crm-i18n"}


@cache
def meta_schema() -> dict[str, Any]:
    """Our dialect's meta-schema (engine/schema/dialect.schema.json)."""
    return json.loads(resources.files("engine.schema").joinpath("dialect.schema.json").read_text("utf-8"))


@cache
def _meta_validator() -> Draft202012Validator:
    return Draft202012Validator(meta_schema(), registry=Registry())


def parse_json(data: bytes | str) -> Any:
    """Decode a definition's JSON text, refusing it when it is over the size cap or not JSON."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_DEFINITION_BYTES:
        size = f"the definition is {len(raw):,} bytes; the limit is {MAX_DEFINITION_BYTES:,}"
        raise DefinitionError([Problem("", size)])
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise DefinitionError([Problem("", f"not valid JSON: {exc}")]) from None
    except RecursionError:  # nested far beyond the cap: refuse before the depth check could even run
        raise DefinitionError([Problem("", f"the definition is nested more than {MAX_DEPTH} levels deep")]) from None


def _depth(node: Any, limit: int) -> bool:
    """Whether nesting stays within `limit` levels (iterative, so a deep document cannot blow the stack)."""
    stack = [(node, 1)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return True


def _path(parts: Any) -> str:
    return "/".join(str(p) for p in parts)


def _plain(error: ValidationError) -> Problem:
    """A meta-schema error in plain words."""
    path = _path(error.absolute_path)
    v, value, inst = error.validator, error.validator_value, error.instance
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(inst) - set(allowed)) if isinstance(inst, dict) else []
        words = ", ".join(f"'{k}'" for k in extra)
        if len(extra) == 1:  # point at the keyword itself
            path = _path([*error.absolute_path, extra[0]])
        return Problem(path, f"unknown keyword {words}" + (f" (allowed here: {', '.join(allowed)})" if allowed else ""))
    if v == "required":
        missing = [k for k in value if isinstance(inst, dict) and k not in inst]
        return Problem(path, "missing " + ", ".join(f"'{k}'" for k in missing))
    if v == "pattern" and value.startswith("^[a-z][a-z0-9_]"):
        return Problem(path, f"'{inst}' is not a valid key: start with a lowercase letter,"
                             " then a-z, 0-9 or _ (63 at most)")
    if v == "propertyNames":
        return Problem(path, error.message.replace("does not match", "is not a valid key, it should match"))
    if v == "enum":
        return Problem(path, f"{json.dumps(inst, ensure_ascii=False)} is not one of: {', '.join(map(str, value))}")
    if v == "const":
        return Problem(path, f"must be {json.dumps(value)}")
    if v in ("oneOf", "anyOf") and error.context:
        deeper = [e for e in error.context if len(e.absolute_path) > len(error.absolute_path)]
        if deeper:  # one alternative was clearly meant (e.g. a "set" action with a bad value): report its problem
            return _plain(best_match(deeper))
        if error.schema.get("description"):
            return Problem(path, f"must be {error.schema['description']}")
    if v == "type":
        return Problem(path, f"must be {' or '.join(value) if isinstance(value, list) else value}")
    if v in ("maxProperties", "maxItems"):
        return Problem(path, f"too many entries: at most {value}")
    if v in ("minProperties", "minItems"):
        return Problem(path, f"needs at least {value} entr{'y' if value == 1 else 'ies'}")
    if v == "maxLength":
        return Problem(path, f"too long: at most {value} characters")
    if v == "minLength":
        return Problem(path, "must not be empty" if value == 1 else f"must be at least {value} characters")
    if v in ("minimum", "maximum"):
        return Problem(path, f"must be {'at least' if v == 'minimum' else 'at most'} {value}")
    return Problem(path, error.message)


def _meta_problems(doc: Any) -> list[Problem]:
    errors = sorted(_meta_validator().iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    return [_plain(e) for e in errors]


def _check_condition(path: str, schema: Any, problems: list[Problem]) -> None:
    """A condition (visibleIf, if/then/else) must be a plain, bounded JSON Schema using RE2-safe patterns."""
    if not _depth(schema, MAX_CONDITION_DEPTH):
        problems.append(Problem(path, f"the condition is nested more than {MAX_CONDITION_DEPTH} levels deep"))
        return
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        problems.append(Problem(_path([path, *exc.absolute_path]), f"not a valid JSON Schema: {exc.message}"))
        return
    stack: list[tuple[str, Any]] = [(path, schema)]
    while stack:
        here, node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _FORBIDDEN_IN_CONDITIONS:
                    problems.append(Problem(f"{here}/{key}", f"'{key}' is not allowed in a condition"))
                elif key == "pattern" and isinstance(value, str):
                    _check_pattern(f"{here}/pattern", value, problems)
                stack.append((f"{here}/{key}", value))
        elif isinstance(node, list):
            stack.extend((f"{here}/{i}", v) for i, v in enumerate(node))


def _check_pattern(path: str, pattern: str, problems: list[Problem]) -> None:
    if len(pattern) > MAX_PATTERN_LENGTH:
        problems.append(Problem(path, f"the pattern is longer than {MAX_PATTERN_LENGTH} characters"))
        return
    try:
        re2.compile(pattern, QUIET)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        problems.append(Problem(path, f"not a valid pattern (RE2 syntax: no look-around or back-references): {reason}"))


def _check_sensitive(path: str, kind: str, xfield: dict[str, Any], problems: list[Problem]) -> None:
    """A sensitive field is stored encrypted with a random nonce: only text-like kinds, and nothing that needs to
    compare stored values in SQL (uniqueness, indexes, search)."""
    if kind not in SENSITIVE_KINDS:
        problems.append(Problem(f"{path}/sensitive", f"a {kind} field cannot be sensitive"
                                                     f" (only {', '.join(SENSITIVE_KINDS)})"))
    for flag in ("unique", "indexed", "searchable"):
        if xfield.get(flag):
            problems.append(Problem(f"{path}/{flag}", f"a sensitive field cannot be {flag}: its values are stored"
                                                      " encrypted, so the database cannot compare them"))


def _load_field(path: str, key: str, prop: dict[str, Any], required: bool, problems: list[Problem]) -> Field | None:
    xfield = prop["x-crm-field"]
    kind = kind_of(xfield["kind"])
    start = len(problems)
    for setting in sorted(set(xfield) - {"kind", "unique", "indexed", "hidden", "searchable", "renamedFrom",
                                         "visibleIf", "sensitive"} - set(kind.settings)):
        problems.append(Problem(f"{path}/x-crm-field/{setting}", f"'{setting}' does not apply to a {kind.name} field"))
    if kind.name in ("relation", "relation_many") and "entity" not in xfield:
        problems.append(Problem(f"{path}/x-crm-field", "missing 'entity': the entity this field relates to"))
    if kind.name == "currency" and "currency" not in xfield:
        problems.append(Problem(f"{path}/x-crm-field", "missing 'currency': an ISO 4217 code such as EUR or USD"))
    if "pattern" in prop:
        _check_pattern(f"{path}/pattern", prop["pattern"], problems)
    if "visibleIf" in xfield:
        _check_condition(f"{path}/x-crm-field/visibleIf", xfield["visibleIf"], problems)
    if xfield.get("sensitive"):
        _check_sensitive(f"{path}/x-crm-field", kind.name, xfield, problems)
    if len(problems) > start:
        return None
    settings = kind.read_settings(xfield, prop)
    forced_read_only = settings.pop("read_only", False)
    field = Field(
        key=key,
        kind=kind.name,
        title=prop["title"],
        description=prop.get("description"),
        required=required,
        unique=xfield.get("unique", False),
        indexed=xfield.get("indexed", False),
        hidden=xfield.get("hidden", False),
        searchable=xfield.get("searchable", kind.searchable_default and not xfield.get("sensitive", False)),
        sensitive=xfield.get("sensitive", False),
        read_only=prop.get("readOnly", False) or forced_read_only,
        visible_if=xfield.get("visibleIf"),
        renamed_from=xfield.get("renamedFrom"),
        ui=prop.get("x-crm-ui"),
        i18n=prop.get("x-crm-i18n"),
        **settings,
    )
    derived = kind.keywords(field)
    for kw in sorted(set(prop) - _COMMON_KEYWORDS - kind.allowed_keywords):
        if kw in derived and prop[kw] != derived[kw]:
            expected = json.dumps(derived[kw], ensure_ascii=False)
            problems.append(Problem(f"{path}/{kw}", f"a {kind.name} field has {kw} {expected} (the engine derives it)"))
        elif kw not in derived:
            problems.append(Problem(f"{path}/{kw}", f"'{kw}' does not apply to a {kind.name} field"))
    problems.extend(Problem(f"{path}/{msg.split(': ', 1)[0]}", msg.split(": ", 1)[1]) for msg in kind.check(field))
    if field.unique and kind.many:
        problems.append(Problem(f"{path}/x-crm-field/unique", f"a {kind.name} field cannot be unique"))
    if "default" in prop:
        try:
            default = kind.coerce(field, prop["default"])
        except ConversionError as exc:
            problems.append(Problem(f"{path}/default", str(exc)))
            return None
        field = msgspec.structs.replace(field, default=default)
        from engine.schema.validation import field_errors

        problems.extend(Problem(f"{path}/default", m) for m in field_errors(field, default))
    return field


def _check_refs(path: str, entity: Entity, app_entities: dict[str, Any], problems: list[Problem]) -> None:
    keys = {f.key for f in entity.fields}
    listable = keys | {"created_at", "updated_at"}
    for f in entity.fields:
        fpath = f"{path}/properties/{f.key}"
        if f.key in SYSTEM_COLUMNS:
            problems.append(Problem(fpath, f"'{f.key}' is a system column every entity has; choose another key"))
        if f.key in RESERVED_WORDS:
            problems.append(Problem(fpath, f"'{f.key}' is an SQL reserved word; choose another key"))
        if f.target is not None and f.target not in app_entities:
            problems.append(Problem(f"{fpath}/x-crm-field/entity", f"there is no entity '{f.target}' in this app"))
        if f.renamed_from == f.key:
            problems.append(Problem(f"{fpath}/x-crm-field/renamedFrom", "a field cannot be renamed from itself"))
    sources = [f.renamed_from for f in entity.fields if f.renamed_from]
    for dup in sorted({s for s in sources if sources.count(s) > 1}):
        problems.append(Problem(f"{path}/properties", f"two fields say they are renamed from '{dup}'"))
    if entity.title_field and entity.title_field not in keys:
        problems.append(Problem(f"{path}/x-crm-entity/titleField", f"there is no field '{entity.title_field}'"))
    elif entity.title_field and entity.field(entity.title_field).sensitive:
        problems.append(Problem(f"{path}/x-crm-entity/titleField", f"'{entity.title_field}' is sensitive;"
                                                                   " a record's title is shown everywhere"))
    for i, idx in enumerate(entity.indexes):
        for name in idx.fields:
            if name not in keys:
                problems.append(Problem(f"{path}/x-crm-indexes/{i}/fields", f"there is no field '{name}'"))
            elif entity.field(name).kind == "relation_many":
                problems.append(Problem(f"{path}/x-crm-indexes/{i}/fields", f"'{name}' is stored in a link table"))
            elif entity.field(name).sensitive:
                problems.append(Problem(f"{path}/x-crm-indexes/{i}/fields", f"'{name}' is sensitive (encrypted)"))
    view = (entity.views or {}).get("list", {})
    for name in view.get("columns", []):
        if name not in listable:
            problems.append(Problem(f"{path}/x-crm-views/list/columns", f"there is no field '{name}'"))
    for i, s in enumerate(view.get("sort", [])):
        if s["field"] not in listable or (s["field"] in keys and (kind_of(entity.field(s["field"]).kind).many
                                                                  or entity.field(s["field"]).sensitive)):
            problems.append(Problem(f"{path}/x-crm-views/list/sort/{i}/field", f"cannot sort by '{s['field']}'"))
    seen: set[str] = set()
    for i, section in enumerate((entity.form or {}).get("sections", [])):
        for name in section["fields"]:
            if name not in keys:
                problems.append(Problem(f"{path}/x-crm-form/sections/{i}/fields", f"there is no field '{name}'"))
            elif name in seen:
                problems.append(Problem(f"{path}/x-crm-form/sections/{i}/fields", f"'{name}' is placed twice"))
            seen.add(name)


def _load_entity(path: str, key: str, raw: dict[str, Any], problems: list[Problem]) -> Entity | None:
    required = set(raw.get("required", []))
    for name in sorted(required - set(raw["properties"])):
        problems.append(Problem(f"{path}/required", f"'{name}' is required but there is no such field"))
    fields = []
    for fkey, prop in raw["properties"].items():
        f = _load_field(f"{path}/properties/{fkey}", fkey, prop, fkey in required, problems)
        if f is not None:
            fields.append(f)
    for i, rule in enumerate(raw.get("allOf", [])):
        for part in ("if", "then", "else"):
            if part in rule:
                _check_condition(f"{path}/allOf/{i}/{part}", rule[part], problems)
    meta = raw.get("x-crm-entity", {})
    if key in RESERVED_WORDS:
        problems.append(Problem(path, f"'{key}' is an SQL reserved word; choose another key"))
    if len(fields) != len(raw["properties"]):
        return None
    return Entity(
        key=key,
        title=raw["title"],
        description=raw.get("description"),
        fields=tuple(fields),
        plural=meta.get("plural"),
        title_field=meta.get("titleField"),
        icon=meta.get("icon"),
        color=meta.get("color"),
        renamed_from=meta.get("renamedFrom"),
        i18n=raw.get("x-crm-i18n"),
        rules=tuple(raw.get("allOf", [])),
        indexes=tuple(IndexSpec(fields=tuple(i["fields"]), unique=i.get("unique", False))
                      for i in raw.get("x-crm-indexes", [])),
        views=raw.get("x-crm-views"),
        form=raw.get("x-crm-form"),
        workflow=raw.get("x-crm-workflow"),
    )


def load_definition(source: bytes | str | dict[str, Any]) -> App:
    """Parse and check an app definition; raises DefinitionError listing every problem with its JSON path."""
    # A caller's dict is copied: the App keeps parts of it (views, form, workflow) and must not change with it.
    doc = copy.deepcopy(source) if isinstance(source, dict) else parse_json(source)
    if not _depth(doc, MAX_DEPTH):
        raise DefinitionError([Problem("", f"the definition is nested more than {MAX_DEPTH} levels deep")])
    problems = _meta_problems(doc)
    if problems:
        raise DefinitionError(problems)
    name = doc["x-crm-app"]["name"]
    if "$id" in doc and doc["$id"] != f"urn:crm:app:{name}":
        problems.append(Problem("$id", f"must be 'urn:crm:app:{name}' to match x-crm-app/name"))
    entities = []
    for key, raw in doc["$defs"].items():
        entity = _load_entity(f"$defs/{key}", key, raw, problems)
        if entity is not None:
            entities.append(entity)
    for entity in entities:
        _check_refs(f"$defs/{entity.key}", entity, doc["$defs"], problems)
    if not problems:
        from engine.workflows.definition import check_workflow

        draft = App(name=name, title=doc["title"], entities=tuple(entities))
        for entity in entities:
            check_workflow(f"$defs/{entity.key}/x-crm-workflow", entity, draft, problems)
    renamed = [e.renamed_from for e in entities if e.renamed_from]
    for dup in sorted({r for r in renamed if renamed.count(r) > 1}):
        problems.append(Problem("$defs", f"two entities say they are renamed from '{dup}'"))
    if problems:
        raise DefinitionError(problems)
    app = App(name=name, title=doc["title"], description=doc.get("description"), entities=tuple(entities),
              version=doc["x-crm-app"].get("version"))
    from engine.schema.canonical import to_document  # the canonical form must itself be valid JSON Schema

    try:
        Draft202012Validator.check_schema(to_document(app))
    except SchemaError as exc:
        raise DefinitionError([Problem(_path(exc.absolute_path), f"not valid JSON Schema: {exc.message}")]) from None
    return app


assert set(KINDS) == set(meta_schema()["$defs"]["xfield"]["properties"]["kind"]["enum"]), "kind list out of step"
