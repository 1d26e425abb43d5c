"""The audit log: logins, failed logins, permission and role changes, exports, definition changes."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.storage.database import Database, crm_audit
from engine.storage.migrate import utcnow

__all__ = ["AUDIT_ACTIONS", "audit", "audit_in"]

#: The kinds of events the log records (filterable in the browser).
AUDIT_ACTIONS = ("login", "login_failed", "logout", "password_changed", "password_reset", "user_created",
                 "user_changed", "role_created", "role_changed", "role_deleted", "token_created", "token_revoked",
                 "export", "import", "definition_applied", "definition_rolled_back")


def audit_in(conn: sa.Connection, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None,
             address: str | None = None) -> None:
    """Record an event inside the caller's transaction (so it commits or rolls back with the change)."""
    conn.execute(crm_audit.insert().values(at=utcnow(), actor=actor, action=action, target=target,
                                           detail=detail or {}, address=address))


def audit(db: Database, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None,
          address: str | None = None) -> None:
    """Record an event in its own transaction (a failed login must be logged even though nothing else commits)."""
    with db.write() as conn:
        audit_in(conn, actor, action, target, detail, address)
