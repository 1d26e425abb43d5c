"""Shared setup for the bench scripts: arguments, a throw-away database, the sample app and deterministic customers.

Nothing here is timed. The scripts measure the engine's service path against raw SQLAlchemy Core on the same
tables in the same process and print ratios (see bench/README.md); absolute figures only describe this machine.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import itertools
import json
import math
import random
import shutil
import statistics
import sys
import tempfile
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/x.py` from anywhere
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa

from engine.schema.kinds import kind_of
from engine.storage.apps import AppService
from engine.storage.catalog import CATALOG
from engine.storage.database import Database

__all__ = ["APP_FILE", "ROOT", "CustomerGenerator", "bench_database", "customer_entity", "db_row", "describe_db",
           "install_app", "parse_args", "percentile", "summary", "uuid7_at"]

APP_FILE = ROOT / "apps" / "sales_crm.json"
APP_NAME = "sales_crm"


# --- arguments ------------------------------------------------------------------------------------------
def parse_args(description: str, default_rows: int, extra: Any = None) -> argparse.Namespace:
    """--db, --rows and --seed, plus whatever `extra(parser)` adds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--db", default=None,
                        help="database URL (default: a fresh SQLite file in a temp dir). For PostgreSQL, e.g. "
                             "postgresql+psycopg://postgres@127.0.0.1:5432/test: a fresh schema is created and "
                             "dropped at the end")
    parser.add_argument("--rows", type=int, default=default_rows,
                        help=f"number of customers (default {default_rows:,})")
    parser.add_argument("--seed", type=int, default=42, help="seed of the generated data (default 42)")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


# --- the database ---------------------------------------------------------------------------------------
@contextmanager
def bench_database(url: str | None) -> Iterator[Database]:
    """A fresh, initialised database: a SQLite file in a temp dir, or a new schema in the PostgreSQL database at
    `url` (dropped at the end, with everything in it)."""
    if url is None or url.startswith("sqlite"):
        tmp = None
        if url is None:
            tmp = tempfile.mkdtemp(prefix="crm-bench-")
            url = f"sqlite:///{tmp}/bench.db"
        db = Database(url)
        try:
            db.init()
            yield db
        finally:
            db.dispose()
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
        return
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    db = Database(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        db.init()
        yield db
    finally:
        db.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def describe_db(db: Database) -> str:
    """The database, for the report header."""
    if db.is_sqlite:
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version} ({db.url})"
    with db.engine.connect() as conn:
        version = conn.exec_driver_sql("SHOW server_version").scalar()
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
    return f"PostgreSQL {version} ({db.engine.url.render_as_string(hide_password=True)}, schema {schema})"


def install_app(db: Database, name: str = APP_NAME) -> sa.Table:
    """Apply apps/sales_crm.json (renamed to `name` when it differs) and return the customer table."""
    doc = json.loads(APP_FILE.read_text("utf-8"))
    if name != APP_NAME:
        doc["x-crm-app"]["name"] = name
        doc["$id"] = f"urn:crm:app:{name}"
    AppService(db).apply(doc, actor="bench")
    with db.read() as conn:
        return CATALOG.current(conn, name).tables.table("customer")


def customer_entity(db: Database, app: str = APP_NAME) -> Any:
    """The customer entity of an installed app."""
    with db.read() as conn:
        return CATALOG.current(conn, app).entity("customer")


# --- statistics -----------------------------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


def summary(values: list[float]) -> tuple[float, float]:
    """(median, p95) in milliseconds of timings in seconds."""
    return statistics.median(values) * 1000, percentile(values, 95) * 1000


# --- deterministic customers ----------------------------------------------------------------------------
# (country, Faker locale, share of customers, phone prefix, digits after the prefix)
_COUNTRIES = [
    ("Germany", "de_DE", 34, "+4930", 7), ("China", "zh_CN", 15, "+86138", 8),
    ("United States", "en_US", 12, "+1212555", 4), ("France", "fr_FR", 8, "+331", 8),
    ("United Kingdom", "en_GB", 7, "+4420", 8), ("Austria", "de_AT", 5, "+431", 7),
    ("Switzerland", "de_CH", 4, "+4144", 7), ("Italy", "it_IT", 4, "+3906", 8),
    ("Spain", "es_ES", 4, "+3491", 7), ("Netherlands", "nl_NL", 4, "+3120", 7),
    ("Poland", "pl_PL", 3, "+4822", 7),
]
SEGMENTS = [("prospect", 24), ("new", 15), ("regular", 33), ("vip", 6), ("key_account", 3), ("at_risk", 11),
            ("churned", 8)]
_CHANNELS = ["email", "phone", "sms", "wechat", "whatsapp", "in_person", "post"]
_PAYMENTS = ["credit_card", "debit_card", "bank_transfer", "direct_debit", "paypal", "alipay", "wechat_pay",
             "invoice", "cash"]
_PRODUCTS = ["software", "hardware", "services", "support", "training", "accessories"]
_FREQUENCIES = ["weekly", "monthly", "quarterly", "yearly", "occasional", "one_time"]
_GENDERS = ["female", "male", "diverse", "undisclosed"]
# Product preference sets in option order: none (1/3), one (1/3), two or three (1/3) products.
_PREFERENCE_SETS = ([()] * 15 + [(p,) for p in _PRODUCTS] * 2 + list(itertools.combinations(_PRODUCTS, 2))
                    + list(itertools.combinations(_PRODUCTS, 3))[:3])
_DAYS = [dt.date(1945, 1, 1) + dt.timedelta(days=d) for d in range(22_600)]  # birthdays 1945-2006


def _ascii_slug(text: str) -> str:
    norm = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in norm if ch.isascii() and ch.isalnum()).lower()


class CustomerGenerator:
    """Deterministic, valid customers for apps/sales_crm.json, with a realistic spread of values.

    Faker (seeded) fills small per-country pools of names, cities and streets once; records combine pool entries
    with random.Random(seed), so a million rows take seconds, and the same seed gives the same rows. Relation
    fields (company) stay empty and customer_number is left to the engine (raw rows get the same CUS-nnnnn)."""

    def __init__(self, seed: int = 42, pool: int = 400) -> None:
        from faker import Faker

        self.rng = random.Random(seed)
        self.pools: list[dict[str, Any]] = []
        self.slugs: dict[str, str] = {}
        for country, locale, _share, prefix, digits in _COUNTRIES:
            fake = Faker(locale)
            fake.seed_instance(seed)
            first = sorted({fake.first_name() for _ in range(pool)})
            last = sorted({fake.last_name() for _ in range(pool)})
            cities = sorted({fake.city() for _ in range(pool // 2)})
            streets = sorted({fake.street_name() for _ in range(pool // 2)})
            domain = f"{_ascii_slug(country)}-mail.example"
            self.slugs.update((n, _ascii_slug(n)[:8] or "kunde") for n in first)
            self.pools.append({"country": country, "first": first, "last": last, "cities": cities,
                               "city_cum": list(itertools.accumulate(1 / (i + 1) for i in range(len(cities)))),
                               "streets": streets, "prefix": prefix, "digits": digits, "domain": domain,
                               "zh": locale == "zh_CN"})
        self.country_cum = list(itertools.accumulate(c[2] for c in _COUNTRIES))
        self.segment_values = [s for s, _ in SEGMENTS]
        self.segment_cum = list(itertools.accumulate(w for _, w in SEGMENTS))
        fake = Faker("en_US")
        fake.seed_instance(seed)
        self.notes = [fake.paragraph(nb_sentences=3) for _ in range(200)]

    def values(self, i: int, created_at: dt.datetime | None = None) -> dict[str, Any]:
        """Customer number i (0-based) in Python types: date, Decimal, bool, list; None for empty fields."""
        r = self.rng.random  # plain index arithmetic: random.choice & co. would triple the time of a million rows

        def pick(seq: Any) -> Any:
            return seq[int(r() * len(seq))]

        def weighted(seq: Any, cum: list[float]) -> Any:
            return seq[bisect.bisect(cum, r() * cum[-1])]

        p = weighted(self.pools, self.country_cum)
        first, last = pick(p["first"]), pick(p["last"])
        slug = self.slugs[first]
        segment = weighted(self.segment_values, self.segment_cum)
        ltv = None if segment == "prospect" else Decimal(f"{min(self.rng.lognormvariate(7.3, 1.3), 9_999_999):.2f}")
        prefs = pick(_PREFERENCE_SETS)
        digits = p["digits"]
        return {
            "name": f"{last}{first}" if p["zh"] else f"{first} {last}",
            "gender": pick(_GENDERS) if r() < 0.8 else None,
            "birthday": _DAYS[int(r() * len(_DAYS))] if r() < 0.7 else None,
            "email": f"{slug}.{i}@{p['domain']}" if r() < 0.9 else None,
            "phone": f"{p['prefix']}{10 ** (digits - 1) + int(r() * 9 * 10 ** (digits - 1))}" if r() < 0.75 else None,
            "street": f"{pick(p['streets'])} {1 + int(r() * 199)}" if r() < 0.8 else None,
            "city": weighted(p["cities"], p["city_cum"]),
            "postal_code": f"{10000 + int(r() * 89999)}" if r() < 0.8 else None,
            "country": p["country"],
            "linkedin_url": f"https://www.linkedin.com/in/{slug}-{i}" if r() < 0.3 else None,
            "twitter_handle": f"@{slug[:7]}{i % 100000}" if r() < 0.15 else None,
            "wechat_id": f"wx_{slug}_{i}" if p["zh"] and r() < 0.6 else None,
            "segment": segment,
            "preferred_channel": pick(_CHANNELS) if r() < 0.6 else None,
            "preferred_payment": pick(_PAYMENTS) if r() < 0.5 else None,
            "product_preferences": list(prefs) if prefs else None,
            "company": None,
            "purchase_frequency": pick(_FREQUENCIES) if r() < 0.5 else None,
            "service_rating": weighted((1, 2, 3, 4, 5), [5, 13, 33, 70, 100]) if r() < 0.6 else None,
            "lifetime_value": ltv,
            "needs_analysis": pick(self.notes) if r() < 0.1 else None,
            "marketing_consent": r() < 0.4,
            "created_at": created_at,
        }

    @staticmethod
    def as_record(values: dict[str, Any]) -> dict[str, Any]:
        """The JSON shape the records service takes (empty fields left out, no system columns)."""
        out: dict[str, Any] = {}
        for key, value in values.items():
            if value is None or key == "created_at":
                continue
            if isinstance(value, dt.date):
                value = value.isoformat()
            elif isinstance(value, Decimal):
                value = format(value, "f")
            out[key] = value
        return out


def db_row(entity: Any, record: dict[str, Any], rid: str, number: int, now: dt.datetime,
           actor: str = "bench") -> dict[str, Any]:
    """A JSON-shaped record -> the table row the engine would store (DB shape via each kind's to_db, plus the id,
    the autonumber and the system columns)."""
    row: dict[str, Any] = {"id": rid, "created_at": now, "updated_at": now, "created_by": actor,
                           "updated_by": actor, "version": 1}
    for f in entity.fields:
        if f.kind == "relation_many":
            continue
        value = record.get(f.key)
        if f.kind == "autonumber":
            value = kind_of(f.kind).format_number(f, number)
        elif value is None and f.default is not None:
            value = f.default
        row[f.key] = kind_of(f.kind).to_db(f, value)
    return row


def uuid7_at(when: dt.datetime, rng: random.Random) -> str:
    """A version-7 UUID for a given time (what the engine's new_id makes for 'now'), from a seeded generator."""
    ms = int(when.replace(tzinfo=dt.UTC).timestamp() * 1000)
    rand = rng.getrandbits(74)
    h = f"{(ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1)):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
