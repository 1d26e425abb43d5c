"""The `crm` command: set up a database, plan and apply app definitions, import and export records, demo data.

Exit codes: 0 done, 1 refused or invalid input (the reasons on stderr, one per line), 2 usage errors."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.errors import CrmError
from engine.storage.apps import AppService
from engine.storage.database import Database
from engine.storage.plan import MigrationPlan

__all__ = ["main"]


class _Refused(CrmError):
    """The command was refused (no confirmation, database not set up...); the message says why."""


def _out(lines: Iterable[str] | str) -> None:
    print(lines if isinstance(lines, str) else "\n".join(lines))


def _err(lines: Iterable[str] | str) -> None:
    print(lines if isinstance(lines, str) else "\n".join(lines), file=sys.stderr)


def _read(path: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise _Refused(f"cannot read {path}: {exc.strerror or exc}") from None


def _write_bytes(data: bytes, path: str | None) -> None:
    if path and path != "-":
        try:
            Path(path).write_bytes(data)
        except OSError as exc:
            raise _Refused(f"cannot write {path}: {exc.strerror or exc}") from None
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _confirm(question: str, yes: bool) -> None:
    """Go on only with --yes or a "y" typed on a terminal; otherwise refuse."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise _Refused("not confirmed: stdin is not a terminal, so pass --yes to go ahead; nothing was changed")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise _Refused("not confirmed; nothing was changed")


# --- app commands ------------------------------------------------------------------------------------------
def _show_plan(plan: MigrationPlan) -> None:
    if plan.ok:
        _out(plan.lines())
    else:
        _err([*plan.lines(), "the plan is refused; nothing was changed"])


def _plan_and_apply(apps: AppService, source: Any, purge: bool, yes: bool, apply: Callable[[], MigrationPlan]) -> int:
    plan = apps.plan(source, purge=purge)
    _show_plan(plan)
    if not plan.ok:
        return 1
    if plan.from_version is not None and not plan.changes_anything:
        _out("no changes")
        return 0
    _confirm("Apply these changes?", yes)
    done = apply()
    _out(f"applied: app {done.app} is now at version {(done.from_version or 0) + 1}")
    return 0


def cmd_app_plan(args: argparse.Namespace, db: Database) -> int:
    """crm app plan FILE"""
    plan = AppService(db).plan(_read(args.file), purge=args.purge)
    _show_plan(plan)
    return 0 if plan.ok else 1


def cmd_app_apply(args: argparse.Namespace, db: Database) -> int:
    """crm app apply FILE [--yes] [--purge]"""
    apps = AppService(db)
    source = _read(args.file)
    return _plan_and_apply(apps, source, args.purge, args.yes,
                           lambda: apps.apply(source, purge=args.purge, actor=args.actor))


def cmd_app_rollback(args: argparse.Namespace, db: Database) -> int:
    """crm app rollback NAME VERSION [--yes]"""
    apps = AppService(db)
    target = apps.definition_at(args.name, args.version)
    return _plan_and_apply(apps, target, args.purge, args.yes,
                           lambda: apps.rollback(args.name, args.version, actor=args.actor, purge=args.purge))


def cmd_app_delete(args: argparse.Namespace, db: Database) -> int:
    """crm app delete NAME [--yes]"""
    apps = AppService(db)
    app = apps.current(args.name)
    _out(f"app {app.name} ({app.title}), version {app.version}: every entity is archived with its records;"
         " applying a definition named the same brings them back")
    _confirm(f"Delete app {app.name}?", args.yes)
    plan = apps.delete(args.name, actor=args.actor)
    _out([line for line in plan.lines()[1:]] + [f"deleted: app {args.name} (versions kept: crm app history)"])
    return 0


def cmd_app_diff(args: argparse.Namespace, db: Database) -> int:
    """crm app diff NAME FROM [TO]"""
    from engine.schema.diff import diff_apps

    apps = AppService(db)
    to = args.to if args.to is not None else apps.current(args.name).version
    changes = diff_apps(apps.definition_at(args.name, args.version), apps.definition_at(args.name, to))
    _out([f"app {args.name}: version {args.version} -> {to}"] + [f"  {c.describe()}" for c in changes]
         + ([] if changes else ["  no differences"]))
    return 0


def cmd_app_export(args: argparse.Namespace, db: Database) -> int:
    """crm app export NAME [-o FILE]"""
    _write_bytes(AppService(db).export(args.name, args.version), args.output)
    return 0


def cmd_app_list(args: argparse.Namespace, db: Database) -> int:
    """crm app list"""
    apps = AppService(db).list()
    if not apps:
        _out("no apps yet: add one with `crm app apply FILE` (or `crm demo`)")
    for a in apps:
        _out(f"{a.name}\tversion {a.version}\t{a.updated_at:%Y-%m-%d %H:%M}\t{a.title}")
    return 0


def cmd_app_history(args: argparse.Namespace, db: Database) -> int:
    """crm app history NAME"""
    for v in AppService(db).history(args.name):
        note = f"  ({v.note})" if v.note else ""
        _out(f"version {v.version}\t{v.applied_at:%Y-%m-%d %H:%M:%S}\tby {v.applied_by}{note}")
        if v.steps:
            _out(f"  {step}" for step in v.steps)
    return 0


# --- records, demo, serve --------------------------------------------------------------------------------
def cmd_records_import(args: argparse.Namespace, db: Database) -> int:
    """crm records import APP ENTITY FILE"""
    from engine.transfer import format_of, import_records

    fmt = format_of(args.file, args.format)
    try:
        stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise _Refused(f"cannot read {args.file}: {exc.strerror or exc}") from None
    try:
        count = import_records(db, args.app, args.entity, stream, fmt, actor=args.actor)
    except UnicodeDecodeError as exc:
        raise _Refused(f"{args.file} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    finally:
        if stream is not sys.stdin:
            stream.close()
    _out(f"imported {count} record{'s' if count != 1 else ''} into {args.app}.{args.entity}")
    return 0


def cmd_records_transition(args: argparse.Namespace, db: Database) -> int:
    """crm records transition APP ENTITY ID NAME"""
    from engine.storage.records import RecordService

    service = RecordService(db, args.app, args.actor)
    record = service.transition(args.entity, args.id, args.name)
    flow = service.flow(args.entity)
    _out(f"{args.entity} {record['id']} is now {flow.state_title(flow.state_of(record))} (version {record['version']})")
    return 0


def cmd_worker(args: argparse.Namespace, db: Database) -> int:
    """crm worker [--once] [--interval SECONDS] [--retry-now] [--status]"""
    import logging

    from engine.workflows.outbox import outbox_status, retry_now
    from engine.workflows.worker import run_forever, run_once

    if not isinstance(args.actor, str) and not args.actor.is_admin:
        raise _Refused(f"{args.actor.name} is not an admin; the worker is for admins")
    if args.status:
        status = outbox_status(db)
        _out(f"webhooks delivered: {status['delivered']}, waiting: {status['waiting']}")
        if status["oldest"]:
            oldest = status["oldest"]
            _out(f"oldest waiting: {oldest['url']} after {oldest['attempts']} attempts: {oldest['last_error'] or '-'}")
        return 0
    if args.retry_now:
        _out(f"{retry_now(db)} waiting webhook(s) are due now")
    if args.once:
        done = run_once(db)
        _out(f"time rules fired: {done.fired}; webhooks delivered: {done.delivered}, failed (will retry):"
             f" {done.failed}")
        if done.errors:
            _err(done.errors)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    _out(f"crm worker: time rules and webhooks every {args.interval:g} s on {_safe_url(db.url)} (Ctrl+C stops)")
    try:
        run_forever(db, interval=args.interval)
    except KeyboardInterrupt:
        _out("stopped")
    return 0


def cmd_records_export(args: argparse.Namespace, db: Database) -> int:
    """crm records export APP ENTITY [--format csv|jsonl] [-o FILE]"""
    from engine.transfer import export_records

    if not args.output or args.output == "-":
        export_records(db, args.app, args.entity, sys.stdout, args.format, actor=args.actor)
        return 0
    path = Path(args.output)
    try:
        with path.open("w", encoding="utf-8", newline="") as out:
            count = export_records(db, args.app, args.entity, out, args.format, actor=args.actor)
    except OSError as exc:
        raise _Refused(f"cannot write {args.output}: {exc.strerror or exc}") from None
    except BaseException:  # no half-written file is left behind
        path.unlink(missing_ok=True)
        raise
    _out(f"exported {count} record{'s' if count != 1 else ''} to {args.output}")
    return 0


def cmd_demo(args: argparse.Namespace, db: Database) -> int:
    """crm demo [--if-empty] [--size N] [--seed N]"""
    from engine.demo import APP, DEFAULT_SIZES, DemoSizes, load_demo

    sizes = DemoSizes.for_customers(args.size) if args.size is not None else DEFAULT_SIZES
    result = load_demo(db, sizes, if_empty=args.if_empty, actor=args.actor, seed=args.seed)
    if result.installed:
        _out(f"installed the app {APP}")
    if result.skipped:
        _out(f"{APP} already has customers; no demo data added")
        _show_demo_users(result.users)
        return 0
    for entity, count in result.created.items():
        _out(f"created {count:>6} {result.plurals.get(entity, entity)}")
    _show_demo_users(result.users)
    return 0


def _show_demo_users(users: list[tuple[str, str, str]]) -> None:
    if not users:
        return
    from engine.demo import DEMO_PASSWORD

    _out(["", "demo users (log in at /login after `crm serve`):"])
    _out(f"  {email:<28} {role}" for email, role, _ in users)
    _out([f"  password for each: {DEMO_PASSWORD}",
          "warning: these are demo credentials; do not use this database for real data as it is"])


def cmd_serve(args: argparse.Namespace, db: Database) -> int:
    """crm serve"""
    from engine.web.serve import serve

    if args.workers < 1:
        raise _Refused("--workers must be at least 1")
    _out(f"serving {_safe_url(db.url)} at http://{args.host}:{args.port}")
    serve(host=args.host, port=args.port, workers=args.workers, reload=args.reload, db_url=db.url)
    return 0


def cmd_init(args: argparse.Namespace, db: Database) -> int:
    """crm init"""
    try:
        created = db.init()
    except RuntimeError as exc:  # a database set up by a newer crm-builder
        raise _Refused(str(exc)) from None
    _out(f"{'set up' if created else 'already set up:'} {_safe_url(db.url)}")
    return 0


# --- users ------------------------------------------------------------------------------------------------
def _new_password() -> str:
    """The password from $CRM_USER_PASSWORD (scripts), else typed twice on a terminal."""
    if os.environ.get("CRM_USER_PASSWORD"):
        return os.environ["CRM_USER_PASSWORD"]
    if not sys.stdin.isatty():
        raise _Refused("no password: set CRM_USER_PASSWORD, or run this on a terminal to type it")
    import getpass

    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password again: "):
        raise _Refused("the passwords do not match; nothing was changed")
    return first


def cmd_user_create(args: argparse.Namespace, db: Database) -> int:
    """crm user create EMAIL --role ROLE [--admin] [--name NAME]"""
    from engine.auth.accounts import create_user, ensure_default_roles

    ensure_default_roles(db)
    user = create_user(db, args.email, args.name, _new_password(), is_admin=args.admin, roles=args.role or [],
                       actor=args.actor)
    _out(f"created {user.email}{' (admin)' if user.is_admin else ''} with roles: {', '.join(user.roles) or 'none'}")
    return 0


def cmd_user_list(args: argparse.Namespace, db: Database) -> int:
    """crm user list"""
    from engine.auth.accounts import list_users

    users = list_users(db)
    if not users:
        _out("no users yet: add one with `crm user create EMAIL --role ROLE`")
    for u in users:
        flags = [f for f, on in (("admin", u.is_admin), ("deactivated", not u.is_active)) if on]
        _out(f"{u.email}\t{u.name}\t{','.join(u.roles) or '-'}\t{' '.join(flags)}".rstrip())
    return 0


def cmd_user_set_password(args: argparse.Namespace, db: Database) -> int:
    """crm user set-password EMAIL"""
    from engine.auth.accounts import set_password, user_by_email
    from engine.auth.sessions import end_user_sessions

    user = user_by_email(db, args.email)
    if user is None:
        raise _Refused(f"no user with the email {args.email.strip().lower()}")
    set_password(db, user.id, _new_password(), actor=args.actor, action="password_reset")
    end_user_sessions(db, user.id)
    _out(f"set a new password for {user.email}; their sessions were ended")
    return 0


# --- the parser ------------------------------------------------------------------------------------------
def _global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    # Accepted before or after the subcommand; only the top level sets defaults, so a later one wins.
    default: Any = None if top else argparse.SUPPRESS
    parser.add_argument("--db", metavar="URL", default=default,
                        help="database URL (default: $CRM_DATABASE_URL, else sqlite:///./crm.db)")
    actor: Any = (os.environ.get("USER") or "cli") if top else argparse.SUPPRESS
    parser.add_argument("--as", dest="actor", metavar="USER", default=actor,
                        help="who is acting, for the history (default: $USER, else cli); trusted, like the system")
    parser.add_argument("--as-user", dest="as_user", metavar="EMAIL", default=default,
                        help="act as this user account, with exactly its roles' permissions")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crm", description="crm-builder: schema-driven CRM apps.")
    _global_options(parser, top=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, top=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(group: Any, name: str, handler: Callable[..., int], text: str) -> argparse.ArgumentParser:
        sub = group.add_parser(name, parents=[common], help=text, description=text)
        sub.set_defaults(handler=handler)
        return sub

    command(commands, "init", cmd_init, "create (or upgrade) the engine's tables in the database")
    app = commands.add_parser("app", help="plan, apply, export and roll back app definitions",
                              description="App definitions (JSON Schema documents).")
    apps = app.add_subparsers(dest="app_command", metavar="ACTION", required=True)
    p = command(apps, "plan", cmd_app_plan, "show what applying a definition would change (changes nothing)")
    p.add_argument("file", metavar="FILE", help="the definition (.json), or - for stdin")
    p.add_argument("--purge", action="store_true", help="plan to destroy archived data that is removed")
    p = command(apps, "apply", cmd_app_apply, "apply a definition as the app's next version")
    p.add_argument("file", metavar="FILE", help="the definition (.json), or - for stdin")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--purge", action="store_true", help="destroy the data of removed fields and entities for good")
    p = command(apps, "delete", cmd_app_delete, "delete an app: its entities are archived with their records")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p = command(apps, "diff", cmd_app_diff, "list what changed between two versions of an app")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="FROM", type=int)
    p.add_argument("to", metavar="TO", type=int, nargs="?", help="the later version (default: the current one)")
    p = command(apps, "export", cmd_app_export, "write an app's definition as canonical JSON")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--version", type=int, help="an earlier version (default: the current one)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    command(apps, "list", cmd_app_list, "list the installed apps")
    p = command(apps, "history", cmd_app_history, "list every applied version of an app")
    p.add_argument("name", metavar="NAME")
    p = command(apps, "rollback", cmd_app_rollback, "return to an earlier version (as a new version)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION", type=int)
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--purge", action="store_true", help="destroy the data of removed fields and entities for good")

    records = commands.add_parser("records", help="import and export records",
                                  description="Records in and out of CSV and JSONL files.")
    recs = records.add_subparsers(dest="records_command", metavar="ACTION", required=True)
    p = command(recs, "import", cmd_records_import,
                "import records from CSV or JSONL, all or nothing (CSV headers: field keys or titles)")
    p.add_argument("app", metavar="APP")
    p.add_argument("entity", metavar="ENTITY")
    p.add_argument("file", metavar="FILE", help="a .csv or .jsonl file (- for stdin, with --format)")
    p.add_argument("--format", choices=("csv", "jsonl"), help="the file format (default: from the extension)")
    p = command(recs, "export", cmd_records_export, "export every record of an entity")
    p.add_argument("app", metavar="APP")
    p.add_argument("entity", metavar="ENTITY")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="the file format (default: csv)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")

    p = command(recs, "transition", cmd_records_transition,
                "move a record on through a workflow transition (with its guard, actions and automations)")
    p.add_argument("app", metavar="APP")
    p.add_argument("entity", metavar="ENTITY")
    p.add_argument("id", metavar="ID")
    p.add_argument("name", metavar="TRANSITION")

    p = command(commands, "worker", cmd_worker, "run time rules and deliver webhooks (keep it running beside serve)")
    p.add_argument("--once", action="store_true", help="one pass, then exit (for cron or tests)")
    p.add_argument("--interval", type=float, default=10.0, metavar="SECONDS", help="seconds between passes"
                                                                                   " (default: 10)")
    p.add_argument("--retry-now", action="store_true", help="make every waiting webhook due now (after a receiver"
                                                            " was fixed)")
    p.add_argument("--status", action="store_true", help="show how many webhooks are delivered and waiting")
    p = command(commands, "demo", cmd_demo, "install the Sales CRM sample app and fill it with demo data")
    p.add_argument("--if-empty", action="store_true", help="do nothing when the app already has customers")
    p.add_argument("--size", type=_positive, metavar="N",
                   help="number of customers; other records in proportion (default: 200)")
    p.add_argument("--seed", type=int, help="random seed, for the same data every time")
    user = commands.add_parser("user", help="create and list users, set passwords",
                               description="User accounts (passwords: typed on a terminal, or $CRM_USER_PASSWORD).")
    users = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    p = command(users, "create", cmd_user_create, "create a user (the default roles are created when missing)")
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("--role", action="append", metavar="ROLE", help="a role (repeat for several)")
    p.add_argument("--admin", action="store_true", help="an administrator: may do everything")
    p.add_argument("--name", help="the name shown (default: the part of the email before @)")
    command(users, "list", cmd_user_list, "list the users with their roles")
    p = command(users, "set-password", cmd_user_set_password, "give a user a new password")
    p.add_argument("email", metavar="EMAIL")
    p = command(commands, "serve", cmd_serve, "serve the web UI (uvicorn)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the database (default: 1)")
    p.add_argument("--reload", action="store_true", help="restart on code changes (development)")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of at least 1")
    return value


def _safe_url(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _principal(db: Database, email: str, handler: Callable[..., int]) -> Any:
    """The Principal for --as-user: the account's own permissions; admin-only commands need an admin."""
    from engine.auth.accounts import principal_for, user_by_email

    user = user_by_email(db, email)
    principal = principal_for(db, user.id) if user is not None and user.is_active else None
    if principal is None:
        raise _Refused(f"there is no active user {email.strip().lower()}")
    if handler.__name__.startswith(("cmd_user", "cmd_demo", "cmd_init", "cmd_serve")) and not principal.is_admin:
        raise _Refused(f"{principal.name} is not an admin; this command is for admins")
    if handler.__name__.startswith(("cmd_user", "cmd_demo")):
        return principal.name  # these write as a named admin
    return principal


def _run(args: argparse.Namespace) -> int:
    handler: Callable[[argparse.Namespace, Database], int] = args.handler
    try:
        db = Database(args.db)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as exc:
        raise _Refused(f"not a usable database URL: {args.db or os.environ.get('CRM_DATABASE_URL')} ({exc})") from None
    try:
        if handler not in (cmd_init, cmd_serve) and not db.is_initialised():
            raise _Refused(f"the database {_safe_url(db.url)} is not set up: run `crm init` first")
        if getattr(args, "as_user", None):
            args.actor = _principal(db, args.as_user, handler)
        return handler(args, db)
    except sa.exc.OperationalError as exc:
        raise _Refused(f"cannot use the database {_safe_url(db.url)}: {str(exc.orig).strip()}") from None
    finally:
        db.dispose()


def main(argv: list[str] | None = None) -> int:
    """Run the `crm` command with `argv` (default: the process arguments); returns the exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return _run(args)
    except CrmError as exc:
        _err(exc.lines())
        return 1
    except KeyboardInterrupt:
        _err("interrupted; nothing was changed")
        return 130
    except BrokenPipeError:  # the reader went away (`crm records export ... | head`): not an error
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python exits
        except (OSError, ValueError):
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
