"""Sessions: a random cookie token, stored hashed; idle and absolute expiry; logout; new session on login."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from engine.auth import accounts, sessions
from engine.storage.database import Database, crm_sessions


@pytest.fixture
def user_id(db: Database) -> str:
    return accounts.create_user(db, "someone@example.com").id


def _age(db: Database, token: str, **values: dt.datetime) -> None:
    with db.write() as conn:
        conn.execute(crm_sessions.update().where(crm_sessions.c.id == sessions.token_hash(token)).values(**values))


def test_session_resolves_and_only_its_hash_is_stored(db: Database, user_id: str) -> None:
    token = sessions.start_session(db, user_id, "127.0.0.1")
    assert sessions.resolve_session(db, token) == user_id
    with db.read() as conn:
        ids = list(conn.execute(sa.select(crm_sessions.c.id)).scalars())
    assert ids == [sessions.token_hash(token)] and token not in ids
    assert sessions.resolve_session(db, token + "x") is None


def test_idle_session_expires(db: Database, user_id: str) -> None:
    token = sessions.start_session(db, user_id)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    _age(db, token, last_seen_at=now - sessions.IDLE + dt.timedelta(minutes=5))
    assert sessions.resolve_session(db, token) == user_id  # and that use counts as activity
    _age(db, token, last_seen_at=now - sessions.IDLE - dt.timedelta(minutes=1))
    assert sessions.resolve_session(db, token) is None


def test_session_ends_after_the_absolute_limit_even_when_used(db: Database, user_id: str) -> None:
    token = sessions.start_session(db, user_id)
    _age(db, token, created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None) - sessions.ABSOLUTE
         - dt.timedelta(minutes=1))
    assert sessions.resolve_session(db, token) is None


def test_logout_and_a_new_login_end_the_old_session(db: Database, user_id: str) -> None:
    first = sessions.start_session(db, user_id)
    second = sessions.start_session(db, user_id, replaces=first)
    assert sessions.resolve_session(db, first) is None and sessions.resolve_session(db, second) == user_id
    sessions.end_session(db, second)
    assert sessions.resolve_session(db, second) is None


def test_cookie_is_http_only_lax_and_secure_on_https() -> None:
    plain, https = sessions.cookie_options(False), sessions.cookie_options(True)
    assert plain["key"] == "crm_session" and plain["httponly"] is True and plain["samesite"] == "lax"
    assert plain["secure"] is False and https["secure"] is True
