"""App definitions: load and check, the field-kind registry, canonical export, validators, the change plan."""

from __future__ import annotations

from engine.schema.canonical import to_bytes, to_document
from engine.schema.loader import load_definition, meta_schema
from engine.schema.model import App, Entity, Field, Option

__all__ = ["App", "Entity", "Field", "Option", "load_definition", "meta_schema", "to_bytes", "to_document"]
