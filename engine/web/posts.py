"""Reading posted forms and answering them: shared by every page that takes a post."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from litestar import Response
from litestar.plugins.htmx import ClientRedirect, HTMXRequest
from litestar.response import Redirect

__all__ = ["FormData", "form_data", "go", "last"]

FormData = dict[str, list[str]]


def form_data(body: bytes) -> FormData:
    """Urlencoded form data with every value of every name, blank ones included (a cleared input is a change)."""
    data: FormData = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        data.setdefault(key, []).append(value)
    return data


def last(data: FormData, key: str) -> str:
    """The last value posted under a name ("" when absent)."""
    return (data.get(key) or [""])[-1]


def go(request: HTMXRequest, url: str) -> Response[Any]:
    """After a successful post: a client-side redirect for htmx, 303 See Other otherwise."""
    return ClientRedirect(url) if request.htmx else Redirect(url, status_code=303)
