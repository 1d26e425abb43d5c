"""Request and response hardening: security headers on every response, the request body cap, and CSRF checks for
cookie sessions.

The Content-Security-Policy allows scripts and styles only from our own origin: templates carry no inline scripts,
no `style="..."` attributes, and htmx's injected indicator styles are switched off (templates/layout.html)."""

from __future__ import annotations

from typing import Any

from litestar.config.csrf import CSRFConfig
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import Message, Receive, Scope, Send

from engine.web.auth import by_api_token

__all__ = ["BEFORE_SEND", "CONTENT_SECURITY_POLICY", "MAX_BODY_BYTES", "SECURITY_HEADERS", "CookieCSRFMiddleware",
           "add_security_headers", "csrf_middleware"]

#: Requests with a larger body are refused with 413 (forms are a few KiB; definitions are capped at 1 MiB).
MAX_BODY_BYTES = 5 * 1024 * 1024

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "form-action 'self'",
    "base-uri 'none'",
    "object-src 'none'",
    "frame-ancestors 'none'",
))

#: Headers added to every HTTP response (a handler that sets one itself keeps its own value).
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = tuple((k.encode(), v.encode()) for k, v in (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"),
))


async def add_security_headers(message: Message, scope: Scope) -> None:
    """A `before_send` hook adding SECURITY_HEADERS to every HTTP response. Litestar calls it for every message the
    app sends, also for the error responses it makes itself (unknown path, wrong method, refused CSRF), which no
    middleware sees."""
    if message["type"] == "http.response.start":
        headers: list[Any] = list(message.get("headers", []))
        present = {bytes(k).lower() for k, _ in headers}
        headers.extend((k, v) for k, v in SECURITY_HEADERS if k not in present)
        message["headers"] = headers


#: The before_send hooks create_app installs.
BEFORE_SEND = [add_security_headers]


class CookieCSRFMiddleware(CSRFMiddleware):
    """Litestar's CSRF check, except for requests authenticated by an API token: a browser cannot send an
    `Authorization` header cross-site, and such requests ignore the session cookie (see engine.web.auth)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if by_api_token(scope):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def csrf_middleware(secret: str) -> DefineMiddleware:
    """The CSRF middleware for create_app, signing its tokens with `secret`."""
    return DefineMiddleware(CookieCSRFMiddleware,
                            config=CSRFConfig(secret=secret, cookie_samesite="lax", cookie_httponly=False))
