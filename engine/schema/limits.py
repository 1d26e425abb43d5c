"""Caps on what a definition may hold, so a hostile or runaway document is refused rather than a crash or a hang."""

from __future__ import annotations

__all__ = ["MAX_CONDITION_DEPTH", "MAX_DEFINITION_BYTES", "MAX_DEPTH", "MAX_PATTERN_LENGTH"]

MAX_DEFINITION_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 32
MAX_CONDITION_DEPTH = 12
MAX_PATTERN_LENGTH = 1000
