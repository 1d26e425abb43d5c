"""Logging in and out, the user's own account page, the admins' users page, and the middleware that decides who is
asking: a session cookie or an `Authorization: Bearer` API token becomes the request's Principal."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import anyio.to_thread
from litestar import Request, Response, Router, get, post
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.params import FromPath, RawBody
from litestar.response import Redirect, Template
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Receive, Scope, Send

from engine.auth import accounts, sessions, tokens
from engine.auth.audit import audit
from engine.auth.principal import Principal
from engine.storage.database import Database
from engine.web.context import current_user, database
from engine.web.posts import form_data, last

__all__ = ["HANDLERS", "MIDDLEWARE", "AuthMiddleware", "by_api_token", "local_next"]

#: Paths anyone may open without logging in.
_OPEN = ("/login", "/static/")
#: Set in the request's scope state when an API token (not a session cookie) authenticated it.
_BY_TOKEN = "crm_by_api_token"


def local_next(target: str | None) -> str:
    """Where to go after logging in: `target` if it is a path on this site, else the start page."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


def _resolve(db: Database, cookie: str | None, bearer: str | None) -> tuple[Principal | None, str | None]:
    """The Principal of a Bearer token or session cookie, and the user's id."""
    if bearer is not None:
        principal = tokens.principal_for_token(db, bearer)
        return principal, principal.user_id if principal else None
    if cookie:
        user_id = sessions.resolve_session(db, cookie)
        if user_id is not None:
            return accounts.principal_for(db, user_id), user_id
    return None, None


def by_api_token(scope: Scope) -> bool:
    """Whether an API token authenticated the request (then it carries no session cookie: see AuthMiddleware)."""
    return scope.get("state", {}).get(_BY_TOKEN) is True


class AuthMiddleware(ASGIMiddleware):
    """Puts the request's Principal in `scope["state"]["principal"]`; turns away anonymous requests: to the login
    page (303, or HX-Redirect for htmx), or 401 for a bad API token.

    A request with an `Authorization: Bearer` header is the token's alone: its session cookie is removed before any
    handler sees it, and a bad token is refused rather than falling back to the cookie."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        cookie = _cookie(headers.get("cookie", ""), sessions.COOKIE)
        if bearer is not None and cookie is not None:
            scope["headers"] = _without_cookie(scope["headers"], sessions.COOKIE)
        db: Database = scope["app"].state["db"]
        principal, _ = await anyio.to_thread.run_sync(_resolve, db, cookie, bearer)
        state = scope.setdefault("state", {})
        state["principal"] = principal  # type: ignore[typeddict-item]
        state[_BY_TOKEN] = bearer is not None and principal is not None  # type: ignore[literal-required]
        path = scope["path"]
        if principal is None and not any(path == p or (p.endswith("/") and path.startswith(p)) for p in _OPEN):
            await _turn_away(scope, headers, bearer is not None)(scope, receive, send)  # type: ignore[arg-type]
            return
        await next_app(scope, receive, send)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _without_cookie(headers: Any, name: str) -> list[tuple[bytes, bytes]]:
    """The request headers with cookie `name` taken out of every Cookie header."""
    out: list[tuple[bytes, bytes]] = []
    for key, value in headers:
        if key.lower() == b"cookie":
            kept = [p for p in value.split(b";") if p.strip().partition(b"=")[0] != name.encode("latin-1")]
            if not kept:
                continue
            value = b";".join(kept).strip()
        out.append((key, value))
    return out


def _turn_away(scope: Scope, headers: dict[str, str], had_bearer: bool) -> ASGIResponse:
    if had_bearer:
        return ASGIResponse(body=b"invalid or revoked API token", status_code=401, media_type="text/plain",
                            headers={"www-authenticate": "Bearer"})
    query = scope.get("query_string", b"").decode("latin-1")
    target = "/login?next=" + quote(scope["path"] + (f"?{query}" if query else ""), safe="")
    if headers.get("hx-request") == "true":
        return ASGIResponse(status_code=200, headers={"hx-redirect": target})
    return ASGIResponse(status_code=303, headers={"location": target})


MIDDLEWARE = [AuthMiddleware()]


# --- helpers ------------------------------------------------------------------------------------------------
def _address(request: Request[Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None


def _forbidden() -> Template:
    return Template(template_name="error.html", status_code=403,
                    context={"title": "Not allowed", "message": "Only administrators may open this page."})


# --- login and logout ---------------------------------------------------------------------------------------
def _login_page(next_url: str, email: str = "", error: str | None = None, status: int = 200) -> Template:
    return Template(template_name="login.html", status_code=status,
                    context={"title": "Log in", "next": next_url, "email": email, "error": error})


@get("/login", name="login", sync_to_thread=False)
def login_page(request: Request[Any, Any, Any]) -> Template:
    """The login form."""
    return _login_page(local_next(request.query_params.get("next")))


@post("/login", name="login-submit", status_code=200, sync_to_thread=True)
def login(request: Request[Any, Any, Any], body: RawBody) -> Response[Any]:
    """Check email and password; on success a fresh session and off to `next` (local paths only)."""
    data = form_data(body)
    db = database(request)
    email, target = last(data, "email"), local_next(last(data, "next"))
    try:
        user = accounts.authenticate(db, email, last(data, "password"), _address(request))
    except accounts.LoginRefused as exc:
        return _login_page(target, email, str(exc), status=400)
    token = sessions.start_session(db, user.id, _address(request), replaces=request.cookies.get(sessions.COOKIE))
    response: Response[Any] = Redirect(target, status_code=303)
    response.set_cookie(value=token, **sessions.cookie_options(request.url.scheme == "https"))  # type: ignore[arg-type]
    return response


@post("/logout", name="logout", status_code=303, sync_to_thread=True)
def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    """End the session and go back to the login page."""
    db = database(request)
    token = request.cookies.get(sessions.COOKIE)
    if token:
        sessions.end_session(db, token)
    audit(db, current_user(request).name, "logout", current_user(request).name, address=_address(request))
    response: Response[Any] = Redirect("/login", status_code=303)
    response.delete_cookie(sessions.COOKIE)
    return response


# --- the user's own account ---------------------------------------------------------------------------------
def _account_page(request: Request[Any, Any, Any], **extra: Any) -> Template:
    me = current_user(request)
    assert me.user_id is not None
    status = extra.pop("status", 200)
    return Template(template_name="account.html", status_code=status,
                    context={"title": "Your account", "me": me, "tokens": tokens.list_tokens(database(request),
                                                                                             me.user_id), **extra})


def _own_id(request: Request[Any, Any, Any]) -> str | None:
    return current_user(request).user_id


@get("/account", name="account", sync_to_thread=True)
def account_page(request: Request[Any, Any, Any]) -> Template:
    """Change your password; create and revoke your API tokens."""
    if _own_id(request) is None:
        return _forbidden()
    return _account_page(request)


@post("/account/password", name="account-password", status_code=200, sync_to_thread=True)
def change_password(request: Request[Any, Any, Any], body: RawBody) -> Template:
    """Change your password (the current one, then the new one twice); your other sessions end."""
    user_id, data = _own_id(request), form_data(body)
    if user_id is None:
        return _forbidden()
    new = last(data, "new_password")
    if new != last(data, "new_password2"):
        return _account_page(request, password_error="The new passwords do not match.", status=422)
    try:
        accounts.change_password(database(request), user_id, last(data, "old_password"), new)
    except accounts.AccountError as exc:
        return _account_page(request, password_error=str(exc).capitalize() + ".", status=422)
    sessions.end_user_sessions(database(request), user_id, keep=request.cookies.get(sessions.COOKIE))
    return _account_page(request, password_message="Your password was changed.")


@post("/account/tokens", name="account-token-create", status_code=200, sync_to_thread=True)
def create_token(request: Request[Any, Any, Any], body: RawBody) -> Template:
    """A new API token, shown this once."""
    user_id = _own_id(request)
    if user_id is None:
        return _forbidden()
    try:
        token, secret = tokens.create_token(database(request), user_id, last(form_data(body), "token_name"))
    except accounts.AccountError as exc:
        return _account_page(request, token_error=str(exc).capitalize() + ".", status=422)
    return _account_page(request, new_token=secret, new_token_name=token.name)


@post("/account/tokens/{token_id:str}/revoke", name="account-token-revoke", status_code=200, sync_to_thread=True)
def revoke_token(request: Request[Any, Any, Any], token_id: FromPath[str]) -> Template:
    """Revoke one of your tokens."""
    user_id = _own_id(request)
    if user_id is None:
        return _forbidden()
    done = tokens.revoke_token(database(request), user_id, token_id)
    return _account_page(request, token_message="The token was revoked." if done else "No such token.")


# --- admins: users ------------------------------------------------------------------------------------------
def _users_page(request: Request[Any, Any, Any], status: int = 200, **extra: Any) -> Template:
    db = database(request)
    return Template(template_name="users.html", status_code=status,
                    context={"title": "Users", "users": accounts.list_users(db), "roles": accounts.role_names(db),
                             **extra})


@get("/users", name="users", sync_to_thread=True)
def users_page(request: Request[Any, Any, Any]) -> Template:
    """Every user with their roles; invite a user."""
    if not current_user(request).is_admin:
        return _forbidden()
    return _users_page(request)


@post("/users", name="user-create", status_code=200, sync_to_thread=True)
def invite_user(request: Request[Any, Any, Any], body: RawBody) -> Template:
    """Create a user with a temporary password, shown once to the admin to pass on."""
    me = current_user(request)
    if not me.is_admin:
        return _forbidden()
    data, password = form_data(body), accounts.generate_password()
    try:
        user = accounts.create_user(database(request), last(data, "email"), last(data, "name"), password,
                                    is_admin=last(data, "is_admin") == "on", roles=data.get("roles", []),
                                    actor=me.name)
    except accounts.AccountError as exc:
        return _users_page(request, 422, error=str(exc).capitalize() + ".")
    return _users_page(request, shown_password=password, shown_for=user.email, created=True)


@post("/users/{user_id:str}/password", name="user-password", status_code=200, sync_to_thread=True)
def reset_password(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Template:
    """An admin's reset: a new temporary password, shown once; the user's sessions end."""
    me = current_user(request)
    if not me.is_admin:
        return _forbidden()
    db, password = database(request), accounts.generate_password()
    user = accounts.get_user(db, user_id)
    if user is None:
        return _users_page(request, 404, error="No such user.")
    accounts.set_password(db, user_id, password, actor=me.name, action="password_reset")
    sessions.end_user_sessions(db, user_id)
    return _users_page(request, shown_password=password, shown_for=user.email)


@post("/users/{user_id:str}/roles", name="user-roles", status_code=200, sync_to_thread=True)
def set_roles(request: Request[Any, Any, Any], user_id: FromPath[str], body: RawBody) -> Template:
    """Replace a user's roles."""
    me = current_user(request)
    if not me.is_admin:
        return _forbidden()
    try:
        accounts.assign_roles(database(request), user_id, form_data(body).get("roles", []), actor=me.name)
    except accounts.AccountError as exc:
        return _users_page(request, 422, error=str(exc).capitalize() + ".")
    return _users_page(request, message="The roles were saved.")


# One router, so Litestar registers each handler once (GET and POST /users share a path; see engine/web/records.py).
HANDLERS = [Router(path="/", route_handlers=[login_page, login, logout, account_page, change_password, create_token,
                                             revoke_token, users_page, invite_user, reset_password, set_roles])]
