"""Server-side login sessions: the browser's cookie holds a random token; the database keeps only its sha256.

A session ends after IDLE without requests, after ABSOLUTE since login whatever happens, or at logout. Logging in
always starts a new session (the old one, if any, is deleted), so a session token planted before login is useless."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import sqlalchemy as sa

from engine.storage.database import Database, crm_sessions
from engine.storage.migrate import utcnow

__all__ = ["ABSOLUTE", "COOKIE", "IDLE", "cookie_options", "end_session", "end_user_sessions", "resolve_session",
           "start_session", "token_hash"]

COOKIE = "crm_session"
IDLE = dt.timedelta(hours=8)
ABSOLUTE = dt.timedelta(days=7)
_TOUCH_EVERY = dt.timedelta(minutes=1)  # last_seen_at is written at most this often, not on every request


def token_hash(token: str) -> str:
    """What is stored for a session or API token: its sha256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(db: Database, user_id: str, address: str | None = None, replaces: str | None = None) -> str:
    """A new session for the user; returns the token for the cookie. `replaces` (the token the browser had) ends."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with db.write() as conn:
        if replaces:
            conn.execute(crm_sessions.delete().where(crm_sessions.c.id == token_hash(replaces)))
        conn.execute(crm_sessions.delete().where(sa.or_(crm_sessions.c.last_seen_at < now - IDLE,
                                                        crm_sessions.c.created_at < now - ABSOLUTE)))
        conn.execute(crm_sessions.insert().values(id=token_hash(token), user_id=user_id, created_at=now,
                                                  last_seen_at=now, address=address))
    return token


def resolve_session(db: Database, token: str) -> str | None:
    """The user id of a live session; None (and the session deleted) when it expired or never existed."""
    key = token_hash(token)
    now = utcnow()
    with db.read() as conn:
        row = conn.execute(sa.select(crm_sessions).where(crm_sessions.c.id == key)).first()
    if row is None:
        return None
    if row.last_seen_at < now - IDLE or row.created_at < now - ABSOLUTE:
        end_session(db, token)
        return None
    if now - row.last_seen_at > _TOUCH_EVERY:
        with db.write() as conn:
            conn.execute(crm_sessions.update().where(crm_sessions.c.id == key).values(last_seen_at=now))
    return str(row.user_id)


def end_session(db: Database, token: str) -> None:
    """Log out: the session is deleted."""
    with db.write() as conn:
        conn.execute(crm_sessions.delete().where(crm_sessions.c.id == token_hash(token)))


def end_user_sessions(db: Database, user_id: str, keep: str | None = None) -> None:
    """End every session of a user (after a password reset or deactivation), except `keep` (a token)."""
    query = crm_sessions.delete().where(crm_sessions.c.user_id == user_id)
    if keep:
        query = query.where(crm_sessions.c.id != token_hash(keep))
    with db.write() as conn:
        conn.execute(query)


def cookie_options(secure: bool) -> dict[str, object]:
    """How the session cookie is set: never readable by scripts, not sent on cross-site posts, https-only on https."""
    return {"key": COOKIE, "httponly": True, "samesite": "lax", "secure": secure, "path": "/",
            "max_age": int(ABSOLUTE.total_seconds())}
