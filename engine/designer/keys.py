"""Keys from labels: `客户` -> `ke_hu`, `Straße & Nr.` -> `strasse_nr`, `1st contact` -> `f_1st_contact`."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from anyascii import anyascii

from engine.schema.model import SYSTEM_COLUMNS
from engine.schema.names import RESERVED_WORDS

__all__ = ["DESIGNER_PAGES", "KEY_PATTERN", "entity_key_from_label", "is_key", "key_from_label",
           "option_value_from_label"]

#: What every app, entity and field key must look like.
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_MAX = 63

#: Words an entity key cannot be: the designer's entity editor lives at /designer/{app}/{entity}, the same path as
#: these pages of an app's draft (and a few kept for pages to come).
DESIGNER_PAGES = frozenset({
    "delete", "diff", "discard", "entities", "export", "history", "import", "new", "publish", "relations", "rollback",
    "settings", "versions", "workflow", "workflows",
})


def is_key(text: str) -> bool:
    """Whether `text` is a usable key: the pattern, not an SQL reserved word, not a system column."""
    return bool(KEY_PATTERN.match(text)) and text not in RESERVED_WORDS and text not in SYSTEM_COLUMNS


def _ascii(label: str) -> str:
    # Ideographs and syllables (category Lo) transliterate to one word each: 客户 -> "ke hu", not "kehu".
    return "".join(f" {anyascii(ch)} " if unicodedata.category(ch) == "Lo" else anyascii(ch) for ch in label)


def _words(label: str) -> str:
    return "_".join(re.findall(r"[a-z0-9]+", _ascii(label).lower()))[:_MAX].rstrip("_")


def _unique(key: str, taken: Iterable[str]) -> str:
    used = set(taken)
    if key not in used:
        return key
    n = 2
    while True:
        suffix = f"_{n}"
        candidate = key[: _MAX - len(suffix)].rstrip("_") + suffix
        if candidate not in used:
            return candidate
        n += 1


def key_from_label(label: str, taken: Iterable[str] = ()) -> str:
    """A safe key for a label in any language, unique against `taken` (suffixed _2, _3, ...).

    The key is lower-case ASCII; a key that would start with a digit gets an `f_` prefix, and one that is an SQL
    reserved word or a system column (`order`, `id`) gets a `_value` suffix; an empty result becomes `field`."""
    key = _words(label) or "field"
    if not key[0].isalpha():
        key = f"f_{key}"[:_MAX].rstrip("_")
    if key in RESERVED_WORDS or key in SYSTEM_COLUMNS:
        key = f"{key}_value"
    return _unique(key, taken)


def option_value_from_label(label: str, taken: Iterable[str] = ()) -> str:
    """The stored value for a choice option's title, unique against `taken`: lower-case ASCII words joined by _
    (`Très bien` -> `tres_bien`, `New` -> `new`: option values are data, not column names); `option` when empty."""
    return _unique(_words(label) or "option", taken)


def entity_key_from_label(label: str, taken: Iterable[str] = ()) -> str:
    """`key_from_label` for an entity: never one of the designer's page names (`publish` -> `publish_2`)."""
    return key_from_label(label, {*taken, *DESIGNER_PAGES})
