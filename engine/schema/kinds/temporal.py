"""Dates and times: date, datetime (stored in UTC)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from engine.schema.kinds.base import ConversionError, FieldKind, register
from engine.schema.model import Field

__all__ = ["DateKind", "DatetimeKind", "format_datetime"]

_RANGE_OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "between", "empty", "not_empty")


@register
class DateKind(FieldKind):
    name = "date"
    fixed = {"type": "string", "format": "date"}
    operators = _RANGE_OPS

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.Date()

    def coerce(self, field: Field, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return value.date().isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        text = str(value).strip()
        try:
            return dt.date.fromisoformat(text).isoformat()
        except ValueError:
            raise ConversionError(f"'{text}' is not a date (use YYYY-MM-DD)") from None

    def to_db(self, field: Field, value: Any) -> Any:
        return None if value is None else dt.date.fromisoformat(value)

    def from_db(self, field: Field, value: Any) -> Any:
        return None if value is None else value.isoformat()


def format_datetime(value: dt.datetime) -> str:
    """A UTC datetime as ISO 8601 with a Z, to the second unless it has a fraction."""
    if value.tzinfo is None:  # how the engine stores times (UTC); isoformat shows a fraction only when there is one
        return value.isoformat() + "Z"
    value = value.astimezone(dt.UTC)
    spec = "microseconds" if value.microsecond else "seconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


@register
class DatetimeKind(FieldKind):
    name = "datetime"
    fixed = {"type": "string", "format": "date-time"}
    operators = _RANGE_OPS

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.DateTime()  # naive, always UTC

    def coerce(self, field: Field, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return format_datetime(value)
        text = str(value).strip()
        try:
            parsed = dt.datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
        except ValueError:
            raise ConversionError(f"'{text}' is not a date and time (use 2026-01-31T09:30:00Z)") from None
        return format_datetime(parsed)  # a time without an offset is taken as UTC

    def to_db(self, field: Field, value: Any) -> Any:
        if value is None:
            return None
        parsed = dt.datetime.fromisoformat(value)
        return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed

    def from_db(self, field: Field, value: Any) -> Any:
        return None if value is None else format_datetime(value)
