"""Compiled apps, cached per process and per database, keyed by definition version.

Every operation reads the app's current version from `crm_apps` (one indexed lookup) in its own transaction, so
a definition applied by another process is seen on the very next operation; nothing else is kept in memory."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from engine.errors import NotFoundError
from engine.schema import App, load_definition
from engine.schema.validation import EntityValidator
from engine.storage.database import crm_app_versions, crm_apps
from engine.storage.tables import AppTables

__all__ = ["Catalog", "CompiledApp"]


@dataclass
class CompiledApp:
    """Everything derived from one app version: the model, tables and one validator per entity."""

    app: App
    version: int
    tables: AppTables
    validators: dict[str, EntityValidator] = field(default_factory=dict)
    readers: dict[str, Any] = field(default_factory=dict)  # per entity: records.RowReader, built on first use
    flows: dict[str, Any] = field(default_factory=dict)  # per entity: workflows.runtime.Flow or None, on first use

    @classmethod
    def build(cls, app: App, version: int) -> CompiledApp:
        """Compile a definition version."""
        return cls(app=app, version=version, tables=AppTables(app),
                   validators={e.key: EntityValidator(e) for e in app.entities})

    def flow(self, key: str) -> Any:
        """The compiled workflow of an entity (engine.workflows.runtime.Flow), None when it has none."""
        if key not in self.flows:
            from engine.workflows.runtime import Flow

            self.flows[key] = Flow.of(self.app.entity(key), self.validators[key])
        return self.flows[key]

    def entity(self, key: str):
        """The entity with this key, or NotFoundError naming the entities there are."""
        try:
            return self.app.entity(key)
        except KeyError:
            known = ", ".join(e.key for e in self.app.entities)
            raise NotFoundError(f"app '{self.app.name}' has no entity '{key}' (it has: {known})") from None


class Catalog:
    """The per-process cache of compiled apps."""

    def __init__(self) -> None:
        # Per engine: version numbers are only unique within one database, and a process may open several.
        self._compiled: weakref.WeakKeyDictionary[sa.Engine, dict[tuple[str, int], CompiledApp]] = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()

    def current(self, conn: sa.Connection, app_name: str) -> CompiledApp:
        """The app as of its current version in the database."""
        version = conn.execute(sa.select(crm_apps.c.current_version).where(crm_apps.c.name == app_name)).scalar()
        if version is None:
            raise NotFoundError(f"there is no app '{app_name}' (crm app list shows the apps there are)")
        return self.at(conn, app_name, version)

    def at(self, conn: sa.Connection, app_name: str, version: int) -> CompiledApp:
        """The app as of a given version."""
        key = (app_name, version)
        with self._lock:
            cache = self._compiled.setdefault(conn.engine, {})
        compiled = cache.get(key)
        if compiled is None:
            text = conn.execute(sa.select(crm_app_versions.c.definition).where(
                crm_app_versions.c.app == app_name, crm_app_versions.c.version == version)).scalar()
            if text is None:
                raise NotFoundError(f"app '{app_name}' has no version {version}")
            compiled = CompiledApp.build(load_definition(text), version)
            with self._lock:
                # Older versions of the same app are dropped: a process only ever needs the newest.
                for stale in [k for k in cache if k[0] == app_name and k[1] < version]:
                    del cache[stale]
                cache[key] = compiled
        return compiled


#: The process-wide catalog.
CATALOG = Catalog()
