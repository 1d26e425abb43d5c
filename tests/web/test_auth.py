"""Logging in and out in the web UI, who may open what, API tokens over HTTP, and the `crm user` commands."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient

from engine.auth import accounts, sessions
from engine.auth.accounts import LOGIN_REFUSED
from engine.auth.tokens import create_token, list_tokens, revoke_token
from engine.storage.database import Database, crm_audit
from engine.storage.records import RecordService
from tests.test_cli import crm
from tests.web.conftest import csrf, log_in_as

Client = TestClient[Litestar]
PASSWORD = "a good long password"


def _login(client: Client, email: str, password: str, next_url: str = "") -> object:
    page = client.get(f"/login?next={next_url}").text
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    return client.post("/login", data={"_csrf_token": token, "email": email, "password": password, "next": next_url},
                       follow_redirects=False)


_ACCOUNT_EVENTS = ("login", "login_failed", "logout", "password_changed", "password_reset", "user_created",
                   "user_changed", "token_created", "token_revoked")


def _audit(db: Database) -> list[tuple[str, str]]:
    with db.read() as conn:
        return [(r.actor, r.action) for r in conn.execute(sa.select(crm_audit).order_by(crm_audit.c.id))
                if r.action in _ACCOUNT_EVENTS]


@pytest.mark.parametrize("path", ["/", "/apps/sales_crm/customer", "/apps/sales_crm/customer/new", "/account",
                                  "/users"])
def test_every_page_sends_anonymous_visitors_to_login(anonymous: Client, path: str) -> None:
    response = anonymous.get(path, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=%2F")
    htmx = anonymous.get(path, headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.status_code == 200 and htmx.headers["hx-redirect"].startswith("/login?next=")
    assert anonymous.get("/static/app.css").status_code == 200


def test_login_goes_to_next_and_logout_ends_the_session(anonymous: Client, web_db: Database) -> None:
    accounts.create_user(web_db, "ann@example.com", "Ann", PASSWORD)
    response = _login(anonymous, "Ann@Example.com", PASSWORD, "/apps/sales_crm/customer")
    assert response.status_code == 303 and response.headers["location"] == "/apps/sales_crm/customer"
    cookie = response.headers["set-cookie"]
    assert "crm_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    home = anonymous.get("/")
    assert home.status_code == 200 and "ann@example.com" in home.text and "Log out" in home.text
    assert ">Users<" not in home.text  # not an admin
    out = anonymous.post("/logout", headers=csrf(anonymous), follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert anonymous.get("/", follow_redirects=False).status_code == 303
    assert [a for _, a in _audit(web_db)] == ["user_created", "login", "logout"]


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"])
def test_next_must_be_a_local_path(anonymous: Client, web_db: Database, target: str) -> None:
    accounts.create_user(web_db, "ann@example.com", "Ann", PASSWORD)
    assert _login(anonymous, "ann@example.com", PASSWORD, target).headers["location"] == "/"


def test_wrong_password_shows_one_generic_message_and_is_audited(anonymous: Client, web_db: Database) -> None:
    accounts.create_user(web_db, "ann@example.com", "Ann", PASSWORD)
    wrong = _login(anonymous, "ann@example.com", "not the password")
    unknown = _login(anonymous, "nobody@example.com", PASSWORD)
    assert wrong.status_code == unknown.status_code == 400  # type: ignore[attr-defined]
    assert LOGIN_REFUSED in wrong.text and LOGIN_REFUSED in unknown.text  # type: ignore[attr-defined]
    assert ("ann@example.com", "login_failed") in _audit(web_db)


def test_session_cookie_is_secure_over_https(web_app: Litestar, web_db: Database) -> None:
    accounts.create_user(web_db, "ann@example.com", "Ann", PASSWORD)
    with TestClient(app=web_app, base_url="https://testserver.local") as client:
        assert "Secure" in _login(client, "ann@example.com", PASSWORD).headers["set-cookie"]  # type: ignore[attr-defined]


def test_admin_pages_are_refused_to_other_users(anonymous: Client, web_db: Database) -> None:
    log_in_as(anonymous, web_db, "viewer@example.com", roles=("viewer",))
    assert anonymous.get("/users").status_code == 403
    user = accounts.user_by_email(web_db, "viewer@example.com")
    assert user is not None
    for path in ("/users", f"/users/{user.id}/password", f"/users/{user.id}/roles"):
        assert anonymous.post(path, data={"email": "x@example.com"}, headers=csrf(anonymous)).status_code == 403


def test_admin_invites_a_user_who_logs_in_with_the_password_shown_once(client: Client, web_db: Database) -> None:
    accounts.ensure_default_roles(web_db)
    page = client.post("/users", data={"email": "new@example.com", "name": "New", "roles": ["viewer", "sales_rep"]},
                       headers=csrf(client))
    assert page.status_code == 200 and "new@example.com" in page.text
    password = re.search(r'<code class="secret">([^<]+)</code>', page.text).group(1)  # type: ignore[union-attr]
    assert password not in client.get("/users").text
    user = accounts.user_by_email(web_db, "new@example.com")
    assert user is not None and user.roles == ("sales_rep", "viewer")
    client.post(f"/users/{user.id}/roles", data={"roles": ["viewer"]}, headers=csrf(client))
    reset = client.post(f"/users/{user.id}/password", headers=csrf(client)).text
    new_password = re.search(r'<code class="secret">([^<]+)</code>', reset).group(1)  # type: ignore[union-attr]
    client.cookies.clear()  # now as the new user
    assert _login(client, "new@example.com", password).status_code == 400  # type: ignore[attr-defined]
    assert _login(client, "new@example.com", new_password).status_code == 303  # type: ignore[attr-defined]
    assert {"user_created", "user_changed", "password_reset", "login_failed", "login"} <= {a for _, a in
                                                                                           _audit(web_db)}
    assert accounts.user_by_email(web_db, "new@example.com").roles == ("viewer",)  # type: ignore[union-attr]


def test_account_page_changes_the_password_and_manages_tokens(anonymous: Client, web_db: Database) -> None:
    accounts.create_user(web_db, "ann@example.com", "Ann", PASSWORD)
    _login(anonymous, "ann@example.com", PASSWORD)
    bad = anonymous.post("/account/password", headers=csrf(anonymous),
                         data={"old_password": PASSWORD, "new_password": "x" * 12, "new_password2": "y" * 12})
    assert bad.status_code == 422 and "do not match" in bad.text
    ok = anonymous.post("/account/password", headers=csrf(anonymous),
                        data={"old_password": PASSWORD, "new_password": "n" * 12, "new_password2": "n" * 12})
    assert ok.status_code == 200 and "password was changed" in ok.text
    made = anonymous.post("/account/tokens", data={"token_name": "script"}, headers=csrf(anonymous)).text
    token = re.search(r'<code class="secret">([^<]+)</code>', made).group(1)  # type: ignore[union-attr]
    assert token not in anonymous.get("/account").text

    user = accounts.user_by_email(web_db, "ann@example.com")
    assert user is not None
    listed = list_tokens(web_db, user.id)
    anonymous.post(f"/account/tokens/{listed[0].id}/revoke", headers=csrf(anonymous))
    assert list_tokens(web_db, user.id)[0].revoked_at is not None
    assert {"password_changed", "token_created", "token_revoked"} <= {a for _, a in _audit(web_db)}


def test_api_token_acts_as_its_user_until_revoked(anonymous: Client, web_db: Database) -> None:
    user = accounts.create_user(web_db, "ann@example.com", "Ann", PASSWORD)
    record, token = create_token(web_db, user.id, "script")
    assert anonymous.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert list_tokens(web_db, user.id)[0].last_used_at is not None
    assert anonymous.get("/", headers={"Authorization": "Bearer crm_nope"}).status_code == 401
    revoke_token(web_db, user.id, record.id)
    assert anonymous.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def _customers(db: Database) -> dict[str, str]:
    """Customer names of the mini app -> who created them."""
    return {r["name"]: r["created_by"] for r in RecordService(db, "mini").query("customer").records}


def test_api_token_changes_records_without_csrf_while_a_cookie_still_needs_it(anonymous: Client,
                                                                              web_db: Database) -> None:
    user = accounts.create_user(web_db, "script@example.com", "Script", PASSWORD, is_admin=True)
    _, token = create_token(web_db, user.id, "nightly sync")

    by_token = anonymous.post("/apps/mini/customer/new", data={"name": "By token"},
                              headers={"Authorization": f"Bearer {token}"}, follow_redirects=False)
    assert by_token.status_code == 303
    assert _customers(web_db) == {"By token": "script@example.com"}

    log_in_as(anonymous, web_db, "script@example.com")
    by_cookie = anonymous.post("/apps/mini/customer/new", data={"name": "By cookie"}, follow_redirects=False)
    assert by_cookie.status_code == 403
    assert "By cookie" not in _customers(web_db)


def test_a_bearer_request_ignores_the_session_cookie(client: Client, web_db: Database) -> None:
    ann = accounts.create_user(web_db, "ann@example.com", "Ann", PASSWORD, is_admin=True)
    _, token = create_token(web_db, ann.id, "script")
    admin_session = client.cookies[sessions.COOKIE]

    client.post("/apps/mini/customer/new", data={"name": "Mixed"}, headers={"Authorization": f"Bearer {token}"})
    client.cookies.set(sessions.COOKIE, admin_session)  # in case a response tried to change it
    client.post("/logout", headers={"Authorization": f"Bearer {token}"})

    assert _customers(web_db) == {"Mixed": "ann@example.com"}  # acted as the token's user, not the cookie's
    assert sessions.resolve_session(web_db, admin_session) is not None  # the cookie's session was not touched


@pytest.mark.parametrize("revoked", [True, False])
def test_a_bad_token_is_refused_and_does_not_fall_back_to_the_cookie(client: Client, web_db: Database,
                                                                     revoked: bool) -> None:
    ann = accounts.create_user(web_db, "ann@example.com", "Ann", PASSWORD, is_admin=True)
    record, token = create_token(web_db, ann.id, "script")
    if revoked:
        revoke_token(web_db, ann.id, record.id)
    else:
        token = "crm_" + "x" * 43

    answer = client.post("/apps/mini/customer/new", data={"name": "Sneaked in"}, follow_redirects=False,
                         headers={"Authorization": f"Bearer {token}", **csrf(client)})

    assert answer.status_code == 401  # the logged-in admin's cookie and a valid CSRF token do not help
    assert _customers(web_db) == {}


@pytest.mark.parametrize("path", ["/users", "/account", "/", "/apps/mini/customer", "/roles", "/audit"])
def test_pages_use_the_database_off_the_event_loop(client: Client, monkeypatch: pytest.MonkeyPatch,
                                                    path: str) -> None:
    """A blocking database call on the event loop would stall every other request while it runs."""
    on_loop: list[str] = []

    def watched(connect: object) -> object:
        @contextmanager
        def connection(self: Database) -> Iterator[sa.Connection]:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass  # a worker thread: fine
            else:
                on_loop.append(connect.__name__)  # type: ignore[attr-defined]
            with connect(self) as conn:  # type: ignore[operator]
                yield conn
        return connection

    monkeypatch.setattr(Database, "read", watched(Database.read))
    monkeypatch.setattr(Database, "write", watched(Database.write))

    assert client.get(path).status_code == 200
    assert on_loop == []


def test_cli_user_commands(capsys: pytest.CaptureFixture[str], db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_USER_PASSWORD", PASSWORD)
    code, out, err = crm(capsys, db, "user", "create", "Rep@Example.com", "--role", "sales_rep", "--name", "Sam")
    assert code == 0, err
    assert "created rep@example.com with roles: sales_rep" in out
    assert crm(capsys, db, "user", "create", "boss@example.com", "--admin")[0] == 0
    code, _, err = crm(capsys, db, "user", "create", "rep@example.com", "--role", "viewer")
    assert code == 1 and "already exists" in err
    code, _, err = crm(capsys, db, "user", "create", "x@example.com", "--role", "emperor")
    assert code == 1 and "no such role: emperor" in err
    code, out, _ = crm(capsys, db, "user", "list")
    assert code == 0 and re.search(r"boss@example.com\t.*admin", out) and "rep@example.com\tSam\tsales_rep" in out
    monkeypatch.setenv("CRM_USER_PASSWORD", "short")
    code, _, err = crm(capsys, db, "user", "set-password", "rep@example.com")
    assert code == 1 and "at least 10" in err
    monkeypatch.setenv("CRM_USER_PASSWORD", "another good password")
    assert crm(capsys, db, "user", "set-password", "rep@example.com")[0] == 0
    assert accounts.authenticate(db, "rep@example.com", "another good password").email == "rep@example.com"
    code, _, err = crm(capsys, db, "user", "set-password", "ghost@example.com")
    assert code == 1 and "no user" in err
