"""Server time to render the customer list page (50 rows) and the customer form, against the raw SQL query.

Everything runs in one process: Litestar's test client calls the ASGI app directly (no network), and the raw
query is the same SELECT the list page needs, run with SQLAlchemy Core on the same table. Prints medians, p95 and
how many times the raw query's time each page takes (that ratio is rendering + the service's own work).
"""

from __future__ import annotations

import datetime as dt
import random
import time
from typing import Any

from common import CustomerGenerator, bench_database, db_row, describe_db, install_app, parse_args, summary, uuid7_at


def _fill(db: Any, table: Any, entity: Any, rows: int, seed: int) -> None:
    gen = CustomerGenerator(seed)
    rng = random.Random(seed)
    start = dt.datetime(2024, 1, 1)
    batch = []
    with db.write() as conn:
        for i in range(rows):
            when = start + dt.timedelta(minutes=i)
            batch.append(db_row(entity, gen.as_record(gen.values(i)), uuid7_at(when, rng), i + 1, when))
            if len(batch) == 5000:
                conn.execute(table.insert(), batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)


def _time(fn: Any, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    args = parse_args(__doc__ or "", default_rows=20_000,
                      extra=lambda p: p.add_argument("--runs", type=int, default=100, help="timed runs of each"))
    import sqlalchemy as sa
    from common import customer_entity
    from litestar.testing import TestClient

    from engine.web import create_app

    with bench_database(args.db) as db:
        table = install_app(db)
        entity = customer_entity(db)
        print(describe_db(db))
        print(f"filling {args.rows:,} customers ...", flush=True)
        _fill(db, table, entity, args.rows, args.seed)
        raw = sa.select(table).order_by(table.c.name, table.c.id).limit(51)  # name is required: never empty
        with TestClient(app=create_app(db)) as client:
            list_url = "/apps/sales_crm/customer?size=50"
            fragment_headers = {"HX-Request": "true", "HX-Target": "records"}
            with db.engine.connect() as conn:
                record_id = conn.execute(sa.select(table.c.id).limit(1)).scalar()
            cases = {
                "list page (full, 50 rows)": lambda: client.get(list_url),
                "list fragment (htmx, 50 rows)": lambda: client.get(list_url, headers=fragment_headers),
                "new customer form": lambda: client.get("/apps/sales_crm/customer/new"),
                "record page": lambda: client.get(f"/apps/sales_crm/customer/{record_id}"),
            }

            def raw_query() -> None:
                with db.engine.connect() as conn:
                    conn.execute(raw).mappings().all()

            for fn in [raw_query, *cases.values()]:  # warm up caches and compiled templates
                for _ in range(5):
                    fn()
            timings: dict[str, list[float]] = {"raw SQL (same 51-row query)": []}
            for name in cases:
                timings[name] = []
            for _ in range(args.runs):  # interleaved, so drift in machine load hits every case alike
                timings["raw SQL (same 51-row query)"] += _time(raw_query, 1)
                for name, fn in cases.items():
                    timings[name] += _time(fn, 1)
        base, _ = summary(timings["raw SQL (same 51-row query)"])
        print(f"\n{'what':<32}{'median ms':>11}{'p95 ms':>9}{'x raw SQL':>11}")
        for name, values in timings.items():
            median, p95 = summary(values)
            print(f"{name:<32}{median:>11.2f}{p95:>9.2f}{median / base:>11.1f}")


if __name__ == "__main__":
    main()
