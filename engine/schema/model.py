"""The parsed, typed app definition: what every other part of the engine works from."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["SENSITIVE_KINDS", "SYSTEM_COLUMNS", "App", "Entity", "Field", "IndexSpec", "Option"]

#: Columns every entity table has; field keys may not use these names.
SYSTEM_COLUMNS = ("id", "created_at", "updated_at", "created_by", "updated_by", "version")
#: Field kinds that may be marked sensitive (encrypted at rest): their values are stored as text anyway.
SENSITIVE_KINDS = ("text", "long_text", "email", "phone", "url")


class Option(msgspec.Struct, frozen=True):
    """One labelled choice of a select or multi_select field."""

    value: str
    title: str
    color: str | None = None
    i18n: dict[str, Any] | None = None


class Field(msgspec.Struct, frozen=True):
    """One field of an entity; kind-specific settings are None where the kind has no use for them."""

    key: str
    kind: str
    title: str
    description: str | None = None
    required: bool = False
    unique: bool = False
    indexed: bool = False
    hidden: bool = False
    searchable: bool = False
    read_only: bool = False
    default: Any = None
    min_length: int | None = None
    max_length: int | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    min_value: str | None = None  # currency bounds, as decimal strings
    max_value: str | None = None
    pattern: str | None = None
    options: tuple[Option, ...] = ()
    min_items: int | None = None
    max_items: int | None = None
    currency: str | None = None
    precision: int | None = None
    scale: int | None = None
    region: str | None = None
    target: str | None = None
    on_delete: str | None = None
    prefix: str | None = None
    digits: int | None = None
    visible_if: dict[str, Any] | None = None
    renamed_from: str | None = None
    ui: dict[str, Any] | None = None
    i18n: dict[str, Any] | None = None
    sensitive: bool = False  # encrypted at rest (engine/storage/crypto.py), masked in lists

    def option_values(self) -> list[str]:
        """The stored values of this field's options, in order."""
        return [o.value for o in self.options]


class IndexSpec(msgspec.Struct, frozen=True):
    """A composite index declared in `x-crm-indexes`."""

    fields: tuple[str, ...]
    unique: bool = False


class Entity(msgspec.Struct, frozen=True):
    """One entity (a table): its fields in order and its presentation settings."""

    key: str
    title: str
    fields: tuple[Field, ...]
    description: str | None = None
    plural: str | None = None
    title_field: str | None = None
    icon: str | None = None
    color: str | None = None
    renamed_from: str | None = None
    i18n: dict[str, Any] | None = None
    rules: tuple[dict[str, Any], ...] = ()  # the entity's allOf: if/then conditional rules
    indexes: tuple[IndexSpec, ...] = ()
    views: dict[str, Any] | None = None
    form: dict[str, Any] | None = None
    workflow: dict[str, Any] | None = None

    def field(self, key: str) -> Field:
        """The field with this key; KeyError if there is none."""
        for f in self.fields:
            if f.key == key:
                return f
        raise KeyError(key)

    def field_map(self) -> dict[str, Field]:
        """Fields by key."""
        return {f.key: f for f in self.fields}

    def search_fields(self) -> list[Field]:
        """The fields quick search looks in."""
        return [f for f in self.fields if f.searchable]


class App(msgspec.Struct, frozen=True):
    """A whole app definition."""

    name: str
    title: str
    entities: tuple[Entity, ...]
    description: str | None = None
    version: int | None = None

    def entity(self, key: str) -> Entity:
        """The entity with this key; KeyError if there is none."""
        for e in self.entities:
            if e.key == key:
                return e
        raise KeyError(key)

    def entity_map(self) -> dict[str, Entity]:
        """Entities by key."""
        return {e.key: e for e in self.entities}
