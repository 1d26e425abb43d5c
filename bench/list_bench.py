"""List speed: a filtered, sorted 50-row page through RecordService.query against the same SELECT in raw Core.

Setup (not measured): N customers (default 1,000,000) with a realistic spread of values are written with raw
executemany in large batches, with the secondary indexes dropped during the load and rebuilt after it. Then, for
each scenario (a filter and sort whose columns are `indexed` in apps/sales_crm.json), page 1 and page 2 (keyset,
the service's `after=` cursor) are fetched through the service and through a hand-written SQLAlchemy Core SELECT
with the same WHERE / ORDER BY / LIMIT 51, rows fetched as mappings, alternating between the two after a warm-up.
The service's cost includes everything it does per call: connection + transaction, the app version lookup in
crm_apps, building the statement, converting rows to records and encoding the cursor.

    .venv/bin/python bench/list_bench.py                      # 1,000,000 rows, fresh SQLite file
    .venv/bin/python bench/list_bench.py --db postgresql+psycopg://postgres@127.0.0.1:5432/test --rows 300000
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from common import (
    CustomerGenerator,
    bench_database,
    customer_entity,
    describe_db,
    install_app,
    parse_args,
    summary,
    uuid7_at,
)
from sqlalchemy import event

from engine.schema.kinds import kind_of
from engine.storage.database import Database, crm_apps
from engine.storage.query import Filter, Query, Sort
from engine.storage.records import RecordService

APP = "sales_crm"
GOAL = 1.5
FILL_START, FILL_END = dt.datetime(2021, 1, 1), dt.datetime(2026, 1, 1)  # created_at spread evenly over 5 years


def _extra(parser: Any) -> None:
    parser.add_argument("--repeat", type=int, default=200, help="timed calls per path and page (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per path and page first (default 20)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds of timed calls per scenario, about: slow scenarios get fewer calls (min 10, or 5 "
                             "when one round of calls takes over 3 s)")
    parser.add_argument("--only", nargs="*", help="run only scenarios whose short name contains one of these words")
    parser.add_argument("--chunk", type=int, default=50_000, help="rows per transaction while filling (50,000)")
    parser.add_argument("--analyze", choices=("auto", "yes", "no"), default="auto",
                        help="run ANALYZE after the fill: auto = on PostgreSQL (autovacuum would) but not on "
                             "SQLite (the engine never does)")


# --- setup ----------------------------------------------------------------------------------------------
def fill(db: Database, table: sa.Table, entity: Any, rows: int, seed: int, chunk: int) -> None:
    """Write `rows` customers with raw executemany; secondary indexes are dropped first and rebuilt after."""
    gen = CustomerGenerator(seed)
    id_rng = random.Random(seed + 1)
    start = FILL_START
    span = (FILL_END - start).total_seconds()
    actors = ["anna@example.com", "li.wei@example.com", "import", "bench"]
    fields = [f for f in entity.fields if f.kind != "relation_many"]
    number_field = next(f for f in fields if f.kind == "autonumber")
    number_format = kind_of(number_field.kind).format_number  # type: ignore[attr-defined]
    missing = {c.name for c in table.columns} - set(gen.values(0)) - {"id", "updated_at", "created_by",
                                                                       "updated_by", "version", number_field.key}
    assert not missing, f"the generator does not fill {missing}"
    t0 = time.perf_counter()
    with db.write() as conn:
        indexes = engine_indexes(conn, table.name)
        for name, _sql in indexes:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
    generated = inserted = 0.0
    for base in range(0, rows, chunk):
        g0 = time.perf_counter()
        batch = []
        for i in range(base, min(rows, base + chunk)):
            created = start + dt.timedelta(seconds=(i + id_rng.random()) * span / rows)
            row = gen.values(i, created)  # the fields, already in DB shape (date, Decimal, list, bool)
            updated = created + dt.timedelta(days=id_rng.randrange(0, 400)) if id_rng.random() < 0.3 else created
            actor = actors[i % len(actors)]
            row.update(id=uuid7_at(created, id_rng), updated_at=updated, created_by=actor, updated_by=actor,
                       version=1 if updated == created else 2)
            row[number_field.key] = number_format(number_field, i + 1)
            batch.append(row)
        i0 = time.perf_counter()
        generated += i0 - g0
        with db.write() as conn:
            conn.execute(table.insert(), batch)
        inserted += time.perf_counter() - i0
        done = min(rows, base + chunk)
        if done % (chunk * 4) == 0 or done == rows:
            print(f"  ... {done:>9,} rows ({time.perf_counter() - t0:5.1f} s)", flush=True)
    i0 = time.perf_counter()
    with db.write() as conn:
        for _name, sql in indexes:
            conn.exec_driver_sql(sql)
    indexed = time.perf_counter() - i0
    print(f"  filled {rows:,} rows in {time.perf_counter() - t0:.1f} s: generating {generated:.1f} s, "
          f"INSERT {inserted:.1f} s, rebuilding {len(indexes)} indexes {indexed:.1f} s")
    print("  indexes, in the order the engine created them: " + ", ".join(n.rsplit("__", 1)[-1] for n, _ in indexes))


def engine_indexes(conn: sa.Connection, table: str) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of a table's secondary indexes in creation order, to drop them for the load
    and rebuild exactly what the engine made (without ANALYZE, SQLite breaks ties between indexes by this order)."""
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                                    "AND sql IS NOT NULL ORDER BY rowid", (table,))
    else:
        rows = conn.exec_driver_sql("SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index i JOIN pg_class c "
                                    "ON c.oid = i.indexrelid WHERE i.indrelid = %(t)s::regclass AND NOT i.indisprimary "
                                    "ORDER BY c.oid", {"t": table})
    return [(name, sql) for name, sql in rows]


# --- scenarios ------------------------------------------------------------------------------------------
@dataclass
class Scenario:
    """One list request: the service's filters and sort, and the same WHERE for the hand-written Core SELECT."""

    title: str
    short: str
    filters: list[Filter]
    where: Callable[[sa.Table], list[Any]]
    sort: list[tuple[str, bool]]  # (field, descending)


@dataclass
class RawKey:
    """One ORDER BY column of the raw SELECT."""

    column: Any
    desc: bool
    nullable: bool  # the field may be empty: a field that is not required (system columns never are)


def raw_keys(table: sa.Table, entity: Any, sort: list[tuple[str, bool]]) -> list[RawKey]:
    """The sort columns, ending with id so the order is total; empty values go last."""
    fields = entity.field_map()
    keys = [RawKey(table.c[name], desc, name in fields and not fields[name].required) for name, desc in sort]
    return [*keys, RawKey(table.c.id, False, False)]


def raw_order(keys: list[RawKey]) -> list[Any]:
    """ORDER BY: NULLS LAST for columns that may be empty, plain for the others."""
    out = []
    for k in keys:
        term = k.column.desc() if k.desc else k.column.asc()
        out.append(term.nulls_last() if k.nullable else term)
    return out


def raw_after(keys: list[RawKey], row: Any, bounded: bool = False) -> Any:
    """Keyset condition: rows after `row` in the order of `keys`. With `bounded`, the first column is also bounded
    (col >= v, or col <= v descending) so the planner can range-scan its index: for information only."""
    k, value = keys[0], row[keys[0].column.name]
    rest = raw_after(keys[1:], row) if len(keys) > 1 else None
    if value is None:
        return sa.and_(k.column.is_(None), rest) if rest is not None else sa.false()
    parts = [k.column < value if k.desc else k.column > value]
    if rest is not None:
        parts.append(sa.and_(k.column == value, rest))
    if k.nullable:
        parts.append(k.column.is_(None))
    condition = sa.or_(*parts)
    bound = k.column <= value if k.desc else k.column >= value
    if not k.nullable:  # as the engine does: a range on a column that is never empty lets the index seek
        return sa.and_(bound, condition)
    if bounded:
        condition = sa.or_(sa.and_(bound, sa.or_(*parts[:2])), k.column.is_(None))
    return condition


def scenarios(city: str, since: dt.datetime) -> list[Scenario]:
    return [
        Scenario(f"city = {city}, sorted by name (filter on the indexed city field)", "city, by name",
                 [Filter("city", "eq", city)], lambda t: [t.c.city == city], [("name", False)]),
        Scenario("segment = vip and country = Germany, newest first (indexed segment and country)",
                 "segment+country", [Filter("segment", "eq", "vip"), Filter("country", "eq", "Germany")],
                 lambda t: [t.c.segment == "vip", t.c.country == "Germany"], [("created_at", True)]),
        Scenario(f"created since {since:%Y-%m-%d}, newest first (filter and sort on the created_at index)", "recent",
                 [Filter("created_at", "gte", since.isoformat() + "Z")], lambda t: [t.c.created_at >= since],
                 [("created_at", True)]),
        Scenario("no filter, sorted by name (the customer list view as it opens: its default sort)", "list view",
                 [], lambda t: [], [("name", False)]),
    ]


class SqlCapture:
    """The SQL and parameters the driver receives for SELECTs on one table (to EXPLAIN what really ran)."""

    def __init__(self, engine: sa.Engine, table: str) -> None:
        self.engine, self.table = engine, table
        self.last: tuple[str, Any] | None = None

    def __enter__(self) -> SqlCapture:
        event.listen(self.engine, "before_cursor_execute", self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._hook)

    def _hook(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and self.table in statement and "count(" not in statement:
            self.last = (statement, parameters)


def explain(db: Database, captured: tuple[str, Any] | None) -> list[str]:
    if captured is None:
        return ["(no statement captured)"]
    statement, params = captured
    with db.engine.connect() as conn:
        if db.is_sqlite:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
            return [str(r[-1]) for r in rows]
        return [r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, params).all()]


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(pairs: list[tuple[str, Callable[[], Any]]], repeat: int, warmup: int,
            budget: float) -> dict[str, list[float]]:
    """Alternate the calls (rotating which goes first) after untimed warm-up rounds. A scenario whose rounds are so
    slow that `repeat` of them would take more than `budget` seconds gets fewer rounds (at least 10; 5 when a round
    takes over 3 s) and fewer warm-up rounds (at least 1)."""
    t0 = time.perf_counter()
    for _name, fn in pairs:  # the first warm-up round also tells how long a round takes
        fn()
    per_round = time.perf_counter() - t0
    for _ in range(min(warmup - 1, int(0.15 * budget / per_round))):
        for _name, fn in pairs:
            fn()
    at_least = 5 if per_round > 3 else 10
    rounds = max(min(repeat, at_least), min(repeat, int(budget / per_round)))
    out: dict[str, list[float]] = {name: [] for name, _ in pairs}
    gc.collect()
    for k in range(rounds):
        shift = k % len(pairs)
        for name, fn in pairs[shift:] + pairs[:shift]:
            out[name].append(timed(fn))
    return out


def run(db: Database, args: Any) -> list[tuple[str, str, float, float, float, float, int]]:
    table = install_app(db, APP)
    entity = customer_entity(db, APP)
    print(f"filling {args.rows:,} customers (setup, not measured):")
    fill(db, table, entity, args.rows, args.seed, args.chunk)
    if args.analyze == "yes" or (args.analyze == "auto" and not db.is_sqlite):
        t0 = time.perf_counter()
        with db.write() as conn:
            conn.exec_driver_sql("ANALYZE")
        print(f"  ANALYZE {time.perf_counter() - t0:.1f} s")
    else:
        print("  no ANALYZE (SQLite: the engine never runs it, so the planner has no statistics)")
    return bench_scenarios(db, table, args)


def bench_scenarios(db: Database, table: sa.Table, args: Any) -> list[tuple[str, str, float, float, float, float, int]]:
    """Measure every scenario on a filled table."""
    service = RecordService(db, APP, actor="bench")
    entity = customer_entity(db, APP)
    version_stmt = sa.select(crm_apps.c.current_version).where(crm_apps.c.name == APP)

    def version_lookup() -> None:
        with db.engine.connect() as conn:
            conn.execute(version_stmt).scalar()

    def raw_page(stmt: Any) -> Callable[[], list[Any]]:
        def go() -> list[Any]:
            with db.engine.connect() as conn:
                return conn.execute(stmt).mappings().all()
        return go

    city = CustomerGenerator(args.seed).pools[0]["cities"][5]  # a German city with ~1% of all customers
    since = FILL_END - dt.timedelta(days=91)  # the last quarter: ~5% of rows
    results = []
    for sc in scenarios(city, since):
        if args.only and not any(word.lower() in sc.short.lower() for word in args.only):
            continue
        with db.engine.connect() as conn:
            matching = conn.execute(sa.select(sa.func.count()).select_from(table).where(*sc.where(table))).scalar()
        print()
        print(f"{sc.title}   [{matching:,} matching rows]")
        keys = raw_keys(table, entity, sc.sort)
        raw1 = sa.select(table).where(*sc.where(table)).order_by(*raw_order(keys)).limit(51)

        # Page 1 and page 2 once through both paths: same records, same SQL? and what plan does it get?
        sort = [Sort(name, desc) for name, desc in sc.sort]
        q1 = Query(filters=sc.filters, sort=sort, limit=50)
        with SqlCapture(db.engine, table.name) as cap:
            page1 = service.query("customer", q1)
        service_sql1 = cap.last
        rows1 = raw_page(raw1)()
        assert [r["id"] for r in rows1[:50]] == [r["id"] for r in page1.records], "page 1 differs"
        raw2 = sa.select(table).where(*sc.where(table), raw_after(keys, rows1[49])).order_by(*raw_order(keys)) \
            .limit(51)
        q2 = Query(filters=sc.filters, sort=sort, limit=50, after=page1.next_cursor)
        with SqlCapture(db.engine, table.name) as cap:
            page2 = service.query("customer", q2)
        service_sql2 = cap.last
        assert [r["id"] for r in raw_page(raw2)()[:50]] == [r["id"] for r in page2.records], "page 2 differs"
        for label, captured, raw in (("page 1", service_sql1, raw1), ("page 2", service_sql2, raw2)):
            same = _same_sql(captured, _compiled_sql(db, raw))
            verdict = "is the service's SQL" if same else "DIFFERS from the service's SQL"
            print(f"  {label}: raw SQL {verdict}; plan: " + " | ".join(explain(db, captured)))
            if not same:
                print(f"    service: {captured[0] if captured else None}\n    raw:     {_compiled_sql(db, raw)[0]}")

        pairs: list[tuple[str, Callable[[], Any]]] = [
            ("service p1", lambda q=q1: service.query("customer", q)), ("raw p1", raw_page(raw1)),
            ("service p2", lambda q=q2: service.query("customer", q)), ("raw p2", raw_page(raw2)),
            ("version lookup", version_lookup),
        ]
        bounded = sa.select(table).where(*sc.where(table), raw_after(keys, rows1[49], bounded=True)) \
            .order_by(*raw_order(keys)).limit(51)
        assert [r["id"] for r in raw_page(bounded)()] == [r["id"] for r in raw_page(raw2)()], "bounded page 2 differs"
        pairs.append(("raw p2 bounded", raw_page(bounded)))
        times = measure(pairs, args.repeat, args.warmup, args.budget)
        rounds = len(times["raw p1"])
        print(f"  {'':8} {'':9} {'median':>9} {'p95':>9}   (ms; {rounds} calls each, interleaved, after warm-up)")
        for page in ("p1", "p2"):
            s_med, s_p95 = summary(times[f"service {page}"])
            r_med, r_p95 = summary(times[f"raw {page}"])
            label = "page 1" if page == "p1" else "page 2"
            print(f"  {label:8} {'service':9} {s_med:9.3f} {s_p95:9.3f}")
            print(f"  {'':8} {'raw SQL':9} {r_med:9.3f} {r_p95:9.3f}")
            print(f"  {'':8} {'ratio':9} {s_med / r_med:8.2f}x {s_p95 / r_p95:8.2f}x   "
                  f"({'within' if s_med / r_med <= GOAL else 'OVER'} the {GOAL}x goal on medians)")
            results.append((sc.short, label, s_med, r_med, s_med / r_med, s_p95 / r_p95, rounds))
        lookup_med, lookup_p95 = summary(times["version lookup"])
        print(f"  the version lookup alone (SELECT current_version FROM crm_apps on its own connection): "
              f"median {lookup_med:.3f} ms, p95 {lookup_p95:.3f} ms")
        b_med, b_p95 = summary(times["raw p2 bounded"])
        print(f"  for information: raw page 2 with the keyset bounded ({keys[0].column.name} "
              f"{'<=' if keys[0].desc else '>='} last value AND ...): median {b_med:.3f} ms, p95 {b_p95:.3f} ms; plan: "
              + " | ".join(explain(db, _compiled_sql(db, bounded))))
    return results


def _same_sql(a: tuple[str, Any] | None, b: tuple[str, Any] | None) -> bool:
    """Whether two captured statements are the same SQL with the same parameter values (names aside)."""
    if a is None or b is None:
        return False

    def norm(captured: tuple[str, Any]) -> tuple[str, list[str]]:
        sql, params = captured
        values = list(params.values()) if isinstance(params, dict) else list(params)
        return re.sub(r"%\(\w+\)s", "%s", " ".join(sql.split())), sorted(map(str, values))

    return norm(a) == norm(b)


def _compiled_sql(db: Database, stmt: Any) -> tuple[str, Any]:
    """A statement's SQL and driver parameters, for EXPLAIN."""
    with SqlCapture(db.engine, stmt.get_final_froms()[0].name) as cap, db.engine.connect() as conn:
        conn.execute(stmt).all()
    assert cap.last is not None
    return cap.last


def main() -> None:
    args = parse_args(__doc__.split("\n", 1)[0], 1_000_000, _extra)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    with bench_database(args.db) as db:
        print(f"database: {describe_db(db)}")
        results = run(db, args)
    print()
    print(f"summary ({args.rows:,} customers; medians in ms; ratio = service / raw SQL, goal <= {GOAL}x):")
    print(f"  {'scenario':<16} {'page':<7} {'service':>9} {'raw SQL':>9} {'ratio':>7} {'p95 ratio':>10} {'calls':>6}")
    for name, page, s, r, ratio, p95, rounds in results:
        print(f"  {name:<16} {page:<7} {s:9.3f} {r:9.3f} {ratio:6.2f}x {p95:9.2f}x {rounds:>6}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
