"""Edit forms generated from an entity: layout, one widget per field, submitted text -> typed values, and errors
placed next to the fields they belong to.

A form's state is kept as text (what the inputs hold, so invalid input is shown again exactly as typed) next to the
typed values that text parsed to (what visibility conditions, relation titles and the records service work with)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.schema import Entity, Field, Option
from engine.schema.kinds import ConversionError, kind_of
from engine.schema.kinds.temporal import format_datetime
from engine.schema.validation import condition_holds, field_errors

__all__ = ["GROUP_WIDGETS", "Form", "FormData", "FormField", "FormSection", "FormState", "build_form", "check_field",
           "editable", "form_field", "layout", "parse_form", "record_state", "visible", "widget_for"]

#: Submitted form data: every value of every name, in order (a name may repeat: checkboxes, chips).
FormData = Mapping[str, list[str]]
#: Titles of linked records for a relation field: (field, ids) -> {id: title}.
TitleLookup = Callable[[Field, list[str]], dict[str, str]]

_WIDGETS = {"text": "text", "long_text": "textarea", "email": "email", "phone": "tel", "url": "url",
            "integer": "number", "decimal": "number", "percent": "number", "currency": "currency",
            "boolean": "checkbox", "date": "date", "datetime": "datetime-local", "select": "select",
            "multi_select": "multi-select", "relation": "relation", "relation_many": "relation-many",
            "autonumber": "autonumber", "rating": "rating"}
# x-crm-ui.widget choices that change the widget of a kind; other combinations keep the kind's widget.
_OVERRIDES = {("text", "textarea"): "textarea", ("long_text", "input"): "text", ("select", "radio"): "radio"}
#: Widgets made of several inputs: labelled by a <fieldset> legend, each input by its own <label>.
GROUP_WIDGETS = frozenset({"multi-select", "rating", "radio"})
_WIDE_WIDGETS = frozenset({"textarea", "multi-select", "relation-many"})
# Messages that continue the field's name ("is required", "must be at most 5"); others are whole sentences.
_VERB_STARTS = frozenset({"is", "must", "does", "lists", "has"})


def widget_for(f: Field) -> str:
    """The widget (a template in templates/widgets/) a field is edited with."""
    wanted = (f.ui or {}).get("widget")
    return _OVERRIDES.get((f.kind, wanted), _WIDGETS[f.kind])


def editable(f: Field) -> bool:
    """Whether people type this field's value in forms (hidden and read-only fields are left alone)."""
    return not (f.hidden or f.read_only)


def visible(f: Field, record: Mapping[str, Any]) -> bool:
    """Whether a field is shown for a record as it is being edited (its visibleIf holds, or it has none)."""
    return f.visible_if is None or condition_holds(f.visible_if, {k: v for k, v in record.items() if v is not None})


def layout(entity: Entity) -> list[tuple[str | None, int, list[Field]]]:
    """(title, columns, fields) per form section; fields in no section follow in definition order. Hidden fields
    are left out."""
    fields = entity.field_map()
    placed: set[str] = set()
    out: list[tuple[str | None, int, list[Field]]] = []
    for section in (entity.form or {}).get("sections", []):
        keys = [k for k in section.get("fields", []) if k in fields]
        placed.update(keys)
        shown = [fields[k] for k in keys if not fields[k].hidden]
        if shown:
            out.append((section.get("title"), int(section.get("columns", 1)), shown))
    rest = [f for f in entity.fields if f.key not in placed and not f.hidden]
    if rest:
        out.append((None, 2, rest))
    return out


# --- state: text and typed values ---------------------------------------------------------------------------
@dataclass
class FormState:
    """What a form holds: input text by field, the typed values that text parsed to, and messages by field."""

    texts: dict[str, str | list[str]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    submitted: list[str] = field(default_factory=list)  # the editable fields the form sent

    def changes(self) -> dict[str, Any]:
        """The submitted fields' typed values (None clears a field), for the records service."""
        return {k: self.values.get(k) for k in self.submitted}

    def add_errors(self, by_field: Mapping[str, list[str]]) -> None:
        """Add messages, once each."""
        for key, messages in by_field.items():
            mine = self.errors.setdefault(key, [])
            mine.extend(m for m in messages if m not in mine)


def record_state(entity: Entity, record: Mapping[str, Any]) -> FormState:
    """The form state showing a stored record (or default values)."""
    state = FormState()
    for f in entity.fields:
        value = record.get(f.key)
        kind = kind_of(f.kind)
        if kind.many:
            state.texts[f.key] = list(value or [])
        elif value is None:
            state.texts[f.key] = ""
        elif f.kind == "datetime":
            state.texts[f.key] = str(value)[:16]  # UTC to the minute; app.js shows it in local time
        else:
            state.texts[f.key] = kind.to_text(f, value)
        if value is not None:
            state.values[f.key] = value
    return state


def _tz_offset(data: FormData) -> int:
    """Minutes to add to the browser's local time to get UTC (JavaScript's getTimezoneOffset); 0 when unknown."""
    try:
        offset = int((data.get("_tz_offset") or ["0"])[-1] or 0)
    except ValueError:
        return 0
    return offset if abs(offset) <= 18 * 60 else 0


def _local_to_utc(text: str, offset: int) -> str:
    """A datetime-local value typed in the browser's time zone -> ISO 8601 UTC (unparseable text is left as is)."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return text
    if moment.tzinfo is None:
        return format_datetime(moment + dt.timedelta(minutes=offset))
    return text


def _parse(f: Field, raw: str | list[str], offset: int) -> Any:
    kind = kind_of(f.kind)
    if isinstance(raw, list):
        return kind.coerce(f, raw) if raw else None
    if not raw.strip():
        return None
    if f.kind == "datetime":
        raw = _local_to_utc(raw, offset)
    return kind.parse_text(f, raw)


def _same_minute(parsed: Any, stored: Any) -> bool:
    return isinstance(stored, str) and isinstance(parsed, str) and parsed[:16] == stored[:16] \
        and parsed[16:] in ("", ":00Z", "Z")


def parse_form(entity: Entity, data: FormData, current: Mapping[str, Any] | None = None) -> FormState:
    """Submitted text -> typed values of the editable fields present in `data`; text that does not parse is kept,
    with its message. Other fields keep the `current` record's values (read-only ones, ones the form lacks)."""
    state = record_state(entity, current or {})
    offset = _tz_offset(data)
    for f in entity.fields:
        if not editable(f) or f.key not in data:
            continue
        state.submitted.append(f.key)
        state.values.pop(f.key, None)
        values = data[f.key]
        # Many-valued widgets send a "" marker (so "none chosen" is sent); single ones may send a hidden default
        # before the real input (an unticked checkbox sends only "false"): the last value wins.
        raw: str | list[str] = [v for v in values if v.strip()] if kind_of(f.kind).many else (values or [""])[-1]
        state.texts[f.key] = raw
        try:
            value = _parse(f, raw, offset)
        except ConversionError as exc:
            state.errors[f.key] = [str(exc)]
            continue
        stored = (current or {}).get(f.key)
        if f.kind == "datetime" and _same_minute(value, stored):
            value = stored  # the input shows minutes; an untouched value keeps its seconds
        if value is not None:
            state.values[f.key] = value
    return state


def check_field(f: Field, value: Any) -> list[str]:
    """Messages for one field's typed value on its own (required, limits, format)."""
    if value is None or value == []:
        return ["is required"] if f.required else []
    return list(dict.fromkeys(field_errors(f, value)))  # a format and a kind's own check may say the same


# --- the form model the templates render -------------------------------------------------------------------
@dataclass
class FormField:
    """One field as the form shows it."""

    field: Field
    widget: str
    text: str | list[str] = ""
    current: Any = None  # the typed value, when the text parsed
    errors: list[str] = field(default_factory=list)
    shown: bool = True
    titles: dict[str, str] = field(default_factory=dict)  # relation widgets: record id -> title
    autofocus: bool = False

    @property
    def key(self) -> str:
        return self.field.key

    @property
    def input_id(self) -> str:
        """The id of the input the field's <label> points at."""
        return f"f-{self.key}-q" if self.widget in ("relation", "relation-many") else f"f-{self.key}"

    @property
    def wrapper_id(self) -> str:
        return f"field-{self.key}"

    @property
    def error_id(self) -> str:
        return f"f-{self.key}-error"

    @property
    def help_id(self) -> str:
        return f"f-{self.key}-help"

    @property
    def described_by(self) -> str:
        """The ids for aria-describedby: help text, currency code and error message, as present."""
        ids = [self.help_id] if self.field.description else []
        if self.widget == "currency":
            ids.append(f"f-{self.key}-code")
        if self.errors:
            ids.append(self.error_id)
        return " ".join(ids)

    @property
    def messages(self) -> list[str]:
        """The errors as sentences: "is required" reads "Email is required" under the field."""
        out = []
        for message in self.errors:
            if message.split(" ", 1)[0] in _VERB_STARTS:
                out.append(f"{self.field.title} {message}")
            else:
                out.append(message[:1].upper() + message[1:])
        return [m if m.endswith((".", "!", "?", ")")) else m + "." for m in out]

    @property
    def step(self) -> str:
        """The step of number inputs: 1 for whole numbers, else one unit of the last decimal place."""
        if self.field.kind in ("integer", "rating"):
            return "1"
        scale = self.field.scale
        return "any" if scale is None else ("1" if scale == 0 else f"0.{'0' * (scale - 1)}1")

    @property
    def read_only(self) -> bool:
        return self.field.read_only

    @property
    def group(self) -> bool:
        return self.widget in GROUP_WIDGETS

    @property
    def wide(self) -> bool:
        return self.widget in _WIDE_WIDGETS

    @property
    def conditional(self) -> bool:
        return self.field.visible_if is not None

    @property
    def placeholder(self) -> str:
        return str((self.field.ui or {}).get("placeholder") or "")

    @property
    def rows(self) -> int:
        return int((self.field.ui or {}).get("rows") or 4)

    @property
    def options(self) -> tuple[Option, ...]:
        return self.field.options

    @property
    def chosen(self) -> list[str]:
        """The chosen values of many-valued widgets."""
        return list(self.text) if isinstance(self.text, list) else []


@dataclass
class FormSection:
    """A titled group of fields laid out in columns."""

    title: str | None
    columns: int
    fields: list[FormField]


@dataclass
class Form:
    """A whole form: sections of fields, plus messages that belong to no shown field."""

    entity: Entity
    sections: list[FormSection]
    errors: list[str] = field(default_factory=list)

    def fields(self) -> list[FormField]:
        """Every shown field, in layout order."""
        return [ff for s in self.sections for ff in s.fields]

    def field(self, key: str) -> FormField:
        """The field with this key; KeyError if the form does not show it."""
        for ff in self.fields():
            if ff.key == key:
                return ff
        raise KeyError(key)


def form_field(f: Field, state: FormState, titles: TitleLookup) -> FormField:
    """One field of a form in the given state."""
    kind = kind_of(f.kind)
    text = state.texts.get(f.key, [] if kind.many else "")
    ff = FormField(field=f, widget=widget_for(f), text=text, current=state.values.get(f.key),
                   errors=list(state.errors.get(f.key, [])), shown=visible(f, state.values))
    if f.kind in ("relation", "relation_many"):
        ids = ff.chosen if kind.many else ([ff.current] if ff.current else [])
        ff.titles = titles(f, ids) if ids else {}
    return ff


def build_form(entity: Entity, state: FormState, titles: TitleLookup, focus_error: bool = False) -> Form:
    """The form for an entity in a state. With `focus_error`, the first field with a message gets autofocus."""
    sections = [FormSection(title, columns, [form_field(f, state, titles) for f in fields])
                for title, columns, fields in layout(entity)]
    form = Form(entity, sections)
    shown = {ff.key for ff in form.fields() if ff.shown}
    labels = entity.field_map()
    for key, messages in state.errors.items():
        if key not in shown:
            label = labels[key].title if key in labels else ""
            form.errors.extend(f"{label}: {m}" if label else m for m in messages)
    for ff in form.fields():
        if not ff.shown:
            ff.errors = []  # listed above the form; a hidden input cannot take the focus
    if focus_error:
        first = next((ff for ff in form.fields() if ff.errors and ff.shown and not ff.read_only), None)
        if first is not None:
            first.autofocus = True
    return form
