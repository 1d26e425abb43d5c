"""The web layer: Litestar app with HTMX pages generated at runtime from app definitions."""

from __future__ import annotations

from engine.web.app import create_app

__all__ = ["create_app"]
