"""Response hardening for every page, fragment and file: security headers and the request body cap.

The Content-Security-Policy allows scripts and styles only from our own origin: templates carry no inline scripts,
no `style="..."` attributes, and htmx's injected indicator styles are switched off (templates/layout.html)."""

from __future__ import annotations

from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_SECURITY_POLICY", "MAX_BODY_BYTES", "MIDDLEWARE", "SECURITY_HEADERS", "security_headers"]

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


def security_headers(app: ASGIApp) -> ASGIApp:
    """ASGI middleware adding SECURITY_HEADERS to every HTTP response."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                present = {bytes(k).lower() for k, _ in headers}
                headers.extend((k, v) for k, v in SECURITY_HEADERS if k not in present)
                message["headers"] = headers
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


#: The middleware create_app installs.
MIDDLEWARE = [security_headers]
