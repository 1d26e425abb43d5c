"""Time rules: automations that fire a while after a moment ("ticket open for 48 hours -> set priority high").

A rule counts from `after.since`: `$state` (when the record entered its current state), created_at, updated_at, or
one of the entity's date/date-time fields. It fires once per record and moment: a record that leaves the state and
enters it again counts afresh. Candidates are found in SQL (moment older than the delay, not fired since that
moment, simple equality conditions pushed down); the full condition is checked on each locked record, and each
firing is its own transaction, so one bad record does not hold up the others."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from engine.errors import CrmError
from engine.schema.kinds import kind_of
from engine.schema.model import Entity
from engine.storage.catalog import CATALOG, CompiledApp
from engine.storage.database import Database, crm_apps, crm_automation_runs, crm_state_entered
from engine.storage.migrate import utcnow
from engine.workflows.definition import SINCE_STATE, Automation

__all__ = ["TimeRun", "run_time_rules"]

_PUSHABLE = ("select", "text", "boolean", "integer", "email", "phone", "url")


@dataclass
class TimeRun:
    """What one pass over the time rules did."""

    fired: int = 0
    errors: list[str] = field(default_factory=list)


def run_time_rules(db: Database, now: dt.datetime | None = None, batch: int = 500) -> TimeRun:
    """Fire every time rule that is due, in every app; at most `batch` records per rule per call."""
    now = now or utcnow()
    result = TimeRun()
    with db.read() as conn:
        apps = list(conn.execute(sa.select(crm_apps.c.name).order_by(crm_apps.c.name)).scalars())
    for app in apps:
        with db.read() as conn:
            compiled = CATALOG.current(conn, app)
        for entity in compiled.app.entities:
            flow = compiled.flow(entity.key)
            if flow is None:
                continue
            for rule in flow.workflow.automations_on("time"):
                _run_rule(db, compiled, entity, rule, now, batch, result)
    return result


def _anchor(table: sa.Table, entity: Entity, rule: Automation, app: str) -> tuple[Any, list[Any]]:
    """The SQL expression of the moment a rule counts from, and the joins it needs."""
    since = rule.after.since if rule.after else None
    if since == SINCE_STATE:
        entered = crm_state_entered
        on = sa.and_(entered.c.app == app, entered.c.entity == entity.key, entered.c.record_id == table.c.id)
        return sa.func.coalesce(entered.c.entered_at, table.c.created_at), [(entered, on)]
    return table.c[since or "created_at"], []


def _pushed_down(table: sa.Table, entity: Entity, condition: Any) -> list[Any]:
    """SQL prefilters equivalent to the simple parts of a condition (`const`/`enum` on plain fields); the whole
    condition is still checked in Python, these only keep the scan small."""
    if not isinstance(condition, dict):
        return []
    required = set(condition.get("required", []) or [])
    fields = entity.field_map()
    out = []
    for key, sub in (condition.get("properties") or {}).items():
        f = fields.get(key)
        if f is None or f.kind not in _PUSHABLE or f.sensitive or not isinstance(sub, dict):
            continue
        kind = kind_of(f.kind)
        try:
            if "const" in sub:
                test = table.c[key] == kind.to_db(f, kind.coerce(f, sub["const"]))
            elif "enum" in sub and isinstance(sub["enum"], list):
                test = table.c[key].in_([kind.to_db(f, kind.coerce(f, v)) for v in sub["enum"]])
            else:
                continue
        except (CrmError, ValueError, TypeError):
            continue
        out.append(test if key in required else sa.or_(test, table.c[key].is_(None)))
    return out


def _run_rule(db: Database, compiled: CompiledApp, entity: Entity, rule: Automation, now: dt.datetime, batch: int,
              result: TimeRun) -> None:
    from engine.storage.records import RecordService
    from engine.storage.writer import Writer

    app = compiled.app.name
    table = compiled.tables.table(entity.key)
    anchor, joins = _anchor(table, entity, rule, app)
    cutoff = now - dt.timedelta(seconds=rule.after.seconds if rule.after else 0)
    runs = crm_automation_runs
    fired_since = sa.exists().where(runs.c.app == app, runs.c.entity == entity.key, runs.c.rule == rule.name,
                                    runs.c.record_id == table.c.id, runs.c.ran_at >= anchor)
    source: Any = table
    for joined, on in joins:
        source = source.outerjoin(joined, on)
    stmt = (sa.select(table.c.id).select_from(source)
            .where(anchor.is_not(None), anchor <= cutoff, ~fired_since,
                   *_pushed_down(table, entity, rule.condition))
            .order_by(anchor).limit(batch))
    with db.read() as conn:
        ids = list(conn.execute(stmt).scalars())
    actor = f"automation: {rule.title or rule.name}"
    service = RecordService(db, app, actor)
    for record_id in ids:
        try:
            with db.write() as conn:
                current = CATALOG.current(conn, app)
                if current.version != compiled.version:
                    return  # the app changed meanwhile: the next pass works from the new definition
                flow = current.flow(entity.key)
                record = service._get(conn, current, entity, record_id, lock=True)
                moment = conn.execute(sa.select(anchor).select_from(source).where(table.c.id == record_id)).scalar()
                if moment is None or _as_datetime(moment) > cutoff or not flow.condition_holds(rule, record):
                    continue
                if conn.execute(sa.select(runs.c.ran_at).where(
                        runs.c.app == app, runs.c.entity == entity.key, runs.c.rule == rule.name,
                        runs.c.record_id == record_id, runs.c.ran_at >= moment)).first():
                    continue  # another worker fired it meanwhile
                writer = Writer(conn, current, entity, app, actor)
                flow.run_actions(writer, record, rule.actions, {"event": "time", "automation": rule.name})
                key = (runs.c.app == app, runs.c.entity == entity.key, runs.c.rule == rule.name,
                       runs.c.record_id == record_id)
                ran = utcnow()
                if conn.execute(runs.update().where(*key).values(ran_at=ran, anchor=_text(moment))).rowcount == 0:
                    conn.execute(runs.insert().values(app=app, entity=entity.key, rule=rule.name, record_id=record_id,
                                                      anchor=_text(moment), ran_at=ran))
            result.fired += 1
        except CrmError as exc:
            result.errors.append(f"{app}/{entity.key}/{record_id} ({rule.name}): {exc}")


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None) if value.tzinfo is None else value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    return dt.datetime.fromisoformat(str(value))


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.datetime | dt.date) else str(value)
