"""Number kinds: integer, decimal, currency, percent, rating."""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from engine.schema.kinds.base import ConversionError, FieldKind, register
from engine.schema.model import Field

__all__ = ["CurrencyKind", "DecimalKind", "IntegerKind", "PercentKind", "RatingKind", "ScaledDecimal"]

_NUMBER_OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "between", "in", "empty", "not_empty")


class ScaledDecimal(sa.types.TypeDecorator[Decimal]):
    """Exact decimals on every database: SQL NUMERIC on PostgreSQL; on SQLite, whose NUMERIC is a
    float, an integer count of the smallest unit (cents), which stays exact and sorts correctly."""

    impl = sa.Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__()
        self.precision = precision
        self.scale = scale

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        if dialect.name == "sqlite":
            return int(value.scaleb(self.scale).to_integral_value(decimal.ROUND_HALF_EVEN))
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-self.scale)
        return Decimal(value)


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ConversionError("must be a number")
    if isinstance(value, float):
        value = repr(value)
    try:
        result = Decimal(str(value).strip().replace(",", "").replace("_", "")) if value != "" else None
    except decimal.InvalidOperation:
        result = None
    if result is None or not result.is_finite():
        raise ConversionError(f"'{value}' is not a number")
    return result


def _tidy(d: Decimal) -> Decimal:
    """12.5000 -> 12.5 and 100.00 -> 100, never exponent notation."""
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()


def _places_ok(d: Decimal, scale: int, precision: int) -> None:
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > scale and d != d.quantize(Decimal(1).scaleb(-scale)):
        raise ConversionError(f"at most {scale} decimal places")
    if abs(d) >= Decimal(10) ** (precision - scale):
        raise ConversionError(f"too large: at most {precision - scale} digits before the decimal point")


class _BoundedNumber(FieldKind):
    operators = _NUMBER_OPS
    allowed_keywords = frozenset({"minimum", "maximum"})

    def read_settings(self, xfield: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
        return {"minimum": prop.get("minimum"), "maximum": prop.get("maximum")}

    def keywords(self, field: Field) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.fixed)
        if field.minimum is not None:
            out["minimum"] = field.minimum
        if field.maximum is not None:
            out["maximum"] = field.maximum
        return out


@register
class IntegerKind(_BoundedNumber):
    name = "integer"
    fixed = {"type": "integer"}

    def display(self, field: Field, value: Any) -> str:
        return "" if value is None else f"{int(value):,}"

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.BigInteger()

    def coerce(self, field: Field, value: Any) -> Any:
        if isinstance(value, bool):
            raise ConversionError("must be a whole number")
        if isinstance(value, int):
            return value
        d = _to_decimal(value)
        if d != d.to_integral_value():
            raise ConversionError(f"'{value}' is not a whole number")
        if abs(d) >= 2**63:
            raise ConversionError("too large")
        return int(d)


@register
class RatingKind(IntegerKind):
    name = "rating"
    fixed = {"type": "integer"}
    operators = ("eq", "ne", "lt", "lte", "gt", "gte", "between", "in", "empty", "not_empty")
    allowed_keywords = frozenset({"maximum"})

    def read_settings(self, xfield: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
        return {"minimum": 1, "maximum": prop.get("maximum", 5)}

    def check(self, field: Field) -> list[str]:
        if not isinstance(field.maximum, int) or not 3 <= field.maximum <= 10:
            return ["maximum: a rating goes up to between 3 and 10 stars"]
        return []

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.SmallInteger()

    def display(self, field: Field, value: Any) -> str:
        return "" if value is None else "★" * int(value) + "☆" * (int(field.maximum or 5) - int(value))


@register
class DecimalKind(_BoundedNumber):
    name = "decimal"
    fixed = {"type": "number"}
    settings = ("precision", "scale")
    default_precision, default_scale = 18, 4

    def read_settings(self, xfield: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
        return {
            **super().read_settings(xfield, prop),
            "precision": xfield.get("precision", self.default_precision),
            "scale": xfield.get("scale", self.default_scale),
        }

    def xsettings(self, field: Field) -> dict[str, Any]:
        return {"precision": field.precision, "scale": field.scale}

    def check(self, field: Field) -> list[str]:
        if field.scale is not None and field.precision is not None and field.scale > field.precision:
            return ["x-crm-field/scale: cannot be larger than precision"]
        return []

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return ScaledDecimal(field.precision or self.default_precision, field.scale or 0)

    def coerce(self, field: Field, value: Any) -> Any:
        d = _to_decimal(value)
        _places_ok(d, field.scale or 0, field.precision or self.default_precision)
        return _tidy(d)

    def from_db(self, field: Field, value: Any) -> Any:
        return None if value is None else _tidy(Decimal(value))

    def to_text(self, field: Field, value: Any) -> str:
        return "" if value is None else format(Decimal(value), "f")

    def display(self, field: Field, value: Any) -> str:
        return "" if value is None else format(Decimal(value), ",f")


@register
class PercentKind(DecimalKind):
    name = "percent"
    default_precision, default_scale = 9, 2
    settings = ("scale",)

    def read_settings(self, xfield: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
        return {
            "minimum": prop.get("minimum", 0),
            "maximum": prop.get("maximum", 100),
            "precision": self.default_precision,
            "scale": xfield.get("scale", self.default_scale),
        }

    def xsettings(self, field: Field) -> dict[str, Any]:
        return {"scale": field.scale}

    def parse_text(self, field: Field, text: str) -> Any:
        return self.coerce(field, text.strip().removesuffix("%"))

    def display(self, field: Field, value: Any) -> str:
        return "" if value is None else f"{format(Decimal(value), 'f')} %"


@register
class CurrencyKind(FieldKind):
    name = "currency"
    fixed = {"type": "string"}
    settings = ("currency", "precision", "scale", "min", "max")
    operators = _NUMBER_OPS

    def read_settings(self, xfield: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
        return {
            "currency": xfield.get("currency"),
            "precision": xfield.get("precision", 15),
            "scale": xfield.get("scale", 2),
            "min_value": xfield.get("min"),
            "max_value": xfield.get("max"),
        }

    def keywords(self, field: Field) -> dict[str, Any]:
        whole = (field.precision or 15) - (field.scale or 0)
        frac = rf"(\.[0-9]{{1,{field.scale}}})?" if field.scale else ""
        return {"type": "string", "pattern": rf"^-?[0-9]{{1,{whole}}}{frac}$"}

    def xsettings(self, field: Field) -> dict[str, Any]:
        out: dict[str, Any] = {"currency": field.currency, "precision": field.precision, "scale": field.scale}
        if field.min_value is not None:
            out["min"] = field.min_value
        if field.max_value is not None:
            out["max"] = field.max_value
        return out

    def check(self, field: Field) -> list[str]:
        problems = []
        if (field.scale or 0) > (field.precision or 0):
            problems.append("x-crm-field/scale: cannot be larger than precision")
        for key, bound in (("min", field.min_value), ("max", field.max_value)):
            if bound is not None:
                try:
                    _to_decimal(bound)
                except ConversionError:
                    problems.append(f"x-crm-field/{key}: '{bound}' is not a decimal number")
        return problems

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return ScaledDecimal(field.precision or 15, field.scale or 0)

    def coerce(self, field: Field, value: Any) -> Any:
        text = str(value).strip() if isinstance(value, str) else value
        if isinstance(text, str) and field.currency and text.upper().endswith(field.currency):
            text = text[: -len(field.currency)].strip()
        d = _to_decimal(text)
        _places_ok(d, field.scale or 0, field.precision or 15)
        return format(d.quantize(Decimal(1).scaleb(-(field.scale or 0))), "f")

    def to_db(self, field: Field, value: Any) -> Any:
        return None if value is None else Decimal(value)

    def from_db(self, field: Field, value: Any) -> Any:
        return None if value is None else format(Decimal(value).quantize(Decimal(1).scaleb(-(field.scale or 0))), "f")

    def display(self, field: Field, value: Any) -> str:
        return "" if value is None else f"{field.currency} {format(Decimal(value), f',.{field.scale or 0}f')}"

    def extra_errors(self, field: Field, value: Any) -> list[str]:
        errors = []
        if field.min_value is not None and Decimal(value) < Decimal(field.min_value):
            errors.append(f"must be at least {field.min_value} {field.currency}")
        if field.max_value is not None and Decimal(value) > Decimal(field.max_value):
            errors.append(f"must be at most {field.max_value} {field.currency}")
        return errors
