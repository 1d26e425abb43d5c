"""Jinja filters and globals: values shown by their field kind, labels in the user's language."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment

from engine.schema import Entity, Field
from engine.schema.kinds import kind_of

__all__ = ["display", "entity_label", "masked", "register"]


def display(value: Any, field: Field) -> str:
    """A value as people read it (the field kind decides)."""
    if value is None or value == [] or value == "":
        return ""
    return kind_of(field.kind).display(field, value)


def masked(value: Any, field: Field) -> str:
    """A value for lists: sensitive fields show only bullets and their last two characters, others as `display`."""
    if not field.sensitive:
        return display(value, field)
    from engine.storage.crypto import mask

    return mask(value)


def entity_label(entity: Entity, plural: bool = False) -> str:
    """An entity's label, plural when asked and known."""
    return (entity.plural or entity.title) if plural else entity.title


def register(env: Environment) -> None:
    """Install our filters and globals on a Jinja environment."""
    env.filters["display"] = display
    env.filters["masked"] = masked
    env.globals["entity_label"] = entity_label
    env.globals["kind_of"] = kind_of
    from engine.web.access import RESTRICTED  # access imports the web context, which uses this module

    env.globals["RESTRICTED"] = RESTRICTED
