"""Import speed: RecordService.create_many against raw SQLAlchemy Core executemany, in the same run.

N deterministic customers (apps/sales_crm.json) go in, in batches (one transaction per batch), once through the
records service (coercion, JSON Schema validation, unique checks, autonumbers, history) and once as ready-made
rows (DB shape, with ids, customer numbers and system columns) through `conn.execute(table.insert(), rows)` into
an identical copy of the app. Batches alternate between the two paths, so both see the same database state.
Then the service path is profiled once with cProfile on a smaller N to show what limits it.

    .venv/bin/python bench/import_bench.py                    # 100,000 rows, fresh SQLite file
    .venv/bin/python bench/import_bench.py --db postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/import_bench.py --rows 20000 --profile   # + full profile listing and a .prof file
"""

from __future__ import annotations

import cProfile
import gc
import io
import json
import os
import pstats
import time
from typing import Any

import sqlalchemy as sa
from common import (
    ROOT,
    CustomerGenerator,
    bench_database,
    customer_entity,
    db_row,
    describe_db,
    install_app,
    parse_args,
    summary,
)

from engine.storage.catalog import CATALOG
from engine.storage.database import crm_history
from engine.storage.migrate import utcnow
from engine.storage.records import RecordService, new_id
from engine.storage.writer import Writer

SERVICE_APP = "sales_crm"
RAW_APP = "bench_raw"  # the same definition under another name: identical, separate tables
PROFILE_APP = "bench_prof"


def _extra(parser: Any) -> None:
    parser.add_argument("--batch", type=int, default=1000, help="rows per create_many call / transaction (1000)")
    parser.add_argument("--profile-rows", type=int, default=5000,
                        help="rows for the cProfile run of the service path (default 5000; 0 skips it)")
    parser.add_argument("--profile", action="store_true",
                        help="print the full profile (all code, by cumulative and by own time) and save it to "
                             "--profile-out for snakeviz/pstats")
    parser.add_argument("--profile-out", default="import_bench.prof", help="where --profile saves the stats")


def _fmt_rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:>10,.0f} rows/s"


def run_import(db: Any, args: Any, records: list[dict[str, Any]]) -> None:
    svc_table = install_app(db, SERVICE_APP)
    raw_table = install_app(db, RAW_APP)
    entity = customer_entity(db, SERVICE_APP)
    service = RecordService(db, SERVICE_APP, actor="bench")
    n, batch = len(records), args.batch

    # Raw rows: exactly what the service stores, prepared before the clock starts.
    now = utcnow()
    raw_rows = [db_row(entity, r, new_id(), i + 1, now) for i, r in enumerate(records)]
    gc.collect()
    gc.freeze()  # the prepared input is not the engine's garbage: keep the collector from rescanning it

    t_service = t_raw = 0.0
    per_batch_service: list[float] = []
    per_batch_raw: list[float] = []
    batches = list(range(0, n, batch))
    step = max(1, len(batches) // 10)
    started = time.perf_counter()
    for b, start in enumerate(batches):
        chunk_records = records[start: start + batch]
        chunk_rows = raw_rows[start: start + batch]
        for path in (("service", "raw") if b % 2 == 0 else ("raw", "service")):
            if path == "service":
                t0 = time.perf_counter()
                service.create_many("customer", chunk_records)
                dt_ = time.perf_counter() - t0
                t_service += dt_
                per_batch_service.append(dt_)
            else:
                t0 = time.perf_counter()
                with db.write() as conn:
                    conn.execute(raw_table.insert(), chunk_rows)
                dt_ = time.perf_counter() - t0
                t_raw += dt_
                per_batch_raw.append(dt_)
        if (b + 1) % step == 0 or b == len(batches) - 1:
            done = min(n, start + batch)
            print(f"  ... {done:>9,} rows each  ({time.perf_counter() - started:6.1f} s elapsed)", flush=True)

    # Same data on both sides? (sample by customer number; ids and timestamps naturally differ)
    compare = [c.name for c in svc_table.columns if c.name not in ("id", "created_at", "updated_at")]
    with db.read() as conn:
        counts = [conn.execute(_count_stmt(t)).scalar() for t in (svc_table, raw_table)]
        history = conn.execute(_count_stmt(crm_history)).scalar()
        sample = [f"CUS-{k:05d}" for k in range(1, n + 1, max(1, n // 200))]
        a = {r["customer_number"]: dict(r) for r in conn.execute(
            svc_table.select().with_only_columns(*[svc_table.c[c] for c in compare])
            .where(svc_table.c.customer_number.in_(sample))).mappings()}
        b_ = {r["customer_number"]: dict(r) for r in conn.execute(
            raw_table.select().with_only_columns(*[raw_table.c[c] for c in compare])
            .where(raw_table.c.customer_number.in_(sample))).mappings()}
    same = a == b_ and len(a) == len(sample)

    ratio = t_service / t_raw
    args._svc_us = t_service / n * 1e6
    ms_s, p95_s = summary(per_batch_service)
    ms_r, p95_r = summary(per_batch_raw)
    print()
    print(f"import of {n:,} customers in batches of {batch:,} (one transaction per batch), interleaved:")
    print(f"  service  RecordService.create_many   {t_service:8.2f} s  {_fmt_rate(n, t_service)}"
          f"   per batch: median {ms_s:7.1f} ms, p95 {p95_s:7.1f} ms")
    print(f"  raw SQL  Core insert executemany     {t_raw:8.2f} s  {_fmt_rate(n, t_raw)}"
          f"   per batch: median {ms_r:7.1f} ms, p95 {p95_r:7.1f} ms")
    print(f"  ratio    service time / raw time     {ratio:8.2f} x")
    print(f"  check    rows: service {counts[0]:,}, raw {counts[1]:,}; history rows {history:,}; "
          f"{len(sample)} sampled rows {'identical' if same else 'DIFFER'} in both tables")


def timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _count_stmt(table: Any) -> Any:
    return sa.select(sa.func.count()).select_from(table)


# --- profile --------------------------------------------------------------------------------------------
def _stages() -> list[tuple[str, Any]]:
    """(label, function) of the service path's stages, all inside Writer.insert but the version lookup."""
    from engine.schema.kinds.text import PhoneKind
    from engine.schema.validation import EntityValidator
    from engine.storage.catalog import Catalog

    return [
        ("version lookup (Catalog.current)", Catalog.current),
        ("prepare: coerce + validate (Writer._prepare)", Writer._prepare),
        ("  JSON Schema validation (EntityValidator.errors)", EntityValidator.errors),
        ("  phone parsing (PhoneKind.coerce)", PhoneKind.coerce),
        ("unique + relation checks (Writer._check_database)", Writer._check_database),
        ("autonumbers (Writer._autonumber)", Writer._autonumber),
        ("DB-shape rows (Writer._db_row)", Writer._db_row),
        ("record INSERT executemany (Writer._execute)", Writer._execute),
        ("history rows + INSERT (Writer._history)", Writer._history),
        ("  history values to JSON (writer._jsonable)", _writer_jsonable()),
        ("result records (Writer._out)", Writer._out),
        ("create_many total", RecordService.create_many),
    ]


def _writer_jsonable() -> Any:
    from engine.storage import writer

    return writer._jsonable


def _key(func: Any) -> tuple[str, int, str]:
    code = func.__code__
    return code.co_filename, code.co_firstlineno, code.co_name


def run_profile(db: Any, args: Any, records: list[dict[str, Any]]) -> None:
    n = min(args.profile_rows, len(records))
    if n <= 0:
        return
    install_app(db, PROFILE_APP)
    service = RecordService(db, PROFILE_APP, actor="bench")
    rows = records[:n]
    profiler = cProfile.Profile()
    gc.collect()
    t0 = time.perf_counter()
    profiler.enable()
    for start in range(0, n, args.batch):
        service.create_many("customer", rows[start: start + args.batch])
    profiler.disable()
    wall = time.perf_counter() - t0
    stats = pstats.Stats(profiler)
    raw = stats.stats  # type: ignore[attr-defined]
    total = raw[_key(RecordService.create_many)][3]

    print()
    print(f"profile: cProfile of the service path, {n:,} rows in batches of {args.batch:,} into an empty copy of "
          f"the app ({wall:.2f} s under the profiler, which inflates call-heavy code)")
    print(f"  {'stage':<52} {'calls':>7} {'cum s':>8} {'share':>6}")
    for label, func in _stages():
        if _key(func) in raw:
            _cc, calls, _own, cum, _callers = raw[_key(func)]
            print(f"  {label:<52} {calls:>7,} {cum:>8.3f} {cum / total:>6.1%}")

    print()
    print("  top cumulative entries of our own code (engine/):")
    here = str(ROOT) + os.sep
    ours = [(ct, nc, tt, f"{os.path.relpath(fn, ROOT)}:{line}({func})")
            for (fn, line, func), (_cc, nc, tt, ct, _c) in raw.items() if fn.startswith(here + "engine")]
    ours.sort(reverse=True)
    print(f"    {'cum s':>8} {'own s':>8} {'calls':>9}  function")
    for ct, nc, tt, where in ours[:14]:
        print(f"    {ct:>8.3f} {tt:>8.3f} {nc:>9,}  {where}")

    # The pure-Python stages again, without the profiler (real proportions of CPU per record).
    with db.read() as conn:
        compiled = CATALOG.current(conn, PROFILE_APP)
    entity = compiled.entity("customer")
    writer = Writer(None, compiled, entity, PROFILE_APP, "bench")  # type: ignore[arg-type]
    now = utcnow()
    jsonable = _writer_jsonable()
    prepared = [writer._prepare(r, None, trusted=False)[0] for r in rows]

    def best_of_3(stage: Any) -> float:
        return min(timed(stage) for _ in range(3))

    t_prepare = best_of_3(lambda: [writer._prepare(r, None, trusted=False) for r in rows])
    t_validate = best_of_3(lambda: [writer.validator.errors(r) for r in prepared])
    t_dbrow = best_of_3(lambda: [writer._db_row(r, "x", now, version=1, created=True) for r in prepared])
    t_history = best_of_3(lambda: [json.dumps(jsonable({k: [None, v] for k, v in r.items()})) for r in prepared])
    per = 1e6 / n
    print()
    print("  the same pure-Python stages timed without the profiler (per record, best of 3 passes):")
    print(f"    prepare (coerce + validate)   {t_prepare * per:7.1f} us   of which JSON Schema validation "
          f"{t_validate * per:7.1f} us")
    print(f"    DB-shape row                  {t_dbrow * per:7.1f} us")
    print(f"    history 'changes' to JSON     {t_history * per:7.1f} us   (_jsonable + json.dumps)")
    if getattr(args, "_svc_us", None):
        print(f"    whole service path in the timed run {args._svc_us:7.1f} us")

    if args.profile:
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(25)
        print(out.getvalue())
        stats.dump_stats(args.profile_out)
        print(f"  profile saved to {args.profile_out} (python -m pstats {args.profile_out})")


def main() -> None:
    args = parse_args(__doc__.split("\n", 1)[0], 100_000, _extra)
    t0 = time.perf_counter()
    gen = CustomerGenerator(args.seed)
    need = max(args.rows, args.profile_rows)
    records = [gen.as_record(gen.values(i)) for i in range(need)]
    print(f"generated {need:,} customers in {time.perf_counter() - t0:.1f} s (seed {args.seed}); load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    with bench_database(args.db) as db:
        print(f"database: {describe_db(db)}")
        run_import(db, args, records[: args.rows])
        run_profile(db, args, records)


if __name__ == "__main__":
    main()
