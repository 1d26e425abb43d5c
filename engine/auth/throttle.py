"""Throttling failed logins, per account and per address, so passwords cannot be guessed at speed.

After PER_EMAIL failures for one email (or PER_ADDRESS from one address) within WINDOW, further attempts are refused
with the same message as a wrong password until the oldest failures are older than WINDOW."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from engine.storage.database import Database, crm_login_failures
from engine.storage.migrate import utcnow

__all__ = ["PER_ADDRESS", "PER_EMAIL", "WINDOW", "clear", "is_throttled", "record_failure"]

WINDOW = dt.timedelta(minutes=15)
PER_EMAIL = 5
PER_ADDRESS = 20


def _count(conn: sa.Connection, column: sa.Column[str], value: str, since: dt.datetime) -> int:
    query = sa.select(sa.func.count()).select_from(crm_login_failures).where(column == value,
                                                                             crm_login_failures.c.at >= since)
    return int(conn.execute(query).scalar() or 0)


def is_throttled(db: Database, email: str, address: str | None) -> bool:
    """Whether login attempts for this email or from this address are refused for now."""
    since = utcnow() - WINDOW
    with db.read() as conn:
        if _count(conn, crm_login_failures.c.email, email, since) >= PER_EMAIL:
            return True
        return address is not None and _count(conn, crm_login_failures.c.address, address, since) >= PER_ADDRESS


def record_failure(db: Database, email: str, address: str | None) -> None:
    """Note a failed attempt (and forget failures older than the window)."""
    now = utcnow()
    with db.write() as conn:
        conn.execute(crm_login_failures.delete().where(crm_login_failures.c.at < now - WINDOW))
        conn.execute(crm_login_failures.insert().values(email=email, address=address, at=now))


def clear(db: Database, email: str) -> None:
    """Forget an account's failures after it logged in."""
    with db.write() as conn:
        conn.execute(crm_login_failures.delete().where(crm_login_failures.c.email == email))
