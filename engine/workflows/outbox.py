"""Delivering webhooks from the outbox.

Webhook actions only write a row to `crm_outbox`, in the transaction of the change that caused them, so an event
exists exactly when its change was stored. `deliver_due` (run by `crm worker`) posts due events; a receiver that
fails or cannot be reached gets the event again later, with exponential backoff capped at an hour, for as long as it
takes: no event is dropped. Several workers may run at once: each claims a batch by pushing its next attempt time
past a lease, so an event is not posted twice at the same time (receivers should still dedupe on X-CRM-Event-Id,
as a worker may die after posting but before recording the delivery)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import random
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import sqlalchemy as sa

from engine.storage.database import Database, crm_outbox
from engine.storage.migrate import utcnow

__all__ = ["SECRET_ENV", "Delivery", "backoff", "deliver_due", "outbox_status", "post_json", "retry_now"]

#: If set, every webhook body is signed: header X-CRM-Signature: sha256=<hex HMAC of the body with this secret>.
SECRET_ENV = "CRM_WEBHOOK_SECRET"
#: How long a claimed event is left to one worker before another may try it.
LEASE = dt.timedelta(minutes=2)
TIMEOUT_SECONDS = 10.0
FIRST_RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 3600

#: A sender posts a body to a URL with headers and returns the HTTP status; it raises OSError when it cannot connect.
Sender = Callable[[str, bytes, dict[str, str]], int]


def backoff(attempts: int) -> dt.timedelta:
    """How long to wait after the `attempts`-th failed try: 30 s, 1 min, 2 min... at most an hour, with jitter."""
    seconds = min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), MAX_RETRY_SECONDS)
    return dt.timedelta(seconds=seconds * random.uniform(0.9, 1.1))


def post_json(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST with the standard library; returns the status (HTTP errors are statuses, not exceptions)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@dataclass
class Delivery:
    """What one `deliver_due` call did."""

    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def deliver_due(db: Database, now: dt.datetime | None = None, send: Sender = post_json, batch: int = 50) -> Delivery:
    """Post the events that are due; record each success, or the failure and when to try again."""
    now = now or utcnow()
    result = Delivery()
    with db.write() as conn:
        stmt = (sa.select(crm_outbox).where(crm_outbox.c.delivered_at.is_(None), crm_outbox.c.next_attempt_at <= now)
                .order_by(crm_outbox.c.id).limit(batch))
        if conn.dialect.name != "sqlite":
            stmt = stmt.with_for_update(skip_locked=True)
        due = [dict(r) for r in conn.execute(stmt).mappings()]
        if due:
            conn.execute(crm_outbox.update().where(crm_outbox.c.id.in_([r["id"] for r in due]))
                         .values(next_attempt_at=now + LEASE))
    secret = os.environ.get(SECRET_ENV, "").encode()
    for row in due:
        body = msgspec.json.encode(row["payload"])
        headers = {"Content-Type": "application/json", "User-Agent": "crm-builder-webhooks",
                   "X-CRM-Event-Id": row["event_id"]}
        if secret:
            headers["X-CRM-Signature"] = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        error: str | None = None
        if not row["url"].startswith(("http://", "https://")):
            error = "not an http(s) address"
        else:
            try:
                status = send(row["url"], body, headers)
                if not 200 <= status < 300:
                    error = f"the receiver answered HTTP {status}"
            except (OSError, ValueError) as exc:  # refused, unreachable, timed out, bad address
                error = f"could not reach the receiver: {exc}"
        attempts = row["attempts"] + 1
        with db.write() as conn:
            if error is None:
                conn.execute(crm_outbox.update().where(crm_outbox.c.id == row["id"])
                             .values(delivered_at=utcnow(), attempts=attempts, last_error=None))
                result.delivered += 1
            else:
                conn.execute(crm_outbox.update().where(crm_outbox.c.id == row["id"])
                             .values(attempts=attempts, last_error=error[:2000],
                                     next_attempt_at=utcnow() + backoff(attempts)))
                result.failed += 1
                result.errors.append(f"{row['url']}: {error}")
    return result


def retry_now(db: Database) -> int:
    """Make every undelivered event due now (after fixing a receiver); returns how many."""
    with db.write() as conn:
        return conn.execute(crm_outbox.update().where(crm_outbox.c.delivered_at.is_(None))
                            .values(next_attempt_at=utcnow())).rowcount


def outbox_status(db: Database) -> dict[str, Any]:
    """Counts of delivered and waiting events, and the oldest waiting one's last error."""
    with db.read() as conn:
        waiting = conn.execute(sa.select(sa.func.count()).where(crm_outbox.c.delivered_at.is_(None))).scalar() or 0
        delivered = conn.execute(sa.select(sa.func.count()).where(crm_outbox.c.delivered_at.is_not(None))).scalar()
        oldest = conn.execute(sa.select(crm_outbox).where(crm_outbox.c.delivered_at.is_(None))
                              .order_by(crm_outbox.c.id).limit(1)).mappings().first()
    return {"waiting": waiting, "delivered": delivered or 0,
            "oldest": None if oldest is None else {"url": oldest["url"], "attempts": oldest["attempts"],
                                                   "last_error": oldest["last_error"]}}
