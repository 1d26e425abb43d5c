"""Accounts: passwords (argon2id), logins and their throttling, roles merged into a Principal, API tokens."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from engine.auth import accounts, throttle, tokens
from engine.auth.accounts import LOGIN_REFUSED, AccountError, LoginRefused
from engine.storage.database import Database, crm_api_tokens, crm_audit, crm_users

PASSWORD = "correct horse battery"


@pytest.fixture
def user(db: Database) -> accounts.User:
    accounts.ensure_default_roles(db)
    return accounts.create_user(db, "  Rep@Example.COM ", "Sam Rep", PASSWORD, roles=["sales_rep"])


def _actions(db: Database) -> list[str]:
    with db.read() as conn:
        return list(conn.execute(sa.select(crm_audit.c.action).order_by(crm_audit.c.id)).scalars())


def test_password_is_stored_as_argon2id_and_the_email_lower_cased(db: Database, user: accounts.User) -> None:
    with db.read() as conn:
        row = conn.execute(sa.select(crm_users).where(crm_users.c.id == user.id)).first()
    assert row.email == "rep@example.com" and row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash
    assert accounts.authenticate(db, "REP@example.com", PASSWORD).id == user.id
    assert "user_created" in _actions(db) and "login" in _actions(db)


def test_wrong_password_and_unknown_email_get_the_same_message(db: Database, user: accounts.User) -> None:
    with pytest.raises(LoginRefused) as wrong:
        accounts.authenticate(db, "rep@example.com", "wrong password!")
    with pytest.raises(LoginRefused) as unknown:
        accounts.authenticate(db, "nobody@example.com", PASSWORD)
    assert str(wrong.value) == str(unknown.value) == LOGIN_REFUSED
    assert _actions(db).count("login_failed") == 2


def test_after_five_failures_even_the_right_password_is_refused_alike(db: Database, user: accounts.User) -> None:
    for _ in range(throttle.PER_EMAIL):
        with pytest.raises(LoginRefused):
            accounts.authenticate(db, "rep@example.com", "wrong password!", "10.0.0.1")
    with pytest.raises(LoginRefused) as refused:
        accounts.authenticate(db, "rep@example.com", PASSWORD, "10.0.0.2")
    assert str(refused.value) == LOGIN_REFUSED


def test_one_address_trying_many_accounts_is_throttled(db: Database, user: accounts.User) -> None:
    for i in range(throttle.PER_ADDRESS):
        with pytest.raises(LoginRefused):
            accounts.authenticate(db, f"guess{i}@example.com", "whatever-password", "10.9.9.9")
    with pytest.raises(LoginRefused):
        accounts.authenticate(db, "rep@example.com", PASSWORD, "10.9.9.9")
    assert accounts.authenticate(db, "rep@example.com", PASSWORD, "10.1.1.1").email == "rep@example.com"


def test_deactivated_user_cannot_log_in_or_act(db: Database, user: accounts.User) -> None:
    accounts.deactivate(db, user.id)
    with pytest.raises(LoginRefused):
        accounts.authenticate(db, "rep@example.com", PASSWORD)
    assert accounts.principal_for(db, user.id) is None


def test_bad_input_is_refused_with_a_reason(db: Database, user: accounts.User) -> None:
    with pytest.raises(AccountError, match="already exists"):
        accounts.create_user(db, "REP@example.com", password=PASSWORD)
    with pytest.raises(AccountError, match="at least 10"):
        accounts.create_user(db, "new@example.com", password="short")
    with pytest.raises(AccountError, match="no such role: boss"):
        accounts.create_user(db, "new@example.com", roles=["boss"])
    with pytest.raises(AccountError, match="current password is wrong"):
        accounts.change_password(db, user.id, "not it at all", "another long one")


def test_changed_password_works_and_the_old_one_not(db: Database, user: accounts.User) -> None:
    accounts.change_password(db, user.id, PASSWORD, "a brand new password")
    with pytest.raises(LoginRefused):
        accounts.authenticate(db, "rep@example.com", PASSWORD)
    assert accounts.authenticate(db, "rep@example.com", "a brand new password").id == user.id
    assert "password_changed" in _actions(db)


def test_login_rehashes_a_password_hashed_with_old_parameters(db: Database, user: accounts.User,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from argon2 import PasswordHasher

    old = PasswordHasher(time_cost=1, memory_cost=512, parallelism=1).hash(PASSWORD)
    with db.write() as conn:
        conn.execute(crm_users.update().where(crm_users.c.id == user.id).values(password_hash=old))
    accounts.authenticate(db, "rep@example.com", PASSWORD)
    with db.read() as conn:
        new = conn.execute(sa.select(crm_users.c.password_hash).where(crm_users.c.id == user.id)).scalar()
    assert new != old and not accounts.password_hasher().check_needs_rehash(new)


def test_principal_merges_the_roles_permissions(db: Database, user: accounts.User) -> None:
    accounts.assign_roles(db, user.id, ["sales_rep", "service_agent"])
    me = accounts.principal_for(db, user.id)
    assert me is not None and me.name == "rep@example.com" and not me.is_admin and not me.can_design
    assert me.roles == ("sales_rep", "service_agent")
    deal = me.grant("sales_crm", "deal")
    assert deal.allows("update") and not deal.allows("delete") and deal.own_only and deal.owner_field == "owner"
    assert me.can("sales_crm", "ticket", "create") and not me.can("sales_crm", "campaign", "read")
    accounts.assign_roles(db, user.id, ["app_designer"])
    designer = accounts.principal_for(db, user.id)
    assert designer is not None and designer.can_design and designer.can("mini", "customer", "read")


def test_token_is_shown_once_stored_hashed_and_revocable(db: Database, user: accounts.User) -> None:
    record, secret = tokens.create_token(db, user.id, "nightly export")
    with db.read() as conn:
        stored = conn.execute(sa.select(crm_api_tokens)).first()
    assert secret not in str(tuple(stored)) and len(stored.token_hash) == 64
    assert tokens.list_tokens(db, user.id)[0].last_used_at is None
    me = tokens.principal_for_token(db, secret)
    assert me is not None and me.name == "rep@example.com"
    listed = tokens.list_tokens(db, user.id)
    assert [t.name for t in listed] == ["nightly export"] and listed[0].last_used_at is not None
    assert tokens.revoke_token(db, user.id, record.id)
    assert tokens.principal_for_token(db, secret) is None
    assert tokens.principal_for_token(db, "crm_made-up") is None
    assert {"token_created", "token_revoked"} <= set(_actions(db))
