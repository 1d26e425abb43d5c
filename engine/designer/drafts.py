"""Drafts: where the designer's edits go until Publish.

One draft per app, stored in `crm_drafts`. Users see nothing of a draft; `publish` shows nothing new either: it
applies the draft through `AppService.apply` (the migration plan, the designer permission and the audit log all
happen there) and deletes the draft. Every save carries the revision the designer started from; a save of an
older revision is refused with `DraftConflict`, so two designers never overwrite each other silently."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import sqlalchemy as sa

from engine.auth.principal import Principal
from engine.designer.edits import EditError, blank_app
from engine.designer.keys import DESIGNER_PAGES, is_key
from engine.errors import CrmError, DefinitionError, NotFoundError, PermissionDenied, Problem
from engine.schema import Entity, load_definition, to_document
from engine.schema.limits import MAX_DEFINITION_BYTES
from engine.schema.loader import parse_json
from engine.storage.apps import AppService
from engine.storage.database import Database, crm_apps, crm_drafts
from engine.storage.migrate import utcnow
from engine.storage.plan import MigrationPlan

__all__ = ["APPS_DIR", "NO_ENTITIES", "Draft", "DraftConflict", "DraftService", "templates"]

T = TypeVar("T")

#: The problem of an app with no entities yet (a blank app).
NO_ENTITIES = "add at least one entity before publishing"

#: Where app templates live: the sample apps shipped with crm-builder.
APPS_DIR = Path(__file__).resolve().parents[2] / "apps"


@dataclass
class Draft:
    """An app's unpublished definition."""

    app: str
    document: dict[str, Any]
    base_version: int | None  # the published version it started from; None for a new app
    revision: int  # 0: not saved yet (the published version as it is)
    updated_by: str | None
    updated_at: dt.datetime | None
    is_new_app: bool


class DraftConflict(CrmError):
    """A save based on an older revision of the draft: someone else saved in between. Nothing was saved."""

    def __init__(self, app: str, revision: int, updated_by: str | None, updated_at: dt.datetime | None) -> None:
        self.app = app
        self.revision = revision
        self.updated_by = updated_by
        self.updated_at = updated_at
        who = updated_by or "Someone"
        when = f" at {updated_at:%H:%M} UTC" if updated_at else ""
        verb = "saved" if revision else "published or discarded"
        super().__init__(f"{who} {verb} this draft{when} after you opened it; reload to see their changes")


def templates() -> list[tuple[str, str]]:
    """(name, title) of every app template (apps/*.json)."""
    out = []
    for path in sorted(APPS_DIR.glob("*.json")):
        try:
            out.append((path.stem, json.loads(path.read_text("utf-8"))["title"]))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def _problems(document: dict[str, Any]) -> list[Problem]:
    """The document's problems as the loader finds them; an app without entities (a blank one) is told so plainly."""
    try:
        load_definition(document)
    except DefinitionError as exc:
        problems = exc.problems
    else:
        return []
    if isinstance(document.get("$defs"), dict) and not document["$defs"]:
        return [Problem("", NO_ENTITIES), *(p for p in problems if p.path != "$defs")]
    return problems


class DraftService:
    """The drafts of one database, for one acting designer."""

    def __init__(self, db: Database, actor: str | Principal) -> None:
        self.db = db
        self.actor = actor
        self.apps = AppService(db)

    @property
    def _name(self) -> str:
        return self.actor.name if isinstance(self.actor, Principal) else self.actor

    def _check(self) -> None:
        if isinstance(self.actor, Principal) and not self.actor.can_design:
            raise PermissionDenied("design", "apps")

    # --- reading --------------------------------------------------------------------------------------------
    def _row(self, conn: sa.Connection, app: str) -> Any:
        return conn.execute(sa.select(crm_drafts).where(crm_drafts.c.app == app)).mappings().first()

    def _published_version(self, conn: sa.Connection, app: str) -> int | None:
        return conn.execute(sa.select(crm_apps.c.current_version).where(crm_apps.c.name == app)).scalar()

    @staticmethod
    def _draft(row: Any, published: int | None) -> Draft:
        return Draft(app=row["app"], document=json.loads(row["document"]), base_version=row["base_version"],
                     revision=row["revision"], updated_by=row["updated_by"], updated_at=row["updated_at"],
                     is_new_app=published is None)

    def list(self) -> list[Draft]:
        """Every saved draft, by app name."""
        self._check()
        with self.db.read() as conn:
            rows = conn.execute(sa.select(crm_drafts).order_by(crm_drafts.c.app)).mappings().all()
            published = dict(conn.execute(sa.select(crm_apps.c.name, crm_apps.c.current_version)).all())
        return [self._draft(r, published.get(r["app"])) for r in rows]

    def get(self, app: str) -> Draft:
        """The saved draft; else a fresh one (revision 0, not stored until saved) from the published version.
        NotFoundError for an app that is neither published nor drafted."""
        self._check()
        with self.db.read() as conn:
            row = self._row(conn, app)
            version = self._published_version(conn, app)
        if row is not None:
            return self._draft(row, version)
        if version is None:
            raise NotFoundError(f"there is no app '{app}'")
        current = self.apps.current(app)
        return Draft(app=app, document=to_document(msgspec.structs.replace(current, version=None)),
                     base_version=version, revision=0, updated_by=None, updated_at=None, is_new_app=False)

    def published_entity(self, app: str, entity: str) -> Entity | None:
        """The entity as the published version has it; None for an unpublished app or entity."""
        self._check()
        with self.db.read() as conn:
            if self._published_version(conn, app) is None:
                return None
        return self.apps.current(app).entity_map().get(entity)

    def published_keys(self, app: str, entity: str) -> set[str]:
        """Field keys of an entity in the published version (renaming one keeps its values); empty for unpublished
        ones."""
        published = self.published_entity(app, entity)
        return {f.key for f in published.fields} if published else set()

    def problems(self, app: str | Draft) -> list[Problem]:
        """What keeps the draft (of an app, or one already read) from being published, with JSON paths; [] when
        it loads."""
        return _problems((app if isinstance(app, Draft) else self.get(app)).document)

    def plan(self, app: str | Draft) -> MigrationPlan:
        """What publishing the draft (of an app, or one already read) would do (DefinitionError while the draft
        has problems)."""
        return self.apps.plan((app if isinstance(app, Draft) else self.get(app)).document)

    # --- writing --------------------------------------------------------------------------------------------
    def create(self, name: str, title: str, template: str | None = None, upload: bytes | None = None) -> Draft:
        """A new app's draft: blank, from a template (`templates()`), or from an uploaded JSON definition.

        An upload keeps its own app name and title unless `name` gives another key (then it is a new app,
        titled `title` when given); when that app exists, the upload becomes its draft (an update, planned and
        published like any other). DefinitionError with JSON paths for a bad upload;
        EditError for a name already taken (or a draft already open for an uploaded app)."""
        self._check()
        if upload is not None:
            document = parse_json(upload)
            load_definition(document)
            document.get("x-crm-app", {}).pop("version", None)
            if name and name != document["x-crm-app"]["name"]:  # imported as a new app under another key
                if not is_key(name):
                    raise EditError("x-crm-app/name", f"'{name}' cannot be an app key: use a-z, 0-9 and _,"
                                                      " starting with a letter")
                document["x-crm-app"]["name"], document["$id"] = name, f"urn:crm:app:{name}"
                if title:
                    document["title"] = title
            name = document["x-crm-app"]["name"]
        else:
            document = self._template(template, name, title) if template else blank_app(name, title)
        if name in DESIGNER_PAGES:
            raise EditError("x-crm-app/name", f"'{name}' is the name of a designer page; choose another key")
        clashes = sorted(set(document.get("$defs", {})) & DESIGNER_PAGES)
        if clashes:
            raise EditError(f"$defs/{clashes[0]}", f"the designer cannot edit an entity keyed '{clashes[0]}' (its"
                                                   " pages use that name); rename the entity in the file first,"
                                                   " or apply it with `crm app apply`")
        with self.db.read() as conn:
            exists = self._published_version(conn, name) is not None
            drafted = self._row(conn, name) is not None
        if drafted:
            raise EditError("x-crm-app/name", f"there is already an unpublished draft of '{name}';"
                                              " publish or discard it first")
        if exists and upload is None:
            raise EditError("x-crm-app/name", f"there is already an app '{name}'; choose another key")
        return self.save(name, document, 0)

    def _template(self, template: str, name: str, title: str) -> dict[str, Any]:
        if template not in dict(templates()):
            raise EditError("template", f"there is no template '{template}'")
        document = blank_app(name, title)  # checks the name and title
        loaded = json.loads((APPS_DIR / f"{template}.json").read_text("utf-8"))
        loaded["$id"], loaded["title"] = document["$id"], document["title"]
        loaded["x-crm-app"] = {k: v for k, v in loaded["x-crm-app"].items() if k != "version"} | {"name": name}
        return loaded

    def save(self, app: str, document: dict[str, Any], revision: int) -> Draft:
        """Store the draft as revision+1. DraftConflict (nothing saved) when the stored revision is not
        `revision` (0 = there was no saved draft)."""
        self._check()
        if not isinstance(document, dict) or document.get("x-crm-app", {}).get("name") != app:
            raise EditError("x-crm-app/name", f"the draft must be a definition of the app '{app}'")
        if not is_key(app):
            raise EditError("x-crm-app/name", f"'{app}' cannot be an app key")
        text = json.dumps(document, ensure_ascii=False)
        if len(text.encode()) > MAX_DEFINITION_BYTES:
            raise EditError("", f"the definition is over the size limit of {MAX_DEFINITION_BYTES:,} bytes")
        now, by = utcnow(), self._name
        with self.db.write() as conn:
            row = self._row(conn, app)
            version = self._published_version(conn, app)
            if row is None and revision != 0:
                raise DraftConflict(app, 0, None, None)
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(crm_drafts.insert().values(
                            app=app, document=text, base_version=version, revision=1, updated_by=by,
                            updated_at=now, created_at=now))
                except sa.exc.IntegrityError:  # another designer's first save won the race
                    row = self._row(conn, app)
                    raise DraftConflict(app, row["revision"], row["updated_by"], row["updated_at"]) from None
            else:
                done = conn.execute(crm_drafts.update().where(crm_drafts.c.app == app,
                                                              crm_drafts.c.revision == revision)
                                    .values(document=text, revision=revision + 1, updated_by=by, updated_at=now))
                if done.rowcount != 1:
                    raise DraftConflict(app, row["revision"], row["updated_by"], row["updated_at"])
            return self._draft(self._row(conn, app), version)

    def edit(self, app: str, revision: int, change: Callable[[dict[str, Any]], T]) -> tuple[Draft, T]:
        """Apply `change` (an edit function taking the document) to a copy of the draft and save it. An EditError
        from `change` leaves the draft unchanged; DraftConflict when `revision` is not the stored one."""
        draft = self.get(app)
        if draft.revision != revision:
            raise DraftConflict(app, draft.revision, draft.updated_by, draft.updated_at)
        document = copy.deepcopy(draft.document)
        result = change(document)
        return self.save(app, document, revision), result

    def publish(self, app: str, revision: int, purge: bool = False) -> MigrationPlan:
        """Apply the draft (as seen at `revision`) as the app's next version and delete the draft. A refused plan
        (PlanRefused) or a definition with problems (DefinitionError) leaves the draft as it was."""
        draft = self.get(app)
        if draft.revision != revision:
            raise DraftConflict(app, draft.revision, draft.updated_by, draft.updated_at)
        problems = _problems(draft.document)
        if problems:
            raise DefinitionError(problems)
        plan = self.apps.apply(draft.document, purge=purge, actor=self.actor, note="published from the designer")
        with self.db.write() as conn:  # a save made meanwhile is a newer draft: it stays
            conn.execute(crm_drafts.delete().where(crm_drafts.c.app == app, crm_drafts.c.revision == revision))
        return plan

    def discard(self, app: str) -> None:
        """Throw the draft away; the published version stays as it is."""
        self._check()
        with self.db.write() as conn:
            conn.execute(crm_drafts.delete().where(crm_drafts.c.app == app))
