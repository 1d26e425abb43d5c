"""The interface every field kind implements, and the registry of kinds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

if TYPE_CHECKING:
    from engine.schema.model import Field

__all__ = ["KINDS", "ConversionError", "FieldKind", "register"]


class ConversionError(ValueError):
    """A value that cannot be turned into what a field needs; the message is for users."""


class FieldKind:
    """One field kind: its JSON Schema, SQL type, parsing, display, filters and conversions.

    Values are handled in three shapes: the JSON shape (what records look like in the API and to the
    validator), the database shape (what the column stores) and text (CSV cells and form inputs).
    """

    name: ClassVar[str]
    #: Standard keywords this kind fixes; a definition that says otherwise is refused.
    fixed: ClassVar[dict[str, Any]] = {}
    #: x-crm-field settings this kind reads (besides the common ones).
    settings: ClassVar[tuple[str, ...]] = ()
    #: Filter operators offered for this kind.
    operators: ClassVar[tuple[str, ...]] = ("eq", "ne", "in", "empty", "not_empty")
    #: Standard keywords a user may set on this kind.
    allowed_keywords: ClassVar[frozenset[str]] = frozenset()
    #: Whether the value is a list (multi_select, relation_many).
    many: ClassVar[bool] = False
    #: Whether fields of this kind are searched by quick search unless they say otherwise.
    searchable_default: ClassVar[bool] = False

    # --- definition ---------------------------------------------------------------------------------
    def read_settings(self, xfield: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
        """Field attributes from the kind's x-crm-field settings and standard keywords."""
        return {}

    def keywords(self, field: Field) -> dict[str, Any]:
        """The standard JSON Schema keywords for this field, in canonical order."""
        return dict(self.fixed)

    def xsettings(self, field: Field) -> dict[str, Any]:
        """The kind's own x-crm-field settings, in canonical order."""
        return {}

    def check(self, field: Field) -> list[str]:
        """Problems with a field's settings (beyond what the meta-schema checks)."""
        return []

    # --- storage ------------------------------------------------------------------------------------
    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any] | None:
        """The column type, or None when the kind stores its values elsewhere (a link table)."""
        return sa.Text()

    def to_db(self, field: Field, value: Any) -> Any:
        """JSON shape -> column value."""
        return value

    def from_db(self, field: Field, value: Any) -> Any:
        """Column value -> JSON shape."""
        return value

    # --- values -------------------------------------------------------------------------------------
    def coerce(self, field: Field, value: Any) -> Any:
        """Normalise a JSON-shaped input value (trim, E.164, UTC...); ConversionError when impossible."""
        return value

    def parse_text(self, field: Field, text: str) -> Any:
        """A CSV cell or form input -> JSON shape (the empty string is handled by the caller)."""
        return self.coerce(field, text)

    def to_text(self, field: Field, value: Any) -> str:
        """JSON shape -> text that parse_text reads back to the same value."""
        return "" if value is None else str(value)

    def display(self, field: Field, value: Any) -> str:
        """The value as people read it (labels for options, grouped digits, a currency code...)."""
        return self.to_text(field, value)

    def extra_errors(self, field: Field, value: Any) -> list[str]:
        """Checks JSON Schema cannot express (currency bounds); value is already coerced."""
        return []

    def convert(self, old: Field, new: Field, value: Any) -> Any:
        """A stored value of `old` (JSON shape) -> a value of `new`, or ConversionError.

        The default goes through text, which covers widening (integer -> decimal), narrowing that
        can fail (text -> integer) and relabelling (select -> text)."""
        from engine.schema.kinds import kind_of

        old_kind = kind_of(old.kind)
        if old_kind.many != self.many and not (old_kind.many and self.name in ("text", "long_text")):
            if not self.many:
                raise ConversionError(f"a list of values cannot become a single {self.name}")
        text = old_kind.to_text(old, value)
        if text == "":
            return None
        return self.parse_text(new, text)


KINDS: dict[str, FieldKind] = {}


def register(cls: type[FieldKind]) -> type[FieldKind]:
    """Class decorator adding a kind to the registry."""
    KINDS[cls.name] = cls()
    return cls
