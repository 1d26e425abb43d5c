"""User accounts: creating users, their passwords (argon2id), their roles, and the Principal they act as.

A user's Principal merges the permission documents of their roles (see engine.auth.principal.merge_grants)."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.auth import throttle
from engine.auth.audit import audit, audit_in
from engine.auth.principal import Principal, merge_grants
from engine.errors import CrmError
from engine.storage.database import Database, crm_roles, crm_user_roles, crm_users
from engine.storage.migrate import utcnow

__all__ = ["DEFAULT_ROLES", "LOGIN_REFUSED", "MIN_PASSWORD_LENGTH", "AccountError", "LoginRefused", "User",
           "assign_roles", "authenticate", "change_password", "create_user", "deactivate", "ensure_default_roles",
           "generate_password", "get_user", "list_users", "password_hasher", "principal_for", "role_names",
           "set_password", "user_by_email"]

MIN_PASSWORD_LENGTH = 10
#: The one message for every refused login: it never tells whether the account exists.
LOGIN_REFUSED = "Wrong email or password."

_SALES = ("customer", "company", "deal", "interaction", "sales_order")
_RCU = {"read": True, "create": True, "update": True}
_ALL = {"read": True, "create": True, "update": True, "delete": True, "export": True, "import": True}

#: Roles `ensure_default_roles` creates: name -> (title, description, designer, permissions).
DEFAULT_ROLES: dict[str, tuple[str, str, bool, dict[str, Any]]] = {
    "viewer": ("Viewer", "Reads every app's records.", False, {"*": {"*": {"read": True}}}),
    "sales_rep": ("Sales rep", "Works with customers, companies, deals, interactions and orders; sees only their "
                  "own deals.", False,
                  {"sales_crm": {e: ({**_RCU, "records": "own", "owner_field": "owner"} if e == "deal" else _RCU)
                                 for e in _SALES}}),
    "sales_manager": ("Sales manager", "Everything with the Sales CRM's records, export and import included.", False,
                      {"sales_crm": {e: _ALL for e in (*_SALES, "campaign", "ticket")}}),
    "service_agent": ("Service agent", "Handles tickets and interactions; reads customers.", False,
                      {"sales_crm": {"ticket": _RCU, "interaction": _RCU, "customer": {"read": True}}}),
    "app_designer": ("App designer", "Changes app definitions; reads every record.", True,
                     {"*": {"*": {"read": True}}}),
}


class AccountError(CrmError):
    """A refused account change (duplicate email, unknown role, too short a password...)."""


class LoginRefused(CrmError):
    """A login that did not succeed; the message is always LOGIN_REFUSED."""

    def __init__(self) -> None:
        super().__init__(LOGIN_REFUSED)


@dataclass(frozen=True)
class User:
    """A person who can log in."""

    id: str
    email: str
    name: str
    is_admin: bool
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None
    roles: tuple[str, ...] = ()
    has_password: bool = False


def password_hasher() -> PasswordHasher:
    """The argon2id hasher; CRM_ARGON2_FAST=1 (tests only) lowers its cost so suites stay quick."""
    if os.environ.get("CRM_ARGON2_FAST") == "1":
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()


def generate_password() -> str:
    """A random temporary password (shown once to whoever set it)."""
    return secrets.token_urlsafe(12)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")


def _check_roles(conn: sa.Connection, roles: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(roles))
    known = set(conn.execute(sa.select(crm_roles.c.name)).scalars())
    unknown = [r for r in wanted if r not in known]
    if unknown:
        raise AccountError(f"no such role: {', '.join(unknown)} (roles: {', '.join(sorted(known)) or 'none yet'})")
    return wanted


def _users(conn: sa.Connection, where: Any = None) -> list[User]:
    query = sa.select(crm_users).order_by(crm_users.c.email)
    if where is not None:
        query = query.where(where)
    rows = conn.execute(query).mappings().all()
    roles: dict[str, list[str]] = {}
    ids = [r["id"] for r in rows]
    if ids:
        for user_id, role in conn.execute(sa.select(crm_user_roles.c.user_id, crm_user_roles.c.role)
                                          .where(crm_user_roles.c.user_id.in_(ids)).order_by(crm_user_roles.c.role)):
            roles.setdefault(user_id, []).append(role)
    return [User(id=r["id"], email=r["email"], name=r["name"], is_admin=bool(r["is_admin"]),
                 is_active=bool(r["is_active"]), created_at=r["created_at"], last_login_at=r["last_login_at"],
                 roles=tuple(roles.get(r["id"], ())), has_password=r["password_hash"] is not None) for r in rows]


def list_users(db: Database) -> list[User]:
    """Every user, by email."""
    with db.read() as conn:
        return _users(conn)


def get_user(db: Database, user_id: str) -> User | None:
    """One user by id."""
    with db.read() as conn:
        found = _users(conn, crm_users.c.id == user_id)
    return found[0] if found else None


def user_by_email(db: Database, email: str) -> User | None:
    """One user by email (any case)."""
    with db.read() as conn:
        found = _users(conn, crm_users.c.email == email.strip().lower())
    return found[0] if found else None


def role_names(db: Database) -> list[str]:
    """The names of every role."""
    with db.read() as conn:
        return list(conn.execute(sa.select(crm_roles.c.name).order_by(crm_roles.c.name)).scalars())


def create_user(db: Database, email: str, name: str | None = None, password: str | None = None,
                is_admin: bool = False, roles: Sequence[str] = (), actor: str = "system") -> User:
    """Add a user (email lower-cased and unique); with no password they cannot log in until one is set."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise AccountError(f"'{email}' is not an email address")
    if password is not None:
        _check_password(password)
    with db.write() as conn:
        wanted = _check_roles(conn, roles)
        if conn.execute(sa.select(crm_users.c.id).where(crm_users.c.email == email)).first():
            raise AccountError(f"a user with the email {email} already exists")
        user_id = str(uuid.uuid4())
        conn.execute(crm_users.insert().values(
            id=user_id, email=email, name=(name or "").strip() or email.split("@")[0], is_admin=is_admin,
            is_active=True, created_at=utcnow(),
            password_hash=password_hasher().hash(password) if password is not None else None))
        if wanted:
            conn.execute(crm_user_roles.insert(), [{"user_id": user_id, "role": r} for r in wanted])
        audit_in(conn, actor, "user_created", email, {"roles": wanted, "is_admin": is_admin})
        return _users(conn, crm_users.c.id == user_id)[0]


def set_password(db: Database, user_id: str, password: str, actor: str = "system",
                 action: str = "password_reset") -> None:
    """Give a user a new password (an admin's reset, or the user's own change after checking the old one)."""
    _check_password(password)
    with db.write() as conn:
        email = conn.execute(sa.select(crm_users.c.email).where(crm_users.c.id == user_id)).scalar()
        if email is None:
            raise AccountError("no such user")
        conn.execute(crm_users.update().where(crm_users.c.id == user_id)
                     .values(password_hash=password_hasher().hash(password)))
        audit_in(conn, actor, action, email)


def _verify(stored: str | None, password: str) -> bool:
    if stored is None:
        password_hasher().hash(password)  # the same work as a real check, so timing does not tell
        return False
    try:
        return password_hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def change_password(db: Database, user_id: str, old: str, new: str) -> None:
    """A user's own change: the old password must be right."""
    with db.read() as conn:
        row = conn.execute(sa.select(crm_users.c.email, crm_users.c.password_hash)
                           .where(crm_users.c.id == user_id)).first()
    if row is None or not _verify(row.password_hash, old):
        raise AccountError("the current password is wrong")
    set_password(db, user_id, new, actor=row.email, action="password_changed")


def authenticate(db: Database, email: str, password: str, address: str | None = None) -> User:
    """The active user with this email and password; LoginRefused (always the same message) otherwise, also when
    too many attempts failed lately. Logs the login or the failure to the audit log."""
    email = email.strip().lower()
    if throttle.is_throttled(db, email, address):
        audit(db, email or "-", "login_failed", email, {"reason": "throttled"}, address)
        raise LoginRefused
    with db.read() as conn:
        row = conn.execute(sa.select(crm_users).where(crm_users.c.email == email)).mappings().first()
    stored = row["password_hash"] if row is not None else None
    if row is None or not _verify(stored, password) or not row["is_active"]:
        throttle.record_failure(db, email, address)
        audit(db, email or "-", "login_failed", email, {}, address)
        raise LoginRefused
    hasher = password_hasher()
    with db.write() as conn:
        values: dict[str, Any] = {"last_login_at": utcnow()}
        if stored is not None and hasher.check_needs_rehash(stored):  # the cost parameters changed since
            values["password_hash"] = hasher.hash(password)
        conn.execute(crm_users.update().where(crm_users.c.id == row["id"]).values(**values))
        audit_in(conn, email, "login", email, {}, address)
    throttle.clear(db, email)
    found = get_user(db, row["id"])
    assert found is not None
    return found


def assign_roles(db: Database, user_id: str, roles: Sequence[str], actor: str = "system",
                 is_admin: bool | None = None) -> None:
    """Replace a user's roles (and, when given, whether they are an admin)."""
    with db.write() as conn:
        wanted = _check_roles(conn, roles)
        email = conn.execute(sa.select(crm_users.c.email).where(crm_users.c.id == user_id)).scalar()
        if email is None:
            raise AccountError("no such user")
        conn.execute(crm_user_roles.delete().where(crm_user_roles.c.user_id == user_id))
        if wanted:
            conn.execute(crm_user_roles.insert(), [{"user_id": user_id, "role": r} for r in wanted])
        detail: dict[str, Any] = {"roles": wanted}
        if is_admin is not None:
            conn.execute(crm_users.update().where(crm_users.c.id == user_id).values(is_admin=is_admin))
            detail["is_admin"] = is_admin
        audit_in(conn, actor, "user_changed", email, detail)


def deactivate(db: Database, user_id: str, actor: str = "system") -> None:
    """Stop a user from logging in; their sessions and tokens stop working too."""
    from engine.auth.sessions import end_user_sessions

    with db.write() as conn:
        email = conn.execute(sa.select(crm_users.c.email).where(crm_users.c.id == user_id)).scalar()
        if email is None:
            raise AccountError("no such user")
        conn.execute(crm_users.update().where(crm_users.c.id == user_id).values(is_active=False))
        audit_in(conn, actor, "user_changed", email, {"is_active": False})
    end_user_sessions(db, user_id)


def principal_for(db: Database, user_id: str) -> Principal | None:
    """Who an active user acts as: their roles' permissions merged; None for unknown or deactivated users."""
    with db.read() as conn:
        user = conn.execute(sa.select(crm_users.c.email, crm_users.c.is_admin, crm_users.c.is_active)
                            .where(crm_users.c.id == user_id)).first()
        if user is None or not user.is_active:
            return None
        roles = conn.execute(sa.select(crm_roles.c.name, crm_roles.c.designer, crm_roles.c.permissions)
                             .join(crm_user_roles, crm_user_roles.c.role == crm_roles.c.name)
                             .where(crm_user_roles.c.user_id == user_id).order_by(crm_roles.c.name)).all()
    return Principal(name=user.email, user_id=user_id, is_admin=bool(user.is_admin),
                     designer=any(r.designer for r in roles), roles=tuple(r.name for r in roles),
                     grants=merge_grants([r.permissions or {} for r in roles]))


def ensure_default_roles(db: Database) -> list[str]:
    """Create the default roles that do not exist yet; returns the names created."""
    with db.write() as conn:
        existing = set(conn.execute(sa.select(crm_roles.c.name)).scalars())
        created = [name for name in DEFAULT_ROLES if name not in existing]
        for name in created:
            title, description, designer, permissions = DEFAULT_ROLES[name]
            conn.execute(crm_roles.insert().values(name=name, title=title, description=description,
                                                   designer=designer, permissions=permissions, updated_at=utcnow()))
    return created
