"""The audit log in the browser: admins page through events newest first, filter them and download them as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from litestar import Request, Response, get
from litestar.exceptions import PermissionDeniedException
from litestar.plugins.htmx import HTMXTemplate
from litestar.response import Template

from engine.auth.audit import AUDIT_ACTIONS, audit
from engine.storage.database import crm_audit
from engine.web.context import current_user, database

__all__ = ["HANDLERS", "PAGE_SIZE", "AuditFilter"]

#: Events per page.
PAGE_SIZE = 100
#: Most events one CSV download holds (narrow the filter for more).
CSV_LIMIT = 50_000


@dataclass(frozen=True)
class AuditFilter:
    """What the audit page shows: read from the query string; bad values are ignored rather than refused."""

    action: str = ""
    actor: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    before: int | None = None  # keyset paging: only events with a smaller id

    @classmethod
    def from_query(cls, params: Any) -> AuditFilter:
        """The filter a request's query parameters describe."""
        action = params.get("action", "")
        before = params.get("before", "")
        return cls(action=action if action in AUDIT_ACTIONS else "", actor=params.get("actor", "").strip()[:200],
                   date_from=_date(params.get("from", "")), date_to=_date(params.get("to", "")),
                   before=int(before) if before.isdigit() else None)

    def where(self) -> list[Any]:
        """SQL conditions (every value a bound parameter)."""
        out: list[Any] = []
        if self.action:
            out.append(crm_audit.c.action == self.action)
        if self.actor:
            escaped = self.actor.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            out.append(crm_audit.c.actor.ilike(f"%{escaped}%", escape="\\"))
        if self.date_from:
            out.append(crm_audit.c.at >= dt.datetime.combine(self.date_from, dt.time()))
        if self.date_to:  # the whole day it names
            out.append(crm_audit.c.at < dt.datetime.combine(self.date_to + dt.timedelta(days=1), dt.time()))
        return out

    def query_string(self, before: int | None = None) -> str:
        """The filter as a query string (for the next-page and CSV links)."""
        from urllib.parse import urlencode

        pairs = {"action": self.action, "actor": self.actor, "from": _iso(self.date_from), "to": _iso(self.date_to),
                 "before": str(before) if before else ""}
        return urlencode({k: v for k, v in pairs.items() if v})


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _iso(day: dt.date | None) -> str:
    return day.isoformat() if day else ""


def _require_admin(request: Request[Any, Any, Any]) -> str:
    """The acting admin's name; 403 for anyone else."""
    user = current_user(request)
    if isinstance(user, str):  # before accounts existed every web user acted as the one local user
        return user
    if not getattr(user, "is_admin", False):
        raise PermissionDeniedException("Only administrators can see the audit log.")
    return str(user.name)


def _select(flt: AuditFilter) -> sa.Select[Any]:
    return sa.select(crm_audit).where(*flt.where()).order_by(crm_audit.c.id.desc())


@get("/audit", name="audit-log", sync_to_thread=True)
def audit_page(request: Request[Any, Any, Any]) -> Template:
    """The audit log page; only the events table for htmx requests aimed at #audit-events."""
    _require_admin(request)
    flt = AuditFilter.from_query(request.query_params)
    stmt = _select(flt)
    if flt.before:
        stmt = stmt.where(crm_audit.c.id < flt.before)
    with database(request).read() as conn:
        rows = conn.execute(stmt.limit(PAGE_SIZE + 1)).mappings().all()
    events, more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
    context = {"title": "Audit log", "events": events, "filter": flt, "actions": AUDIT_ACTIONS,
               "next_query": flt.query_string(before=events[-1]["id"]) if more else None,
               "csv_query": flt.query_string()}
    htmx = getattr(request, "htmx", None)
    if htmx and htmx.target == "audit-events" and not htmx.history_restore_request:
        return HTMXTemplate(template_name="partials/audit_events.html", context=context, push_url=False)
    return Template(template_name="audit.html", context=context)


@get("/audit.csv", name="audit-log-csv", sync_to_thread=True)
def audit_csv(request: Request[Any, Any, Any]) -> Response[str]:
    """The filtered events as CSV (newest first); the download itself is audited."""
    admin = _require_admin(request)
    flt = AuditFilter.from_query(request.query_params)
    db = database(request)
    with db.read() as conn:
        rows = conn.execute(_select(flt).limit(CSV_LIMIT)).mappings().all()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "at", "actor", "action", "target", "address", "detail"])
    for r in rows:
        writer.writerow([r["id"], r["at"].isoformat(), *(_cell(r[k]) for k in ("actor", "action", "target")),
                         _cell(r["address"] or ""), _cell(str(r["detail"] or ""))])
    audit(db, admin, "export", "audit log", {"rows": len(rows), "filter": flt.query_string()},
          address=request.client.host if request.client else None)
    return Response("\ufeff" + buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="audit.csv"'})


def _cell(text: str) -> str:
    """A CSV cell that spreadsheets will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


HANDLERS = [audit_page, audit_csv]
