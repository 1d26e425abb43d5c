"""The field-kind registry: `kind_of("currency")` gives the unit that knows everything about currency fields."""

from __future__ import annotations

from engine.schema.kinds import choice, number, relation, temporal, text  # noqa: F401  (registers the kinds)
from engine.schema.kinds.base import KINDS, ConversionError, FieldKind

__all__ = ["KINDS", "ConversionError", "FieldKind", "kind_of"]


def kind_of(name: str) -> FieldKind:
    """The registered kind with this name."""
    return KINDS[name]
