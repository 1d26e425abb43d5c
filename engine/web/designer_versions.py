"""Placeholder: the designer's versions pages are being built here."""

from __future__ import annotations

from typing import Any

__all__ = ["ROUTES"]

ROUTES: list[Any] = []
