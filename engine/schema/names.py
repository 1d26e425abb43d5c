"""SQL names: reserved words keys may not use, and names for tables, columns and indexes within 63 characters."""

from __future__ import annotations

import hashlib

from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS as _PG
from sqlalchemy.sql.compiler import RESERVED_WORDS as _ANSI

__all__ = ["RESERVED_WORDS", "sql_name"]

#: Words no entity or field key may be: reserved in PostgreSQL or in SQL at large.
RESERVED_WORDS = frozenset(w.lower() for w in (_PG | _ANSI))

_MAX = 63


def sql_name(*parts: str) -> str:
    """Join parts with `__`; a name over 63 characters keeps its start and gets a short hash for uniqueness."""
    name = "__".join(parts)
    if len(name) <= _MAX:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[: _MAX - 11]}_{digest}"
