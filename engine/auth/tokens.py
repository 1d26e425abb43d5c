"""API tokens: a user creates named tokens for scripts; a token is shown once and only its sha256 is stored."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from engine.auth.accounts import AccountError, principal_for
from engine.auth.audit import audit_in
from engine.auth.principal import Principal
from engine.auth.sessions import token_hash
from engine.storage.database import Database, crm_api_tokens, crm_users
from engine.storage.migrate import utcnow

__all__ = ["ApiToken", "create_token", "list_tokens", "principal_for_token", "revoke_token"]

_PREFIX = "crm_"


@dataclass(frozen=True)
class ApiToken:
    """A token as its owner sees it later: never the token itself."""

    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def create_token(db: Database, user_id: str, name: str) -> tuple[ApiToken, str]:
    """A new token for the user: its record and the token itself (shown once, never stored)."""
    name = name.strip()
    if not name:
        raise AccountError("give the token a name, so you know later what uses it")
    token = _PREFIX + secrets.token_urlsafe(32)
    token_id, now = str(uuid.uuid4()), utcnow()
    with db.write() as conn:
        email = conn.execute(sa.select(crm_users.c.email).where(crm_users.c.id == user_id)).scalar()
        if email is None:
            raise AccountError("no such user")
        conn.execute(crm_api_tokens.insert().values(id=token_id, user_id=user_id, name=name,
                                                    token_hash=token_hash(token), created_at=now))
        audit_in(conn, email, "token_created", email, {"token": name})
    return ApiToken(token_id, name, now, None, None), token


def list_tokens(db: Database, user_id: str) -> list[ApiToken]:
    """A user's tokens, newest first (revoked ones included, marked)."""
    with db.read() as conn:
        rows = conn.execute(sa.select(crm_api_tokens).where(crm_api_tokens.c.user_id == user_id)
                            .order_by(crm_api_tokens.c.created_at.desc())).all()
    return [ApiToken(r.id, r.name, r.created_at, r.last_used_at, r.revoked_at) for r in rows]


def revoke_token(db: Database, user_id: str, token_id: str) -> bool:
    """Stop one of the user's tokens from working; False when the user has no such live token."""
    with db.write() as conn:
        row = conn.execute(sa.select(crm_api_tokens.c.name, crm_users.c.email)
                           .join(crm_users, crm_users.c.id == crm_api_tokens.c.user_id)
                           .where(crm_api_tokens.c.id == token_id, crm_api_tokens.c.user_id == user_id,
                                  crm_api_tokens.c.revoked_at.is_(None))).first()
        if row is None:
            return False
        conn.execute(crm_api_tokens.update().where(crm_api_tokens.c.id == token_id).values(revoked_at=utcnow()))
        audit_in(conn, row.email, "token_revoked", row.email, {"token": row.name})
    return True


def principal_for_token(db: Database, token: str) -> Principal | None:
    """Who a live token acts as (its use is noted as last_used_at); None for unknown or revoked tokens."""
    with db.write() as conn:
        row = conn.execute(sa.select(crm_api_tokens.c.id, crm_api_tokens.c.user_id)
                           .where(crm_api_tokens.c.token_hash == token_hash(token),
                                  crm_api_tokens.c.revoked_at.is_(None))).first()
        if row is None:
            return None
        conn.execute(crm_api_tokens.update().where(crm_api_tokens.c.id == row.id).values(last_used_at=utcnow()))
    return principal_for(db, row.user_id)
