"""`crm worker`: fires due time rules and delivers the webhook outbox, in a loop or once.

Any number of workers may run against one database (the outbox claims events with a lease, time rules record each
firing in the firing's own transaction)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field

from engine.storage.database import Database
from engine.workflows.outbox import Sender, deliver_due, post_json
from engine.workflows.timers import run_time_rules

__all__ = ["Pass", "run_forever", "run_once"]

log = logging.getLogger("crm.worker")


@dataclass
class Pass:
    """What one pass of the worker did."""

    fired: int = 0
    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def run_once(db: Database, now: dt.datetime | None = None, send: Sender = post_json) -> Pass:
    """One pass: time rules first (their webhooks go out in the same pass), then the outbox."""
    timed = run_time_rules(db, now)
    sent = deliver_due(db, now=None if now is None else max(now, _now()), send=send)
    return Pass(fired=timed.fired, delivered=sent.delivered, failed=sent.failed, errors=timed.errors + sent.errors)


def _now() -> dt.datetime:
    from engine.storage.migrate import utcnow

    return utcnow()


def run_forever(db: Database, interval: float = 10.0, stop: threading.Event | None = None,
                send: Sender = post_json) -> None:
    """Run passes every `interval` seconds until `stop` is set (or the process is interrupted)."""
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            done = run_once(db, send=send)
            if done.fired or done.delivered or done.failed:
                log.info("time rules fired: %d, webhooks delivered: %d, failed (will retry): %d",
                         done.fired, done.delivered, done.failed)
            for error in done.errors:
                log.warning("%s", error)
        except Exception:  # a broken pass (database gone for a moment) must not end the worker
            log.exception("worker pass failed; trying again in %s s", interval)
        stop.wait(interval)
