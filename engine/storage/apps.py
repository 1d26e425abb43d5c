"""Apps: plan and apply definitions, export them, list them, show their history and roll back.

Applying takes the app's row lock (SQLite: the write lock), recomputes the plan inside the transaction and applies
it there, so the plan shown is the plan checked, and concurrent appliers cannot interleave.
Changing definitions needs a designer (or admin) Principal; a plain actor name is trusted. Every applied version is
written to the audit log in the same transaction."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import msgspec
import sqlalchemy as sa

from engine.auth.audit import audit_in
from engine.auth.principal import Principal
from engine.errors import NotFoundError, PermissionDenied, PlanRefused
from engine.schema import App, load_definition, to_bytes
from engine.storage.catalog import CATALOG
from engine.storage.database import Database, crm_app_versions, crm_apps
from engine.storage.migrate import apply_plan, utcnow
from engine.storage.plan import MigrationPlan, compute_plan

__all__ = ["AppService", "AppSummary", "VersionInfo"]


@dataclass(frozen=True)
class AppSummary:
    """One installed app."""

    name: str
    title: str
    version: int
    updated_at: dt.datetime


@dataclass(frozen=True)
class VersionInfo:
    """One applied version of an app."""

    version: int
    applied_at: dt.datetime
    applied_by: str
    steps: list[str]
    note: str | None


class AppService:
    """Definitions in one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _current(self, conn: sa.Connection, name: str, lock: bool = False) -> tuple[App | None, int | None]:
        stmt = sa.select(crm_apps.c.current_version).where(crm_apps.c.name == name)
        if lock and not self.db.is_sqlite:
            stmt = stmt.with_for_update()
        version = conn.execute(stmt).scalar()
        if version is None:
            return None, None
        app = CATALOG.at(conn, name, version).app
        return app, version

    def plan(self, source: bytes | str | dict[str, Any] | App, purge: bool = False) -> MigrationPlan:
        """What applying this definition would do (nothing is changed)."""
        new = source if isinstance(source, App) else load_definition(source)
        with self.db.read() as conn:
            old, _ = self._current(conn, new.name)
            return compute_plan(conn, new.name, old, new, purge)

    def apply(self, source: bytes | str | dict[str, Any] | App, purge: bool = False, actor: str | Principal = "system",
              note: str | None = None) -> MigrationPlan:
        """Apply a definition as the app's next version in one transaction; PlanRefused (nothing changed) if the
        plan has blockers. A definition with no changes creates no version. PermissionDenied for a Principal that
        may not design apps."""
        return self._apply(source, purge, actor, note, "definition_applied")

    def _apply(self, source: bytes | str | dict[str, Any] | App, purge: bool, actor: str | Principal,
               note: str | None, audit_action: str) -> MigrationPlan:
        _designer(actor)
        new = source if isinstance(source, App) else load_definition(source)
        name = actor.name if isinstance(actor, Principal) else actor
        with self.db.engine.connect() as conn:
            if self.db.is_sqlite:  # batch-mode table copies must not trip foreign keys mid-way
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
            try:
                conn = conn.execution_options(crm_write=True)
                with conn.begin():
                    plan = self._apply_in(conn, new, purge, name, note, audit_action)
            finally:
                if self.db.is_sqlite:
                    conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
        return plan

    def _apply_in(self, conn: sa.Connection, new: App, purge: bool, actor: str, note: str | None,
                  audit_action: str) -> MigrationPlan:
        old, version = self._current(conn, new.name, lock=True)
        plan = compute_plan(conn, new.name, old, new, purge)
        if not plan.ok:
            raise PlanRefused(plan.lines())
        if old is not None and not plan.changes_anything:
            return plan
        if version is None:  # a new app, or one deleted before: version numbers are never reused
            version = conn.execute(sa.select(sa.func.max(crm_app_versions.c.version))
                                   .where(crm_app_versions.c.app == new.name)).scalar()
        next_version = (version or 0) + 1
        stored = msgspec.structs.replace(new, version=next_version)
        apply_plan(conn, plan, old, next_version)
        now = utcnow()
        conn.execute(crm_app_versions.insert().values(
            app=new.name, version=next_version, definition=to_bytes(stored).decode(), plan=plan.to_json(),
            applied_at=now, applied_by=actor, note=note))
        if old is None:
            conn.execute(crm_apps.insert().values(name=new.name, title=new.title, current_version=next_version,
                                                  created_at=now, updated_at=now))
        else:
            conn.execute(crm_apps.update().where(crm_apps.c.name == new.name)
                         .values(title=new.title, current_version=next_version, updated_at=now))
        audit_in(conn, actor, audit_action, new.name, {"version": next_version, "note": note,
                                                       "steps": [s.describe() for s in plan.steps]})
        return plan

    def delete(self, name: str, actor: str | Principal = "system") -> MigrationPlan:
        """Delete an app: every entity is archived (tables renamed, records kept), the app leaves the list, and its
        versions stay in the history. Applying a definition of the same name later brings archived entities back
        with their records."""
        _designer(actor)
        who = actor.name if isinstance(actor, Principal) else actor
        with self.db.engine.connect() as conn:
            if self.db.is_sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
            try:
                conn = conn.execution_options(crm_write=True)
                with conn.begin():
                    old, version = self._current(conn, name, lock=True)
                    if old is None or version is None:
                        raise NotFoundError(f"there is no app '{name}'")
                    plan = compute_plan(conn, name, old, msgspec.structs.replace(old, entities=()))
                    apply_plan(conn, plan, old, version + 1)
                    conn.execute(crm_apps.delete().where(crm_apps.c.name == name))
                    audit_in(conn, who, "app_deleted", name, {"version": version,
                                                               "steps": [s.describe() for s in plan.steps]})
            finally:
                if self.db.is_sqlite:
                    conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
        return plan

    def export(self, name: str, version: int | None = None) -> bytes:
        """The canonical JSON of the current (or a given) version."""
        with self.db.read() as conn:
            compiled = CATALOG.at(conn, name, version) if version else CATALOG.current(conn, name)
            return to_bytes(msgspec.structs.replace(compiled.app, version=compiled.version))

    def current(self, name: str) -> App:
        """The current definition of an app."""
        with self.db.read() as conn:
            compiled = CATALOG.current(conn, name)
            return msgspec.structs.replace(compiled.app, version=compiled.version)

    def list(self) -> list[AppSummary]:
        """Every installed app."""
        with self.db.read() as conn:
            rows = conn.execute(sa.select(crm_apps).order_by(crm_apps.c.name)).mappings().all()
        return [AppSummary(r["name"], r["title"], r["current_version"], r["updated_at"]) for r in rows]

    def history(self, name: str) -> list[VersionInfo]:
        """Every applied version, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(sa.select(crm_app_versions).where(crm_app_versions.c.app == name)
                                .order_by(crm_app_versions.c.version)).mappings().all()
        if not rows:
            raise NotFoundError(f"there is no app '{name}'")
        from engine.storage.plan import Step

        return [VersionInfo(r["version"], r["applied_at"], r["applied_by"],
                            [Step(**s).describe() for s in json.loads(r["plan"])], r["note"]) for r in rows]

    def definition_at(self, name: str, version: int) -> App:
        """The definition as it was at a version."""
        with self.db.read() as conn:
            return CATALOG.at(conn, name, version).app

    def rollback(self, name: str, version: int, actor: str | Principal = "system",
                 purge: bool = False) -> MigrationPlan:
        """Return to an earlier version's definition, as a new version: renames are undone, removed fields and
        entities come back from the archive with their values."""
        _designer(actor)
        target = self.definition_at(name, version)
        return self._apply(target, purge, actor, f"rollback to version {version}", "definition_rolled_back")


def _designer(actor: str | Principal) -> None:
    """PermissionDenied unless the actor may change app definitions."""
    if isinstance(actor, Principal) and not actor.can_design:
        raise PermissionDenied("change", "app definitions")
