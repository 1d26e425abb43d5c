"""Forms generated from entity definitions (the web layer renders them)."""

from __future__ import annotations

from engine.forms.form import Form, FormField, FormState, build_form, parse_form, record_state

__all__ = ["Form", "FormField", "FormState", "build_form", "parse_form", "record_state"]
