"""The database: engine creation for SQLite (WAL) and PostgreSQL (psycopg 3), and the engine's own tables.

Engine tables are created by `crm init` and upgraded by the engine itself: `ENGINE_SCHEMA_VERSION` is stored in
`crm_meta`, and `Database.init()` brings an older database up to date."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import event

__all__ = ["DEFAULT_URL", "ENGINE_SCHEMA_VERSION", "Database", "crm_automation_runs", "crm_drafts", "crm_outbox",
           "crm_state_entered", "engine_tables"]

DEFAULT_URL = "sqlite:///./crm.db"
ENGINE_SCHEMA_VERSION = 1

engine_tables = sa.MetaData()

crm_meta = sa.Table(
    "crm_meta", engine_tables,
    sa.Column("key", sa.String(63), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
crm_apps = sa.Table(
    "crm_apps", engine_tables,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("current_version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
crm_app_versions = sa.Table(
    "crm_app_versions", engine_tables,
    sa.Column("app", sa.String(63), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("definition", sa.Text, nullable=False),  # canonical JSON
    sa.Column("plan", sa.Text, nullable=False),  # the applied steps, as JSON
    sa.Column("applied_at", sa.DateTime, nullable=False),
    sa.Column("applied_by", sa.Text, nullable=False),
    sa.Column("note", sa.Text),
)
crm_archive = sa.Table(
    "crm_archive", engine_tables,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("app", sa.String(63), nullable=False),
    sa.Column("entity", sa.String(63), nullable=False),
    sa.Column("field", sa.String(63)),  # None: the whole entity is archived
    sa.Column("definition", sa.Text, nullable=False),  # the field's or entity's canonical JSON when archived
    sa.Column("stored_as", sa.String(63), nullable=False),  # archived column or table name
    sa.Column("archived_in", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, server_default="archived"),  # archived | restored | purged
)
crm_history = sa.Table(
    "crm_history", engine_tables,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("app", sa.String(63), nullable=False),
    sa.Column("entity", sa.String(63), nullable=False),
    sa.Column("record_id", sa.String(36), nullable=False),
    sa.Column("record_version", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # create | update | delete
    sa.Column("changes", sa.JSON, nullable=False),  # {field: [old, new]}
    sa.Index("ix_crm_history_record", "app", "entity", "record_id"),
)
crm_sequences = sa.Table(
    "crm_sequences", engine_tables,
    sa.Column("app", sa.String(63), primary_key=True),
    sa.Column("entity", sa.String(63), primary_key=True),
    sa.Column("field", sa.String(63), primary_key=True),
    sa.Column("last_value", sa.BigInteger, nullable=False),
)
crm_saved_views = sa.Table(
    "crm_saved_views", engine_tables,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("app", sa.String(63), nullable=False),
    sa.Column("entity", sa.String(63), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("query", sa.Text, nullable=False),  # the list page's query string: columns, sort, search, filters
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("app", "entity", "name", name="uq_crm_saved_views_name"),
)

crm_drafts = sa.Table(  # the app designer's unpublished edits, one draft per app (engine/designer/drafts.py)
    "crm_drafts", engine_tables,
    sa.Column("app", sa.String(63), primary_key=True),
    sa.Column("document", sa.Text, nullable=False),  # the draft definition as JSON text
    sa.Column("base_version", sa.Integer),  # the published version it started from; None for a new app
    sa.Column("revision", sa.Integer, nullable=False),  # +1 on every save; a save of an older revision is refused
    sa.Column("updated_by", sa.Text),
    sa.Column("updated_at", sa.DateTime),
    sa.Column("created_at", sa.DateTime, nullable=False),
)


# --- accounts, roles, sessions, tokens, audit (engine/auth) --------------------------------------------------
crm_users = sa.Table(
    "crm_users", engine_tables,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),  # stored lower-cased
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text),  # argon2id; None until a password is set
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("is_active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("last_login_at", sa.DateTime),
)
crm_roles = sa.Table(
    "crm_roles", engine_tables,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("designer", sa.Boolean, nullable=False, default=False),  # may change app definitions
    sa.Column("permissions", sa.JSON, nullable=False),  # see engine.auth.principal.merge_grants
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
crm_user_roles = sa.Table(
    "crm_user_roles", engine_tables,
    sa.Column("user_id", sa.String(36), sa.ForeignKey("crm_users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.String(63), sa.ForeignKey("crm_roles.name", ondelete="CASCADE"), primary_key=True),
)
crm_sessions = sa.Table(
    "crm_sessions", engine_tables,
    sa.Column("id", sa.String(64), primary_key=True),  # sha256 of the cookie value; the value itself is not stored
    sa.Column("user_id", sa.String(36), sa.ForeignKey("crm_users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("last_seen_at", sa.DateTime, nullable=False),
    sa.Column("address", sa.Text),
)
crm_api_tokens = sa.Table(
    "crm_api_tokens", engine_tables,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("user_id", sa.String(36), sa.ForeignKey("crm_users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # sha256 of the token
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("last_used_at", sa.DateTime),
    sa.Column("revoked_at", sa.DateTime),
)
crm_login_failures = sa.Table(  # for throttling, per account and per address
    "crm_login_failures", engine_tables,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("address", sa.Text),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Index("ix_crm_login_failures_email", "email", "at"),
    sa.Index("ix_crm_login_failures_address", "address", "at"),
)
crm_audit = sa.Table(
    "crm_audit", engine_tables,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("address", sa.Text),
    sa.Index("ix_crm_audit_at", "at"),
    sa.Index("ix_crm_audit_action", "action", "at"),
)


# --- workflows (engine/workflows) ----------------------------------------------------------------------------
crm_state_entered = sa.Table(  # when each record of a workflow entity entered its current state (time rules)
    "crm_state_entered", engine_tables,
    sa.Column("app", sa.String(63), primary_key=True),
    sa.Column("entity", sa.String(63), primary_key=True),
    sa.Column("record_id", sa.String(36), primary_key=True),
    sa.Column("state", sa.String(100), nullable=False),
    sa.Column("entered_at", sa.DateTime, nullable=False),
    sa.Index("ix_crm_state_entered_at", "app", "entity", "entered_at"),
)
crm_automation_runs = sa.Table(  # a time rule fires once per record and moment it counts from: the last firing
    "crm_automation_runs", engine_tables,
    sa.Column("app", sa.String(63), primary_key=True),
    sa.Column("entity", sa.String(63), primary_key=True),
    sa.Column("rule", sa.String(63), primary_key=True),
    sa.Column("record_id", sa.String(36), primary_key=True),
    sa.Column("anchor", sa.String(40), nullable=False),  # the moment the last firing counted from
    sa.Column("ran_at", sa.DateTime, nullable=False),
)
crm_outbox = sa.Table(  # webhook calls, written in the transaction of their event, delivered by `crm worker`
    "crm_outbox", engine_tables,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),  # sent as X-CRM-Event-Id: receivers dedupe
    sa.Column("app", sa.String(63), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.DateTime, nullable=False),
    sa.Column("delivered_at", sa.DateTime),
    sa.Column("last_error", sa.Text),
    sa.Index("ix_crm_outbox_due", "delivered_at", "next_attempt_at"),
)


def _json_text(value: Any) -> str:
    """JSON columns (history changes, multi_select values) through msgspec: several times faster than json.dumps."""
    return msgspec.json.encode(value).decode()


def _sqlite_setup(engine: sa.Engine) -> None:
    """Real transactions on SQLite: pysqlite's own BEGIN handling is switched off and we emit BEGIN ourselves,
    so DDL is transactional too; writes take the lock up front (BEGIN IMMEDIATE) to avoid upgrade deadlocks."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("crm_write") else "BEGIN")


class Database:
    """One database the engine works in; holds the SQLAlchemy engine and nothing else of its own."""

    def __init__(self, url: str | None = None, **engine_kwargs: Any) -> None:
        self.url = url or os.environ.get("CRM_DATABASE_URL") or DEFAULT_URL
        if self.url.startswith(("postgresql://", "postgres://")):
            self.url = "postgresql+psycopg://" + self.url.split("://", 1)[1]
        self.engine_kwargs = engine_kwargs  # kept so another connection pool (another "process") can be opened alike
        options = {"json_serializer": _json_text, "json_deserializer": msgspec.json.decode, **engine_kwargs}
        self.engine = sa.create_engine(self.url, **options)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            _sqlite_setup(self.engine)

    @property
    def is_sqlite(self) -> bool:
        """Whether this is the embedded SQLite database."""
        return self.dialect == "sqlite"

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A connection in a read transaction."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A connection in a write transaction: committed at the end, rolled back on any error."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(crm_write=True)
            with conn.begin():
                yield conn

    def init(self) -> bool:
        """Create or upgrade the engine's tables; True when anything was created."""
        with self.write() as conn:
            existing = set(sa.inspect(conn).get_table_names())
            missing = [t for t in engine_tables.sorted_tables if t.name not in existing]
            engine_tables.create_all(conn, tables=missing)
            row = conn.execute(sa.select(crm_meta.c.value).where(crm_meta.c.key == "schema_version")).first()
            if row is None:
                conn.execute(crm_meta.insert().values(key="schema_version", value=str(ENGINE_SCHEMA_VERSION)))
            elif int(row.value) > ENGINE_SCHEMA_VERSION:
                raise RuntimeError(
                    f"this database was set up by a newer crm-builder (engine schema {row.value}); upgrade crm-builder"
                )
            elif int(row.value) < ENGINE_SCHEMA_VERSION:  # future upgrades run here, one version at a time
                conn.execute(crm_meta.update().where(crm_meta.c.key == "schema_version")
                             .values(value=str(ENGINE_SCHEMA_VERSION)))
        return bool(missing)

    def secret(self) -> str:
        """The installation's secret (CSRF tokens, later sessions): CRM_SECRET_KEY, else one generated once and kept
        in the database so every worker process shares it."""
        if os.environ.get("CRM_SECRET_KEY"):
            return os.environ["CRM_SECRET_KEY"]
        with self.write() as conn:
            value = conn.execute(sa.select(crm_meta.c.value).where(crm_meta.c.key == "secret_key")).scalar()
            if value is None:
                value = secrets.token_urlsafe(48)
                conn.execute(crm_meta.insert().values(key="secret_key", value=value))
            return value

    def is_initialised(self) -> bool:
        """Whether `crm init` has run on this database."""
        with self.engine.connect() as conn:
            return sa.inspect(conn).has_table("crm_meta")

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()
