"""Text-shaped kinds: text, long_text, email, phone, url, autonumber."""

from __future__ import annotations

from typing import Any

import phonenumbers
import re2

from engine.schema.kinds.base import ConversionError, FieldKind, register
from engine.schema.model import Field

__all__ = ["AutonumberKind", "EmailKind", "LongTextKind", "PhoneKind", "TextKind", "UrlKind"]

_TEXT_OPS = ("eq", "ne", "contains", "starts_with", "in", "empty", "not_empty")


class _StringKind(FieldKind):
    default_max_length = 255
    operators = _TEXT_OPS
    allowed_keywords = frozenset({"minLength", "maxLength", "pattern"})
    searchable_default = False

    def read_settings(self, xfield: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
        return {
            "min_length": prop.get("minLength"),
            "max_length": prop.get("maxLength", self.default_max_length),
            "pattern": prop.get("pattern"),
        }

    def keywords(self, field: Field) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.fixed)
        if field.min_length is not None:
            out["minLength"] = field.min_length
        if field.max_length is not None:
            out["maxLength"] = field.max_length
        if field.pattern is not None:
            out["pattern"] = field.pattern
        return out

    def coerce(self, field: Field, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConversionError("must be text")
        return str(value).strip()


@register
class TextKind(_StringKind):
    name = "text"
    searchable_default = True
    fixed = {"type": "string"}


@register
class LongTextKind(_StringKind):
    name = "long_text"
    fixed = {"type": "string"}
    default_max_length = 10000

    def coerce(self, field: Field, value: Any) -> Any:
        # Keep inner line breaks; only trailing whitespace is noise.
        text = super().coerce(field, value) if not isinstance(value, str) else value
        return text.rstrip()


@register
class EmailKind(_StringKind):
    name = "email"
    searchable_default = True
    fixed = {"type": "string", "format": "email"}
    default_max_length = 254
    allowed_keywords = frozenset({"maxLength", "pattern"})

    def extra_errors(self, field: Field, value: Any) -> list[str]:
        # jsonschema's email format only looks for an "@"; people mistype more than that.
        return [] if _EMAIL.match(value) else ["is not a valid email address"]

    def coerce(self, field: Field, value: Any) -> Any:
        text = super().coerce(field, value)
        local, at, domain = text.rpartition("@")
        # Domains are case-insensitive; the local part is left as typed.
        return f"{local}@{domain.lower()}" if at else text


@register
class UrlKind(_StringKind):
    name = "url"
    fixed = {"type": "string", "format": "uri"}
    default_max_length = 2048
    allowed_keywords = frozenset({"maxLength", "pattern"})

    def extra_errors(self, field: Field, value: Any) -> list[str]:
        # format "uri" accepts any scheme, including javascript: and data:, which a link must never carry.
        # Values without a scheme are left to the format check.
        found = _SCHEME.match(value)
        if found is None or found.group(1).lower() in _URL_SCHEMES:
            return []
        return ["only web (http://, https://) and mailto: addresses are allowed"]

    def coerce(self, field: Field, value: Any) -> Any:
        text = super().coerce(field, value)
        if text and "://" not in text and "." in text and " " not in text:
            text = "https://" + text  # what people type: "example.com"
        return text


_URL_SCHEMES = ("http", "https", "mailto")
_SCHEME = re2.compile(r"^\s*([A-Za-z][A-Za-z0-9+.\-]*):")
E164 = r"^\+[1-9][0-9]{6,14}$"
_EMAIL = re2.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


@register
class PhoneKind(_StringKind):
    name = "phone"
    searchable_default = True
    fixed = {"type": "string", "pattern": E164}
    settings = ("region",)
    allowed_keywords = frozenset()

    def read_settings(self, xfield: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
        return {"region": xfield.get("region")}

    def keywords(self, field: Field) -> dict[str, Any]:
        return dict(self.fixed)

    def xsettings(self, field: Field) -> dict[str, Any]:
        return {"region": field.region} if field.region else {}

    def check(self, field: Field) -> list[str]:
        if field.region and field.region not in phonenumbers.SUPPORTED_REGIONS:
            return [f"x-crm-field/region: '{field.region}' is not a known region code (e.g. US, DE, CN)"]
        return []

    def coerce(self, field: Field, value: Any) -> Any:
        text = super().coerce(field, value)
        try:
            number = phonenumbers.parse(text, field.region)
        except phonenumbers.NumberParseException:
            hint = "" if field.region else " (include the country code, e.g. +49 30 1234567)"
            raise ConversionError(f"'{text}' is not a phone number{hint}") from None
        if not phonenumbers.is_possible_number(number):
            raise ConversionError(f"'{text}' is not a possible phone number")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@register
class AutonumberKind(_StringKind):
    name = "autonumber"
    searchable_default = True
    fixed = {"type": "string"}
    settings = ("prefix", "digits")
    operators = ("eq", "contains", "starts_with", "in", "empty", "not_empty")
    allowed_keywords = frozenset()

    def read_settings(self, xfield: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
        return {"prefix": xfield.get("prefix", ""), "digits": xfield.get("digits", 5), "read_only": True}

    def keywords(self, field: Field) -> dict[str, Any]:
        return {"type": "string"}

    def xsettings(self, field: Field) -> dict[str, Any]:
        return {"prefix": field.prefix or "", "digits": field.digits}

    def format_number(self, field: Field, number: int) -> str:
        """The value for sequence number `number`, e.g. DEAL-00042."""
        return f"{field.prefix or ''}{number:0{field.digits or 1}d}"

    def convert(self, old: Field, new: Field, value: Any) -> Any:
        if old.kind != "autonumber":
            raise ConversionError("existing values cannot become generated numbers; add a new autonumber field")
        return value
