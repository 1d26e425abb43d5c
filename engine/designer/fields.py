"""Fields in the designer's words: one flat settings vocabulary for every kind, read from and written to the
property schemas of a definition document.

`field_settings` shows a field as {"title": ..., "kind": ..., "required": ..., "max_length": ...}; `update_field`
takes any part of that back (unchanged values are ignored, so a whole form can be posted). Changing `kind`
rebuilds the property for the new kind, carrying over what still applies; the plan at publish converts the stored
values or refuses and names the records."""

from __future__ import annotations

import copy
from collections.abc import Collection
from decimal import Decimal, InvalidOperation
from typing import Any

import phonenumbers
import re2

from engine.designer.conditions import condition_from_rules, rules_from_condition
from engine.designer.document import EditError, entity_doc, field_model, field_prop
from engine.designer.keys import option_value_from_label
from engine.schema.kinds import KINDS, ConversionError, kind_of
from engine.schema.kinds.relation import ON_DELETE
from engine.schema.limits import MAX_PATTERN_LENGTH
from engine.schema.model import SENSITIVE_KINDS
from engine.schema.validation import QUIET, field_errors

__all__ = ["FIELD_KINDS", "PATTERN_PRESETS", "field_settings", "kind_settings", "new_field", "update_field"]

#: The palette: (kind, title, one-line description) for every field kind.
FIELD_KINDS: list[tuple[str, str, str]] = [
    ("text", "Text", "A short line of text: a name, a city, a code."),
    ("long_text", "Long text", "Several lines or paragraphs: notes, descriptions, analyses."),
    ("email", "Email", "An email address."),
    ("phone", "Phone", "A phone number, kept in international form (+49 30 1234567)."),
    ("url", "Web address", "A link to a web page (https://...)."),
    ("integer", "Whole number", "A count or quantity without decimals."),
    ("decimal", "Decimal number", "A measurement or rate with a fixed number of decimal places."),
    ("currency", "Money", "An amount in one currency, never rounded."),
    ("percent", "Percent", "A share, 0 to 100 %."),
    ("boolean", "Yes / no", "A checkbox."),
    ("date", "Date", "A calendar day."),
    ("datetime", "Date and time", "A moment in time, shown in each person's time zone."),
    ("select", "Choice", "One option from a list."),
    ("multi_select", "Multiple choice", "Several options from a list, such as tags or interests."),
    ("relation", "Link", "A link to one record of another entity: a deal's customer."),
    ("relation_many", "Links", "Links to several records of another entity."),
    ("autonumber", "Running number", "A number given to each new record automatically: CUS-00042."),
    ("rating", "Rating", "Stars, 1 to 5."),
]
_KIND_TITLES = {k: t for k, t, _ in FIELD_KINDS}
assert set(_KIND_TITLES) == set(KINDS), "FIELD_KINDS out of step with the kind registry"

#: Ready-made patterns for text fields: name -> (title, RE2 pattern).
PATTERN_PRESETS: dict[str, tuple[str, str]] = {
    "de_postcode": ("German postcode (PLZ)", r"^[0-9]{5}$"),
    "us_zip": ("US ZIP code", r"^[0-9]{5}(-[0-9]{4})?$"),
    "uk_postcode": ("UK postcode", r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$"),
    "cn_postcode": ("Chinese postcode", r"^[0-9]{6}$"),
    "cn_mobile": ("Chinese mobile number", r"^1[3-9][0-9]{9}$"),
    "cn_resident_id": ("Chinese resident ID",
                       r"^[1-9][0-9]{5}(18|19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9X]$"),
    "iban": ("IBAN (no spaces)", r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$"),
    "eu_vat": ("VAT ID (EU)", r"^(AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK|XI)"
                              r"[0-9A-Z+*]{2,12}$"),
    "sku": ("Product code (SKU)", r"^[A-Z0-9]+(-[A-Z0-9]+)*$"),
}

_COMMON = ("title", "description", "kind", "required", "indexed", "hidden", "read_only", "visible_if")
_KIND_SETTINGS: dict[str, tuple[str, ...]] = {
    "text": ("unique", "searchable", "sensitive", "default", "min_length", "max_length", "pattern", "pattern_preset"),
    "long_text": ("searchable", "sensitive", "default", "min_length", "max_length"),
    "email": ("unique", "searchable", "sensitive", "default", "max_length"),
    "phone": ("unique", "searchable", "sensitive", "default", "region"),
    "url": ("unique", "searchable", "sensitive", "default", "max_length"),
    "integer": ("unique", "default", "min", "max"),
    "decimal": ("unique", "default", "min", "max", "precision", "scale"),
    "currency": ("unique", "default", "currency", "min", "max", "precision", "scale"),
    "percent": ("unique", "default", "min", "max", "scale"),
    "rating": ("default", "max"),
    "boolean": ("default",),
    "date": ("unique", "default"),
    "datetime": ("unique", "default"),
    "select": ("unique", "default", "options"),
    "multi_select": ("default", "options", "min_items", "max_items"),
    "relation": ("unique", "target", "on_delete"),
    "relation_many": ("target", "max_items"),
    "autonumber": ("unique", "searchable", "prefix", "digits"),
}
_BOOLS = ("required", "unique", "indexed", "hidden", "searchable", "sensitive", "read_only")
_KEYWORD_OF = {"min_length": "minLength", "max_length": "maxLength", "pattern": "pattern", "min": "minimum",
               "max": "maximum", "options": "anyOf", "min_items": "minItems", "max_items": "maxItems"}
_CARRIED = ("unique", "searchable", "sensitive", "min", "max", "min_length", "max_length", "options", "target",
            "min_items", "max_items", "default")


def kind_settings(kind: str) -> tuple[str, ...]:
    """Every setting a field of this kind has in the designer vocabulary."""
    common = tuple(s for s in _COMMON if not (s == "read_only" and kind == "autonumber"))
    return common + _KIND_SETTINGS[kind]


def _preset_of(pattern: str | None) -> str | None:
    return next((name for name, (_, p) in PATTERN_PRESETS.items() if p == pattern), None)


def field_settings(doc: dict[str, Any], entity: str, key: str) -> dict[str, Any]:
    """A field's settings in the designer vocabulary, with the kind's defaults filled in. `visible_if` is a list of
    rules ([] = always shown), or None when a hand-written condition cannot be shown as rules."""
    prop = field_prop(doc, entity, key)
    xf = prop["x-crm-field"]
    kind = kind_of(xf["kind"])
    f = field_model(key, prop, key in entity_doc(doc, entity).get("required", []))
    sensitive = bool(xf.get("sensitive", False))
    known = {
        "title": prop["title"], "description": prop.get("description"), "kind": kind.name, "required": f.required,
        "indexed": bool(xf.get("indexed", False)), "hidden": bool(xf.get("hidden", False)),
        "read_only": bool(prop.get("readOnly", False)),
        "visible_if": rules_from_condition(xf["visibleIf"]) if "visibleIf" in xf else [],
        "unique": f.unique, "searchable": bool(xf.get("searchable", kind.searchable_default and not sensitive)),
        "sensitive": sensitive, "default": prop.get("default"), "min_length": f.min_length,
        "max_length": f.max_length, "pattern": f.pattern, "pattern_preset": _preset_of(f.pattern),
        "min": f.min_value if kind.name == "currency" else f.minimum,
        "max": f.max_value if kind.name == "currency" else f.maximum,
        "precision": f.precision, "scale": f.scale, "currency": f.currency, "region": f.region,
        "options": [{"value": o.value, "title": o.title, "color": o.color} for o in f.options],
        "target": f.target, "on_delete": f.on_delete, "prefix": f.prefix, "digits": f.digits,
        "min_items": f.min_items, "max_items": f.max_items,
    }
    return {name: known[name] for name in kind_settings(kind.name)}


def _fresh(doc: dict[str, Any], entity: str, kind: str) -> dict[str, Any]:
    """Settings a new field of this kind starts with."""
    if kind in ("select", "multi_select"):
        return {"options": [{"value": "option_1", "title": "Option 1"}, {"value": "option_2", "title": "Option 2"}]}
    if kind in ("relation", "relation_many"):
        others = [k for k in doc["$defs"] if k != entity]
        return {"target": (others or [entity])[0], **({"on_delete": "set-null"} if kind == "relation" else {})}
    if kind == "currency":
        return {"currency": "EUR", "precision": 15, "scale": 2}
    if kind == "autonumber":
        return {"prefix": "", "digits": 5}
    if kind == "rating":
        return {"max": 5}
    return {}


def _carried(doc: dict[str, Any], entity: str, old: dict[str, Any], kind: str) -> dict[str, Any]:
    """The settings of a field whose kind changes to `kind`: the common ones, and what still applies."""
    allowed = kind_settings(kind)
    out = {n: old[n] for n in _COMMON if n in old and n in allowed and n != "kind"}
    out.update(_fresh(doc, entity, kind))
    old_kind = old["kind"]
    for name in _CARRIED:
        value = old.get(name)
        if name not in allowed or value is None or value == []:
            continue
        if name in ("min", "max") and not {old_kind, kind} <= {"integer", "decimal", "currency"}:
            continue  # percent's 0..100 and a rating's stars mean nothing to other kinds
        if name in ("min_length", "max_length") and value == getattr(kind_of(old_kind), "default_max_length", None):
            continue  # the old kind's default, not a choice
        if name == "searchable" and value == kind_of(old_kind).searchable_default:
            continue
        if name in ("min", "max"):
            value = str(value) if kind == "currency" else _number(Decimal(str(value)))
        out[name] = value
    return out


def _number(d: Decimal) -> int | float:
    return int(d) if d == d.to_integral_value() else float(d)


def new_field(doc: dict[str, Any], entity: str, key: str, kind: str, title: str) -> None:
    """Write a new field of `kind` with sensible defaults into the entity (no validation of the whole document)."""
    if kind not in KINDS:
        raise EditError(f"$defs/{entity}/properties/{key}/kind", f"'{kind}' is not a field kind"
                                                                 f" (kinds: {', '.join(KINDS)})")
    settings = {"title": title, "kind": kind, **_fresh(doc, entity, kind)}
    entity_doc(doc, entity).setdefault("properties", {})[key] = {"title": title, "x-crm-field": {"kind": kind}}
    _write(doc, entity, key, settings, kind_changed=True)


def update_field(doc: dict[str, Any], entity: str, key: str, settings: dict[str, Any],
                 fixed_options: Collection[str] | None = None) -> None:
    """Change a field's settings (any part of the vocabulary `field_settings` gives); EditError names a setting
    the kind does not have or a value it cannot take, and leaves the document unchanged.

    `fixed_options` is the designer's way with choice options: the values given there (the published ones) are
    fixed, and every other option's value follows its title (`Option 1` retitled `Female` stores `female`), as do
    the field's default and the conditions that name the old value. None keeps the values as given."""
    from engine.designer.document import commit

    if not isinstance(settings, dict):
        raise EditError(f"$defs/{entity}/properties/{key}", "settings must be a mapping of setting to value")
    commit(doc, lambda work: _update(work, entity, key, settings, fixed_options))


def _update(doc: dict[str, Any], entity: str, key: str, settings: dict[str, Any],
            fixed_options: Collection[str] | None = None) -> None:
    path = f"$defs/{entity}/properties/{key}"
    current = field_settings(doc, entity, key)
    kind = settings.get("kind", current["kind"])
    if kind not in KINDS:
        raise EditError(f"{path}/kind", f"'{kind}' is not a field kind (kinds: {', '.join(KINDS)})")
    allowed = kind_settings(kind)
    for name, value in settings.items():
        if name not in allowed and not (name in current and current[name] == value):
            raise EditError(f"{path}/{name}", f"a {_KIND_TITLES[kind]} field has no setting '{name}'"
                                              f" (its settings: {', '.join(allowed)})")
    changes = {n: v for n, v in settings.items() if n in allowed and (n not in current or current[n] != v)}
    if not changes:
        return
    base = _carried(doc, entity, current, kind) if kind != current["kind"] else dict(current)
    if changes.get("sensitive") and "searchable" not in changes:
        base["searchable"] = False  # encrypted values cannot be searched
    if changes.get("pattern_preset") is None and "pattern" in changes:
        base["pattern_preset"] = None
    base.update(changes)
    renames: dict[str, str] = {}
    if fixed_options is not None and "options" in changes and base.get("options"):
        base["options"], renames = _follow_titles(doc, base["options"], set(fixed_options))
        base["default"] = _renamed_value(base.get("default"), renames)
        _rename_option_consts(entity_doc(doc, entity)["properties"][key], renames)  # translations stay with them
    _write(doc, entity, key, base, kind_changed=kind != current["kind"])
    if renames:
        _rename_values(entity_doc(doc, entity), key, renames)


def _strings(node: Any) -> set[str]:
    if isinstance(node, dict):
        return {t for v in node.values() for t in _strings(v)}
    if isinstance(node, list):
        return {t for v in node for t in _strings(v)}
    return {node} if isinstance(node, str) else set()


def _follow_titles(doc: dict[str, Any], options: Any, fixed: set[str]) -> tuple[Any, dict[str, str]]:
    """The options with each unpublished value made from its title (unique among the options), and the values
    that changed {old: new}. Values a workflow mentions stay as they are: states and actions name them."""
    if not isinstance(options, list) or not all(isinstance(o, dict) for o in options):
        return options, {}  # _options reports what is wrong with them
    flows = _strings([e.get("x-crm-workflow") for e in doc["$defs"].values() if isinstance(e, dict)])
    follows = [o.get("value") in (None, "") or (o["value"] not in fixed and o["value"] not in flows)
               for o in options]
    taken = {str(o["value"]) for o, f in zip(options, follows, strict=True) if not f}
    out, renames = [], {}
    for option, follow in zip(options, follows, strict=True):
        title = str(option.get("title") or option.get("value") or "").strip()
        if follow and title:
            value = option_value_from_label(title, taken)
            if option.get("value") not in (None, "", value):
                renames[str(option["value"])] = value
            option = {**option, "value": value}
        taken.add(str(option.get("value")))
        out.append(option)
    return out, renames


def _renamed_value(value: Any, renames: dict[str, str]) -> Any:
    if isinstance(value, list):
        return [renames.get(v, v) if isinstance(v, str) else v for v in value]
    return renames.get(value, value) if isinstance(value, str) else value


def _rename_option_consts(prop: dict[str, Any], renames: dict[str, str]) -> None:
    for option in prop.get("anyOf") or prop.get("items", {}).get("anyOf") or []:
        if isinstance(option, dict) and option.get("const") in renames:
            option["const"] = renames[option["const"]]


def _rename_values(ent: dict[str, Any], key: str, renames: dict[str, str]) -> None:
    """Rename option values of the field `key` where the entity's conditions (fields' visibleIf, allOf rules)
    compare that field with them; every old value at once, so swapped values stay swapped."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k == "properties" and isinstance(v, dict):
                    v = {name: _renamed_deep(sub, renames) if name == key else walk(sub) for name, sub in v.items()}
                else:
                    v = walk(v)
                out[k] = v
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    for prop in ent["properties"].values():
        xf = prop.get("x-crm-field", {})
        if "visibleIf" in xf:
            xf["visibleIf"] = walk(xf["visibleIf"])
    if "allOf" in ent:
        ent["allOf"] = walk(ent["allOf"])


def _renamed_deep(node: Any, renames: dict[str, str]) -> Any:
    """A field's sub-schema in a condition (const, enum, not, contains) with the values renamed."""
    if isinstance(node, dict):
        return {k: _renamed_deep(v, renames) for k, v in node.items()}
    if isinstance(node, list):
        return [_renamed_deep(v, renames) for v in node]
    return renames.get(node, node) if isinstance(node, str) else node


def _check(doc: dict[str, Any], kind: str, s: dict[str, Any], path: str) -> None:
    """Check and normalise the values of a full settings dict (everything but `default` and `visible_if`)."""

    def bad(name: str, message: str) -> EditError:
        return EditError(f"{path}/{name}", message)

    title = s.get("title")
    if not isinstance(title, str) or not title.strip() or len(title.strip()) > 200:
        raise bad("title", "Title must be 1 to 200 characters")
    s["title"] = title.strip()
    description = s.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 2000):
        raise bad("description", "Description must be text of at most 2000 characters")
    s["description"] = description.strip() if description and description.strip() else None
    for name in _BOOLS:
        if name in s and not isinstance(s[name], bool):
            raise bad(name, f"'{name}' must be yes or no (true or false)")
    if s.get("pattern_preset") is not None:
        if s["pattern_preset"] not in PATTERN_PRESETS:
            raise bad("pattern_preset", f"there is no pattern preset '{s['pattern_preset']}'"
                                        f" (presets: {', '.join(PATTERN_PRESETS)})")
        s["pattern"] = PATTERN_PRESETS[s["pattern_preset"]][1]
    if s.get("pattern") in ("", None):
        s["pattern"] = None
    elif not isinstance(s["pattern"], str) or len(s["pattern"]) > MAX_PATTERN_LENGTH:
        raise bad("pattern", f"Pattern must be text of at most {MAX_PATTERN_LENGTH} characters")
    else:
        try:
            re2.compile(s["pattern"], QUIET)
        except re2.error:
            raise bad("pattern", "Pattern is not a valid regular expression (RE2 syntax: no look-around or"
                                 " back-references)") from None
    _check_range(s, "min_length", "max_length", "Min length", "Max length", int, bad)
    _check_range(s, "min_items", "max_items", "Min items", "Max items", int, bad)
    if kind == "currency":
        for name in ("min", "max"):
            if s.get(name) in ("", None):
                s[name] = None
                continue
            try:
                s[name] = format(Decimal(str(s[name]).strip()), "f")
            except InvalidOperation:
                raise bad(name, f"{name.capitalize()} must be an amount such as 0 or 19.99") from None
        if s.get("min") is not None and s.get("max") is not None and Decimal(s["min"]) > Decimal(s["max"]):
            raise bad("min", "Min must not be larger than Max")
        code = str(s.get("currency") or "").strip().upper()
        if not re2.match(r"^[A-Z]{3}$", code):
            raise bad("currency", "Currency must be a three-letter ISO 4217 code such as EUR, USD or CNY")
        s["currency"] = code
    else:
        _check_range(s, "min", "max", "Min", "Max", int if kind in ("integer", "rating") else (int, float), bad)
    if kind == "rating" and not (isinstance(s.get("max"), int) and 3 <= s["max"] <= 10):
        raise bad("max", "a rating goes up to between 3 and 10 stars")
    for name, low, high in (("precision", 1, 30), ("scale", 0, 12), ("digits", 1, 12)):
        if name in s and (not isinstance(s[name], int) or isinstance(s[name], bool) or not low <= s[name] <= high):
            raise bad(name, f"'{name}' must be a whole number from {low} to {high}")
    if s.get("scale") is not None and s.get("precision") is not None and s["scale"] > s["precision"]:
        raise bad("scale", "Decimal places (scale) cannot be more than the total digits (precision)")
    if "region" in s and s["region"] not in (None, ""):
        region = str(s["region"]).strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise bad("region", f"'{s['region']}' is not a known region code (e.g. US, DE, CN)")
        s["region"] = region
    if "prefix" in s:
        prefix = s["prefix"] or ""
        if not isinstance(prefix, str) or len(prefix) > 20 or re2.search(r"[;\s]", prefix):
            raise bad("prefix", "Prefix must be at most 20 characters, without spaces or ';'")
        s["prefix"] = prefix
    if "target" in s and s["target"] not in doc["$defs"]:
        raise bad("target", f"there is no entity '{s['target']}' to link to")
    if "on_delete" in s and s["on_delete"] not in ON_DELETE:
        raise bad("on_delete", f"On delete must be one of: {', '.join(ON_DELETE)}")
    if s.get("sensitive") and kind not in SENSITIVE_KINDS:
        raise bad("sensitive", f"a {_KIND_TITLES[kind]} field cannot be sensitive")
    if "options" in s:
        s["options"] = _options(s["options"], bad)


def _check_range(s: dict[str, Any], low: str, high: str, low_words: str, high_words: str, types: Any,
                 bad: Any) -> None:
    for name, words in ((low, low_words), (high, high_words)):
        value = s.get(name)
        if value == "":
            s[name] = value = None
        if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
            raise bad(name, f"{words} must be a {'whole ' if types is int else ''}number")
        if value is not None and name.endswith("_length") and value < (0 if name == low else 1):
            raise bad(name, f"{words} must be at least {0 if name == low else 1}")
    if s.get(low) is not None and s.get(high) is not None and s[low] > s[high]:
        raise bad(low, f"{low_words} must not be larger than {high_words}")


def _options(options: Any, bad: Any) -> list[dict[str, Any]]:
    if not isinstance(options, list) or not options:
        raise bad("options", "a choice field needs at least one option")
    if len(options) > 500:
        raise bad("options", "at most 500 options")
    out: list[dict[str, Any]] = []
    for i, option in enumerate(options):
        if not isinstance(option, dict):
            raise bad("options", f"option {i + 1} must have a title")
        title = str(option.get("title") or option.get("value") or "").strip()
        if not title or len(title) > 200:
            raise bad("options", f"option {i + 1} needs a title of 1 to 200 characters")
        value = option.get("value")
        value = str(value).strip() if value not in (None, "") else \
            option_value_from_label(title, [o["value"] for o in out])
        if len(value) > 100 or ";" in value:
            raise bad("options", f"option value '{value}' must be at most 100 characters, without ';'")
        if any(o["value"] == value for o in out):
            raise bad("options", f"option value '{value}' is listed twice")
        color = option.get("color") or None
        if color is not None and not re2.match(r"^#[0-9a-fA-F]{6}$", str(color)):
            raise bad("options", f"option '{title}': colour must look like #2563eb")
        out.append({"value": value, "title": title, "color": color})
    return out


def _write(doc: dict[str, Any], entity: str, key: str, s: dict[str, Any], kind_changed: bool) -> None:
    """Rebuild the field's property schema from a full settings dict; the field keeps its place."""
    path = f"$defs/{entity}/properties/{key}"
    kind_name = s["kind"]
    kind = kind_of(kind_name)
    _check(doc, kind_name, s, path)
    ent = entity_doc(doc, entity)
    old = ent["properties"][key]
    old_xf = old["x-crm-field"]
    prop: dict[str, Any] = {"title": s["title"]}
    if s.get("description"):
        prop["description"] = s["description"]
    prop.update({k: v for k, v in kind.fixed.items() if k != "pattern" or kind_name == "phone"})
    prop.update(_keywords(kind_name, s, old))
    if s.get("read_only"):
        prop["readOnly"] = True
    if not kind_changed:  # standard keywords the vocabulary does not manage (an email's pattern) stay as they were
        managed = {_KEYWORD_OF[n] for n in kind_settings(kind_name) if n in _KEYWORD_OF}
        prop.update({k: v for k, v in old.items() if k in kind.allowed_keywords - managed - {"items"}})
    default = s.get("default")
    if default not in (None, "", []):
        value = _default(key, {**prop, "x-crm-field": _xsettings(kind_name, s)}, default, f"{path}/default",
                         strict=not kind_changed)
        if value is not None:
            prop["default"] = value
    xf = _xsettings(kind_name, s)
    if "renamedFrom" in old_xf:
        xf["renamedFrom"] = old_xf["renamedFrom"]
    rules = s.get("visible_if")
    if rules is None and "visibleIf" in old_xf:
        xf["visibleIf"] = old_xf["visibleIf"]  # hand-written: kept as it is
    elif rules:
        condition = condition_from_rules(doc, entity, rules, at=f"{path}/visible_if")
        if condition:
            xf["visibleIf"] = condition
    prop["x-crm-field"] = xf
    ui = {k: v for k, v in old.get("x-crm-ui", {}).items() if not kind_changed or k == "placeholder"}
    if ui:
        prop["x-crm-ui"] = ui
    if old.get("x-crm-i18n"):
        prop["x-crm-i18n"] = old["x-crm-i18n"]
    ent["properties"][key] = prop
    required = [k for k in ent.get("required", []) if k != key]
    if s.get("required"):
        required.append(key)
    if required:
        ent["required"] = required
    else:
        ent.pop("required", None)


def _keywords(kind: str, s: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if kind in ("text", "long_text", "email", "url"):
        for name, word in (("min_length", "minLength"), ("max_length", "maxLength"), ("pattern", "pattern")):
            if s.get(name) is not None:
                out[word] = s[name]
    elif kind in ("integer", "decimal", "percent"):
        for name, word in (("min", "minimum"), ("max", "maximum")):
            if s.get(name) is not None:
                out[word] = s[name]
    elif kind == "rating":
        out["maximum"] = s["max"]
    elif kind in ("select", "multi_select"):
        old_options = old.get("anyOf") or old.get("items", {}).get("anyOf") or []
        i18n = {o.get("const"): o["x-crm-i18n"] for o in old_options if isinstance(o, dict) and o.get("x-crm-i18n")}
        options = []
        for o in s["options"]:
            item: dict[str, Any] = {"const": o["value"], "title": o["title"]}
            if o.get("color"):
                item["x-crm-color"] = o["color"]
            if o["value"] in i18n:
                item["x-crm-i18n"] = i18n[o["value"]]
            options.append(item)
        if kind == "select":
            out["anyOf"] = options
        else:
            out.update({"type": "array", "items": {"anyOf": options}})
    if kind in ("multi_select", "relation_many"):
        for name, word in (("min_items", "minItems"), ("max_items", "maxItems")):
            if s.get(name) is not None:
                out[word] = s[name]
    return out


def _xsettings(kind_name: str, s: dict[str, Any]) -> dict[str, Any]:
    kind = kind_of(kind_name)
    xf: dict[str, Any] = {"kind": kind_name}
    own = {"region": "region", "target": "entity", "on_delete": "onDelete", "currency": "currency",
           "precision": "precision", "scale": "scale", "prefix": "prefix", "digits": "digits"}
    for name, word in own.items():
        if s.get(name) is not None and word in (*kind.settings, "region"):
            if word != "region" or kind_name == "phone":
                xf[word] = s[name]
    if kind_name == "currency":
        xf.update({k: s[k] for k in ("min", "max") if s.get(k) is not None})
    for flag in ("unique", "indexed", "hidden", "sensitive"):
        if s.get(flag):
            xf[flag] = True
    if "searchable" in s and s["searchable"] != (kind.searchable_default and not s.get("sensitive", False)):
        xf["searchable"] = s["searchable"]
    return xf


def _default(key: str, prop: dict[str, Any], value: Any, path: str, strict: bool) -> Any:
    """The default as the field stores it; EditError when the field would not accept it (None, dropping it, when
    a kind change makes the old default meaningless)."""
    f = field_model(key, prop)
    try:
        coerced = kind_of(f.kind).coerce(f, copy.deepcopy(value))
        problems = field_errors(f, coerced)
    except ConversionError as exc:
        problems, coerced = [str(exc)], None
    if problems:
        if not strict:
            return None
        raise EditError(path, f"Default value: {problems[0]}")
    return _number(coerced) if isinstance(coerced, Decimal) else coerced
