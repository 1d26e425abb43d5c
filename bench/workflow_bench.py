"""What a workflow transition costs next to a plain update of the same record through the same records service.

For each of N deals: a plain update (two fields) and a transition (lead -> qualified, no actions), interleaved so
both see the same database state; then N wins (guard, two set actions, a created order and a note in the same
transaction). Prints medians and p95 in ms and the ratios to the plain update. Absolute figures describe this
machine only."""

from __future__ import annotations

import time

from common import bench_database, describe_db, install_app, parse_args, summary

from engine.storage.records import RecordService


def main() -> None:
    args = parse_args("Workflow transitions vs plain updates through the records service.", default_rows=300)
    with bench_database(args.db) as db:
        install_app(db)
        service = RecordService(db, "sales_crm", "bench")
        customer = service.create("customer", {"name": "Bench Customer"})
        deals = [service.create("deal", {"title": f"Deal {i}", "customer": customer["id"], "amount": "1000",
                                         "expected_close": "2026-12-31"}) for i in range(args.rows)]
        updates, qualifies, wins = [], [], []
        for i, deal in enumerate(deals):
            start = time.perf_counter()
            service.update("deal", deal["id"], {"title": f"Deal {i} (renamed)", "probability": "20"})
            updates.append(time.perf_counter() - start)
            start = time.perf_counter()
            service.transition("deal", deal["id"], "qualify")
            qualifies.append(time.perf_counter() - start)
        for deal in deals:
            service.transition("deal", deal["id"], "propose")
        for deal in deals:
            start = time.perf_counter()
            service.transition("deal", deal["id"], "win")
            wins.append(time.perf_counter() - start)
        assert service.count("sales_order") == args.rows
        base, _ = summary(updates)
        print(f"database: {describe_db(db)}; {args.rows} deals")
        print(f"{'operation':<44} {'median ms':>10} {'p95 ms':>8} {'x update':>9}")
        for label, values in (("plain update (2 fields)", updates), ("transition, no actions (qualify)", qualifies),
                              ("transition + set, create order, note (win)", wins)):
            med, p95 = summary(values)
            print(f"{label:<44} {med:>10.2f} {p95:>8.2f} {med / base:>8.2f}x")


if __name__ == "__main__":
    main()
